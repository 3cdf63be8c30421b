package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// The operations on deliveries that wait for a schedule (state scheduled,
// ScheduleID set): shared/schedule creates them with CreateAll, rewrites or
// removes them while the schedule can still change, and activates them when
// it fires. Each is conditional on the delivery still being scheduled under
// the same schedule, so it never touches a delivery that moved on.

// notInSchedule is the conflict of an operation on a delivery that belongs
// to no schedule or another one.
func notInSchedule(d Delivery, scheduleID string) error {
	return conflict("not_in_schedule", d, "it does not belong to schedule %s", scheduleID)
}

// Activate moves a delivery of scheduleID from scheduled to queued: its
// schedule fired. It is idempotent: a delivery already past scheduled (queued
// by an earlier fire, claimed, sent, cancelled, ...) is returned as it is,
// with activated false. The caller enqueues its message; the sweep
// re-enqueues a queued delivery whose message was lost.
func (s *Store) Activate(ctx context.Context, siteID, id, scheduleID string) (d Delivery, activated bool, err error) {
	r, err := s.change(ctx, siteID, id, func(r *record) error {
		activated = false
		if r.ScheduleID != scheduleID {
			return notInSchedule(r.Delivery, scheduleID)
		}
		if r.State != StateScheduled {
			return errUnchanged
		}
		now := s.now().UTC()
		r.State = StateQueued
		r.QueuedAt, r.DueAt = &now, &now
		s.operatorEntry(r, StateQueued, "schedule fired")
		activated = true
		return nil
	})
	if err != nil {
		return Delivery{}, false, fmt.Errorf("activate delivery %s of schedule %s: %w", id, scheduleID, err)
	}
	return r.Delivery, activated, nil
}

// ReviseScheduled rewrites what a scheduled delivery will publish (text,
// link, title, media, options, connection, rate limit) while its schedule
// can still change. The delivery is the one n names (its site, post,
// revision and target) and must be scheduled under n.ScheduleID; anything
// else is a conflict. A revision that changes nothing writes nothing.
func (s *Store) ReviseScheduled(ctx context.Context, n NewDelivery) (Delivery, error) {
	if ps := n.validate(0); len(ps) > 0 {
		return Delivery{}, apperr.InvalidProblems(ps)
	}
	id := DeliveryID(n.SiteID, n.PostID, n.Revision, n.TargetID)
	r, err := s.change(ctx, n.SiteID, id, func(r *record) error {
		if r.ScheduleID == "" || r.ScheduleID != n.ScheduleID {
			return notInSchedule(r.Delivery, n.ScheduleID)
		}
		if r.State != StateScheduled {
			return conflict("not_scheduled", r.Delivery, "only a delivery still waiting for its schedule can be changed")
		}
		d := &r.Delivery
		if d.Text == n.Text && d.Link == n.Link && d.Title == n.Title && d.ConnectionID == n.ConnectionID &&
			d.Platform == n.Platform && d.RateLimitPerHour == n.RateLimitPerHour &&
			slices.Equal(d.Media, n.Media) && maps.Equal(d.Options, n.Options) {
			return errUnchanged
		}
		d.Text, d.Link, d.Title = n.Text, n.Link, n.Title
		d.ConnectionID, d.Platform, d.RateLimitPerHour = n.ConnectionID, n.Platform, n.RateLimitPerHour
		d.Media, d.Options = slices.Clone(n.Media), maps.Clone(n.Options)
		return nil
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("revise delivery %s of schedule %s: %w", id, n.ScheduleID, err)
	}
	return r.Delivery, nil
}

// DeleteScheduled deletes a delivery that is still scheduled under
// scheduleID: a schedule that could not be created is rolled back, or a
// target was taken out of a schedule before it fired. A delivery that does
// not exist is not an error; one in another state or schedule is a
// conflict.
func (s *Store) DeleteScheduled(ctx context.Context, siteID, id, scheduleID string) error {
	const tries = 5
	for range tries {
		r, err := s.get(ctx, siteID, id)
		if apperr.Is(err, apperr.KindNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete delivery %s of schedule %s: %w", id, scheduleID, err)
		}
		if r.ScheduleID != scheduleID {
			return fmt.Errorf("delete delivery %s: %w", id, notInSchedule(r.Delivery, scheduleID))
		}
		if r.State != StateScheduled {
			return fmt.Errorf("delete delivery %s: %w", id,
				conflict("not_scheduled", r.Delivery, "only a delivery still waiting for its schedule can be removed"))
		}
		// One conditional delete in a transaction: the table interface the
		// ledger uses has no DeleteItem, and this is rare.
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{
			Delete: &types.Delete{
				TableName:                 &s.table,
				Key:                       key(siteID, id),
				ConditionExpression:       aws.String("attribute_exists(PK) AND version = :v"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(r.Version)},
			},
		}}})
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) && conditionFailed(tce) {
			continue // changed since it was read: look again
		}
		if err != nil {
			return fmt.Errorf("delete delivery %s of schedule %s: %w", id, scheduleID, err)
		}
		return nil
	}
	return apperr.New(apperr.KindConflict, "concurrent_update", "the delivery is being changed concurrently; try again")
}
