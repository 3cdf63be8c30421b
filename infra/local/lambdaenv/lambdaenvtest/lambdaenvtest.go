// Package lambdaenvtest helps tests run a function's real bootstrap under the
// Lambda Runtime Interface Emulator:
//
//	func TestAPI(t *testing.T) {
//		bin := lambdaenvtest.Build(t, "ApiFunction") // make build-ApiFunction, for this machine
//		pool := lambdaenvtest.Start(t, lambdaenv.Config{
//			Name: "posse-test-api", Bootstrap: bin, Timeout: 30 * time.Second,
//			Env: append(moto.Env(mototest.Server(t).Endpoint()), "POSSE_TABLE=..."),
//		})
//		out := lambdaenvtest.InvokeFile(t, pool, "testdata/health.json")
//		...
//	}
//
// Where the emulator cannot run (not Linux) the test is skipped, or fails
// when POSSE_INTEGRATION=1 requires integration tests.
package lambdaenvtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{} // build key → bootstrap, once per test binary
	rieOnce sync.Once
	riePath string
	rieErr  error
)

// Root returns the repository root (the folder holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	root, err := lambdaenv.RepoRoot(".")
	if err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	return root
}

func requireLinux(t testing.TB) {
	t.Helper()
	if runtime.GOOS == "linux" {
		return
	}
	if os.Getenv("POSSE_INTEGRATION") == "1" {
		t.Fatalf("lambdaenvtest: %v (POSSE_INTEGRATION=1)", lambdaenv.ErrNotLinux)
	}
	t.Skipf("lambdaenvtest: %v", lambdaenv.ErrNotLinux)
}

// Build builds the template function logicalID with the Makefile's
// build-<LogicalID> target for this machine (GOOS=linux, host GOARCH) and
// returns the bootstrap's path. Each function is built once per test binary.
func Build(t testing.TB, logicalID string) string {
	t.Helper()
	root := Root(t)
	return build(t, "make:"+logicalID, lambdaenv.Build{Dir: root, Target: "build-" + logicalID})
}

// BuildPackage builds the main package in dir (relative to the test's
// working directory, or absolute) with go build and returns the bootstrap.
func BuildPackage(t testing.TB, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	return build(t, "go:"+abs, lambdaenv.Build{Dir: abs})
}

func build(t testing.TB, key string, b lambdaenv.Build) string {
	t.Helper()
	requireLinux(t)
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[key]; ok {
		return bin
	}
	// Build into a fresh folder, then move the bootstrap to a stable path
	// per function: reruns overwrite it instead of piling up binaries, and
	// the rename never disturbs a copy another test binary is running.
	base := filepath.Join(os.TempDir(), "posse-lambdaenvtest")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	tmp, err := os.MkdirTemp(base, "build-")
	if err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	defer os.RemoveAll(tmp)
	b.OutDir = tmp
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := b.Run(ctx)
	if err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(base, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	bin := filepath.Join(dir, "bootstrap")
	if err := os.Rename(out, bin); err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	built[key] = bin
	return bin
}

// RIE returns the emulator binary (lambdaenv.FindRIE), built at most once
// per test binary.
func RIE(t testing.TB) string {
	t.Helper()
	requireLinux(t)
	rieOnce.Do(func() {
		root, err := lambdaenv.RepoRoot(".")
		if err != nil {
			rieErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		riePath, rieErr = lambdaenv.FindRIE(ctx, root)
	})
	if rieErr != nil {
		t.Fatalf("lambdaenvtest: %v", rieErr)
	}
	return riePath
}

// Start starts a pool and closes it when the test ends. Unless cfg.LogDir
// is set, instance logs go to a temporary folder and are printed when the
// test fails.
func Start(t testing.TB, cfg lambdaenv.Config) *lambdaenv.Pool {
	t.Helper()
	if cfg.RIE == "" {
		cfg.RIE = RIE(t)
	}
	printLogs := false
	if cfg.LogDir == "" {
		cfg.LogDir = t.TempDir()
		printLogs = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := lambdaenv.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	t.Cleanup(func() {
		p.Close()
		if printLogs && t.Failed() {
			for _, f := range p.LogFiles() {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), tail(string(b), 4000))
			}
		}
	})
	return p
}

// InvokeFile invokes p with the content of a JSON file and fails the test
// on any error, the function's own included.
func InvokeFile(t testing.TB, p *lambdaenv.Pool, path string) []byte {
	t.Helper()
	payload, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("lambdaenvtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout()+30*time.Second)
	defer cancel()
	out, err := p.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke %s with %s: %v", p.Name(), path, err)
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := strings.IndexByte(s[len(s)-n:], '\n')
	return "..." + s[len(s)-n+i+1:]
}
