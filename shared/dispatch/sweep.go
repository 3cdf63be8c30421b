package dispatch

import (
	"context"
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
}

// SweepStats counts what one sweep did.
type SweepStats struct {
	ExpiredLeases int `json:"expiredLeases"`
	Reconciled    int `json:"reconciled"` // found published: sent
	Unknown       int `json:"unknown"`
	Retried       int `json:"retried"` // found not published: enqueued again
	StaleQueued   int `json:"staleQueued"`
	Overdue       int `json:"overdue"`
	Requeued      int `json:"requeued"`
	Errors        int `json:"errors"`
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
	return st, firstErr
}

// enqueue sends m to the dispatch queue now.
func (d *Dispatcher) enqueue(ctx context.Context, m ledger.Message) error {
	_, err := d.cfg.Queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &d.cfg.QueueURL, MessageBody: aws.String(m.Encode())})
	if err != nil {
		return fmt.Errorf("enqueue delivery %s: %w", m.DeliveryID, err)
	}
	return nil
}
