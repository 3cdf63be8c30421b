package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/platform"
)

// Refusal says why a delivery could not be claimed.
type Refusal string

// Refusals.
const (
	// RefusedSettled: the delivery needs no work (sent, failed, cancelled,
	// dead or unknown); acknowledge the message and do nothing.
	RefusedSettled Refusal = "settled"
	// RefusedLeased: another worker holds a live lease.
	RefusedLeased Refusal = "leased"
	// RefusedExpired: the delivery is publishing under an expired lease: a
	// previous attempt died mid-publish and its outcome is ambiguous. Take
	// it over (TakeOver) and reconcile.
	RefusedExpired Refusal = "expired"
	// RefusedEarly: the delivery waits for NextAttemptAt.
	RefusedEarly Refusal = "early"
	// RefusedClaimable (TakeOver only): the delivery is not publishing any
	// more and can be claimed now.
	RefusedClaimable Refusal = "claimable"
)

// ClaimError is Claim's refusal, with the delivery as it was found.
type ClaimError struct {
	Reason   Refusal
	Delivery Delivery
	// LeaseUntil is the lease deadline (leased, expired).
	LeaseUntil time.Time
	// WakeAt is the due time of a message already in flight for
	// NextAttemptAt, or zero when none is known (early).
	WakeAt time.Time
}

// Error implements error.
func (e *ClaimError) Error() string {
	return fmt.Sprintf("claim delivery %s: refused (%s, state %s)", e.Delivery.ID, e.Reason, e.Delivery.State)
}

// Refused returns the *ClaimError in err's chain, if any.
func Refused(err error) (*ClaimError, bool) {
	var ce *ClaimError
	ok := errors.As(err, &ce)
	return ce, ok
}

// ErrLeaseLost is returned by a Lease's writes when the delivery was taken
// over (a newer fencing token) or changed under it: the worker must stop
// and write nothing more.
var ErrLeaseLost = apperr.New(apperr.KindConflict, "lease_lost", "the delivery was claimed by another worker")

// Lease is a worker's claim on one delivery: the right to publish it, proven
// by its fencing token. Every write through a Lease is conditional on that
// token. A Lease is safe for concurrent use (a heartbeat may extend it while
// an adapter records checkpoints).
type Lease struct {
	store     *Store
	policy    Policy
	startedAt time.Time
	from      State
	takeover  bool

	mu   sync.Mutex
	rec  record
	done bool
	// event is what Finish recorded with the outcome.
	event *event.Event
	// adaptEvent is the ai.budget_* event Adapt recorded, if any.
	adaptEvent *event.Event
}

// Claim claims a delivery for one publish attempt: queued, scheduled,
// retrying or deferred → publishing, with a lease deadline of now+p.Lease,
// a new fencing token and attempts+1. It refuses with a *ClaimError (kind
// conflict) when the delivery is settled, leased, publishing under an
// expired lease, or waiting for NextAttemptAt.
func (s *Store) Claim(ctx context.Context, siteID, id string, p Policy) (*Lease, error) {
	p = p.WithDefaults()
	// The common case, a delivery queued (or scheduled, or waiting without
	// a NextAttemptAt), is claimed in one conditional UpdateItem; any other
	// case is decided on the item it found, as before.
	var found *record
	if db, ok := s.db.(updateAPI); ok {
		now := s.now().UTC()
		r, from, err := s.claimOnce(ctx, db, siteID, id, p, now)
		if err == nil {
			return &Lease{store: s, policy: p, startedAt: now, from: from, rec: r}, nil
		}
		var nc *notClaimed
		if !errors.As(err, &nc) {
			return nil, fmt.Errorf("claim delivery %s: %w", id, err)
		}
		found = nc.found
	}
	const tries = 5
	for range tries {
		if found == nil {
			r, err := s.get(ctx, siteID, id)
			if err != nil {
				return nil, fmt.Errorf("claim delivery %s: %w", id, err)
			}
			found = &r
		}
		r := *found
		found = nil
		now := s.now().UTC()
		if ce := refusal(r, now); ce != nil {
			return nil, ce
		}
		from := r.State
		if !CanTransition(from, StatePublishing) {
			return nil, &ClaimError{Reason: RefusedSettled, Delivery: r.Delivery}
		}
		claimed(&r, now, p)
		w, err := s.put(ctx, r)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim delivery %s: %w", id, err)
		}
		return &Lease{store: s, policy: p, startedAt: now, from: from, rec: w}, nil
	}
	return nil, apperr.Newf(apperr.KindTransient, "claim_contended", "claim delivery %s: contended; try again", id)
}

// claimed is r claimed at now: publishing under a new lease and fencing
// token, one attempt more.
func claimed(r *record, now time.Time, p Policy) {
	lease := now.Add(p.Lease)
	r.State = StatePublishing
	r.Fence++
	r.Attempts++
	r.Seq++
	r.LeaseUntil = &lease
	r.NextAttemptAt, r.WakeAt, r.QueuedAt = nil, nil, nil
	if r.DueAt == nil {
		r.DueAt = &now
	}
}

// notClaimed is claimOnce's answer when its condition failed: found is the
// delivery as it was then, or nil when there is none.
type notClaimed struct{ found *record }

func (e *notClaimed) Error() string { return "the delivery is not claimable in one write" }

// claimOnce claims a delivery that is queued, scheduled, retrying or
// deferred and has no NextAttemptAt, in one UpdateItem conditional on
// exactly that: the same change claimed makes, written without reading
// first. The old item comes back either way (ReturnValues on success,
// ReturnValuesOnConditionCheckFailure on refusal), so the caller decides
// any other case without another read. It returns the claimed record and
// the state it was claimed from, or a *notClaimed.
func (s *Store) claimOnce(ctx context.Context, db updateAPI, siteID, id string, p Policy, now time.Time) (record, State, error) {
	lease := now.Add(p.Lease)
	at, err := attributevalue.Marshal(now)
	if err != nil {
		return record{}, "", err
	}
	until, err := attributevalue.Marshal(lease)
	if err != nil {
		return record{}, "", err
	}
	gsiPK, gsiSK := workKey(record{Delivery: Delivery{ID: id, SiteID: siteID, State: StatePublishing}, LeaseUntil: &lease})
	out, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table,
		Key:       key(siteID, id),
		UpdateExpression: aws.String("SET #s = :pub, fence = fence + :one, attempts = attempts + :one, seq = seq + :one, " +
			"version = version + :one, lease_until = :until, updated_at = :now, due_at = if_not_exists(due_at, :now), " +
			"GSI2PK = :gpk, GSI2SK = :gsk REMOVE next_attempt_at, wake_at, queued_at"),
		ConditionExpression:      aws.String("attribute_exists(PK) AND #s IN (:q, :sch, :r, :d) AND attribute_not_exists(next_attempt_at)"),
		ExpressionAttributeNames: map[string]string{"#s": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pub": str(string(StatePublishing)), ":one": num(1), ":until": until, ":now": at,
			":gpk": str(gsiPK), ":gsk": str(gsiSK),
			":q": str(string(StateQueued)), ":sch": str(string(StateScheduled)),
			":r": str(string(StateRetrying)), ":d": str(string(StateDeferred)),
		},
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if ccf.Item == nil {
			return record{}, "", &notClaimed{}
		}
		r, err := unmarshalRecord(ccf.Item)
		if err != nil {
			return record{}, "", err
		}
		return record{}, "", &notClaimed{found: &r}
	}
	if err != nil {
		return record{}, "", err
	}
	r, err := unmarshalRecord(out.Attributes)
	if err != nil {
		return record{}, "", err
	}
	from := r.State
	claimed(&r, now, p)
	r.Version++
	r.UpdatedAt = now
	if len(r.History) > maxHistory {
		r.History = r.History[len(r.History)-maxHistory:]
	}
	return r, from, nil
}

// refusal returns why r cannot be claimed at now, or nil.
func refusal(r record, now time.Time) *ClaimError {
	ce := &ClaimError{Delivery: r.Delivery}
	switch {
	case r.State == StatePublishing:
		if r.LeaseUntil != nil {
			ce.LeaseUntil = *r.LeaseUntil
		}
		ce.Reason = RefusedLeased
		if r.LeaseUntil == nil || !r.LeaseUntil.After(now) {
			ce.Reason = RefusedExpired
		}
		return ce
	case !r.State.Claimable():
		ce.Reason = RefusedSettled
		return ce
	case r.NextAttemptAt != nil && now.Before(*r.NextAttemptAt):
		ce.Reason = RefusedEarly
		if r.WakeAt != nil {
			ce.WakeAt = *r.WakeAt
		}
		return ce
	}
	return nil
}

// TakeOver claims a delivery found publishing under an expired lease, to
// reconcile the attempt that died: a new fencing token and lease, attempts
// unchanged (the attempt being reconciled is the last one). Any other state
// is refused with a *ClaimError: the reason Claim would give, or
// RefusedClaimable when Claim would succeed.
func (s *Store) TakeOver(ctx context.Context, siteID, id string, p Policy) (*Lease, error) {
	p = p.WithDefaults()
	const tries = 5
	for range tries {
		r, err := s.get(ctx, siteID, id)
		if err != nil {
			return nil, fmt.Errorf("take over delivery %s: %w", id, err)
		}
		now := s.now().UTC()
		ce := refusal(r, now)
		if ce == nil {
			// Not publishing (someone reconciled it first): nothing to
			// take over; the caller may claim it.
			return nil, &ClaimError{Reason: RefusedClaimable, Delivery: r.Delivery}
		}
		if ce.Reason != RefusedExpired {
			return nil, ce
		}
		lease := now.Add(p.Lease)
		r.Fence++
		r.LeaseUntil = &lease
		w, err := s.put(ctx, r)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("take over delivery %s: %w", id, err)
		}
		return &Lease{store: s, policy: p, startedAt: now, from: StatePublishing, takeover: true, rec: w}, nil
	}
	return nil, apperr.Newf(apperr.KindTransient, "claim_contended", "take over delivery %s: contended; try again", id)
}

// Delivery returns the claimed delivery as last written.
func (l *Lease) Delivery() Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.rec.Delivery
	return d
}

// Fence is the lease's fencing token.
func (l *Lease) Fence() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Fence
}

// Until is the lease deadline.
func (l *Lease) Until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *l.rec.LeaseUntil
}

// From is the state the delivery was claimed from.
func (l *Lease) From() State { return l.from }

// TakenOver reports whether the lease took over an expired one (TakeOver).
func (l *Lease) TakenOver() bool { return l.takeover }

// Deferrals is how often the delivery was deferred so far.
func (l *Lease) Deferrals() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Deferrals
}

// DueAt is when the delivery first became due (created queued, or its
// schedule fired), for latency statistics.
func (l *Lease) DueAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec.DueAt == nil {
		return l.rec.CreatedAt
	}
	return *l.rec.DueAt
}

// Post is the delivery as adapters publish it, with the checkpoints every
// attempt recorded so far.
func (l *Lease) Post() platform.Post {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.rec.Delivery
	return platform.Post{DeliveryID: d.ID, Text: d.Text, Link: d.Link, Title: d.Title,
		Media: d.Media, Options: maps.Clone(d.Options), Journal: maps.Clone(l.rec.Journal)}
}

// Journal returns a platform.Journal bound to this lease: each checkpoint is
// persisted, conditional on the fencing token, before Record returns.
func (l *Lease) Journal() platform.Journal { return leaseJournal{l} }

type leaseJournal struct{ l *Lease }

// Record implements platform.Journal.
func (j leaseJournal) Record(ctx context.Context, key, value string) error {
	return j.l.write(ctx, func(r *record) {
		if r.Journal == nil {
			r.Journal = map[string]string{}
		}
		r.Journal[key] = value
	})
}

// RecordAll implements the journal's several checkpoints in one fenced
// write (platform.RecordAll).
func (j leaseJournal) RecordAll(ctx context.Context, kv map[string]string) error {
	return j.l.write(ctx, func(r *record) {
		if r.Journal == nil {
			r.Journal = map[string]string{}
		}
		maps.Copy(r.Journal, kv)
	})
}

// Adapt freezes the AI adaptation of the delivery before it is published:
// its text, the alt texts generated for its media (by index; "" keeps the
// media's own) and info, whose Source must no longer be AIPending. The
// write is fenced like every lease write, so a retry, a redelivery or a
// redrive publishes these words and never adapts again. It refuses a
// delivery whose adaptation is already frozen.
func (l *Lease) Adapt(ctx context.Context, text string, altTexts []string, info AIInfo) error {
	if info.Source == "" || info.Source == AIPending {
		return fmt.Errorf("adapt delivery %s: source %q is not a result", l.Delivery().ID, info.Source)
	}
	if cur := l.Delivery().AI; cur == nil || cur.Source != AIPending {
		return fmt.Errorf("adapt delivery %s: its text is frozen already", l.Delivery().ID)
	}
	return l.writeWith(ctx, func(r *record) (*event.Event, error) {
		r.Text = text
		r.Media = slices.Clone(r.Media)
		for i, alt := range altTexts {
			if alt != "" && i < len(r.Media) && r.Media[i].AltText == "" {
				r.Media[i].AltText = alt
			}
		}
		now := l.store.now().UTC()
		info.AdaptedAt = &now
		r.AI = &info
		return budgetEvent(*r, now)
	})
}

// AdaptEvent returns the ai.budget_* event Adapt recorded in its write, or
// false when it recorded none.
func (l *Lease) AdaptEvent() (event.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.adaptEvent == nil {
		return event.Event{}, false
	}
	return *l.adaptEvent, true
}

// Extend moves the lease deadline to now+Lease, for a long publish.
func (l *Lease) Extend(ctx context.Context) error {
	return l.write(ctx, func(r *record) {
		t := l.store.now().UTC().Add(l.policy.Lease)
		r.LeaseUntil = &t
	})
}

// write applies f to the leased record and writes it, fenced.
func (l *Lease) write(ctx context.Context, f func(r *record)) error {
	return l.writeWith(ctx, func(r *record) (*event.Event, error) { f(r); return nil, nil })
}

// writeWith is write with the event f returns (when not nil) recorded in
// the same transaction (an outbox).
func (l *Lease) writeWith(ctx context.Context, f func(r *record) (*event.Event, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return ErrLeaseLost
	}
	r := l.rec
	r.Journal = maps.Clone(l.rec.Journal)
	ev, err := f(&r)
	if err != nil {
		return fmt.Errorf("write delivery %s: %w", r.ID, err)
	}
	w, err := l.store.putFencedWith(ctx, r, ev)
	if ev != nil && err == nil {
		l.adaptEvent = ev
	}
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			l.done = true
		}
		return fmt.Errorf("write delivery %s under lease %d: %w", r.ID, r.Fence, err)
	}
	l.rec = w
	return nil
}

// Finish records the attempt's outcome, fenced, with an entry in the
// history, and ends the lease. It returns the delivery as written.
// ErrLeaseLost means a newer claim owns the delivery and nothing was
// written.
func (l *Lease) Finish(ctx context.Context, o Outcome) (Delivery, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return Delivery{}, fmt.Errorf("finish delivery %s: %w", l.rec.ID, ErrLeaseLost)
	}
	if o.State == StatePublishing || !CanTransition(StatePublishing, o.State) {
		return Delivery{}, fmt.Errorf("finish delivery %s: %s is not an outcome", l.rec.ID, o.State)
	}
	r := l.rec
	now := l.store.now().UTC()
	info := errorInfo(o.Err)
	entry := Attempt{N: r.Seq, StartedAt: l.startedAt, EndedAt: now, Outcome: o.State, Message: o.Note}
	if info != nil {
		entry.ErrorKind, entry.ErrorCode = string(info.Kind), info.Code
		if entry.Message == "" {
			entry.Message = info.Message
		} else if info.Message != "" {
			entry.Message += ": " + info.Message
		}
		entry.RetryAfter = time.Duration(info.RetryAfterMS) * time.Millisecond
	}
	r.State = o.State
	r.LeaseUntil = nil
	r.NextAttemptAt, r.WakeAt = nil, nil
	switch o.State {
	case StateSent:
		r.PlatformPostID, r.PlatformURL = o.Result.ID, o.Result.URL
		r.SentAt = &now
		r.LastError = nil
	case StateRetrying, StateDeferred:
		next := o.NextAttemptAt.UTC()
		if next.Before(now) {
			next = now
		}
		r.NextAttemptAt = &next
		// The dispatcher sends the wake-up message right after this write;
		// if it cannot, the sweep re-enqueues the overdue delivery.
		r.WakeAt = &next
		r.LastError = info
		if o.State == StateDeferred {
			// A deferral is not a try: it does not count toward MaxAttempts.
			r.Attempts--
			r.Deferrals++
		}
	default:
		r.LastError = info
	}
	r.History = append(r.History, entry)
	ev, err := outcomeEvent(r, now)
	if err != nil {
		return Delivery{}, fmt.Errorf("finish delivery %s as %s: %w", r.ID, o.State, err)
	}
	w, err := l.store.putFencedWith(ctx, r, ev)
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			l.done = true
		}
		return Delivery{}, fmt.Errorf("finish delivery %s as %s: %w", r.ID, o.State, err)
	}
	l.rec = w
	l.done = true
	l.event = ev
	return w.Delivery, nil
}

// Event returns the event the outcome write recorded (in the same
// transaction), or false when Finish has not written one: it has not run
// or failed, or the outcome records none (deferred).
func (l *Lease) Event() (event.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.event == nil {
		return event.Event{}, false
	}
	return *l.event, true
}

// putFencedWith writes r conditional on its version and fencing token (a
// failed condition is ErrLeaseLost), with the event ev (when not nil)
// written in the same transaction.
func (s *Store) putFencedWith(ctx context.Context, r record, ev *event.Event) (record, error) {
	w, err := s.putCond(ctx, r, true, ev)
	if errors.Is(err, errStale) {
		return record{}, ErrLeaseLost
	}
	return w, err
}
