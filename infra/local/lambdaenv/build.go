package lambdaenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// RIEModule is the Go package of the emulator, pinned as a tool in go.mod.
const RIEModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// RepoRoot walks up from dir to the first folder holding a go.mod.
func RepoRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find repository root from %s: %w", dir, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if st, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !st.IsDir() {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repository root: no go.mod above %s", abs)
		}
	}
}

// FindRIE returns the aws-lambda-rie binary to use: $POSSE_RIE, else
// <root>/.local/bin/aws-lambda-rie, else it builds that file from the
// version pinned in go.mod.
func FindRIE(ctx context.Context, root string) (string, error) {
	if p := os.Getenv("POSSE_RIE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("find RIE: POSSE_RIE: %w", err)
		}
		return p, nil
	}
	p := filepath.Join(root, ".local", "bin", "aws-lambda-rie")
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("build RIE: %w", err)
	}
	// Build beside the target and rename, so concurrent test binaries never
	// run a half-written file.
	tmp, err := os.CreateTemp(filepath.Dir(p), ".aws-lambda-rie-*")
	if err != nil {
		return "", fmt.Errorf("build RIE: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp.Name(), RIEModule)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build RIE (go build %s): %w: %s", RIEModule, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("build RIE: %w", err)
	}
	return p, nil
}

// Build describes how to build one function's bootstrap for this machine
// (GOOS=linux, the host's GOARCH).
type Build struct {
	// Dir is where the build runs: the folder holding the Makefile for
	// BuildMethod makefile, else the function's main package.
	Dir string
	// Target is the make target (build-<LogicalId>); empty means `go build`
	// of the package in Dir.
	Target string
	// OutDir receives the bootstrap (ARTIFACTS_DIR).
	OutDir string
}

// ErrNotLinux means the host cannot run the emulator.
var ErrNotLinux = errors.New("the Lambda Runtime Interface Emulator only runs on Linux")

// Run builds the bootstrap and returns its path.
func (b Build) Run(ctx context.Context) (string, error) {
	if runtime.GOOS != "linux" {
		return "", ErrNotLinux
	}
	out, err := filepath.Abs(b.OutDir)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", b.Dir, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", b.Dir, err)
	}
	var cmd *exec.Cmd
	if b.Target != "" {
		cmd = exec.CommandContext(ctx, "make", "--no-print-directory", b.Target,
			"ARTIFACTS_DIR="+out, "GOOS=linux", "GOARCH="+runtime.GOARCH)
	} else {
		cmd = exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", filepath.Join(out, "bootstrap"), ".")
	}
	cmd.Dir = b.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		what := "go build"
		if b.Target != "" {
			what = "make " + b.Target
		}
		return "", fmt.Errorf("build %s (%s): %w: %s", b.Dir, what, err, strings.TrimSpace(string(msg)))
	}
	bin := filepath.Join(out, "bootstrap")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("build %s: no bootstrap produced: %w", b.Dir, err)
	}
	return bin, nil
}
