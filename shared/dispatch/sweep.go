package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/ledger"
)

// Sweep defaults.
const (
	DefaultQueuedAfter  = 10 * time.Minute
	DefaultWaitingGrace = time.Minute
	DefaultSweepLimit   = 200
	DefaultEventsAfter  = time.Minute
)

// SweepConfig tunes one sweep.
type SweepConfig struct {
	// QueuedAfter: a delivery queued longer than this has lost its message
	// (a failed send) and is enqueued again (default 10 min).
	QueuedAfter time.Duration
	// WaitingGrace: a retrying or deferred delivery this long past its
	// NextAttemptAt has lost its wake-up and is enqueued again (default
	// 1 min).
	WaitingGrace time.Duration
	// Limit bounds the deliveries looked at per work queue (default 200).
	Limit int
	// EventsAfter: an event still pending this long after it was recorded
	// lost its webhook queue message (a failed send, or a fan-out that
	// died) and is sent again (default 1 min). Webhook attempts waiting
	// this long past their time are sent again too.
	EventsAfter time.Duration
}

// SweepStats counts what one sweep did.
type SweepStats struct {
	ExpiredLeases int `json:"expiredLeases"`
	Reconciled    int `json:"reconciled"` // found published: sent
	Unknown       int `json:"unknown"`
	Retried       int `json:"retried"` // found not published: enqueued again
	// ReconcileLater counts expired leases the platform could not be asked
	// about now (rate limited, unavailable): left publishing, asked again
	// at the next sweep.
	ReconcileLater int `json:"reconcileLater"`
	StaleQueued    int `json:"staleQueued"`
	Overdue        int `json:"overdue"`
	Requeued       int `json:"requeued"`
	// PendingEvents counts events sent to the webhook queue again;
	// WebhookAttempts, webhook attempts sent again.
	PendingEvents   int `json:"pendingEvents"`
	WebhookAttempts int `json:"webhookAttempts"`
	Errors          int `json:"errors"`
}

// Sweep is the watchdog: deliveries publishing past their lease are taken
// over and reconciled (sent, unknown, or enqueued again when the platform
// says nothing was published); deliveries queued too long, and retrying or
// deferred ones past their time, are enqueued again. It returns the counts
// and the first error, after doing all it could.
func (d *Dispatcher) Sweep(ctx context.Context, sc SweepConfig) (SweepStats, error) {
	if sc.QueuedAfter <= 0 {
		sc.QueuedAfter = DefaultQueuedAfter
	}
	if sc.WaitingGrace <= 0 {
		sc.WaitingGrace = DefaultWaitingGrace
	}
	if sc.Limit <= 0 {
		sc.Limit = DefaultSweepLimit
	}
	if sc.EventsAfter <= 0 {
		sc.EventsAfter = DefaultEventsAfter
	}
	var (
		st       SweepStats
		firstErr error
	)
	fail := func(err error) {
		st.Errors++
		if firstErr == nil {
			firstErr = err
		}
	}
	now := d.cfg.Now()

	expired, err := d.cfg.Ledger.Due(ctx, ledger.QueueLease, now, sc.Limit)
	if err != nil {
		fail(err)
	}
	for _, ref := range expired {
		st.ExpiredLeases++
		state, _, err := d.recover(ctx, ref.SiteID, ref.ID)
		if errors.Is(err, errReconcileLater) {
			st.ReconcileLater++
			continue
		}
		if err != nil {
			d.log.WarnContext(ctx, "sweep: reconcile", "site", ref.SiteID, "delivery_id", ref.ID, "err", logErr(err))
			fail(err)
			continue
		}
		switch state {
		case ledger.StateSent:
			st.Reconciled++
		case ledger.StateUnknown:
			st.Unknown++
		case ledger.StateRetrying:
			st.Retried++
		}
	}

	for _, q := range []struct {
		name   string
		before time.Time
		count  *int
	}{
		{ledger.QueueQueued, now.Add(-sc.QueuedAfter), &st.StaleQueued},
		{ledger.QueueWaiting, now.Add(-sc.WaitingGrace), &st.Overdue},
	} {
		refs, err := d.cfg.Ledger.Due(ctx, q.name, q.before, sc.Limit)
		if err != nil {
			fail(err)
			continue
		}
		for _, ref := range refs {
			*q.count++
			moved, err := d.cfg.Ledger.Requeued(ctx, ref.SiteID, ref.ID, q.before)
			if err != nil {
				fail(err)
				continue
			}
			if !moved {
				continue // claimed or settled since the index was read
			}
			if err := d.enqueue(ctx, ledger.DeliveryMessage(ref.SiteID, ref.ID)); err != nil {
				d.log.WarnContext(ctx, "sweep: enqueue", "site", ref.SiteID, "delivery_id", ref.ID, "err", logErr(err))
				fail(err)
				continue
			}
			st.Requeued++
		}
	}
	d.sweepEvents(ctx, now.Add(-sc.EventsAfter), sc.Limit, &st, fail)
	return st, firstErr
}

// sweepEvents sends the events still pending since before to the webhook
// queue again, and has the webhook attempts overdue since before sent again.
func (d *Dispatcher) sweepEvents(ctx context.Context, before time.Time, limit int, st *SweepStats, fail func(error)) {
	if d.cfg.Outbox != nil && d.cfg.Events != nil {
		refs, err := d.cfg.Outbox.Pending(ctx, before, limit)
		if err != nil {
			fail(err)
		}
		for _, ref := range refs {
			if err := d.cfg.Events.Publish(ctx, ref.SiteID, ref.ID); err != nil {
				d.log.WarnContext(ctx, "sweep: publish event", "site", ref.SiteID, "event_id", ref.ID, "err", logErr(err))
				fail(err)
				continue
			}
			st.PendingEvents++
		}
	}
	if d.cfg.Webhooks != nil {
		n, err := d.cfg.Webhooks.Sweep(ctx, before, limit)
		st.WebhookAttempts += n
		if err != nil {
			d.log.WarnContext(ctx, "sweep: webhook attempts", "err", logErr(err))
			fail(err)
		}
	}
}

// enqueue sends m to the dispatch queue now.
func (d *Dispatcher) enqueue(ctx context.Context, m ledger.Message) error {
	_, err := d.cfg.Queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &d.cfg.QueueURL, MessageBody: aws.String(m.Encode())})
	if err != nil {
		return fmt.Errorf("enqueue delivery %s: %w", m.DeliveryID, err)
	}
	return nil
}
