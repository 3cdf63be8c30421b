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
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/recurring"
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

// handler runs one refresh pass per invocation.
type handler struct {
	refresher *connection.Refresher
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
	if err != nil {
		return st, fmt.Errorf("refresh pass: %w", err)
	}
	return st, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	cfg, err := posseconfig.Load(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Require("POSSE_KMS_KEY_ID"); err != nil {
		return nil, nil, err
	}
	log := logging.New(os.Stdout, cfg.LogLevel, "refresh")
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg, err = cfg.ResolvePlatformSecret(ctx, secretsmanager.NewFromConfig(awsCfg)); err != nil {
		return nil, nil, err
	}
	v, err := vault.New(kms.NewFromConfig(awsCfg), vault.Config{KeyID: cfg.KMSKeyID, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	// One client for every platform; its timeout stays well below the
	// refresh lease (connection.DefaultLeaseDuration).
	hc := &http.Client{Timeout: 20 * time.Second}
	adapters := registry.New(registry.Config{BaseURL: cfg.PlatformBaseURL, MediaPollInterval: cfg.MediaPollInterval, HTTPClient: hc})
	r, err := connection.RefresherFor(cfg, dynamodb.NewFromConfig(awsCfg), v, adapters, hc, log)
	if err != nil {
		return nil, nil, err
	}
	return &handler{refresher: r, log: log}, log, nil
}
