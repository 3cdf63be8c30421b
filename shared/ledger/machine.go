package ledger

import (
	"math"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

// transitions is the state machine of architecture §6: which state may
// follow which. publishing → publishing is a takeover of an expired lease.
var transitions = map[State][]State{
	StateQueued:     {StatePublishing, StateCancelled},
	StateScheduled:  {StatePublishing, StateCancelled},
	StateRetrying:   {StatePublishing, StateCancelled},
	StateDeferred:   {StatePublishing, StateCancelled},
	StatePublishing: {StatePublishing, StateSent, StateRetrying, StateDeferred, StateFailed, StateUnknown, StateDead},
	StateFailed:     {StateQueued},
	StateDead:       {StateQueued},
	StateUnknown:    {StateQueued, StateSent},
	StateSent:       nil,
	StateCancelled:  nil,
}

// CanTransition reports whether a delivery may move from one state to
// another.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Policy defaults.
const (
	DefaultMaxAttempts     = 5
	DefaultMaxDeferrals    = 24
	DefaultLease           = 2 * time.Minute
	DefaultBackoffBase     = 30 * time.Second
	DefaultBackoffMax      = 30 * time.Minute
	DefaultRateLimitedWait = time.Minute
)

// Policy decides what follows a failed attempt.
type Policy struct {
	// MaxAttempts is how many publish attempts a delivery gets before it is
	// dead (default 5). Deferrals do not count.
	MaxAttempts int
	// MaxDeferrals bounds how often one delivery is deferred by rate limits
	// before it is dead (default 24).
	MaxDeferrals int
	// Lease is how long a claim holds a delivery (default 2 min); keep it
	// above the dispatch function's timeout.
	Lease time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff of transient
	// failures: attempt n waits about BackoffBase·2^(n-1), capped at
	// BackoffMax, with jitter (defaults 30 s and 30 min).
	BackoffBase, BackoffMax time.Duration
	// RateLimitedWait is the deferral when a platform rate-limits without
	// saying until when (default 1 min).
	RateLimitedWait time.Duration
	// Rand returns a number in [0, 1) for the jitter; math/rand/v2 when nil.
	Rand func() float64
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxDeferrals <= 0 {
		p.MaxDeferrals = DefaultMaxDeferrals
	}
	def(&p.Lease, DefaultLease)
	def(&p.BackoffBase, DefaultBackoffBase)
	def(&p.BackoffMax, DefaultBackoffMax)
	def(&p.RateLimitedWait, DefaultRateLimitedWait)
	if p.BackoffMax < p.BackoffBase {
		p.BackoffMax = p.BackoffBase
	}
	if p.Rand == nil {
		p.Rand = randFloat
	}
	return p
}

// Backoff is the wait before the attempt after attempt n (1-based): half of
// min(BackoffBase·2^(n-1), BackoffMax), plus a random part of up to the
// other half ("equal jitter"), so waits spread out but never collapse to 0.
func (p Policy) Backoff(n int) time.Duration {
	p = p.WithDefaults()
	if n < 1 {
		n = 1
	}
	d := float64(p.BackoffBase) * math.Pow(2, float64(n-1))
	if d > float64(p.BackoffMax) {
		d = float64(p.BackoffMax)
	}
	r := p.Rand()
	if r < 0 || r >= 1 {
		r = 0
	}
	return time.Duration(d/2 + r*d/2)
}

// Outcome is what an attempt came to, as Lease.Finish records it.
type Outcome struct {
	State State
	// Result is the published post (sent).
	Result Result
	// Err is the typed error of the attempt (every state but sent).
	Err error
	// NextAttemptAt is when the next attempt may run (retrying, deferred).
	NextAttemptAt time.Time
	// Note is a short, client-safe remark for the history ("reconciled").
	Note string
}

// Result is the platform's post: its id and public URL.
type Result struct {
	ID  string
	URL string
}

// Decide returns the outcome of an attempt that failed with err, the
// delivery's attempts (this one included) and deferrals so far: rate
// limited → deferred until the platform's reset; transient → retrying
// with backoff, or dead past MaxAttempts; anything else (permanent,
// reconnect, invalid, ...) → failed. Ambiguous errors are the caller's to
// reconcile first; one that reaches Decide becomes unknown.
func (p Policy) Decide(err error, attempts, deferrals int, now time.Time) Outcome {
	p = p.WithDefaults()
	e, _ := apperr.As(err)
	kind := apperr.KindOf(err)
	switch kind {
	case apperr.KindRateLimited:
		if deferrals+1 > p.MaxDeferrals {
			return Outcome{State: StateDead, Err: err, Note: "rate limited too many times"}
		}
		wait := p.RateLimitedWait
		if e != nil && e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		return Outcome{State: StateDeferred, Err: err, NextAttemptAt: now.Add(wait)}
	case apperr.KindTransient, apperr.KindInternal:
		if attempts >= p.MaxAttempts {
			return Outcome{State: StateDead, Err: err, Note: "attempts exhausted"}
		}
		wait := p.Backoff(attempts)
		if e != nil && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		return Outcome{State: StateRetrying, Err: err, NextAttemptAt: now.Add(wait)}
	case apperr.KindAmbiguous:
		return Outcome{State: StateUnknown, Err: err}
	}
	return Outcome{State: StateFailed, Err: err}
}

// errorInfo is the stored form of err.
func errorInfo(err error) *ErrorInfo {
	if err == nil {
		return nil
	}
	e, ok := apperr.As(err)
	if !ok {
		return &ErrorInfo{Kind: apperr.KindInternal, Code: "internal", Message: "an internal error occurred"}
	}
	return &ErrorInfo{Kind: e.Kind, Code: e.Code, Message: e.Message, Retryable: e.Retryable,
		RetryAfterMS: e.RetryAfter.Milliseconds(), Platform: e.Platform, PlatformCode: e.PlatformCode, HTTPStatus: e.HTTPStatus}
}
