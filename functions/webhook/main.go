// Command webhook is the webhook function: the webhook queue's SQS event
// source (ReportBatchItemFailures) invokes it with up to 10 messages. An
// event message fans the event out into one attempt per subscribed
// endpoint; an attempt message posts the event to its endpoint, signed as
// Standard Webhooks specifies, and records the outcome (a retry waits as
// the dispatcher's deferrals do: a delayed message, a one-time schedule
// beyond 15 minutes). Only the messages that failed return to the queue.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/wake"
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

// handler turns an SQS event into webhook records and the failed message
// ids into a partial batch response.
type handler struct {
	d       *webhook.Deliverer
	metrics *metrics.Recorder
	log     *slog.Logger
}

// handle never returns an error: that would fail the whole batch.
func (h *handler) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		ctx = logging.WithRequestID(ctx, lc.AwsRequestID)
	}
	recs := make([]webhook.Record, len(ev.Records))
	for i, r := range ev.Records {
		recs[i] = webhook.Record{MessageID: r.MessageId, Body: r.Body}
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, id := range h.d.Handle(ctx, recs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	h.log.InfoContext(ctx, "webhook batch", "records", len(recs), "failed", len(resp.BatchItemFailures))
	if err := h.metrics.Flush(ctx); err != nil {
		h.log.WarnContext(ctx, "metrics flush", "err", err)
	}
	return resp, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	b, err := worker.NewBase(ctx, os.Getenv, "webhook", "POSSE_WEBHOOK_QUEUE_URL", "POSSE_WEBHOOK_QUEUE_ARN",
		"POSSE_SCHEDULE_GROUP", "POSSE_SCHEDULER_ROLE_ARN", "POSSE_SCHEDULER_DLQ_ARN")
	if err != nil {
		return nil, nil, err
	}
	wc, err := posseconfig.LoadWebhook(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	cfg := b.Config
	// Opens webhook secrets only: the role's kms:Decrypt is conditioned on
	// the purpose webhook_secret.
	opener, err := vault.NewOpener(kms.NewFromConfig(b.AWS), vault.Config{Logger: b.Log})
	if err != nil {
		return nil, nil, err
	}
	queues := sqs.NewFromConfig(b.AWS)
	d, err := webhook.NewDeliverer(webhook.DelivererConfig{
		Store: webhook.NewStore(b.DB, cfg.Table), Events: event.NewStore(b.DB, cfg.Table), Opener: opener,
		Queue: queues, QueueURL: cfg.WebhookQueueURL,
		Waker: &wake.Waker{Queue: queues, QueueURL: cfg.WebhookQueueURL, QueueARN: cfg.WebhookQueueARN,
			Scheduler: scheduler.NewFromConfig(b.AWS), ScheduleGroup: cfg.ScheduleGroup, RoleARN: cfg.SchedulerRoleARN, DLQARN: cfg.SchedulerDLQARN},
		// Public addresses only, and loopback on the local stack, whose
		// endpoints (the simulator's receiver) listen on 127.0.0.1.
		HTTP:     outbound.NewClient(outbound.Options{Timeout: wc.Timeout, AllowLoopback: cfg.Env == "local"}),
		Schedule: wc.RetrySchedule, DisableAfter: wc.DisableAfter, Timeout: wc.Timeout, Concurrency: wc.Concurrency,
		Metrics: b.Metrics, Logger: b.Log,
	})
	if err != nil {
		return nil, nil, err
	}
	return &handler{d: d, metrics: b.Metrics, log: b.Log}, b.Log, nil
}
