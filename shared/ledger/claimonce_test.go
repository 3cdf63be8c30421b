package ledger_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
)

// TestIntegrationClaimInOneWrite runs the claim's rules against moto, where
// Claim takes its one-UpdateItem path (the unit tests' in-memory table has
// no UpdateItem): the same answer for every state as the read-then-write
// claim, the lease's record equal to what is stored, one winner among
// concurrent claims, and fencing after a take-over.
func TestIntegrationClaimInOneWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		state  ledger.State
		refuse ledger.Refusal
	}{
		{ledger.StateQueued, ""}, {ledger.StateScheduled, ""}, {ledger.StateRetrying, ""}, {ledger.StateDeferred, ""},
		{ledger.StatePublishing, ledger.RefusedLeased}, {ledger.StateSent, ledger.RefusedSettled},
		{ledger.StateFailed, ledger.RefusedSettled}, {ledger.StateUnknown, ledger.RefusedSettled},
		{ledger.StateDead, ledger.RefusedSettled}, {ledger.StateCancelled, ledger.RefusedSettled},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			t.Parallel()
			s, c := motoStore(t)
			d := stateOf(t, s, c, tc.state, "p")
			c.Advance(time.Second)
			l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
			if tc.refuse != "" {
				ce, ok := ledger.Refused(err)
				if !ok || ce.Reason != tc.refuse || ce.Delivery.ID != d.ID || ce.Delivery.State != tc.state {
					t.Fatalf("claim from %s: got %v, want refused %s with the delivery", tc.state, err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatalf("claim from %s: %v", tc.state, err)
			}
			got := l.Delivery()
			if got.State != ledger.StatePublishing || got.Attempts != d.Attempts+1 || l.From() != tc.state || !l.Until().Equal(c.Now().Add(ledger.Policy{}.WithDefaults().Lease)) {
				t.Errorf("claim from %s: got state %s attempts %d from %s until %s", tc.state, got.State, got.Attempts, l.From(), l.Until())
			}
			stored, err := s.Get(ctx, d.SiteID, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := jsonOf(t, got), jsonOf(t, stored); a != b {
				t.Errorf("the lease's delivery differs from the stored one:\n lease  %s\n stored %s", a, b)
			}
			// The lease works: a fenced checkpoint and the outcome land.
			if err := l.Journal().Record(ctx, "k", "v"); err != nil {
				t.Fatalf("record under the new lease: %v", err)
			}
			if out, err := l.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1"}}); err != nil || out.State != ledger.StateSent {
				t.Fatalf("finish: got %v %v", out.State, err)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		s, _ := motoStore(t)
		if _, err := s.Claim(ctx, "site_a", "dlv_missing", ledger.Policy{}); !apperr.Is(err, apperr.KindNotFound) {
			t.Fatalf("claim of a missing delivery: got %v, want not_found", err)
		}
	})

	t.Run("early, then due", func(t *testing.T) {
		t.Parallel()
		s, c := motoStore(t)
		d := stateOf(t, s, c, ledger.StateQueued, "p")
		l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		next := c.Now().Add(time.Minute)
		if _, err := l.Finish(ctx, ledger.Outcome{State: ledger.StateRetrying, Err: apperr.New(apperr.KindTransient, "", ""), NextAttemptAt: next}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{}); err == nil {
			t.Fatal("claim before NextAttemptAt: got a lease")
		} else if ce, ok := ledger.Refused(err); !ok || ce.Reason != ledger.RefusedEarly {
			t.Fatalf("claim before NextAttemptAt: got %v, want refused early", err)
		}
		c.Advance(time.Minute)
		if l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{}); err != nil || l.Delivery().Attempts != 2 {
			t.Fatalf("claim at NextAttemptAt: got %v, want attempt 2", err)
		}
	})

	t.Run("concurrent claims, one wins; the stale one is fenced", func(t *testing.T) {
		t.Parallel()
		s, c := motoStore(t)
		d := stateOf(t, s, c, ledger.StateQueued, "p")
		const workers = 8
		var wg sync.WaitGroup
		wins := make(chan *ledger.Lease, workers)
		for range workers {
			wg.Go(func() {
				if l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{Lease: time.Minute}); err == nil {
					wins <- l
				} else if _, ok := ledger.Refused(err); !ok {
					t.Errorf("concurrent claim: got %v, want a lease or a refusal", err)
				}
			})
		}
		wg.Wait()
		close(wins)
		if len(wins) != 1 {
			t.Fatalf("claims won: got %d, want 1", len(wins))
		}
		stale := <-wins
		c.Advance(61 * time.Second)
		fresh, err := s.TakeOver(ctx, d.SiteID, d.ID, ledger.Policy{})
		if err != nil {
			t.Fatalf("take over: %v", err)
		}
		if _, err := stale.Finish(ctx, ledger.Outcome{State: ledger.StateSent}); err == nil {
			t.Fatal("stale Finish after a take-over: got nil, want ErrLeaseLost")
		}
		if fresh.Fence() <= stale.Fence() {
			t.Errorf("fence: stale %d, fresh %d", stale.Fence(), fresh.Fence())
		}
	})
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
