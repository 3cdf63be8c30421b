// Command dispatch is the dispatch function: the dispatch queue's SQS event
// source (ReportBatchItemFailures) invokes it with up to 10 messages; each
// publishes at most one delivery through shared/dispatch, and the messages
// that failed are reported so only they return to the queue.
package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/compose"
	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/site"
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

// handler turns an SQS event into dispatcher records and the failed
// message ids into a partial batch response, and flushes the invocation's
// metrics.
type handler struct {
	d     *dispatch.Dispatcher
	flush func(context.Context)
	log   *slog.Logger
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
	h.flush(ctx)
	return resp, nil
}

// build wires config → clients → services → handler.
func build(ctx context.Context) (*handler, *slog.Logger, error) {
	// One client for every platform; a request's timeout stays well below
	// the function's 60 s.
	w, err := worker.New(ctx, os.Getenv, worker.Options{Function: "dispatch", Require: []string{"POSSE_DISPATCH_QUEUE_URL",
		"POSSE_DISPATCH_QUEUE_ARN", "POSSE_SCHEDULE_GROUP", "POSSE_SCHEDULER_ROLE_ARN", "POSSE_SCHEDULER_DLQ_ARN"}})
	if err != nil {
		return nil, nil, err
	}
	cfg := w.Config
	aiCfg, err := posseconfig.LoadAI(os.Getenv, cfg.AIKeys)
	if err != nil {
		return nil, nil, err
	}
	router, err := ai.FromConfig(aiCfg, w.DB, cfg.Table, w.Metrics, w.Log)
	if err != nil {
		return nil, nil, err
	}
	fires, err := buildFires(cfg, w.AWS, w.DB, w.Log)
	if err != nil {
		return nil, nil, err
	}
	dc := w.DispatchConfig()
	dc.QueueARN = cfg.DispatchQueueARN
	dc.Scheduler, dc.ScheduleGroup = scheduler.NewFromConfig(w.AWS), cfg.ScheduleGroup
	dc.SchedulerRoleARN, dc.SchedulerDLQARN = cfg.SchedulerRoleARN, cfg.SchedulerDLQARN
	dc.Concurrency, dc.Heartbeat = w.Dispatch.Concurrency, w.Dispatch.Heartbeat
	dc.Schedules = fires
	dc.Snapshots = compose.NewSnapshots(w.DB, cfg.Table, nil)
	dc.Sites = site.NewStore(w.DB, cfg.Table, nil, nil)
	dc.AIDefaultBudgetMicros = aiCfg.DefaultMonthlyBudgetMicros
	if router != nil {
		dc.AI = router
	}
	d, err := dispatch.New(dc)
	if err != nil {
		return nil, nil, err
	}
	return &handler{d: d, flush: w.FlushMetrics, log: w.Log}, w.Log, nil
}
