package dispatch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// A platform that can reconcile but rate-limits (or fails) the reconciling
// call has not said "cannot tell": the delivery stays publishing and is
// reconciled again once its lease expires, instead of ending unknown for a
// person to decide. Found by the fault soak (a Mastodon delivery recovered
// after a crash met a 429 on its Idempotency-Key re-post and ended
// unknown).
func TestReconcileLaterWhenThePlatformCannotBeAskedNow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"rate limited", apperr.New(apperr.KindRateLimited, "mastodon.rate_limited", "rate limited by the instance")},
		{"transient", apperr.New(apperr.KindTransient, "mastodon.unavailable", "503")},
	} {
		t.Run("after an ambiguous publish: "+tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, nil)
			r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
				return platform.Result{}, apperr.New(apperr.KindAmbiguous, "mastodon.timeout", "connection dropped")
			}
			busy := true
			r.pub.reconcile = func(platform.Post) (platform.Result, bool, error) {
				if busy {
					return platform.Result{}, false, tc.err
				}
				return platform.Result{ID: "7", URL: "https://m.example/7"}, true, nil
			}
			d, rec := r.delivery("p1")
			if err := r.d.HandleRecord(context.Background(), rec); err == nil {
				t.Fatal("got nil, want an error that leaves the message on the queue")
			}
			if got := r.get(d.ID); got.State != ledger.StatePublishing {
				t.Fatalf("after a %s reconciliation: got %s (%+v), want publishing", tc.name, got.State, got.LastError)
			}
			// The redelivered message finds the lease expired and asks again.
			busy = false
			r.clock.Advance(3 * time.Minute)
			if err := r.d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			if got := r.get(d.ID); got.State != ledger.StateSent || got.PlatformPostID != "7" {
				t.Errorf("reconciled again: got %s %q, want sent 7", got.State, got.PlatformPostID)
			}
			if n, rc := r.pub.counts(); n != 1 || rc != 2 {
				t.Errorf("publishes %d, reconciles %d; want 1 and 2", n, rc)
			}
		})
	}
	t.Run("an expired lease", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		busy := true
		r.pub.reconcile = func(platform.Post) (platform.Result, bool, error) {
			if busy {
				return platform.Result{}, false, apperr.New(apperr.KindRateLimited, "mastodon.rate_limited", "rate limited")
			}
			return platform.Result{}, false, nil
		}
		d, rec := r.delivery("p1")
		// A worker claims and dies mid-publish.
		if _, err := r.ledger.Claim(context.Background(), d.SiteID, d.ID, ledger.Policy{Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(2 * time.Minute)
		if err := r.d.HandleRecord(context.Background(), rec); err == nil {
			t.Fatal("got nil, want an error that leaves the message on the queue")
		}
		if got := r.get(d.ID); got.State != ledger.StatePublishing {
			t.Fatalf("after a rate-limited reconciliation: got %s (%+v), want publishing", got.State, got.LastError)
		}
		// Asked again after the new lease: not published, so published now.
		busy = false
		r.clock.Advance(3 * time.Minute)
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if got := r.get(d.ID); got.State != ledger.StateSent {
			t.Errorf("after the second reconciliation: got %s, want sent", got.State)
		}
		if n, rc := r.pub.counts(); n != 1 || rc != 2 {
			t.Errorf("publishes %d, reconciles %d; want 1 and 2", n, rc)
		}
	})
	t.Run("a refused token is renewed and the platform asked again", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
			return platform.Result{}, apperr.New(apperr.KindAmbiguous, "tiktok.timeout", "connection dropped")
		}
		r.pub.reconcile = func(platform.Post) (platform.Result, bool, error) {
			r.accounts.mu.Lock()
			renewed := r.accounts.renewed
			r.accounts.mu.Unlock()
			if renewed == 0 {
				return platform.Result{}, false, apperr.New(apperr.KindReconnect, "tiktok.token_invalid", "the access token is invalid or expired")
			}
			return platform.Result{ID: "9"}, true, nil
		}
		d, rec := r.delivery("p1")
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if got := r.get(d.ID); got.State != ledger.StateSent || got.PlatformPostID != "9" {
			t.Errorf("got %s %q (%+v), want sent 9", got.State, got.PlatformPostID, got.LastError)
		}
		if n, rc := r.pub.counts(); n != 1 || rc != 2 {
			t.Errorf("publishes %d, reconciles %d; want 1 and 2", n, rc)
		}
	})
	t.Run("cannot tell is still unknown", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
			return platform.Result{}, errors.New("connection reset")
		}
		d, rec := r.delivery("p1")
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if got := r.get(d.ID); got.State != ledger.StateUnknown {
			t.Errorf("got %s, want unknown", got.State)
		}
	})
}
