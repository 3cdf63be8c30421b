package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/smithy-go"
)

// fakeClock is a test clock whose Sleep advances it.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func TestBucket(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	b := NewBucket(10, 5, c.Now)
	var waits []time.Duration
	for range 8 {
		waits = append(waits, b.Reserve())
	}
	// A full bucket of 5, then one token every 100 ms, owed in turn.
	want := []time.Duration{0, 0, 0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("waits: got %v, want %v", waits, want)
	}
	// After the owed time and one more second, 10 tokens accrue but only 5
	// are kept.
	c.Advance(300*time.Millisecond + time.Second)
	for i := range 5 {
		if w := b.Reserve(); w != 0 {
			t.Fatalf("reserve %d after refill: got wait %v, want 0", i, w)
		}
	}
	if w := b.Reserve(); w != 100*time.Millisecond {
		t.Fatalf("reserve past the burst: got wait %v, want 100ms", w)
	}
}

func TestBucketSustainedRate(t *testing.T) {
	t.Parallel()
	// 1,000 calls at 20/s with a burst of 20 take (1000-20)/20 s = 49 s of
	// waiting, whatever the concurrency.
	c := newFakeClock()
	var mu sync.Mutex
	var longest time.Duration
	// The clock stands still: every caller reserves at the same instant.
	record := func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		longest = max(longest, d)
		return nil
	}
	l := newLimiter(Limits{Rate: 20, Burst: 20}, c.Now, record, func() float64 { return 0 })
	calls := 0
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.do(context.Background(), "test", func(context.Context) error {
				mu.Lock()
				calls++
				mu.Unlock()
				return nil
			})
		}()
	}
	wg.Wait()
	if calls != 1000 || longest != 49*time.Second {
		t.Fatalf("got %d calls, longest wait %v; want 1000 calls, the last waiting 49s", calls, longest)
	}
}

func throttled() error {
	return fmt.Errorf("operation error Scheduler: CreateSchedule: %w", &schedtypes.ThrottlingException{Message: aws.String("Rate exceeded")})
}

func TestLimiterRetriesThrottling(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		failures  int   // throttled answers before success
		other     error // a non-throttling error instead
		attempts  int
		wantCalls int
		wantErr   bool
		wantWaits []time.Duration
	}{
		{name: "no throttling", failures: 0, attempts: 5, wantCalls: 1},
		{name: "three throttles then success", failures: 3, attempts: 5, wantCalls: 4,
			// equal jitter with rand 0.5: 3/4 of 100, 200, 400 ms.
			wantWaits: []time.Duration{75 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond}},
		{name: "capped backoff", failures: 6, attempts: 8, wantCalls: 7,
			wantWaits: []time.Duration{75 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond, 750 * time.Millisecond, 750 * time.Millisecond}},
		{name: "gives up", failures: 10, attempts: 3, wantCalls: 3, wantErr: true,
			wantWaits: []time.Duration{75 * time.Millisecond, 150 * time.Millisecond}},
		{name: "other errors are not retried", other: errors.New("boom"), attempts: 5, wantCalls: 1, wantErr: true},
		{name: "API error code", other: &smithy.GenericAPIError{Code: "ValidationException"}, attempts: 5, wantCalls: 1, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock()
			l := newLimiter(Limits{Rate: 1000, Burst: 1000, MaxAttempts: c.attempts, BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second},
				clk.Now, clk.Sleep, func() float64 { return 0.5 })
			calls := 0
			err := l.do(context.Background(), "create Scheduler schedule x", func(context.Context) error {
				calls++
				if c.other != nil {
					return c.other
				}
				if calls <= c.failures {
					return throttled()
				}
				return nil
			})
			if calls != c.wantCalls || (err != nil) != c.wantErr {
				t.Fatalf("got %d calls, err %v; want %d calls, error %v", calls, err, c.wantCalls, c.wantErr)
			}
			if c.wantErr && c.other == nil && !IsThrottled(err) {
				t.Errorf("the final error %v does not say it was throttled", err)
			}
			if got := clk.Sleeps(); fmt.Sprint(got) != fmt.Sprint(c.wantWaits) && (len(got) > 0 || len(c.wantWaits) > 0) {
				t.Errorf("backoffs: got %v, want %v", got, c.wantWaits)
			}
		})
	}
}

func TestLimiterHonoursContext(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	l := newLimiter(Limits{Rate: 1, Burst: 1}, clk.Now, clk.Sleep, nil)
	ctx, cancel := context.WithCancel(context.Background())
	_ = l.do(ctx, "first", func(context.Context) error { return nil })
	cancel()
	called := false
	err := l.do(ctx, "second", func(context.Context) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Fatalf("got %v (called %v), want context.Canceled before the call", err, called)
	}
}

func TestIsThrottled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{throttled(), true},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, true},
		{&smithy.GenericAPIError{Code: "ServiceQuotaExceededException"}, false},
		{&schedtypes.ConflictException{}, false},
		{errors.New("ThrottlingException"), false},
		{nil, false},
	} {
		if got := IsThrottled(c.err); got != c.want {
			t.Errorf("IsThrottled(%v): got %v, want %v", c.err, got, c.want)
		}
	}
}
