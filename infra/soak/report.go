package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/posse-dev/posse/infra/local/secretscan"
	"github.com/posse-dev/posse/shared/ledger"
)

// Report is what a soak found.
type Report struct {
	Config     Config
	Deliveries int
	// States counts the deliveries by final state ("lost" for those that
	// never settled).
	States map[string]int
	// Platforms holds the counts per platform.
	Platforms map[string]*PlatformCounts
	// UnknownReasons counts unknown deliveries by platform and error code.
	UnknownReasons map[string]int
	// Faults counts the faults injected by kind.
	Faults map[string]int
	// Kills is the runner's crash injection configuration and counts.
	Kills struct {
		Stats struct {
			Kills       int `json:"kills"`
			AfterCreate int `json:"afterCreate"`
			Timed       int `json:"timed"`
			Idle        int `json:"idle"`
		} `json:"stats"`
	}
	// RejectedPosts counts dispatches answered 422 (a broken connection):
	// their deliveries were never made.
	RejectedPosts int
	// DLQCopies is the messages the soak put on the DLQ; MoveTasks the
	// redrives it started; MovedMessages what they moved.
	DLQCopies, MoveTasks, MovedMessages int
	// QueueLeft and DLQLeft are the messages left at the end.
	QueueLeft, DLQLeft int
	// Times.
	DispatchTime, DrainTime, Total time.Duration
	// Secrets.
	SecretsChecked int
	SecretKinds    map[string]int
	SealedOpened   int
	ItemsScanned   int
	LogFiles       int
	LogLines       int
	SecretFindings []secretscan.Finding
	// Problems lists each delivery that broke an invariant.
	Problems []string
}

// PlatformCounts are one platform's figures.
type PlatformCounts struct {
	Deliveries int
	Sent       int
	Unknown    int
	Failed     int
	Dead       int
	Lost       int
	// Waiting counts deliveries deferred past the run by the platform's
	// reset, their wake-up schedule in place.
	Waiting int
	Posts   int
	// Duplicates counts deliveries with more than one post.
	Duplicates int
	// UnknownPosted counts unknown deliveries the platform did publish
	// (the person who resolves them marks them sent).
	UnknownPosted int
	// Retries, Deferrals and Reconciled count history entries.
	Retries, Deferrals, Reconciled int
}

// count fills the figures from the final deliveries and the posts the
// simulator recorded (platform|postID → posts).
func (r *Report) count(ds []*delivery, posted map[string]int) {
	for _, d := range ds {
		pc := r.Platforms[d.Platform]
		if pc == nil {
			pc = &PlatformCounts{}
			r.Platforms[d.Platform] = pc
		}
		pc.Deliveries++
		n := posted[d.Platform+"|"+d.PostID]
		pc.Posts += n
		state := d.final.State
		name := string(state)
		switch {
		case d.waiting:
			name = "deferred past the run"
		case !settled(state):
			name = "lost"
		}
		r.States[name]++
		for _, h := range d.final.History {
			switch h.Outcome {
			case ledger.StateRetrying:
				pc.Retries++
			case ledger.StateDeferred:
				pc.Deferrals++
			}
			if strings.HasPrefix(h.Message, "reconciled") {
				pc.Reconciled++
			}
		}
		problem := func(format string, args ...any) {
			r.Problems = append(r.Problems, fmt.Sprintf("%s on %s (%s): ", d.ID, d.Platform, name)+fmt.Sprintf(format, args...))
		}
		if n > 1 {
			pc.Duplicates++
			problem("%d posts at the platform, want at most 1", n)
		}
		switch state {
		case ledger.StateSent:
			pc.Sent++
			if n == 0 {
				problem("sent, but the platform has no post")
			}
		case ledger.StateUnknown:
			pc.Unknown++
			code := "?"
			if d.final.LastError != nil {
				code = d.final.LastError.Code
				if d.final.LastError.PlatformCode != "" {
					code += " (" + d.final.LastError.PlatformCode + ")"
				}
			}
			r.UnknownReasons[d.Platform+": "+code]++
			if n == 1 {
				pc.UnknownPosted++
			}
		case ledger.StateFailed, ledger.StateDead:
			if state == ledger.StateFailed {
				pc.Failed++
			} else {
				pc.Dead++
			}
			if n > 0 {
				problem("recorded %s, but the platform has the post (a silent publication)", state)
			}
		case ledger.StateCancelled:
		default:
			if d.waiting {
				pc.Waiting++
				break
			}
			pc.Lost++
			problem("never settled (last state %q)", state)
		}
	}
	sort.Strings(r.Problems)
}

// Violations lists what breaks the soak's invariants: duplicates, lost
// deliveries, silent publications, sent without a post, any secret found.
func (r *Report) Violations() []string {
	out := append([]string(nil), r.Problems...)
	for _, f := range r.SecretFindings {
		out = append(out, "secret at rest: "+f.String())
	}
	if r.Deliveries == 0 {
		out = append(out, "no delivery was made")
	}
	return out
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\nPOSSE fault soak (seed %d): %d deliveries = %d posts x 8 platforms, %d dispatch instances\n",
		c.Seed, r.Deliveries, c.Posts, c.Instances)
	if r.RejectedPosts > 0 {
		fmt.Fprintf(w, "  posts rejected             %d (422: a connection was broken), their deliveries never made\n", r.RejectedPosts)
	}
	fmt.Fprintf(w, "  deliveries by final state  %s\n", counts(r.States))
	fmt.Fprintf(w, "  lost (not settled by the end of the drain bound) %d\n", r.States["lost"])
	fmt.Fprintf(w, "  faults injected            %d: %s\n", sum(r.Faults), counts(r.Faults))
	k := r.Kills.Stats
	fmt.Fprintf(w, "  instances killed (SIGKILL) %d: %d right after the platform created a post, %d at random points (%d times nothing was running)\n",
		k.Kills, k.AfterCreate, k.Timed, k.Idle)
	fmt.Fprintf(w, "  DLQ                        %d copies put there, %d redrives (StartMessageMoveTask) moved %d messages\n",
		r.DLQCopies, r.MoveTasks, r.MovedMessages)
	fmt.Fprintf(w, "  times                      dispatch %v, drain after faults stopped %v, total %v\n",
		r.DispatchTime.Round(time.Second), r.DrainTime.Round(time.Second), r.Total.Round(time.Second))
	fmt.Fprintf(w, "  queues at the end          dispatch %d, DLQ %d messages\n", r.QueueLeft, r.DLQLeft)
	fmt.Fprintf(w, "\n  %-10s %5s %5s %7s %6s %4s %4s %5s %10s %13s %7s %8s %10s\n",
		"platform", "dlv", "sent", "unknown", "failed", "dead", "lost", "posts", "duplicates", "unknown+post", "retries", "deferred", "reconciled")
	for _, p := range Platforms {
		pc := r.Platforms[p]
		note := ""
		if cannotReconcile[p] {
			note = "  (cannot reconcile)"
		}
		fmt.Fprintf(w, "  %-10s %5d %5d %7d %6d %4d %4d %5d %10d %13d %7d %8d %10d%s\n", p, pc.Deliveries, pc.Sent, pc.Unknown, pc.Failed,
			pc.Dead, pc.Lost, pc.Posts, pc.Duplicates, pc.UnknownPosted, pc.Retries, pc.Deferrals, pc.Reconciled, note)
	}
	if len(r.UnknownReasons) > 0 {
		fmt.Fprintf(w, "\n  unknown, by reason\n")
		for _, k := range sortedKeys(r.UnknownReasons) {
			fmt.Fprintf(w, "    %-60s %d\n", k, r.UnknownReasons[k])
		}
	}
	fmt.Fprintf(w, "\n  secrets                    %d checked (%s), %d sealed records opened\n", r.SecretsChecked, counts(r.SecretKinds), r.SealedOpened)
	fmt.Fprintf(w, "                             scanned %d items (full Scan) and %d log lines in %d files + the runner's stderr: found %s\n",
		r.ItemsScanned, r.LogLines, r.LogFiles, secretscan.Summary(r.SecretFindings))
	v := r.Violations()
	if len(v) == 0 {
		fmt.Fprintf(w, "\n  invariants hold: no duplicate, none lost, no silent publication, no secret at rest\n")
		return
	}
	fmt.Fprintf(w, "\n  %d INVARIANT VIOLATIONS\n", len(v))
	for i, s := range v {
		if i == 50 {
			fmt.Fprintf(w, "    ... and %d more\n", len(v)-50)
			break
		}
		fmt.Fprintf(w, "    %s\n", s)
	}
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
