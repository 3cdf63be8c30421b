// Command soak is POSSE's fault soak (`make soak`): it starts the whole
// local stack (moto, every function's real bootstrap under the Lambda
// Runtime Interface Emulator, the runner's SQS polling and schedules, the
// platform simulator), connects an account of each of the eight platforms,
// and dispatches posts to all eight while the simulator answers with
// random faults (429 storms, 5xx, timeouts after the post was created,
// slow answers, expired tokens), the runner kills dispatch runtimes with
// SIGKILL mid-publish, and the DLQ is redriven to the dispatch queue with
// StartMessageMoveTask, carrying messages of deliveries in every state.
//
// When faults and crashes stop it times the drain, then reports the
// deliveries by final state, posts at the simulator per delivery
// (duplicates by platform), lost deliveries, unknown ones and why, faults
// injected, instances killed, and a scan of every log line and every item
// of the table for the run's secrets. It exits 1 when an invariant breaks:
// a second post of a delivery, a delivery that never settled, a failed one
// the platform published, a sent one it did not, a secret at rest.
//
// Everything listens on loopback; the run is bounded by -posts and
// -deadline and stops by itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// defaults is the full soak: 1,000 deliveries.
func defaults() Config {
	return Config{Posts: 125, Instances: 2, Deadline: 25 * time.Minute, Drain: 6 * time.Minute, Seed: 1,
		KillAfterCreate: 0.03, KillEvery: 8 * time.Second, FaultEvery: 250 * time.Millisecond, FaultsPerDelivery: 0.3,
		DLQCopies: 0.05, RedriveEvery: 5 * time.Second, ChaosUntil: 0.9, ChaosFor: 12 * time.Minute}
}

func cli(args []string, stdout, stderr io.Writer) int {
	cfg := defaults()
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Posts, "posts", cfg.Posts, "posts to dispatch, each to the eight platforms (125 = 1,000 deliveries)")
	fs.IntVar(&cfg.Instances, "instances", cfg.Instances, "emulator instances per function")
	fs.DurationVar(&cfg.Deadline, "deadline", cfg.Deadline, "bound on the whole run")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "bound on the drain once faults and crashes stop")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the faults and crashes")
	fs.Float64Var(&cfg.KillAfterCreate, "kill-after-create", cfg.KillAfterCreate, "probability that a created post crashes a busy dispatch runtime before its answer")
	fs.DurationVar(&cfg.KillEvery, "kill-every", cfg.KillEvery, "mean interval of crashes at random points (0: none)")
	fs.DurationVar(&cfg.FaultEvery, "fault-every", cfg.FaultEvery, "interval between simulator faults")
	fs.Float64Var(&cfg.FaultsPerDelivery, "faults-per-delivery", cfg.FaultsPerDelivery, "faults injected in all, per delivery")
	fs.DurationVar(&cfg.ChaosFor, "chaos-for", cfg.ChaosFor, "bound on how long faults and crashes run after the first dispatch")
	fs.Float64Var(&cfg.DLQCopies, "dlq-copies", cfg.DLQCopies, "share of deliveries whose message is also put on the DLQ")
	fs.DurationVar(&cfg.RedriveEvery, "redrive-every", cfg.RedriveEvery, "how often a non-empty DLQ is redriven")
	fs.Float64Var(&cfg.ChaosUntil, "chaos-until", cfg.ChaosUntil, "share of settled deliveries at which faults and crashes stop")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "keep the stack's logs here (default: a temporary folder, removed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Posts < 1 || cfg.Instances < 1 || cfg.FaultEvery <= 0 || cfg.RedriveEvery <= 0 || cfg.ChaosUntil <= 0 || cfg.ChaosUntil > 1 {
		fmt.Fprintln(stderr, "soak: -posts and -instances must be at least 1, -fault-every and -redrive-every positive, -chaos-until in (0, 1]")
		return 2
	}
	root, err := lambdaenv.RepoRoot(".")
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	cfg.Root, cfg.Progress = root, stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if rep != nil {
		rep.Print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	if len(rep.Violations()) > 0 {
		fmt.Fprintln(stderr, "soak:", errViolations)
		return 1
	}
	return 0
}
