// Command bench is `make bench`: it measures POSSE against floors measured
// in the same run on the same machine, and prints ratios, so the numbers
// mean something on any laptop:
//
//   - cold start: each function's init duration under the Lambda RIE, with
//     the template's environment against moto, vs a minimal Lambda bootstrap;
//   - binary size: each function's linux/arm64 bootstrap vs the same floor;
//   - vault: KMS calls per 1,000 opens of one warm sealed record (goal <= 1),
//     and the cost of a cached open vs a bare AES-256-GCM open of the same
//     bytes;
//   - AI adaptation against the LLM simulator (see aiAdaptation);
//   - the dispatch pipeline and schedules through the whole local stack
//     (see pipeline);
//   - engagement reads per second per platform against the simulator and
//     DynamoDB calls per reading (see engagementReads);
//   - AWS calls per single-target dispatch and bulk acceptance in posts per
//     minute (see bulkAcceptance).
//
// Results are printed as a table and written to infra/bench/results/ as JSON.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/samtemplate"
	"github.com/posse-dev/posse/infra/local/stack"
	"github.com/posse-dev/posse/shared/vault"
)

// result is one measured line.
type result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Floor float64 `json:"floor,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	Note  string  `json:"note,omitempty"`
}

func main() {
	onlyFlag := flag.String("only", "", "comma-separated parts to run (cold, size, vault, ai, pipeline, engagement, bulk); empty: all")
	flag.Parse()
	var only []string
	if *onlyFlag != "" {
		only = strings.Split(*onlyFlag, ",")
	}
	if err := run(context.Background(), os.Stdout, only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, only []string) error {
	root, err := lambdaenv.RepoRoot(".")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "posse-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	srv, err := moto.Start(ctx, moto.Options{Log: filepath.Join(tmp, "moto.log")})
	if err != nil {
		return err
	}
	defer srv.Close()

	parts := []struct {
		name string
		run  func() ([]result, error)
	}{
		{"cold", func() ([]result, error) { return coldStarts(ctx, root, tmp, srv) }},
		{"size", func() ([]result, error) { return binarySizes(ctx, root, tmp) }},
		{"vault", func() ([]result, error) { return vaultEconomy(ctx, srv) }},
		{"ai", func() ([]result, error) { return aiAdaptation(ctx, srv) }},
		{"pipeline", func() ([]result, error) { return pipeline(ctx, root, tmp) }},
		{"engagement", func() ([]result, error) { return engagementReads(ctx, srv) }},
		{"bulk", func() ([]result, error) { return bulkAcceptance(ctx, root, tmp) }},
	}
	var results []result
	for _, p := range parts {
		if len(only) > 0 && !slices.Contains(only, p.name) {
			continue
		}
		r, err := p.run()
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		results = append(results, r...)
	}

	fmt.Fprintf(out, "%-44s %14s %14s %8s\n", "measure", "value", "floor", "ratio")
	for _, r := range results {
		floor, ratio := "", ""
		if r.Floor != 0 {
			floor, ratio = fmt.Sprintf("%.2f %s", r.Floor, r.Unit), fmt.Sprintf("%.2fx", r.Ratio)
		}
		fmt.Fprintf(out, "%-44s %14s %14s %8s  %s\n", r.Name, fmt.Sprintf("%.2f %s", r.Value, r.Unit), floor, ratio, r.Note)
	}
	dir := filepath.Join(root, "infra", "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(results, "", "  ")
	return os.WriteFile(filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z")+".json"), b, 0o644)
}

func withFloor(r result, floor float64) result {
	r.Floor = floor
	if floor > 0 {
		r.Ratio = r.Value / floor
	}
	return r
}

// coldStarts deploys template.yaml into moto and measures each function's
// mean init duration over fresh RIE instances, against floorfn's.
func coldStarts(ctx context.Context, root, tmp string, srv *moto.Server) ([]result, error) {
	const instances = 3
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	st, err := stack.Deploy(ctx, stack.Options{
		Template:   tpl,
		Parameters: map[string]string{"Environment": "local", "AdminKeySha256": fmt.Sprintf("%064x", 0)},
		StackName:  "posse-bench",
		Clients:    stack.NewClients(moto.Config(srv.Endpoint())),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	measure := func(name, bootstrap string, env []string) (time.Duration, error) {
		p, err := lambdaenv.Start(ctx, lambdaenv.Config{Name: name, Bootstrap: bootstrap, Instances: instances, Timeout: 30 * time.Second, Env: env, LogDir: tmp})
		if err != nil {
			return 0, err
		}
		defer p.Close()
		if err := p.Warm(ctx, []byte(`{}`)); err != nil {
			return 0, err
		}
		d, ok := p.InitDuration()
		if !ok {
			return 0, fmt.Errorf("%s reported no init duration", name)
		}
		return d, nil
	}
	floorBin, err := lambdaenv.Build{Dir: filepath.Join(root, "infra", "bench", "floorfn"), OutDir: filepath.Join(tmp, "floor")}.Run(ctx)
	if err != nil {
		return nil, err
	}
	floor, err := measure("floor", floorBin, moto.Env(srv.Endpoint()))
	if err != nil {
		return nil, err
	}
	var out []result
	for _, fn := range st.Functions {
		bin, err := lambdaenv.Build{Dir: root, Target: "build-" + fn.LogicalID, OutDir: filepath.Join(tmp, fn.LogicalID)}.Run(ctx)
		if err != nil {
			return nil, err
		}
		d, err := measure(fn.Name, bin, append(fn.EnvironmentList(), moto.Env(srv.Endpoint())...))
		if err != nil {
			return nil, err
		}
		out = append(out, withFloor(result{Name: "cold start " + fn.LogicalID, Value: ms(d), Unit: "ms",
			Note: fmt.Sprintf("mean of %d RIE instances; floor = minimal bootstrap", instances)}, ms(floor)))
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// binarySizes builds every function and the floor for linux/arm64, as
// Lambda runs them, and compares sizes.
func binarySizes(ctx context.Context, root, tmp string) ([]result, error) {
	size := func(dir, pkg string) (float64, error) {
		outBin := filepath.Join(tmp, "arm64", filepath.Base(pkg), "bootstrap")
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", outBin, pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build %s for arm64: %w: %s", pkg, err, msg)
		}
		st, err := os.Stat(outBin)
		if err != nil {
			return 0, err
		}
		return float64(st.Size()) / (1 << 20), nil
	}
	floor, err := size(root, "./infra/bench/floorfn")
	if err != nil {
		return nil, err
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
		s, err := size(root, "./functions/"+n)
		if err != nil {
			return nil, err
		}
		out = append(out, withFloor(result{Name: "bootstrap size " + n + " (linux/arm64)", Value: s, Unit: "MiB"}, floor))
	}
	return out, nil
}

// countingKMS counts the Decrypt calls that reach KMS.
type countingKMS struct {
	*kms.Client
	decrypts atomic.Int64
}

func (c *countingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	c.decrypts.Add(1)
	return c.Client.Decrypt(ctx, in, opts...)
}

// vaultEconomy measures KMS calls per 1,000 warm opens and the cost of a
// cached open against a bare AES-GCM open of the same plaintext size.
func vaultEconomy(ctx context.Context, srv *moto.Server) ([]result, error) {
	client := kms.NewFromConfig(moto.Config(srv.Endpoint()))
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		return nil, fmt.Errorf("create bench key: %w", err)
	}
	counting := &countingKMS{Client: client}
	v, err := vault.New(counting, vault.Config{KeyID: aws.ToString(key.KeyMetadata.KeyId)})
	if err != nil {
		return nil, err
	}
	c := vault.Context{Site: "site_bench", Connection: "conn_bench", Purpose: vault.PurposeOAuthTokens}
	plain := make([]byte, 512) // about the size of a sealed token set
	_, _ = rand.Read(plain)
	sealed, err := v.Seal(ctx, c, plain)
	if err != nil {
		return nil, err
	}
	for range 1000 {
		if _, err := v.Open(ctx, c, sealed); err != nil {
			return nil, err
		}
	}
	calls := float64(counting.decrypts.Load())

	cached := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Open(ctx, c, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	block, _ := aes.NewCipher(k)
	gcm, _ := cipher.NewGCM(block)
	nonce := make([]byte, gcm.NonceSize())
	ct := gcm.Seal(nil, nonce, plain, []byte("aad"))
	bare := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			blk, _ := aes.NewCipher(k)
			g, _ := cipher.NewGCM(blk)
			if _, err := g.Open(nil, nonce, ct, []byte("aad")); err != nil {
				b.Fatal(err)
			}
		}
	})
	return []result{
		{Name: "vault KMS calls per 1,000 warm opens", Value: calls, Unit: "calls", Note: "goal <= 1"},
		withFloor(result{Name: "vault cached open", Value: float64(cached.NsPerOp()), Unit: "ns",
			Note: "floor = bare AES-256-GCM open of 512 bytes"}, float64(bare.NsPerOp())),
	}, nil
}
