package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

func TestPublishOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	d, rec := r.delivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	// The same message again (SQS redelivery), and a duplicate fire.
	for range 2 {
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatalf("redelivery: %v", err)
		}
	}
	got := r.get(d.ID)
	if got.State != ledger.StateSent || got.PlatformURL != "https://m.example/1" || got.Attempts != 1 {
		t.Errorf("delivery: got %s %q attempts %d, want sent once", got.State, got.PlatformURL, got.Attempts)
	}
	if n, _ := r.pub.counts(); n != 1 {
		t.Errorf("publishes: got %d, want 1", n)
	}
	if s := r.stats.total(); s.Sent != 1 {
		t.Errorf("stats: got %+v, want 1 sent", s)
	}
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	limited := func(after time.Duration) error {
		e := apperr.New(apperr.KindRateLimited, "mastodon.rate_limited", "slow down")
		e.RetryAfter = after
		return e
	}
	for _, tc := range []struct {
		name      string
		err       error
		want      ledger.State
		delay     int32 // the wake-up message's DelaySeconds; -1 = none
		schedules int
		failed    int
		retries   int
	}{
		{"transient", apperr.New(apperr.KindTransient, "mastodon.5xx", "down"), ledger.StateRetrying, 5, 0, 0, 1},
		{"rate limited, short reset", limited(42 * time.Second), ledger.StateDeferred, 42, 0, 0, 0},
		{"rate limited, long reset", limited(2 * time.Hour), ledger.StateDeferred, -1, 1, 0, 0},
		{"permanent", apperr.New(apperr.KindPermanent, "mastodon.422", "rejected"), ledger.StateFailed, -1, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, nil)
			r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
				return platform.Result{}, tc.err
			}
			d, rec := r.delivery("p1")
			if err := r.d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			got := r.get(d.ID)
			if got.State != tc.want || got.LastError == nil || len(got.History) != 1 {
				t.Fatalf("delivery: got %s, last error %+v, history %d; want %s with a typed error and one entry", got.State, got.LastError, len(got.History), tc.want)
			}
			msgs := r.queue.messages()
			if tc.delay >= 0 {
				if len(msgs) != 1 || msgs[0].DelaySeconds != tc.delay || aws.ToString(msgs[0].MessageBody) != rec.Body {
					t.Errorf("wake-up: got %d messages %v, want one with DelaySeconds %d", len(msgs), msgs, tc.delay)
				}
			} else if len(msgs) != 0 {
				t.Errorf("wake-up: got %d messages, want none", len(msgs))
			}
			if len(r.sched.created) != tc.schedules {
				t.Fatalf("schedules: got %d, want %d", len(r.sched.created), tc.schedules)
			}
			if tc.schedules == 1 {
				in := r.sched.created[0]
				at := got.NextAttemptAt.UTC().Truncate(time.Second).Add(time.Second)
				if aws.ToString(in.ScheduleExpression) != "at("+at.Format("2006-01-02T15:04:05")+")" ||
					aws.ToString(in.ScheduleExpressionTimezone) != "UTC" ||
					in.FlexibleTimeWindow.Mode != schedtypes.FlexibleTimeWindowModeOff ||
					in.ActionAfterCompletion != schedtypes.ActionAfterCompletionDelete ||
					aws.ToString(in.GroupName) != "posse-test" || aws.ToString(in.Target.Input) != rec.Body ||
					aws.ToString(in.Target.RoleArn) == "" || in.Target.DeadLetterConfig == nil || len(aws.ToString(in.Name)) > 64 {
					t.Errorf("schedule: got %+v", in)
				}
			}
			if s := r.stats.total(); s.Failed != tc.failed || s.Retries != tc.retries {
				t.Errorf("stats: got %+v", s)
			}
		})
	}
}

func TestRetriesUntilDead(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
		return platform.Result{}, apperr.New(apperr.KindTransient, "mastodon.5xx", "down")
	}
	d, rec := r.delivery("p1")
	var states []string
	for range 3 {
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		got := r.get(d.ID)
		states = append(states, string(got.State))
		if got.NextAttemptAt != nil {
			r.clock.Advance(got.NextAttemptAt.Sub(r.clock.Now()))
		}
	}
	if got := strings.Join(states, ","); got != "retrying,retrying,dead" {
		t.Errorf("states: got %s, want retrying,retrying,dead (MaxAttempts 3)", got)
	}
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.pub.counts(); n != 3 {
		t.Errorf("publishes: got %d, want 3", n)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	refused := apperr.New(apperr.KindReconnect, "mastodon.401", "token refused")
	refused.PlatformCode = "invalid_token"
	t.Run("renewed once, then sent", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		r.pub.publish = func(_ context.Context, acct platform.Account, _ platform.Post, _ platform.Journal) (platform.Result, error) {
			if acct.AccessToken == "tok" {
				return platform.Result{}, refused
			}
			return platform.Result{ID: "2", URL: "https://m.example/2"}, nil
		}
		d, rec := r.delivery("p1")
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if got := r.get(d.ID); got.State != ledger.StateSent || r.accounts.renewed != 1 || len(r.accounts.broken) != 0 {
			t.Errorf("got %s, renewed %d, broken %v; want sent after one renewal", got.State, r.accounts.renewed, r.accounts.broken)
		}
	})
	t.Run("refused again: failed and broken", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
			return platform.Result{}, refused
		}
		d, rec := r.delivery("p1")
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		got := r.get(d.ID)
		if got.State != ledger.StateFailed || got.LastError.Kind != apperr.KindReconnect || r.accounts.renewed != 1 ||
			fmt.Sprint(r.accounts.broken) != "[conn_1:invalid_token]" {
			t.Errorf("got %s %+v, renewed %d, broken %v", got.State, got.LastError, r.accounts.renewed, r.accounts.broken)
		}
	})
	t.Run("cannot renew: failed", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		r.accounts.renewErr = apperr.New(apperr.KindReconnect, "connection.broken", "reconnect")
		r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
			return platform.Result{}, refused
		}
		d, rec := r.delivery("p1")
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if got := r.get(d.ID); got.State != ledger.StateFailed {
			t.Errorf("got %s, want failed", got.State)
		}
		if n, _ := r.pub.counts(); n != 1 {
			t.Errorf("publishes: got %d, want 1", n)
		}
	})
	t.Run("broken connection: failed without publishing", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		r.accounts.ensureErr = apperr.New(apperr.KindReconnect, "connection.broken", "reconnect")
		d, rec := r.delivery("p1")
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if got := r.get(d.ID); got.State != ledger.StateFailed {
			t.Errorf("got %s, want failed", got.State)
		}
		if n, _ := r.pub.counts(); n != 0 {
			t.Errorf("publishes: got %d, want 0", n)
		}
	})
}

func TestAmbiguous(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		reconcile func(platform.Post) (platform.Result, bool, error)
		want      ledger.State
	}{
		{"found", func(p platform.Post) (platform.Result, bool, error) {
			if p.Journal["sim.sent"] != "yes" {
				return platform.Result{}, false, errors.New("the journal did not reach Reconcile")
			}
			return platform.Result{ID: "7", URL: "https://m.example/7"}, true, nil
		}, ledger.StateSent},
		{"not published", func(platform.Post) (platform.Result, bool, error) { return platform.Result{}, false, nil }, ledger.StateRetrying},
		{"cannot tell", nil, ledger.StateUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, nil)
			r.pub.publish = func(ctx context.Context, _ platform.Account, _ platform.Post, j platform.Journal) (platform.Result, error) {
				if err := j.Record(ctx, "sim.sent", "yes"); err != nil {
					return platform.Result{}, err
				}
				return platform.Result{}, apperr.New(apperr.KindAmbiguous, "mastodon.timeout", "connection dropped")
			}
			r.pub.reconcile = tc.reconcile
			d, rec := r.delivery("p1")
			if err := r.d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			got := r.get(d.ID)
			if got.State != tc.want {
				t.Errorf("got %s (%+v), want %s", got.State, got.LastError, tc.want)
			}
			if n, rc := r.pub.counts(); n != 1 || rc != 1 {
				t.Errorf("publishes %d, reconciles %d; want 1 and 1", n, rc)
			}
		})
	}
}

func TestExpiredLeaseIsReconciled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		reconcile func(platform.Post) (platform.Result, bool, error)
		want      ledger.State
		publishes int
	}{
		{"found", func(platform.Post) (platform.Result, bool, error) {
			return platform.Result{ID: "7", URL: "https://m.example/7"}, true, nil
		}, ledger.StateSent, 0},
		{"not published: published now", func(platform.Post) (platform.Result, bool, error) { return platform.Result{}, false, nil }, ledger.StateSent, 1},
		{"cannot tell", nil, ledger.StateUnknown, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, nil)
			r.pub.reconcile = tc.reconcile
			d, rec := r.delivery("p1")
			// A worker claims and dies mid-publish.
			if _, err := r.ledger.Claim(context.Background(), d.SiteID, d.ID, ledger.Policy{Lease: time.Minute}); err != nil {
				t.Fatal(err)
			}
			// Before the lease expires, a redelivered message leaves it alone.
			if err := r.d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			if _, rc := r.pub.counts(); rc != 0 {
				t.Fatalf("reconciled under a live lease")
			}
			r.clock.Advance(2 * time.Minute)
			if err := r.d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			got := r.get(d.ID)
			if got.State != tc.want {
				t.Errorf("got %s (%+v), want %s", got.State, got.LastError, tc.want)
			}
			if n, rc := r.pub.counts(); n != tc.publishes || rc != 1 {
				t.Errorf("publishes %d, reconciles %d; want %d and 1", n, rc, tc.publishes)
			}
		})
	}
}

func TestEarlyMessage(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	fail := true
	r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
		if fail {
			return platform.Result{}, apperr.New(apperr.KindTransient, "mastodon.5xx", "down")
		}
		return platform.Result{ID: "1", URL: "https://m.example/1"}, nil
	}
	d, rec := r.delivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if n := len(r.queue.messages()); n != 1 {
		t.Fatalf("wake-ups after the failure: got %d, want 1", n)
	}
	// A duplicate of the first message arrives early: the wake-up is in
	// flight, so it is acknowledged without sending anything.
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if n := len(r.queue.messages()); n != 1 {
		t.Errorf("after an early duplicate: got %d messages, want still 1", n)
	}
	// The wake-up itself arrives a little early (clock skew): sent again
	// with the remaining delay rather than dropped.
	next := *r.get(d.ID).NextAttemptAt
	r.clock.Advance(next.Sub(r.clock.Now()) - 500*time.Millisecond)
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	msgs := r.queue.messages()
	if len(msgs) != 2 || msgs[1].DelaySeconds != 1 {
		t.Fatalf("early wake-up: got %d messages, want a second with DelaySeconds 1", len(msgs))
	}
	fail = false
	r.clock.Advance(time.Second)
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if got := r.get(d.ID); got.State != ledger.StateSent || got.Attempts != 2 {
		t.Errorf("got %s after %d attempts, want sent after 2", got.State, got.Attempts)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	t.Run("target hourly limit", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		var recs []dispatch.Record
		for i := range 3 {
			out, _, err := r.ledger.CreateAll(context.Background(), []ledger.NewDelivery{{SiteID: "site_a", PostID: fmt.Sprint("p", i),
				Revision: "r1", TargetID: "tgt_1", ConnectionID: "conn_1", Platform: platform.Mastodon, Text: "x", RateLimitPerHour: 2}})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, dispatch.Record{MessageID: fmt.Sprint(i), Body: ledger.DeliveryMessage("site_a", out[0].ID).Encode()})
			if err := r.d.HandleRecord(context.Background(), recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		third := r.get(mustDecode(t, recs[2].Body).DeliveryID)
		if third.State != ledger.StateDeferred || third.LastError.Code != "posse.target_rate_limit" || third.Attempts != 0 {
			t.Errorf("third delivery: got %s %+v attempts %d, want deferred by the target's limit", third.State, third.LastError, third.Attempts)
		}
		if n, _ := r.pub.counts(); n != 2 {
			t.Errorf("publishes: got %d, want 2", n)
		}
		end := r.clock.Now().Truncate(time.Hour).Add(time.Hour)
		if !third.NextAttemptAt.Equal(end) {
			t.Errorf("next attempt: got %s, want the window's end %s", third.NextAttemptAt, end)
		}
	})
	t.Run("platform block", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, nil)
		limited := apperr.New(apperr.KindRateLimited, "mastodon.429", "slow down")
		limited.RetryAfter = 5 * time.Minute
		var calls atomic.Int32
		r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
			calls.Add(1)
			return platform.Result{}, limited
		}
		_, rec1 := r.delivery("p1")
		d2, rec2 := r.delivery("p2")
		for _, rec := range []dispatch.Record{rec1, rec2} {
			if err := r.d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("platform calls: got %d, want 1 (the second delivery waits for the block)", n)
		}
		if got := r.get(d2.ID); got.State != ledger.StateDeferred || got.LastError.Code != "posse.platform_block" {
			t.Errorf("second delivery: got %s %+v", got.State, got.LastError)
		}
	})
}

func mustDecode(t *testing.T, body string) ledger.Message {
	t.Helper()
	m, err := ledger.DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBatch(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *dispatch.Config) { c.Concurrency = 3 })
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return platform.Result{ID: "1", URL: "https://m.example/1"}, nil
	}
	var recs []dispatch.Record
	var ids []string
	for i := range 6 {
		d, rec := r.delivery(fmt.Sprint("p", i))
		recs = append(recs, rec)
		ids = append(ids, d.ID)
	}
	poison := dispatch.Record{MessageID: "poison", Body: "{not json"}
	unknownType := dispatch.Record{MessageID: "sched", Body: `{"v":1,"type":"schedule","siteId":"site_a","scheduleId":"s1"}`}
	gone := dispatch.Record{MessageID: "gone", Body: ledger.DeliveryMessage("site_a", "dlv_nope").Encode()}
	batch := append([]dispatch.Record{poison}, recs[:3]...)
	batch = append(batch, gone, unknownType)
	batch = append(batch, recs[3:]...)
	done := make(chan []string)
	go func() { done <- r.d.Handle(context.Background(), batch) }()
	// Release the publishers only once three are in flight at once.
	deadline := time.Now().Add(30 * time.Second)
	for peak.Load() < 3 {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("peak concurrency stayed at %d, want 3", peak.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	failed := <-done
	if got := fmt.Sprint(failed); got != "[poison sched]" {
		t.Errorf("batch item failures: got %s, want [poison sched]", got)
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency: got %d, want 3", p)
	}
	for _, id := range ids {
		if got := r.get(id); got.State != ledger.StateSent {
			t.Errorf("%s: got %s, want sent", id, got.State)
		}
	}
}

func TestHeartbeatExtendsVisibilityAndLease(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *dispatch.Config) { c.Heartbeat = time.Millisecond; c.Visibility = 300 * time.Second })
	r.queue.extended = make(chan struct{}, 1)
	d, rec := r.delivery("p1")
	var leaseDuring string
	r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
		r.clock.Advance(30 * time.Second)
		<-r.queue.extended // a long publish: wait for a heartbeat
		<-r.queue.extended // and another, so the first one's lease write is done
		if v, ok := r.db.Item("SITE#site_a", "DLV#"+d.ID)["lease_until"].(*types.AttributeValueMemberS); ok {
			leaseDuring = v.Value
		}
		return platform.Result{ID: "1", URL: "https://m.example/1"}, nil
	}
	claimedAt := r.clock.Now()
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	r.queue.mu.Lock()
	vis := r.queue.visibility
	r.queue.mu.Unlock()
	if len(vis) < 2 || aws.ToString(vis[0].ReceiptHandle) != "rh-p1" || vis[0].VisibilityTimeout != 300 {
		t.Errorf("visibility: got %d calls (%+v), want at least 2 for rh-p1 at 300 s", len(vis), vis)
	}
	lease, err := time.Parse(time.RFC3339Nano, leaseDuring)
	if want := claimedAt.Add(30 * time.Second).Add(ledger.DefaultLease); err != nil || !lease.Equal(want) {
		t.Errorf("lease during the publish: got %q, want %s (extended from the heartbeat's time)", leaseDuring, want)
	}
	if got := r.get(d.ID); got.State != ledger.StateSent {
		t.Errorf("got %s, want sent", got.State)
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, err := dispatch.New(dispatch.Config{})
	if err == nil || !strings.Contains(err.Error(), "Ledger") || !strings.Contains(err.Error(), "QueueURL") {
		t.Errorf("got %v, want an error naming Ledger and QueueURL", err)
	}
}

func TestNoClaimWhenTheInvocationIsEndingAnyway(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *dispatch.Config) { c.FinishReserve = time.Hour })
	d, rec := r.delivery("p1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.d.HandleRecord(ctx, rec); err == nil {
		t.Error("got nil, want the message left on the queue")
	}
	if got := r.get(d.ID); got.State != ledger.StateQueued || got.Attempts != 0 {
		t.Errorf("got %s after %d attempts, want queued and unclaimed", got.State, got.Attempts)
	}
}

func TestSettledDeliveriesAreAcknowledged(t *testing.T) {
	t.Parallel()
	for _, st := range []ledger.State{ledger.StateSent, ledger.StateFailed, ledger.StateDead, ledger.StateUnknown, ledger.StateCancelled} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, nil)
			d, rec := r.delivery("p1")
			ctx := context.Background()
			if st == ledger.StateCancelled {
				if _, err := r.ledger.Cancel(ctx, d.SiteID, d.ID); err != nil {
					t.Fatal(err)
				}
			} else {
				l, err := r.ledger.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
				if err != nil {
					t.Fatal(err)
				}
				o := ledger.Outcome{State: st, Err: apperr.New(apperr.KindPermanent, "", "")}
				if st == ledger.StateSent {
					o = ledger.Outcome{State: st, Result: ledger.Result{ID: "1", URL: "https://m.example/1"}}
				}
				if _, err := l.Finish(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			writes := r.db.Writes
			// Redelivery, a duplicate fire, a DLQ redrive: all the same message.
			for range 3 {
				if err := r.d.HandleRecord(ctx, rec); err != nil {
					t.Fatalf("got %v, want the message acknowledged", err)
				}
			}
			if n, rc := r.pub.counts(); n != 0 || rc != 0 {
				t.Errorf("publishes %d, reconciles %d; want none", n, rc)
			}
			if r.db.Writes != writes || len(r.queue.messages()) != 0 {
				t.Errorf("writes %d → %d, messages %d; want nothing written or sent", writes, r.db.Writes, len(r.queue.messages()))
			}
			if got := r.get(d.ID); got.State != st {
				t.Errorf("got %s, want %s", got.State, st)
			}
		})
	}
}
