package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
)

// Change is the input of Update: nil fields keep their value.
type Change struct {
	// When is the new time.
	When *When
	// TargetIDs, CustomMessage and Deliveries change what it publishes:
	// Deliveries are the composed and validated deliveries of the new
	// targets and text, one per target in the order of TargetIDs (set when
	// either changes).
	TargetIDs     []string
	CustomMessage *string
	Deliveries    []ledger.NewDelivery
	// IfVersion, when not 0, is the version the caller composed against:
	// a schedule changed since is a conflict.
	IfVersion int
}

// Update changes a schedule that has not fired: its time, targets or text.
// It makes a new version: the Scheduler schedule is updated in place with
// the new version in its message, so a fire of the old one does nothing.
// Targets taken out lose their scheduled delivery; targets added get one
// (a conflict if the revision already has a delivery to them). A schedule
// that fired, was cancelled or failed is a conflict. When Scheduler cannot
// be updated, the change is undone and the error is transient.
func (s *Service) Update(ctx context.Context, siteID, id string, c Change) (Schedule, []ledger.Delivery, error) {
	if err := s.writable(); err != nil {
		return Schedule{}, nil, err
	}
	old, err := s.store.get(ctx, siteID, id)
	if err != nil {
		return Schedule{}, nil, err
	}
	if old.State != StateScheduled {
		return Schedule{}, nil, notChangeable(old, "changed")
	}
	if c.IfVersion != 0 && c.IfVersion != old.Version {
		return Schedule{}, nil, apperr.Newf(apperr.KindConflict, "concurrent_update", "schedule %s changed while this change was prepared; try again", id)
	}
	if c.Deliveries != nil && len(c.Deliveries) != len(c.TargetIDs) {
		return Schedule{}, nil, fmt.Errorf("update schedule %s: %d deliveries for %d targets", id, len(c.Deliveries), len(c.TargetIDs))
	}
	r := old
	r.TargetIDs, r.DeliveryIDs = slices.Clone(old.TargetIDs), slices.Clone(old.DeliveryIDs)
	if c.When != nil {
		r.ScheduledFor, r.Timezone, r.Resolution = c.When.At.UTC(), c.When.Zone, c.When.Resolution
	}
	if c.CustomMessage != nil {
		r.CustomMessage = *c.CustomMessage
	}
	var plan deliveryPlan
	if c.Deliveries != nil {
		r.TargetIDs = slices.Clone(c.TargetIDs)
		if plan, err = s.applyDeliveries(ctx, old, c.Deliveries); err != nil {
			return Schedule{}, nil, err
		}
		r.DeliveryIDs = plan.ids
	}
	r.Version = max(old.Version, old.MaxVersion) + 1
	r.MaxVersion = r.Version
	r.Via = s.via(r.ScheduledFor)
	r.UpdatedAt = s.cfg.Now().UTC()
	w, err := s.store.put(ctx, r)
	if err != nil {
		s.undoDeliveries(ctx, old, plan)
		if errors.Is(err, errStale) {
			if cur, gerr := s.store.get(ctx, siteID, id); gerr == nil && cur.State != StateScheduled {
				return Schedule{}, nil, notChangeable(cur, "changed")
			}
			return Schedule{}, nil, apperr.Newf(apperr.KindConflict, "concurrent_update", "schedule %s is being changed concurrently; try again", id)
		}
		return Schedule{}, nil, fmt.Errorf("update schedule %s: %w", id, err)
	}
	if err := s.arm(ctx, w, true); err != nil {
		return Schedule{}, nil, s.rollbackUpdate(ctx, old, w, plan, err)
	}
	// Only now that nothing can fire the old targets: drop their deliveries.
	for _, did := range plan.removed {
		if err := s.cfg.Ledger.DeleteScheduled(ctx, siteID, did, id); err != nil {
			s.log.WarnContext(ctx, "remove delivery of a target taken out of a schedule", "schedule_id", id, "delivery_id", did, "err", err)
			if _, cerr := s.cfg.Ledger.Cancel(context.WithoutCancel(ctx), siteID, did); cerr != nil {
				s.log.ErrorContext(ctx, "cancel delivery of a target taken out of a schedule", "schedule_id", id, "delivery_id", did, "err", cerr)
			}
		}
	}
	ds, err := s.Deliveries(ctx, w.Schedule)
	if err != nil {
		return Schedule{}, nil, err
	}
	s.log.InfoContext(ctx, "schedule updated", "site", siteID, "schedule_id", id, "version", w.Version,
		"scheduled_for", w.ScheduledFor.Format(time.RFC3339), "via", w.Via, "added", len(plan.added), "removed", len(plan.removed))
	return w.Schedule, ds, nil
}

// deliveryPlan is what applyDeliveries did, to undo it.
type deliveryPlan struct {
	ids     []string          // the new delivery ids, in target order
	added   []string          // deliveries created
	revised []ledger.Delivery // deliveries rewritten, as they were before
	removed []string          // deliveries of targets taken out (deleted after the change)
}

// applyDeliveries creates the deliveries of added targets and rewrites
// those of kept targets, before the schedule item names them. A target
// whose delivery of the revision exists outside this schedule is a
// conflict, checked before anything is written.
func (s *Service) applyDeliveries(ctx context.Context, old record, news []ledger.NewDelivery) (deliveryPlan, error) {
	var plan deliveryPlan
	current := map[string]bool{}
	for _, id := range old.DeliveryIDs {
		current[id] = true
	}
	var fresh, kept []ledger.NewDelivery
	for _, n := range news {
		n.State, n.ScheduleID = ledger.StateScheduled, old.ID
		id := ledger.DeliveryID(n.SiteID, n.PostID, n.Revision, n.TargetID)
		plan.ids = append(plan.ids, id)
		if current[id] {
			kept = append(kept, n)
			delete(current, id)
			continue
		}
		fresh = append(fresh, n)
	}
	for _, id := range old.DeliveryIDs {
		if current[id] {
			plan.removed = append(plan.removed, id)
		}
	}
	if err := s.checkFree(ctx, old.SiteID, old.PostID, old.Revision, old.ID, fresh); err != nil {
		return deliveryPlan{}, err
	}
	undo := func(cause error) (deliveryPlan, error) {
		s.undoDeliveries(ctx, old, plan)
		return deliveryPlan{}, cause
	}
	if len(fresh) > 0 {
		ds, created, err := s.cfg.Ledger.CreateAll(ctx, fresh)
		if err != nil {
			return undo(fmt.Errorf("create deliveries of schedule %s: %w", old.ID, err))
		}
		var taken problems
		for i, d := range ds {
			switch {
			case created[i]:
				plan.added = append(plan.added, d.ID)
			case d.ScheduleID != old.ID || d.State != ledger.StateScheduled:
				taken.add(fmt.Sprintf("targets[%s]", d.TargetID), "%s", takenBy(d))
			default:
				// Left by an earlier attempt of this change: bring it up to date.
				kept = append(kept, fresh[i])
			}
		}
		if len(taken) > 0 {
			return undo(takenError(old.PostID, old.Revision, taken))
		}
	}
	for _, n := range kept {
		id := ledger.DeliveryID(n.SiteID, n.PostID, n.Revision, n.TargetID)
		before, err := s.cfg.Ledger.Get(ctx, old.SiteID, id)
		if err != nil {
			return undo(fmt.Errorf("read delivery %s of schedule %s: %w", id, old.ID, err))
		}
		// Undoing a revision that changed nothing writes nothing.
		plan.revised = append(plan.revised, before)
		if _, err := s.cfg.Ledger.ReviseScheduled(ctx, n); err != nil {
			return undo(fmt.Errorf("change delivery %s of schedule %s: %w", id, old.ID, err))
		}
	}
	return plan, nil
}

// undoDeliveries reverses applyDeliveries, best effort.
func (s *Service) undoDeliveries(ctx context.Context, old record, plan deliveryPlan) {
	ctx = context.WithoutCancel(ctx)
	for _, id := range plan.added {
		if err := s.cfg.Ledger.DeleteScheduled(ctx, old.SiteID, id, old.ID); err != nil {
			s.log.ErrorContext(ctx, "undo added delivery", "schedule_id", old.ID, "delivery_id", id, "err", err)
		}
	}
	for _, d := range plan.revised {
		if _, err := s.cfg.Ledger.ReviseScheduled(ctx, asNew(d)); err != nil {
			s.log.ErrorContext(ctx, "undo delivery change", "schedule_id", old.ID, "delivery_id", d.ID, "err", err)
		}
	}
}

// asNew is the NewDelivery that d was created from.
func asNew(d ledger.Delivery) ledger.NewDelivery {
	return ledger.NewDelivery{
		SiteID: d.SiteID, PostID: d.PostID, Revision: d.Revision, TargetID: d.TargetID, ConnectionID: d.ConnectionID,
		Platform: d.Platform, Text: d.Text, Link: d.Link, Title: d.Title, Media: d.Media, Options: d.Options,
		RateLimitPerHour: d.RateLimitPerHour, State: d.State, ScheduleID: d.ScheduleID,
	}
}

// rollbackUpdate undoes a change whose Scheduler schedule could not be
// written: the item as it was (its old version fires again), the
// deliveries, and the old Scheduler schedule. When that fails too, the
// schedule is left failed and the error says so.
func (s *Service) rollbackUpdate(ctx context.Context, old, written record, plan deliveryPlan, cause error) error {
	ctx = context.WithoutCancel(ctx)
	restore := old
	restore.Seq, restore.MaxVersion = written.Seq, written.MaxVersion
	restore.UpdatedAt = s.cfg.Now().UTC()
	restored, err := s.store.put(ctx, restore)
	if err == nil {
		s.undoDeliveries(ctx, old, plan)
		// The old Scheduler schedule is most likely untouched; write it again
		// in case the failed call changed it after all (best effort: if its
		// time has come meanwhile, Scheduler refuses, and it fired anyway).
		if aerr := s.arm(ctx, restored, true); aerr != nil {
			s.log.WarnContext(ctx, "rewrite the Scheduler schedule of an undone change", "site", old.SiteID, "schedule_id", old.ID, "err", aerr)
		}
		s.log.WarnContext(ctx, "schedule change undone", "site", old.SiteID, "schedule_id", old.ID, "err", cause)
		return apperr.Wrap(cause, apperr.KindTransient, "schedule_not_changed",
			"the schedule could not be changed; it is as it was and still fires at "+old.ScheduledFor.Format(time.RFC3339)+"; try again")
	}
	s.log.ErrorContext(ctx, "schedule change not undone", "site", old.SiteID, "schedule_id", old.ID, "err", err, "cause", cause)
	cur, gerr := s.store.get(ctx, old.SiteID, old.ID)
	if gerr == nil {
		s.markFailed(ctx, cur, "the schedule could not be changed")
	}
	return apperr.Wrap(fmt.Errorf("%w; undo: %w", cause, err), apperr.KindTransient, "schedule_failed",
		fmt.Sprintf("the schedule could not be changed and not be restored; schedule %s is left failed and will not publish. "+
			"Cancel it (DELETE /v1/schedules/%s) and schedule the post again", old.ID, old.ID))
}

// Cancel cancels a schedule that has not fired: the schedule and its
// deliveries become cancelled and its Scheduler schedule is deleted (a fire
// that still arrives does nothing). Cancelling a cancelled schedule
// finishes what an interrupted cancel left and returns it. A schedule that
// fired is a conflict: its deliveries are cancelled one by one, before a
// worker claims them.
func (s *Service) Cancel(ctx context.Context, siteID, id string) (Schedule, []ledger.Delivery, error) {
	if err := s.writable(); err != nil {
		return Schedule{}, nil, err
	}
	var r record
	for attempt := 0; ; attempt++ {
		cur, err := s.store.get(ctx, siteID, id)
		if err != nil {
			return Schedule{}, nil, err
		}
		if cur.State == StateCancelled {
			r = cur
			break
		}
		if cur.State != StateScheduled && cur.State != StateFailed {
			return Schedule{}, nil, notChangeable(cur, "cancelled")
		}
		now := s.cfg.Now().UTC()
		cur.State, cur.CancelledAt, cur.UpdatedAt = StateCancelled, &now, now
		w, err := s.store.put(ctx, cur)
		if errors.Is(err, errStale) && attempt < 3 {
			continue
		}
		if err != nil {
			return Schedule{}, nil, fmt.Errorf("cancel schedule %s: %w", id, err)
		}
		r = w
		break
	}
	var errs []error
	for _, did := range r.DeliveryIDs {
		_, err := s.cfg.Ledger.Cancel(ctx, siteID, did)
		if err != nil && !apperr.Is(err, apperr.KindNotFound) {
			errs = append(errs, err)
		}
	}
	if err := s.unarm(ctx, r); err != nil {
		// The fire would do nothing: the schedule is cancelled.
		s.log.WarnContext(ctx, "delete cancelled schedule from Scheduler", "site", siteID, "schedule_id", id, "err", err)
	}
	if len(errs) > 0 {
		return Schedule{}, nil, apperr.Wrap(errors.Join(errs...), apperr.KindTransient, "cancel_incomplete",
			"the schedule is cancelled and will not fire, but some of its deliveries could not be marked cancelled yet; cancel again to finish")
	}
	ds, err := s.Deliveries(ctx, r.Schedule)
	if err != nil {
		return Schedule{}, nil, err
	}
	s.log.InfoContext(ctx, "schedule cancelled", "site", siteID, "schedule_id", id, "version", r.Version)
	return r.Schedule, ds, nil
}
