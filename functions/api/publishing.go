package main

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/audit"
	"github.com/posse-dev/posse/shared/compose"
	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/httpapi"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/target"
)

// addPublishing wires the publishing routes into d: targets, dispatch
// (snapshots, the ledger, the adapters' validation, the dispatch queue),
// deliveries, queue operations on the dispatch queue and its DLQ (the
// DLQ's ARN names it to SQS's message move tasks), Idempotency-Key
// answers, the audit log, analytics and the platforms' health (statistics
// and the platform blocks). It does no I/O.
func addPublishing(cfg posseconfig.Config, db *dynamodb.Client, queues *sqs.Client, conns *connection.Service, d *httpapi.Deps) error {
	if err := cfg.Require("POSSE_DISPATCH_QUEUE_URL", "POSSE_DISPATCH_DLQ_URL", "POSSE_DISPATCH_DLQ_ARN"); err != nil {
		return err
	}
	deliveries := ledger.NewStore(db, cfg.Table, nil)
	// The api function only validates with the adapters (Capabilities,
	// Validate): they make no call here, so the client is never used.
	adapters := registry.New(registry.Config{BaseURL: cfg.PlatformBaseURL, FederatedBaseURL: cfg.FederatedBaseURL, MediaPollInterval: cfg.MediaPollInterval, HTTPClient: &http.Client{Timeout: 20 * time.Second}})
	d.Targets = target.NewStore(db, cfg.Table, conns, nil, nil)
	d.Deliveries = deliveries
	d.Snapshots = compose.NewSnapshots(db, cfg.Table, nil)
	d.Publishers = adapters
	d.Queue = queue.New(queue.Config{SQS: queues, DispatchURL: cfg.DispatchQueueURL, DLQURL: cfg.DispatchDLQURL, DLQARN: cfg.DispatchDLQARN, Deliveries: deliveries})
	d.Idempotency = idempotency.NewStore(db, cfg.Table, nil, nil)
	d.Audit = audit.NewStore(db, cfg.Table, audit.DefaultRetention, nil, nil)
	st := stats.New(db, cfg.Table)
	d.Analytics, d.RecentStats = st, st
	d.Blocks = ratelimit.New(db, cfg.Table, nil)
	d.Readings = engagement.NewStore(db, cfg.Table)
	return nil
}
