// Command sweep is the dispatch watchdog: an EventBridge Scheduler schedule
// invokes it every minute. Deliveries publishing past their lease are taken
// over and reconciled with the platform (sent, unknown, or enqueued again);
// deliveries queued too long, and retrying or deferred ones past their time,
// are enqueued again; events still pending and webhook attempts that lost
// their message are sent to the webhook queue again. It logs one line with
// the counts.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/recurring"
	"github.com/posse-dev/posse/shared/webhook"
	"github.com/posse-dev/posse/shared/worker"
)

func main() {
	h, log, err := build(context.Background())
	if err != nil {
		// Before lambda.Start: fail the cold start with a precise message.
		slog.Error("cold start failed", "err", err)
		os.Exit(1)
	}
	log.Info("cold start done", "version", posseconfig.Version)
	lambda.Start(h.handle)
}

// handler runs one sweep per invocation and flushes its metrics.
type handler struct {
	d     *dispatch.Dispatcher
	sweep dispatch.SweepConfig
	flush func(context.Context)
	log   *slog.Logger
}

func (h *handler) handle(ctx context.Context, ev recurring.Event) (dispatch.SweepStats, error) {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		ctx = logging.WithRequestID(ctx, lc.AwsRequestID)
	}
	start := time.Now()
	st, err := h.d.Sweep(ctx, h.sweep)
	h.log.InfoContext(ctx, "sweep", "scheduled_time", ev.ScheduledTime, "execution_id", ev.ExecutionID,
		"expired_leases", st.ExpiredLeases, "reconciled", st.Reconciled, "unknown", st.Unknown, "retried", st.Retried,
		"stale_queued", st.StaleQueued, "overdue", st.Overdue, "requeued", st.Requeued,
		"pending_events", st.PendingEvents, "webhook_attempts", st.WebhookAttempts, "errors", st.Errors,
		"duration_ms", time.Since(start).Milliseconds())
	h.flush(ctx)
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	return st, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	// Reconciling opens credentials, and seals them again when Ensure
	// refreshes a token.
	w, err := worker.New(ctx, os.Getenv, worker.Options{Function: "sweep", Require: []string{"POSSE_DISPATCH_QUEUE_URL"}, HTTPTimeout: 15 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	dc := w.DispatchConfig()
	if w.Config.WebhookQueueURL != "" {
		// Webhook attempts whose message was lost are sent again.
		dc.Webhooks = &webhook.Sweeper{Store: webhook.NewStore(w.DB, w.Config.Table), Queue: sqs.NewFromConfig(w.AWS), QueueURL: w.Config.WebhookQueueURL}
	}
	d, err := dispatch.New(dc)
	if err != nil {
		return nil, nil, err
	}
	return &handler{d: d, sweep: dispatch.SweepConfig{QueuedAfter: w.Dispatch.QueuedAfter}, flush: w.FlushMetrics, log: w.Log}, w.Log, nil
}
