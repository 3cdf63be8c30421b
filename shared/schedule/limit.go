package schedule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/smithy-go"
)

// Defaults of Limits. EventBridge Scheduler's default quota for each of
// CreateSchedule, UpdateSchedule, DeleteSchedule and GetSchedule is 50 to
// 1,000 requests per second depending on the region and account age; one
// api instance stays well under the lowest.
const (
	DefaultRate        = 20.0
	DefaultMaxAttempts = 8
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
)

// Limits shape the client-side rate limit and the throttling retries of
// Scheduler calls.
type Limits struct {
	// Rate is the sustained Scheduler calls per second (default 20).
	Rate float64
	// Burst is how many calls may go at once after a quiet spell (default:
	// Rate, at least 1).
	Burst int
	// MaxAttempts is how often one call is tried when Scheduler answers
	// ThrottlingException (default 8).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the wait between throttled tries:
	// about BackoffBase·2^(n-1), capped at BackoffMax, with equal jitter
	// (defaults 100 ms and 5 s).
	BackoffBase, BackoffMax time.Duration
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.Rate <= 0 {
		l.Rate = DefaultRate
	}
	if l.Burst <= 0 {
		l.Burst = max(1, int(l.Rate))
	}
	if l.MaxAttempts <= 0 {
		l.MaxAttempts = DefaultMaxAttempts
	}
	if l.BackoffBase <= 0 {
		l.BackoffBase = DefaultBackoffBase
	}
	if l.BackoffMax <= 0 {
		l.BackoffMax = max(DefaultBackoffMax, l.BackoffBase)
	}
	if l.BackoffMax < l.BackoffBase {
		l.BackoffMax = l.BackoffBase
	}
	return l
}

// Bucket is a token bucket: Rate tokens a second, at most Burst saved. It
// is safe for concurrent use. Time comes from the clock it is given.
type Bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// NewBucket returns a full bucket. now may be nil for the wall clock.
func NewBucket(rate float64, burst int, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	return &Bucket{rate: rate, burst: float64(burst), tokens: float64(burst), now: now}
}

// Reserve takes a token and returns how long the caller must wait before
// using it (0 when one was saved). Tokens may be owed: concurrent callers
// queue up one 1/Rate apart.
func (b *Bucket) Reserve() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// limiter paces calls with a Bucket and retries throttled ones with
// backoff.
type limiter struct {
	limits Limits
	bucket *Bucket
	sleep  func(ctx context.Context, d time.Duration) error
	rand   func() float64
}

func newLimiter(l Limits, now func() time.Time, sleep func(context.Context, time.Duration) error, random func() float64) *limiter {
	l = l.withDefaults()
	if sleep == nil {
		sleep = sleepCtx
	}
	if random == nil {
		random = rand.Float64
	}
	return &limiter{limits: l, bucket: NewBucket(l.Rate, l.Burst, now), sleep: sleep, rand: random}
}

// do runs call once a token is available, again after a backoff while
// Scheduler throttles it, up to MaxAttempts. op names the call in errors.
func (l *limiter) do(ctx context.Context, op string, call func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if wait := l.bucket.Reserve(); wait > 0 {
			if err := l.sleep(ctx, wait); err != nil {
				return fmt.Errorf("%s: wait for the scheduler rate limit: %w", op, err)
			}
		}
		err := call(ctx)
		if err == nil || !IsThrottled(err) {
			return err
		}
		if attempt >= l.limits.MaxAttempts {
			return fmt.Errorf("%s: still throttled after %d attempts: %w", op, attempt, err)
		}
		if err := l.sleep(ctx, l.backoff(attempt)); err != nil {
			return fmt.Errorf("%s: back off after throttling: %w", op, err)
		}
	}
}

// backoff is the wait after throttled attempt n: half of
// min(BackoffBase·2^(n-1), BackoffMax) plus a random part of up to the
// other half.
func (l *limiter) backoff(n int) time.Duration {
	d := l.limits.BackoffBase << min(n-1, 30)
	if d > l.limits.BackoffMax || d <= 0 {
		d = l.limits.BackoffMax
	}
	r := l.rand()
	if r < 0 || r >= 1 {
		r = 0
	}
	return d/2 + time.Duration(r*float64(d/2))
}

// IsThrottled reports whether err is Scheduler refusing a call for its
// request rate.
func IsThrottled(err error) bool {
	var te *schedtypes.ThrottlingException
	if errors.As(err, &te) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "TooManyRequestsException", "Throttling":
			return true
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
