// Command dispatch is the dispatch function: the dispatch queue's SQS event
// source (ReportBatchItemFailures) invokes it with up to 10 messages; each
// publishes at most one delivery through shared/dispatch, and the messages
// that failed are reported so only they return to the queue.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/ratelimit"
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

// handler turns an SQS event into dispatcher records and the failed
// message ids into a partial batch response.
type handler struct {
	d   *dispatch.Dispatcher
	log *slog.Logger
}

// handle never returns an error: that would fail the whole batch. A bad
// record is a batch item failure.
func (h *handler) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		ctx = logging.WithRequestID(ctx, lc.AwsRequestID)
	}
	recs := make([]dispatch.Record, len(ev.Records))
	for i, r := range ev.Records {
		n, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
		recs[i] = dispatch.Record{MessageID: r.MessageId, ReceiptHandle: r.ReceiptHandle, Body: r.Body, ReceiveCount: n}
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, id := range h.d.Handle(ctx, recs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	h.log.InfoContext(ctx, "dispatch batch", "records", len(recs), "failed", len(resp.BatchItemFailures))
	return resp, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	cfg, err := posseconfig.Load(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Require("POSSE_KMS_KEY_ID", "POSSE_DISPATCH_QUEUE_URL", "POSSE_DISPATCH_QUEUE_ARN",
		"POSSE_SCHEDULE_GROUP", "POSSE_SCHEDULER_ROLE_ARN", "POSSE_SCHEDULER_DLQ_ARN"); err != nil {
		return nil, nil, err
	}
	dc, err := posseconfig.LoadDispatch(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	log := logging.New(os.Stdout, cfg.LogLevel, "dispatch")
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg, err = cfg.ResolvePlatformSecret(ctx, secretsmanager.NewFromConfig(awsCfg)); err != nil {
		return nil, nil, err
	}
	// Opens credentials, and seals them again when Ensure refreshes a token.
	v, err := vault.New(kms.NewFromConfig(awsCfg), vault.Config{KeyID: cfg.KMSKeyID, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	// One client for every platform; a request's timeout stays well below
	// the function's 60 s.
	hc := &http.Client{Timeout: 20 * time.Second}
	adapters := registry.New(registry.Config{BaseURL: cfg.PlatformBaseURL, MediaPollInterval: cfg.MediaPollInterval, HTTPClient: hc})
	refresher, err := connection.RefresherFor(cfg, db, v, adapters, hc, log)
	if err != nil {
		return nil, nil, err
	}
	fires, err := buildFires(cfg, awsCfg, db, log)
	if err != nil {
		return nil, nil, err
	}
	d, err := dispatch.New(dispatch.Config{
		Ledger:   ledger.NewStore(db, cfg.Table, nil),
		Policy:   ledger.Policy{MaxAttempts: dc.MaxAttempts, Lease: dc.Lease, BackoffBase: dc.BackoffBase, BackoffMax: dc.BackoffMax},
		Accounts: refresher, Publishers: adapters,
		Limiter: ratelimit.New(db, cfg.Table, nil), Stats: stats.New(db, cfg.Table),
		Queue: sqs.NewFromConfig(awsCfg), QueueURL: cfg.DispatchQueueURL, QueueARN: cfg.DispatchQueueARN,
		Scheduler: scheduler.NewFromConfig(awsCfg), ScheduleGroup: cfg.ScheduleGroup,
		SchedulerRoleARN: cfg.SchedulerRoleARN, SchedulerDLQARN: cfg.SchedulerDLQARN,
		Concurrency: dc.Concurrency, Heartbeat: dc.Heartbeat,
		Schedules: fires,
		Logger:    log,
	})
	if err != nil {
		return nil, nil, err
	}
	return &handler{d: d, log: log}, log, nil
}
