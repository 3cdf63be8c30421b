// Package dispatch is the dispatcher of architecture §3 and §6: it turns one
// dispatch queue message into at most one publication of one delivery,
// through the ledger (claim with lease and fencing token, checkpoints,
// outcome), the connection's fresh credentials, POSSE's own rate limits and
// the platform adapter.
//
// It holds no Lambda types: functions/dispatch turns an SQS event into
// Records and the failed message ids back into a partial batch response.
//
// Redelivery, duplicate fires and DLQ redrive are safe because a message is
// only a pointer to a delivery: one whose delivery is sent, failed,
// cancelled, dead or unknown is acknowledged and does nothing, and a claim
// is a conditional write only one worker wins.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/batch"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/wake"
)

// Defaults.
const (
	DefaultConcurrency   = 5
	DefaultHeartbeat     = 20 * time.Second
	DefaultVisibility    = 360 * time.Second
	DefaultFinishReserve = 5 * time.Second
	DefaultReconcileTime = 15 * time.Second
	DefaultClockSkew     = time.Second
	// MaxDelay is SQS's longest DelaySeconds; longer waits use a one-time
	// Scheduler schedule.
	MaxDelay = wake.MaxDelay
	// TargetWindow is the window of a target's rate limit.
	TargetWindow = time.Hour
)

// accounts opens a connection's credentials, fresh enough to use: the
// connection package's Refresher.
type accounts interface {
	Ensure(ctx context.Context, siteID, id string) (platform.Account, error)
	Renew(ctx context.Context, siteID, id, rejected string) (platform.Account, error)
	MarkBroken(ctx context.Context, siteID, id, reason string) error
}

// publishers finds a platform's adapter: the platform registry.
type publishers interface {
	Publisher(p platform.Name) (platform.Publisher, bool)
}

// queueAPI is the part of the SQS client the dispatcher uses.
type queueAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// schedulerAPI is the part of the Scheduler client the dispatcher uses.
type schedulerAPI interface {
	CreateSchedule(ctx context.Context, in *scheduler.CreateScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
}

// limiter is POSSE's own rate limiting: shared/ratelimit.
type limiter interface {
	Take(ctx context.Context, siteID, scope string, limit int, window time.Duration) (bool, time.Time, error)
	Block(ctx context.Context, siteID, scope string, until time.Time) error
	Blocked(ctx context.Context, siteID, scope string) (time.Time, bool, error)
}

// eventPublisher puts an event's message on the webhook queue:
// shared/event.Publisher.
type eventPublisher interface {
	Publish(ctx context.Context, siteID, eventID string) error
}

// outbox lists pending events: shared/event.Store.
type outbox interface {
	Pending(ctx context.Context, before time.Time, limit int) ([]event.Ref, error)
}

// webhookSweeper sends webhook attempts overdue since before again and
// returns how many: shared/webhook.Sweeper.
type webhookSweeper interface {
	Sweep(ctx context.Context, before time.Time, limit int) (int, error)
}

// statsRecorder adds outcomes to the daily counters: shared/stats.
type statsRecorder interface {
	Record(ctx context.Context, siteID string, p platform.Name, at time.Time, e stats.Event) error
}

// Config is what a Dispatcher is built from.
type Config struct {
	Ledger     *ledger.Store
	Policy     ledger.Policy
	Accounts   accounts
	Publishers publishers
	Limiter    limiter
	Stats      statsRecorder

	Queue    queueAPI
	QueueURL string
	// QueueARN, Scheduler, ScheduleGroup, SchedulerRoleARN and
	// SchedulerDLQARN are for waits beyond MaxDelay: a one-time schedule
	// whose target is the dispatch queue.
	QueueARN         string
	Scheduler        schedulerAPI
	ScheduleGroup    string
	SchedulerRoleARN string
	SchedulerDLQARN  string

	// Concurrency bounds the records of a batch processed at once
	// (default 5).
	Concurrency int
	// Heartbeat is how often a running publish extends its message's
	// visibility (to Visibility) and its lease (default 20 s).
	Heartbeat  time.Duration
	Visibility time.Duration
	// FinishReserve is kept from the invocation's deadline for recording
	// the outcome: a publish is cut off that much earlier (default 5 s).
	FinishReserve time.Duration
	// ReconcileTimeout bounds one reconciliation (default 15 s).
	ReconcileTimeout time.Duration
	// ClockSkew is the tolerance between our clock and the queue's delay
	// (default 1 s).
	ClockSkew time.Duration

	// Schedules expands fired schedules (shared/schedule.Service): a
	// message of type schedule goes to its Fire.
	Schedules scheduleFirer

	// Events puts the event an outcome recorded on the webhook queue
	// (shared/event.Publisher); nil sends nothing, and the sweep hands the
	// pending events on.
	Events eventPublisher
	// Outbox lists the events still pending for the sweep
	// (shared/event.Store); Webhooks sends overdue webhook attempts again
	// (shared/webhook.Sweeper). Either may be nil.
	Outbox   outbox
	Webhooks webhookSweeper

	// AI adapts the deliveries that asked for it at their first claim,
	// reading the post from Snapshots and the site's AI settings from
	// Sites (AIDefaultBudgetMicros when the site set no budget). Without
	// AI, such deliveries publish their deterministic text (fallback).
	AI                    adapter
	Snapshots             snapshotReader
	Sites                 siteReader
	AIDefaultBudgetMicros int64

	// Metrics receives the outcomes as CloudWatch metrics (Deliveries,
	// PublishLatency, Deferrals, Unknown, PlatformErrors); the function
	// flushes it once per invocation. Nil records nothing.
	Metrics *metrics.Recorder

	Logger *slog.Logger
	Now    func() time.Time
}

// Dispatcher processes dispatch queue records. It is safe for concurrent
// use.
type Dispatcher struct {
	cfg   Config
	log   *slog.Logger
	waker *wake.Waker
}

// New returns a Dispatcher, or an error naming what is missing. It does no
// I/O.
func New(cfg Config) (*Dispatcher, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"Ledger": cfg.Ledger != nil, "Accounts": cfg.Accounts != nil, "Publishers": cfg.Publishers != nil,
		"Limiter": cfg.Limiter != nil, "Stats": cfg.Stats != nil, "Queue": cfg.Queue != nil, "QueueURL": cfg.QueueURL != "",
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dispatch: New needs %v", missing)
	}
	cfg.Policy = cfg.Policy.WithDefaults()
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	def(&cfg.Heartbeat, DefaultHeartbeat)
	def(&cfg.Visibility, DefaultVisibility)
	def(&cfg.FinishReserve, DefaultFinishReserve)
	def(&cfg.ReconcileTimeout, DefaultReconcileTime)
	def(&cfg.ClockSkew, DefaultClockSkew)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &wake.Waker{Queue: cfg.Queue, QueueURL: cfg.QueueURL, QueueARN: cfg.QueueARN, ScheduleGroup: cfg.ScheduleGroup,
		RoleARN: cfg.SchedulerRoleARN, DLQARN: cfg.SchedulerDLQARN, Now: cfg.Now}
	if cfg.Scheduler != nil {
		w.Scheduler = cfg.Scheduler
	}
	return &Dispatcher{cfg: cfg, log: log, waker: w}, nil
}

// Record is one dispatch queue message.
type Record struct {
	MessageID     string
	ReceiptHandle string
	Body          string
	// ReceiveCount is SQS's ApproximateReceiveCount (0 when unknown).
	ReceiveCount int
}

// Handle processes a batch, records concurrently (at most Concurrency at
// once), and returns the ids of the messages that failed: the queue makes
// them visible again and, past its maxReceiveCount, moves them to the DLQ.
// It never panics: a panic in one record fails that record only.
func (d *Dispatcher) Handle(ctx context.Context, recs []Record) []string {
	ctx, flush := d.tally(ctx)
	defer flush()
	return batch.Failed(ctx, d.log, "dispatch", recs, d.cfg.Concurrency,
		func(r Record) string { return r.MessageID }, d.HandleRecord)
}

// HandleRecord processes one message. A nil error acknowledges it; an
// error leaves it on the queue (a batch item failure).
func (d *Dispatcher) HandleRecord(ctx context.Context, rec Record) error {
	ctx, flush := d.tally(ctx)
	defer flush()
	return d.handleRecord(ctx, rec)
}

// tallyRecorder records many outcomes' statistics at once: shared/stats.
type tallyRecorder interface {
	RecordTally(ctx context.Context, t *stats.Tally) error
}

// tallyCtx is the context key of the statistics tally of the batch being
// processed.
type tallyCtx struct{}

// tally returns ctx carrying a statistics tally for the outcomes recorded
// under it, and the function that writes the tally: one UpdateItem per
// site, platform and day for a whole SQS batch instead of one per
// outcome. Under a ctx that already carries one (a record of a batch) or
// with a Stats that cannot take a tally, statistics go on as they are.
func (d *Dispatcher) tally(ctx context.Context) (context.Context, func()) {
	tr, ok := d.cfg.Stats.(tallyRecorder)
	if _, inBatch := ctx.Value(tallyCtx{}).(*stats.Tally); !ok || inBatch {
		return ctx, func() {}
	}
	t := &stats.Tally{}
	return context.WithValue(ctx, tallyCtx{}, t), func() {
		if err := tr.RecordTally(context.WithoutCancel(ctx), t); err != nil {
			d.log.WarnContext(ctx, "record stats", "err", logErr(err))
		}
	}
}

// record adds an outcome's statistics to the batch's tally, or records
// them now when there is none.
func (d *Dispatcher) record(ctx context.Context, dl ledger.Delivery, at time.Time, ev stats.Event) {
	if t, ok := ctx.Value(tallyCtx{}).(*stats.Tally); ok {
		t.Add(dl.SiteID, dl.Platform, at, ev)
		return
	}
	if err := d.cfg.Stats.Record(ctx, dl.SiteID, dl.Platform, at, ev); err != nil {
		d.log.WarnContext(ctx, "record stats", "delivery_id", dl.ID, "err", logErr(err))
	}
}

func (d *Dispatcher) handleRecord(ctx context.Context, rec Record) error {
	start := d.cfg.Now()
	m, err := ledger.DecodeMessage(rec.Body)
	if err != nil {
		d.log.WarnContext(ctx, "undecodable dispatch message", "message_id", rec.MessageID,
			"receive_count", rec.ReceiveCount, "body_bytes", len(rec.Body), "err", "the body is not a dispatch message")
		return fmt.Errorf("decode message %s: %w", rec.MessageID, err)
	}
	if m.Type == ledger.MessageSchedule && d.cfg.Schedules != nil {
		return d.fire(ctx, m, rec, start)
	}
	if m.Type != ledger.MessageDelivery {
		// A schedule message without Schedules configured: left on the
		// queue, so it reaches the DLQ and can be redriven once handled.
		d.log.WarnContext(ctx, "unsupported dispatch message type", "message_id", rec.MessageID, "type", m.Type, "site", m.SiteID)
		return fmt.Errorf("message %s: type %q is not handled yet", rec.MessageID, m.Type)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*d.cfg.FinishReserve { // deadlines are wall-clock times
		// Too little time left to publish and record the outcome: leave
		// the message for the next invocation rather than claim it.
		d.log.WarnContext(ctx, "dispatch skipped: the invocation is about to time out", "message_id", rec.MessageID, "delivery_id", m.DeliveryID)
		return fmt.Errorf("message %s: not enough time left in the invocation", rec.MessageID)
	}
	res, err := d.deliver(ctx, m, rec)
	attrs := []any{"message_id", rec.MessageID, "receive_count", rec.ReceiveCount, "site", m.SiteID,
		"delivery_id", m.DeliveryID, "result", res.action, "duration_ms", d.cfg.Now().Sub(start).Milliseconds()}
	if res.delivery.ID != "" {
		attrs = append(attrs, "platform", string(res.delivery.Platform), "state", string(res.delivery.State), "attempts", res.delivery.Attempts)
	}
	if err != nil {
		d.log.ErrorContext(ctx, "dispatch failed", append(attrs, "err", logErr(err))...)
		return err
	}
	d.log.InfoContext(ctx, "dispatch", attrs...)
	return nil
}

// result says what processing a message did, for its log line.
type result struct {
	action   string
	delivery ledger.Delivery
}

// deliver claims the delivery m names and publishes it.
func (d *Dispatcher) deliver(ctx context.Context, m ledger.Message, rec Record) (result, error) {
	for range 2 {
		lease, err := d.cfg.Ledger.Claim(ctx, m.SiteID, m.DeliveryID, d.cfg.Policy)
		if ce, ok := ledger.Refused(err); ok {
			switch ce.Reason {
			case ledger.RefusedSettled:
				return result{"already_" + string(ce.Delivery.State), ce.Delivery}, nil
			case ledger.RefusedLeased:
				return result{"leased_elsewhere", ce.Delivery}, nil
			case ledger.RefusedEarly:
				return d.early(ctx, m, ce)
			case ledger.RefusedExpired:
				st, rd, err := d.recover(ctx, m.SiteID, m.DeliveryID)
				if err != nil || !st.Claimable() {
					return result{"reconciled_" + string(st), rd}, err
				}
				continue // not published after all: claim it now
			}
		}
		if apperr.Is(err, apperr.KindNotFound) {
			// Deleted (or never created): retrying cannot help.
			return result{action: "not_found"}, nil
		}
		if err != nil {
			return result{action: "claim_failed"}, err
		}
		return d.attempt(ctx, lease, rec)
	}
	return result{action: "claim_failed"}, fmt.Errorf("claim delivery %s: still not claimable after reconciliation", m.DeliveryID)
}

// early handles a message that arrived before its delivery's
// NextAttemptAt: acknowledged when a message due at or after it is known
// to be in flight, else re-sent with the right delay.
func (d *Dispatcher) early(ctx context.Context, m ledger.Message, ce *ledger.ClaimError) (result, error) {
	next := *ce.Delivery.NextAttemptAt
	now := d.cfg.Now()
	// A wake-up that is itself about due is probably this very message,
	// early by clock skew: then it must be sent again.
	if !ce.WakeAt.IsZero() && !ce.WakeAt.Before(next) && ce.WakeAt.After(now.Add(d.cfg.ClockSkew)) {
		return result{"early_ack", ce.Delivery}, nil
	}
	if err := d.wake(ctx, m, next); err != nil {
		return result{"early_resend_failed", ce.Delivery}, err
	}
	if err := d.cfg.Ledger.MarkWake(ctx, m.SiteID, m.DeliveryID, next); err != nil {
		// The message is out; an early duplicate will just send another.
		d.log.WarnContext(ctx, "record wake-up", "delivery_id", m.DeliveryID, "err", logErr(err))
	}
	return result{"early_resent", ce.Delivery}, nil
}

// wake puts m back on the dispatch queue to arrive at at: a delayed message
// up to MaxDelay, else a one-time schedule.
func (d *Dispatcher) wake(ctx context.Context, m ledger.Message, at time.Time) error {
	return d.waker.Send(ctx, wake.Wake{
		Body: m.Encode(), At: at, Name: "wake-" + m.DeliveryID,
		Description: "POSSE: next attempt of delivery " + m.DeliveryID, What: "delivery " + m.DeliveryID,
	})
}

// urlQuery matches the query of a URL in error text: platform calls may
// carry a token there (Meta takes access_token as a parameter).
var urlQuery = regexp.MustCompile(`(https?://[^\s?"']+)\?[^\s"']*`)

// logErr renders err for a log line without URL queries; the logger's own
// redaction then removes bearer strings and JWTs.
func logErr(err error) string {
	if err == nil {
		return ""
	}
	return urlQuery.ReplaceAllString(err.Error(), "$1?[REDACTED]")
}
