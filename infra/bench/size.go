package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// sizeTop is how many dependencies binarySizes reports per function.
const sizeTop = 8

// binarySizes builds every function and the floor for linux/arm64 as the
// Makefile does (stripped: -s -w), compares their sizes, and names the
// dependencies that dominate what each one adds to the floor: the same
// build unstripped, read with `go tool nm -size`, its code and data
// symbols summed by dependency (see depOf) less the floor's. Symbols are
// about half of a stripped file; the rest is the function table
// (.gopclntab, which grows with the code) and type data, so the figures
// rank dependencies rather than add up to the file.
func binarySizes(ctx context.Context, root, tmp string) ([]result, error) {
	build := func(pkg string, stripped bool) (string, error) {
		name := "bootstrap"
		flags := "-ldflags=-s -w"
		if !stripped {
			name, flags = "bootstrap.syms", "-ldflags="
		}
		outBin := filepath.Join(tmp, "arm64", filepath.Base(pkg), name)
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", flags, "-o", outBin, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s for arm64: %w: %s", pkg, err, msg)
		}
		return outBin, nil
	}
	size := func(pkg string) (float64, error) {
		bin, err := build(pkg, true)
		if err != nil {
			return 0, err
		}
		st, err := os.Stat(bin)
		if err != nil {
			return 0, err
		}
		return float64(st.Size()) / (1 << 20), nil
	}
	floor, err := size("./infra/bench/floorfn")
	if err != nil {
		return nil, err
	}
	floorSyms, err := build("./infra/bench/floorfn", false)
	if err != nil {
		return nil, err
	}
	floorDeps, _, err := symbolSizes(ctx, root, floorSyms, nil)
	if err != nil {
		return nil, err
	}
	base := map[string]int64{}
	for _, d := range floorDeps {
		base[d.name] = d.bytes
	}
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []result
	for _, n := range names {
		pkg := "./functions/" + n
		s, err := size(pkg)
		if err != nil {
			return nil, err
		}
		note := "goal <= 10 MiB"
		if s > 10 {
			note = "over the 10 MiB goal"
		}
		out = append(out, withFloor(result{Name: "bootstrap size " + n + " (linux/arm64)", Value: s, Unit: "MiB", Note: note}, floor))
		syms, err := build(pkg, false)
		if err != nil {
			return nil, err
		}
		deps, total, err := symbolSizes(ctx, root, syms, base)
		if err != nil {
			return nil, err
		}
		for i, d := range deps {
			if i == sizeTop {
				break
			}
			out = append(out, result{Name: fmt.Sprintf("  %s: %s", n, d.name), Value: float64(d.bytes) / 1024, Unit: "KiB",
				Note: fmt.Sprintf("symbols above the floor's; %.0f%% of all above it", 100*float64(d.bytes)/float64(total))})
		}
	}
	return out, nil
}

// depSize is the symbol bytes one dependency brings.
type depSize struct {
	name  string
	bytes int64
}

// symbolSizes sums the sized code and data symbols of bin (not BSS, which
// takes no room in the file) by dependency, less what base holds for the
// same dependency (the floor's own: runtime, the Lambda client), largest
// first, and returns the total of those differences too.
func symbolSizes(ctx context.Context, root, bin string, base map[string]int64) ([]depSize, int64, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "nm", "-size", bin)
	cmd.Dir = root
	raw, err := cmd.Output()
	if err != nil {
		return nil, 0, fmt.Errorf("go tool nm %s: %w", bin, err)
	}
	by := map[string]int64{}
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		// address size type name (the name may hold spaces)
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[2] == "B" || f[2] == "b" || f[2] == "U" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n == 0 {
			continue
		}
		by[depOf(strings.Join(f[3:], " "))] += n
		total += n
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	out := make([]depSize, 0, len(by))
	total = 0
	for k, v := range by {
		if v -= base[k]; v > 0 {
			out = append(out, depSize{k, v})
			total += v
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].bytes > out[j].bytes || out[i].bytes == out[j].bytes && out[i].name < out[j].name
	})
	return out, total, nil
}

// depGroups are the prefixes symbols are summed under: each AWS service
// client on its own, POSSE's packages one by one, the rest of a module or
// standard library tree as one.
var depGroups = []struct {
	prefix string
	depth  int // path elements kept after the prefix; 0: the prefix alone
}{
	{"github.com/aws/aws-sdk-go-v2/service/", 1},
	{"github.com/posse-dev/posse/", 2},
	{"github.com/aws/aws-sdk-go-v2", 0},
	{"github.com/aws/smithy-go", 0},
	{"github.com/aws/aws-lambda-go", 0},
	{"github.com/awslabs/aws-lambda-go-api-proxy", 0},
	{"golang.org/x/", 1},
	{"vendor/golang.org/x/", 1},
	{"crypto/", 0},
	{"net/http", 0},
	{"encoding/json", 0},
}

// depOf names the dependency a symbol belongs to: its package path (the
// name up to the first dot after the last slash, before any receiver or
// type arguments), grouped by depGroups. Linker-made symbols (go:func.*,
// type:*, runtime.*) keep their own names.
func depOf(sym string) string {
	if strings.HasPrefix(sym, "go:") || strings.HasPrefix(sym, "type:") {
		return "(" + strings.SplitN(sym, ".", 2)[0] + " linker data)"
	}
	cut := len(sym)
	if i := strings.IndexAny(sym, "(["); i >= 0 {
		cut = i
	}
	slash := strings.LastIndex(sym[:cut], "/")
	pkg := sym
	if dot := strings.Index(sym[slash+1:], "."); dot >= 0 {
		pkg = sym[:slash+1+dot]
	}
	for _, g := range depGroups {
		rest, ok := strings.CutPrefix(pkg, g.prefix)
		if !ok {
			continue
		}
		if g.depth == 0 {
			return strings.TrimSuffix(g.prefix, "/")
		}
		parts := strings.Split(rest, "/")
		if len(parts) > g.depth {
			parts = parts[:g.depth]
		}
		return g.prefix + strings.Join(parts, "/")
	}
	return pkg
}
