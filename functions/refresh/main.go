// Command refresh is the token refresh function: an EventBridge Scheduler
// schedule invokes it every five minutes; it runs requested validations,
// then refreshes every connection whose token expires within its window
// (single-flight per connection), marks LinkedIn tokens expiring and dead
// tokens broken, and logs the counts.
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
	"github.com/posse-dev/posse/shared/logging"
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

// handler runs one refresh pass per invocation and flushes its metrics.
type handler struct {
	refresher *connection.Refresher
	flush     func(context.Context)
	log       *slog.Logger
}

func (h *handler) handle(ctx context.Context, ev recurring.Event) (connection.RunStats, error) {
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
		return st, fmt.Errorf("refresh pass: %w", err)
	}
	return st, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	// One client for every platform; its timeout stays well below the
	// refresh lease (connection.DefaultLeaseDuration).
	w, err := worker.New(ctx, os.Getenv, worker.Options{Function: "refresh", HTTPTimeout: 20 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	return &handler{refresher: w.Refresher, flush: w.FlushMetrics, log: w.Log}, w.Log, nil
}
