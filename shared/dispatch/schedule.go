package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/schedule"
)

// scheduleFirer expands a fired schedule into its deliveries:
// shared/schedule.Service.
type scheduleFirer interface {
	Fire(ctx context.Context, siteID, scheduleID string, version int) (schedule.FireResult, error)
}

// fire hands a schedule message to Schedules. A nil error acknowledges it:
// the schedule's deliveries were queued, each with its own delivery
// message, or there was nothing to do (a stale version, a second fire, a
// fire after a cancel). An error leaves it on the queue to come back.
func (d *Dispatcher) fire(ctx context.Context, m ledger.Message, rec Record, start time.Time) error {
	res, err := d.cfg.Schedules.Fire(ctx, m.SiteID, m.ScheduleID, m.ScheduleVersion)
	attrs := []any{"message_id", rec.MessageID, "receive_count", rec.ReceiveCount, "site", m.SiteID,
		"schedule_id", m.ScheduleID, "version", m.ScheduleVersion, "result", res.Action,
		"activated", res.Activated, "enqueued", res.Enqueued, "duration_ms", d.cfg.Now().Sub(start).Milliseconds()}
	switch {
	case errors.Is(err, schedule.ErrFireInProgress):
		d.log.WarnContext(ctx, "schedule fire in progress elsewhere; retried later", attrs...)
	case err != nil:
		d.log.ErrorContext(ctx, "schedule fire failed", append(attrs, "err", logErr(err))...)
	default:
		d.log.InfoContext(ctx, "schedule fire", attrs...)
		return nil
	}
	return fmt.Errorf("message %s: fire schedule %s: %w", rec.MessageID, m.ScheduleID, err)
}
