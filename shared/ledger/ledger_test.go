package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/ledger/ledgertest"
	"github.com/posse-dev/posse/shared/platform"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newDelivery(site, post, target string) ledger.NewDelivery {
	return ledger.NewDelivery{SiteID: site, PostID: post, Revision: "r1", TargetID: target, ConnectionID: "conn_1",
		Platform: platform.Mastodon, Text: "Hello " + post, Link: "https://blog.example/" + post,
		Options: map[string]string{"visibility": "public"}, RateLimitPerHour: 10}
}

func setup(t *testing.T) (*ledger.Store, *ledgertest.DB, *clock) {
	t.Helper()
	db, c := ledgertest.New(), newClock()
	return ledger.NewStore(db, "posse-test", c.Now), db, c
}

func create(t *testing.T, s *ledger.Store, n ledger.NewDelivery) ledger.Delivery {
	t.Helper()
	out, created, err := s.CreateAll(context.Background(), []ledger.NewDelivery{n})
	if err != nil || len(out) != 1 || !created[0] {
		t.Fatalf("CreateAll: got %v %v %v, want one created delivery", out, created, err)
	}
	return out[0]
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	// The machine of architecture §6, written out independently of the
	// package's table: every (from, to) pair is either here or refused.
	allowed := map[[2]ledger.State]bool{}
	for _, p := range [][2]ledger.State{
		{"queued", "publishing"}, {"queued", "cancelled"},
		{"scheduled", "publishing"}, {"scheduled", "cancelled"},
		{"retrying", "publishing"}, {"retrying", "cancelled"},
		{"deferred", "publishing"}, {"deferred", "cancelled"},
		{"publishing", "publishing"}, {"publishing", "sent"}, {"publishing", "retrying"}, {"publishing", "deferred"},
		{"publishing", "failed"}, {"publishing", "unknown"}, {"publishing", "dead"},
		{"failed", "queued"}, {"dead", "queued"}, {"unknown", "queued"}, {"unknown", "sent"},
	} {
		allowed[p] = true
	}
	for _, from := range ledger.States {
		for _, to := range ledger.States {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				t.Parallel()
				if got, want := ledger.CanTransition(from, to), allowed[[2]ledger.State{from, to}]; got != want {
					t.Errorf("CanTransition(%s, %s): got %v, want %v", from, to, got, want)
				}
			})
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for _, r := range []float64{0, 0.25, 0.5, 0.999999} {
		p := ledger.Policy{BackoffBase: 10 * time.Second, BackoffMax: 5 * time.Minute, Rand: func() float64 { return r }}
		for n := 1; n <= 12; n++ {
			full := min(10*time.Second<<(n-1), 5*time.Minute)
			got := p.Backoff(n)
			if got < full/2 || got > full {
				t.Errorf("Backoff(%d) with rand %v: got %s, want within [%s, %s]", n, r, got, full/2, full)
			}
		}
	}
	// Jitter spreads: the extremes of rand give different waits.
	lo := ledger.Policy{Rand: func() float64 { return 0 }}.Backoff(3)
	hi := ledger.Policy{Rand: func() float64 { return 0.99 }}.Backoff(3)
	if lo >= hi {
		t.Errorf("Backoff(3): rand 0 gave %s, rand 0.99 gave %s; want jitter", lo, hi)
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := newClock().Now()
	p := ledger.Policy{MaxAttempts: 3, MaxDeferrals: 2, RateLimitedWait: time.Minute, BackoffBase: time.Second, Rand: func() float64 { return 0 }}
	limited := apperr.New(apperr.KindRateLimited, "x.rate_limited", "slow down")
	limited.RetryAfter = 90 * time.Second
	for _, tc := range []struct {
		name      string
		err       error
		attempts  int
		deferrals int
		want      ledger.State
		next      time.Duration
	}{
		{"rate limited with reset", limited, 1, 0, ledger.StateDeferred, 90 * time.Second},
		{"rate limited without reset", apperr.New(apperr.KindRateLimited, "", ""), 1, 0, ledger.StateDeferred, time.Minute},
		{"rate limited too often", limited, 1, 2, ledger.StateDead, 0},
		{"transient first", apperr.New(apperr.KindTransient, "", ""), 1, 0, ledger.StateRetrying, 500 * time.Millisecond},
		{"transient second", apperr.New(apperr.KindTransient, "", ""), 2, 0, ledger.StateRetrying, time.Second},
		{"transient exhausted", apperr.New(apperr.KindTransient, "", ""), 3, 0, ledger.StateDead, 0},
		{"untyped is retried", errors.New("boom"), 1, 0, ledger.StateRetrying, 500 * time.Millisecond},
		{"permanent", apperr.New(apperr.KindPermanent, "x.duplicate", ""), 1, 0, ledger.StateFailed, 0},
		{"reconnect", apperr.New(apperr.KindReconnect, "", ""), 1, 0, ledger.StateFailed, 0},
		{"invalid", apperr.New(apperr.KindInvalid, "", ""), 1, 0, ledger.StateFailed, 0},
		{"ambiguous", apperr.New(apperr.KindAmbiguous, "", ""), 1, 0, ledger.StateUnknown, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := p.Decide(tc.err, tc.attempts, tc.deferrals, now)
			if o.State != tc.want {
				t.Errorf("state: got %s, want %s", o.State, tc.want)
			}
			if tc.next > 0 && !o.NextAttemptAt.Equal(now.Add(tc.next)) {
				t.Errorf("next attempt: got %s, want now+%s", o.NextAttemptAt, tc.next)
			}
		})
	}
}

func TestDeliveryID(t *testing.T) {
	t.Parallel()
	a := ledger.DeliveryID("s", "p", "r", "t")
	if a != ledger.DeliveryID("s", "p", "r", "t") {
		t.Error("DeliveryID is not deterministic")
	}
	seen := map[string]string{a: "s p r t"}
	for _, in := range [][4]string{{"s", "p", "r", "u"}, {"s", "p", "r2", "t"}, {"s2", "p", "r", "t"}, {"s", "pr", "", "t"}, {"s", "p", "rt", ""}} {
		id := ledger.DeliveryID(in[0], in[1], in[2], in[3])
		if prev, dup := seen[id]; dup {
			t.Errorf("DeliveryID(%v) = DeliveryID(%s)", in, prev)
		}
		seen[id] = strings.Join(in[:], " ")
	}
	if !strings.HasPrefix(a, "dlv_") || len(a) > 40 {
		t.Errorf("DeliveryID: got %q, want dlv_ and at most 40 characters", a)
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	m := ledger.DeliveryMessage("site_1", "dlv_1")
	got, err := ledger.DecodeMessage(m.Encode())
	if err != nil || got != m {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, m)
	}
	for _, body := range []string{"", "not json", `{"v":2,"type":"delivery","siteId":"s","deliveryId":"d"}`,
		`{"v":1,"type":"delivery","siteId":"s"}`, `{"v":1,"type":"other","siteId":"s"}`, `{"v":1,"type":"delivery","deliveryId":"d"}`} {
		if _, err := ledger.DecodeMessage(body); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("DecodeMessage(%q): got %v, want an invalid error", body, err)
		}
	}
}

func TestCreateAllIsIdempotent(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	ctx := context.Background()
	in := []ledger.NewDelivery{newDelivery("site_a", "p1", "t1"), newDelivery("site_a", "p1", "t2"), newDelivery("site_a", "p1", "t1")}
	out, created, err := s.CreateAll(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(created); got != "[true true false]" {
		t.Errorf("created: got %s, want [true true false] (the third repeats the first)", got)
	}
	if out[0].ID != out[2].ID || out[0].ID == out[1].ID || out[0].State != ledger.StateQueued {
		t.Errorf("deliveries: got %+v", out)
	}
	again, created, err := s.CreateAll(ctx, in[:2])
	if err != nil || created[0] || created[1] || again[0].ID != out[0].ID {
		t.Errorf("second CreateAll: got %v %v %v, want the existing deliveries, none created", again, created, err)
	}
	bad := newDelivery("site_a", "p1", "t3")
	bad.Platform = "myspace"
	if _, _, err := s.CreateAll(ctx, []ledger.NewDelivery{bad}); !apperr.Is(err, apperr.KindInvalid) {
		t.Errorf("unknown platform: got %v, want invalid", err)
	}
	if _, err := s.Get(ctx, "site_b", out[0].ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("Get from another site: got %v, want not_found", err)
	}
}

// stateOf drives a new delivery into st.
func stateOf(t *testing.T, s *ledger.Store, c *clock, st ledger.State, post string) ledger.Delivery {
	t.Helper()
	ctx := context.Background()
	n := newDelivery("site_a", post, "t1")
	if st == ledger.StateScheduled {
		n.State, n.ScheduleID = ledger.StateScheduled, "sched_1"
	}
	d := create(t, s, n)
	finish := func(o ledger.Outcome) ledger.Delivery {
		l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		out, err := l.Finish(ctx, o)
		if err != nil {
			t.Fatalf("finish %s: %v", o.State, err)
		}
		return out
	}
	switch st {
	case ledger.StateQueued, ledger.StateScheduled:
		return d
	case ledger.StatePublishing:
		l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Delivery()
	case ledger.StateSent:
		return finish(ledger.Outcome{State: st, Result: ledger.Result{ID: "1", URL: "https://m.example/1"}})
	case ledger.StateRetrying, ledger.StateDeferred:
		return finish(ledger.Outcome{State: st, Err: apperr.New(apperr.KindTransient, "", ""), NextAttemptAt: c.Now()})
	case ledger.StateCancelled:
		out, err := s.Cancel(ctx, d.SiteID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		return out
	default:
		return finish(ledger.Outcome{State: st, Err: apperr.New(apperr.KindPermanent, "", "")})
	}
}

func TestClaimByState(t *testing.T) {
	t.Parallel()
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
			s, _, c := setup(t)
			d := stateOf(t, s, c, tc.state, "p")
			if d.State != tc.state {
				t.Fatalf("setup: got %s, want %s", d.State, tc.state)
			}
			l, err := s.Claim(context.Background(), d.SiteID, d.ID, ledger.Policy{})
			ce, refused := ledger.Refused(err)
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("claim from %s: got %v, want a lease", tc.state, err)
			case tc.refuse == "":
				got := l.Delivery()
				if got.State != ledger.StatePublishing || got.Attempts != d.Attempts+1 || l.Fence() <= 0 || !l.Until().After(c.Now()) {
					t.Errorf("claim from %s: got state %s attempts %d fence %d lease %s", tc.state, got.State, got.Attempts, l.Fence(), l.Until())
				}
				if l.From() != tc.state {
					t.Errorf("From: got %s, want %s", l.From(), tc.state)
				}
			case !refused || ce.Reason != tc.refuse:
				t.Errorf("claim from %s: got %v, want refused %s", tc.state, err, tc.refuse)
			case !apperr.Is(err, apperr.KindInternal) && ce.Delivery.ID != d.ID:
				t.Errorf("refusal names %s, want %s", ce.Delivery.ID, d.ID)
			}
		})
	}
}

func TestClaimRefusedBeforeNextAttempt(t *testing.T) {
	t.Parallel()
	s, _, c := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	next := c.Now().Add(time.Minute)
	if _, err := l.Finish(ctx, ledger.Outcome{State: ledger.StateRetrying, Err: apperr.New(apperr.KindTransient, "", ""), NextAttemptAt: next}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
	ce, ok := ledger.Refused(err)
	if !ok || ce.Reason != ledger.RefusedEarly || !ce.WakeAt.Equal(next) {
		t.Fatalf("early claim: got %v (%+v), want refused early with the wake-up at %s", err, ce, next)
	}
	c.Advance(time.Minute)
	l, err = s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
	if err != nil || l.Delivery().Attempts != 2 {
		t.Fatalf("claim at NextAttemptAt: got %v, want attempt 2", err)
	}
}

func TestFencing(t *testing.T) {
	t.Parallel()
	s, _, c := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	stale, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Journal().Record(ctx, "k1", "v1"); err != nil {
		t.Fatalf("record under a live lease: %v", err)
	}
	if _, err := s.TakeOver(ctx, d.SiteID, d.ID, ledger.Policy{}); err == nil {
		t.Fatal("take over a live lease: got a lease, want a refusal")
	}
	c.Advance(61 * time.Second)
	fresh, err := s.TakeOver(ctx, d.SiteID, d.ID, ledger.Policy{})
	if err != nil {
		t.Fatalf("take over an expired lease: %v", err)
	}
	if fresh.Fence() <= stale.Fence() || !fresh.TakenOver() {
		t.Errorf("fence: stale %d, fresh %d; want fresh newer", stale.Fence(), fresh.Fence())
	}
	if got := fresh.Post().Journal["k1"]; got != "v1" {
		t.Errorf("journal after take-over: got %q, want v1", got)
	}
	// The stale worker wakes up: every write it tries fails.
	if err := stale.Journal().Record(ctx, "k2", "v2"); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Errorf("stale Record: got %v, want ErrLeaseLost", err)
	}
	if err := stale.Extend(ctx); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Errorf("stale Extend: got %v, want ErrLeaseLost", err)
	}
	if _, err := stale.Finish(ctx, ledger.Outcome{State: ledger.StateSent}); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Errorf("stale Finish: got %v, want ErrLeaseLost", err)
	}
	got, err := fresh.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "9", URL: "https://m.example/9"}, Note: "reconciled"})
	if err != nil {
		t.Fatalf("fresh Finish: %v", err)
	}
	if got.State != ledger.StateSent || got.PlatformURL != "https://m.example/9" || got.Attempts != 1 || len(got.History) != 1 {
		t.Errorf("after fresh Finish: got %+v", got)
	}
	if _, err := fresh.Finish(ctx, ledger.Outcome{State: ledger.StateFailed}); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Errorf("second Finish: got %v, want ErrLeaseLost", err)
	}
}

func TestConcurrentClaimsOneWins(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	const workers = 8
	var wg sync.WaitGroup
	wins := make(chan int64, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{}); err == nil {
				wins <- l.Fence()
			}
		}()
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Errorf("claims won: got %d, want 1", n)
	}
}

func TestFinishOutcomes(t *testing.T) {
	t.Parallel()
	limited := apperr.New(apperr.KindRateLimited, "x.rate_limited", "slow down")
	limited.RetryAfter = time.Minute
	for _, tc := range []struct {
		o            ledger.Outcome
		attempts     int
		errKind      string
		wantNextWait time.Duration
	}{
		{o: ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1", URL: "https://x.example/1"}}, attempts: 1},
		{o: ledger.Outcome{State: ledger.StateRetrying, Err: apperr.New(apperr.KindTransient, "x.5xx", "")}, attempts: 1, errKind: "transient", wantNextWait: time.Minute},
		{o: ledger.Outcome{State: ledger.StateDeferred, Err: limited}, attempts: 0, errKind: "rate_limited", wantNextWait: time.Minute},
		{o: ledger.Outcome{State: ledger.StateFailed, Err: apperr.New(apperr.KindPermanent, "x.duplicate", "duplicate")}, attempts: 1, errKind: "permanent"},
		{o: ledger.Outcome{State: ledger.StateUnknown, Err: apperr.New(apperr.KindAmbiguous, "", "")}, attempts: 1, errKind: "ambiguous"},
		{o: ledger.Outcome{State: ledger.StateDead, Err: errors.New("secret detail")}, attempts: 1, errKind: "internal"},
	} {
		t.Run(string(tc.o.State), func(t *testing.T) {
			t.Parallel()
			s, _, c := setup(t)
			ctx := context.Background()
			d := create(t, s, newDelivery("site_a", "p", "t"))
			l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNextWait > 0 {
				tc.o.NextAttemptAt = c.Now().Add(tc.wantNextWait)
			}
			got, err := l.Finish(ctx, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tc.o.State || got.Attempts != tc.attempts {
				t.Errorf("got state %s attempts %d, want %s and %d", got.State, got.Attempts, tc.o.State, tc.attempts)
			}
			if len(got.History) != 1 || got.History[0].Outcome != tc.o.State || got.History[0].ErrorKind != tc.errKind {
				t.Errorf("history: got %+v, want one %s entry with error kind %q", got.History, tc.o.State, tc.errKind)
			}
			if tc.errKind != "" && (got.LastError == nil || string(got.LastError.Kind) != tc.errKind) {
				t.Errorf("last error: got %+v, want kind %s", got.LastError, tc.errKind)
			}
			if got.LastError != nil && strings.Contains(got.LastError.Message, "secret detail") {
				t.Error("an untyped error's text reached the stored error")
			}
			if (tc.wantNextWait > 0) != (got.NextAttemptAt != nil) {
				t.Errorf("next attempt: got %v", got.NextAttemptAt)
			}
			if tc.o.State == ledger.StateSent && (got.SentAt == nil || got.PlatformPostID != "1") {
				t.Errorf("sent: got %+v", got)
			}
		})
	}
}

func TestOperatorActions(t *testing.T) {
	t.Parallel()
	type action struct {
		name string
		do   func(s *ledger.Store, d ledger.Delivery) (ledger.Delivery, error)
	}
	cancel := action{"cancel", func(s *ledger.Store, d ledger.Delivery) (ledger.Delivery, error) {
		return s.Cancel(context.Background(), d.SiteID, d.ID)
	}}
	retry := action{"retry", func(s *ledger.Store, d ledger.Delivery) (ledger.Delivery, error) {
		return s.RequestRetry(context.Background(), d.SiteID, d.ID, false)
	}}
	retryConfirmed := action{"retry-confirmed", func(s *ledger.Store, d ledger.Delivery) (ledger.Delivery, error) {
		return s.RequestRetry(context.Background(), d.SiteID, d.ID, true)
	}}
	resolve := action{"resolve", func(s *ledger.Store, d ledger.Delivery) (ledger.Delivery, error) {
		return s.Resolve(context.Background(), d.SiteID, d.ID, "https://m.example/@me/1", "1")
	}}
	for _, tc := range []struct {
		a    action
		from ledger.State
		want ledger.State // "" = conflict
	}{
		{cancel, ledger.StateQueued, ledger.StateCancelled},
		{cancel, ledger.StateScheduled, ledger.StateCancelled},
		{cancel, ledger.StateRetrying, ledger.StateCancelled},
		{cancel, ledger.StateDeferred, ledger.StateCancelled},
		{cancel, ledger.StateCancelled, ledger.StateCancelled},
		{cancel, ledger.StatePublishing, ""},
		{cancel, ledger.StateSent, ""},
		{cancel, ledger.StateFailed, ""},
		{retry, ledger.StateFailed, ledger.StateQueued},
		{retry, ledger.StateDead, ledger.StateQueued},
		{retry, ledger.StateUnknown, ""},
		{retryConfirmed, ledger.StateUnknown, ledger.StateQueued},
		{retry, ledger.StateSent, ""},
		{retryConfirmed, ledger.StateSent, ""},
		{retry, ledger.StateQueued, ""},
		{retry, ledger.StatePublishing, ""},
		{retry, ledger.StateCancelled, ""},
		{resolve, ledger.StateUnknown, ledger.StateSent},
		{resolve, ledger.StateFailed, ""},
		{resolve, ledger.StateQueued, ""},
	} {
		t.Run(tc.a.name+"/"+string(tc.from), func(t *testing.T) {
			t.Parallel()
			s, _, c := setup(t)
			d := stateOf(t, s, c, tc.from, "p")
			got, err := tc.a.do(s, d)
			if tc.want == "" {
				if !apperr.Is(err, apperr.KindConflict) {
					t.Errorf("got %v, %v; want a conflict", got.State, err)
				}
				return
			}
			if err != nil || got.State != tc.want {
				t.Fatalf("got %s, %v; want %s", got.State, err, tc.want)
			}
			if tc.want == ledger.StateQueued && got.Attempts != 0 {
				t.Errorf("retry: attempts got %d, want 0 (a new policy window)", got.Attempts)
			}
			if tc.want == ledger.StateQueued {
				if l, err := s.Claim(context.Background(), d.SiteID, d.ID, ledger.Policy{}); err != nil || l.Delivery().Attempts != 1 {
					t.Errorf("claim after retry: %v", err)
				}
			}
		})
	}
	t.Run("resolve needs a URL", func(t *testing.T) {
		t.Parallel()
		s, _, c := setup(t)
		d := stateOf(t, s, c, ledger.StateUnknown, "p")
		if _, err := s.Resolve(context.Background(), d.SiteID, d.ID, "javascript:alert(1)", ""); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("got %v, want invalid", err)
		}
	})
}

func TestDeferralDoesNotCountAsAttempt(t *testing.T) {
	t.Parallel()
	s, _, c := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	p := ledger.Policy{MaxAttempts: 2}
	for i := range 5 {
		l, err := s.Claim(ctx, d.SiteID, d.ID, p)
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		o := p.Decide(apperr.New(apperr.KindRateLimited, "", ""), l.Delivery().Attempts, l.Deferrals(), c.Now())
		got, err := l.Finish(ctx, o)
		if err != nil || got.State != ledger.StateDeferred || got.Attempts != 0 {
			t.Fatalf("deferral %d: got %s attempts %d, %v; want deferred with 0 attempts", i, got.State, got.Attempts, err)
		}
		c.Advance(time.Hour)
	}
}

func TestStaleWriteFromAnotherClaimFails(t *testing.T) {
	t.Parallel()
	s, db, _ := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	db.BeforeWrite = func(string, string) error { return errors.New("throttled") }
	if err := l.Journal().Record(ctx, "k", "v"); err == nil || errors.Is(err, ledger.ErrLeaseLost) {
		t.Errorf("Record with the table failing: got %v, want the table's error", err)
	}
	db.BeforeWrite = nil
	if err := l.Journal().Record(ctx, "k", "v"); err != nil {
		t.Errorf("Record once the table recovers: %v", err)
	}
}
