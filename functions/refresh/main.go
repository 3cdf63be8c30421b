// Command refresh is the token refresh function: an EventBridge Scheduler
// schedule invokes it every five minutes; it runs requested validations,
// then refreshes every connection whose token expires within its window
// (single-flight per connection), marks LinkedIn tokens expiring and dead
// tokens broken, then takes the engagement readings that are due
// (shared/engagement) with the credentials it just kept fresh, and logs the
// counts. Reading runs here rather than in a function of its own: it needs
// exactly this function's privileges (the table, KMS Decrypt to open
// credentials), and it shares the warm vault cache and the refresher's
// single-flight, so credentials are opened once for both.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/recurring"
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

// handler runs one refresh pass, then one engagement pass, per invocation,
// and flushes its metrics.
type handler struct {
	refresher *connection.Refresher
	collector *engagement.Collector
	flush     func(context.Context)
	log       *slog.Logger
}

// result is what one invocation did.
type result struct {
	connection.RunStats
	Engagement engagement.Stats `json:"engagement"`
}

func (h *handler) handle(ctx context.Context, ev recurring.Event) (result, error) {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		ctx = logging.WithRequestID(ctx, lc.AwsRequestID)
	}
	start := time.Now()
	st, err := h.refresher.Run(ctx)
	h.log.InfoContext(ctx, "refresh pass", "scheduled_time", ev.ScheduledTime, "execution_id", ev.ExecutionID,
		"due", st.Due, "refreshed", st.Refreshed, "marked_expiring", st.MarkedExpiring, "marked_broken", st.MarkedBroken,
		"not_due", st.NotDue, "busy", st.Busy, "failed", st.Failed, "validated", st.Validated,
		"validate_failed", st.ValidateFailed, "duration_ms", time.Since(start).Milliseconds())
	h.flush(ctx)
	if err != nil {
		return result{RunStats: st}, fmt.Errorf("refresh pass: %w", err)
	}
	start = time.Now()
	es, err := h.collector.Run(ctx)
	h.log.InfoContext(ctx, "engagement pass", "due", es.Due, "read", es.Read, "deleted", es.Deleted, "deferred", es.Deferred,
		"stopped", es.Stopped, "skipped", es.Skipped, "failed", es.Failed, "calls", es.Calls, "duration_ms", time.Since(start).Milliseconds())
	if err != nil {
		return result{RunStats: st, Engagement: es}, fmt.Errorf("engagement pass: %w", err)
	}
	return result{RunStats: st, Engagement: es}, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	// One client for every platform; its timeout stays well below the
	// refresh lease (connection.DefaultLeaseDuration).
	w, err := worker.New(ctx, os.Getenv, worker.Options{Function: "refresh", HTTPTimeout: 20 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	mc, err := posseconfig.LoadMetrics(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	col, err := engagement.New(engagement.Config{
		Work: ledger.NewStore(w.DB, w.Config.Table, nil), Store: engagement.NewStore(w.DB, w.Config.Table),
		Readers: w.Adapters, Accounts: w.Refresher, Connections: connection.NewStore(w.DB, w.Config.Table),
		Limiter:   ratelimit.New(w.DB, w.Config.Table, nil),
		ReadAfter: mc.ReadAfter, ReadsPerHour: mc.ReadsPerHour, Logger: w.Log,
	})
	if err != nil {
		return nil, nil, err
	}
	return &handler{refresher: w.Refresher, collector: col, flush: w.FlushMetrics, log: w.Log}, w.Log, nil
}
