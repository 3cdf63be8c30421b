// Command sweep is the dispatch watchdog: an EventBridge Scheduler schedule
// invokes it every minute. Deliveries publishing past their lease are taken
// over and reconciled with the platform (sent, unknown, or enqueued again);
// deliveries queued too long, and retrying or deferred ones past their time,
// are enqueued again. It logs one line with the counts.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/recurring"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/vault"
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

// handler runs one sweep per invocation.
type handler struct {
	d     *dispatch.Dispatcher
	sweep dispatch.SweepConfig
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
		"stale_queued", st.StaleQueued, "overdue", st.Overdue, "requeued", st.Requeued, "errors", st.Errors,
		"duration_ms", time.Since(start).Milliseconds())
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	return st, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	cfg, err := posseconfig.Load(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Require("POSSE_KMS_KEY_ID", "POSSE_DISPATCH_QUEUE_URL"); err != nil {
		return nil, nil, err
	}
	dc, err := posseconfig.LoadDispatch(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	log := logging.New(os.Stdout, cfg.LogLevel, "sweep")
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg, err = cfg.ResolvePlatformSecret(ctx, secretsmanager.NewFromConfig(awsCfg)); err != nil {
		return nil, nil, err
	}
	// Reconciling opens credentials, and seals them again when Ensure
	// refreshes a token.
	v, err := vault.New(kms.NewFromConfig(awsCfg), vault.Config{KeyID: cfg.KMSKeyID, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	hc := &http.Client{Timeout: 15 * time.Second}
	adapters := registry.New(registry.Config{BaseURL: cfg.PlatformBaseURL, MediaPollInterval: cfg.MediaPollInterval, HTTPClient: hc})
	refresher, err := connection.RefresherFor(cfg, db, v, adapters, hc, log)
	if err != nil {
		return nil, nil, err
	}
	d, err := dispatch.New(dispatch.Config{
		Ledger:   ledger.NewStore(db, cfg.Table, nil),
		Policy:   ledger.Policy{MaxAttempts: dc.MaxAttempts, Lease: dc.Lease, BackoffBase: dc.BackoffBase, BackoffMax: dc.BackoffMax},
		Accounts: refresher, Publishers: adapters,
		Limiter: ratelimit.New(db, cfg.Table, nil), Stats: stats.New(db, cfg.Table),
		Queue: sqs.NewFromConfig(awsCfg), QueueURL: cfg.DispatchQueueURL,
		Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	return &handler{d: d, sweep: dispatch.SweepConfig{QueuedAfter: dc.QueuedAfter}, log: log}, log, nil
}
