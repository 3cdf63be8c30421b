package schedule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/queue"
)

// Fire outcomes (FireResult.Action), for the dispatcher's log line.
const (
	FireDone      = "fired"            // deliveries queued and their messages sent
	FireUnknown   = "unknown_schedule" // no such schedule (rolled back, or another site's)
	FireStale     = "stale"            // an older version: the schedule changed since
	FireCancelled = "cancelled"        // cancelled before it fired
	FireFailed    = "failed"           // the schedule is failed and never fires
	FireDuplicate = "already_fired"    // a second fire of the same version
)

// FireResult says what a fire did.
type FireResult struct {
	Action string
	// Activated is how many deliveries this fire moved from scheduled to
	// queued; Enqueued how many delivery messages it sent.
	Activated, Enqueued int
}

// ErrFireInProgress is returned while another fire of the same schedule
// holds its lease: the message should come back later (a batch item
// failure), when the fire is done (and this one a duplicate) or its lease
// expired (and this one takes over).
var ErrFireInProgress = apperr.New(apperr.KindTransient, "fire_in_progress", "the schedule is being fired by another worker")

// Fire expands a fired schedule, as the dispatcher calls it for a schedule
// message: version is the message's. It moves the schedule's deliveries
// from scheduled to queued and sends their delivery messages, so they
// publish through the normal ledger path. It is idempotent: a second fire
// of a fired schedule creates and sends nothing; a fire of an older version
// (the schedule changed), after a cancel, or of a schedule that does not
// exist does nothing. A fire that died midway is taken over once its lease
// expires; a delivery cancelled between the fire and its claim stays
// cancelled. A nil error acknowledges the message.
func (s *Service) Fire(ctx context.Context, siteID, id string, version int) (FireResult, error) {
	if s.cfg.Queue == nil {
		return FireResult{}, errors.New("schedule: Fire needs Queue")
	}
	r, res, err := s.claimFire(ctx, siteID, id, version)
	if err != nil || res.Action != "" {
		return res, err
	}
	var out []queue.Outgoing
	for _, did := range r.DeliveryIDs {
		d, activated, err := s.cfg.Ledger.Activate(ctx, siteID, did, id)
		switch {
		case apperr.Is(err, apperr.KindNotFound), apperr.Is(err, apperr.KindConflict):
			// Gone, or not this schedule's any more: nothing to publish here.
			s.log.WarnContext(ctx, "scheduled delivery not activated", "site", siteID, "schedule_id", id, "delivery_id", did, "err", err)
			continue
		case err != nil:
			return res, fmt.Errorf("fire schedule %s: %w", id, err)
		}
		if activated {
			res.Activated++
		}
		// Queued now, or by a fire that died before it sent the message:
		// send (a duplicate message is acknowledged by the dispatcher).
		if d.State == ledger.StateQueued {
			out = append(out, queue.Outgoing{ID: d.ID, Body: ledger.DeliveryMessage(siteID, d.ID).Encode()})
		}
	}
	if len(out) > 0 {
		if err := s.cfg.Queue.Send(ctx, out); err != nil {
			// The deliveries are queued; this message comes back and a later
			// fire takes over and sends again (the sweep also re-enqueues).
			return res, fmt.Errorf("fire schedule %s: enqueue %d deliveries: %w", id, len(out), err)
		}
	}
	res.Enqueued = len(out)
	if err := s.finishFire(ctx, r); err != nil {
		return res, err
	}
	res.Action = FireDone
	return res, nil
}

// claimFire moves the schedule to firing under a lease. A non-empty
// res.Action means there is nothing to do (acknowledge).
func (s *Service) claimFire(ctx context.Context, siteID, id string, version int) (record, FireResult, error) {
	for range 5 {
		r, err := s.store.get(ctx, siteID, id)
		if apperr.Is(err, apperr.KindNotFound) {
			return record{}, FireResult{Action: FireUnknown}, nil
		}
		if err != nil {
			return record{}, FireResult{}, fmt.Errorf("fire schedule %s: %w", id, err)
		}
		now := s.cfg.Now().UTC()
		switch {
		case version != r.Version:
			return record{}, FireResult{Action: FireStale}, nil
		case r.State == StateCancelled:
			return record{}, FireResult{Action: FireCancelled}, nil
		case r.State == StateFailed:
			return record{}, FireResult{Action: FireFailed}, nil
		case r.State == StateFired:
			return record{}, FireResult{Action: FireDuplicate}, nil
		case r.State == StateFiring && r.FiringUntil != nil && r.FiringUntil.After(now):
			return record{}, FireResult{}, fmt.Errorf("fire schedule %s: %w", id, ErrFireInProgress)
		}
		// Scheduled, or firing under an expired lease (a fire died): take it.
		lease := now.Add(s.cfg.FireLease)
		r.State, r.FiringUntil, r.UpdatedAt = StateFiring, &lease, now
		if r.FiredAt == nil {
			r.FiredAt = &now
		}
		w, err := s.store.put(ctx, r)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return record{}, FireResult{}, fmt.Errorf("fire schedule %s: %w", id, err)
		}
		return w, FireResult{}, nil
	}
	return record{}, FireResult{}, apperr.Newf(apperr.KindTransient, "fire_contended", "fire schedule %s: contended; try again", id)
}

// finishFire moves a firing schedule to fired, recording schedule.fired in
// the same transaction, and hands the event to the webhook queue.
func (s *Service) finishFire(ctx context.Context, r record) error {
	for range 5 {
		r.State, r.FiringUntil, r.UpdatedAt = StateFired, nil, s.cfg.Now().UTC()
		ev, err := event.New(r.SiteID, event.ScheduleFired, r.UpdatedAt, event.ScheduleData{ScheduleID: r.ID, PostID: r.PostID,
			Revision: r.Revision, ScheduledFor: r.ScheduledFor, Version: r.Version, DeliveryIDs: r.DeliveryIDs},
			"schedule", r.SiteID, r.ID, strconv.Itoa(r.Version), string(event.ScheduleFired))
		if err != nil {
			return fmt.Errorf("finish fire of schedule %s: %w", r.ID, err)
		}
		_, err = s.store.putWithEvent(ctx, r, &ev)
		if err == nil {
			s.log.InfoContext(ctx, "schedule fired", "site", r.SiteID, "schedule_id", r.ID, "version", r.Version,
				"late_ms", r.FiredAt.Sub(r.ScheduledFor).Milliseconds())
			if s.cfg.Events != nil {
				if err := s.cfg.Events.Publish(ctx, ev.SiteID, ev.ID); err != nil {
					// The event waits in the outbox; the sweep sends it.
					s.log.WarnContext(ctx, "publish schedule event", "schedule_id", r.ID, "event_id", ev.ID, "err", err.Error())
				}
			}
			return nil
		}
		if !errors.Is(err, errStale) {
			return fmt.Errorf("finish fire of schedule %s: %w", r.ID, err)
		}
		cur, err := s.store.get(ctx, r.SiteID, r.ID)
		if err != nil {
			return fmt.Errorf("finish fire of schedule %s: %w", r.ID, err)
		}
		if cur.State != StateFiring || cur.Version != r.Version {
			return nil // another fire finished it
		}
		r = cur
	}
	return apperr.Newf(apperr.KindTransient, "fire_contended", "finish fire of schedule %s: contended; try again", r.ID)
}

// FireLate is how late a fired schedule fired: FiredAt − ScheduledFor.
func FireLate(s Schedule) (time.Duration, bool) {
	if s.FiredAt == nil {
		return 0, false
	}
	return s.FiredAt.Sub(s.ScheduledFor), true
}
