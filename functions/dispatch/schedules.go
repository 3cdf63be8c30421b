package main

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/schedule"
)

// buildFires wires the expansion of fired schedules: a schedule message's
// deliveries move from scheduled to queued in the ledger and their delivery
// messages go to the dispatch queue in batches; schedule.fired goes to the
// webhook queue. It does no I/O.
func buildFires(cfg posseconfig.Config, awsCfg aws.Config, db *dynamodb.Client, log *slog.Logger) (*schedule.Service, error) {
	queues := sqs.NewFromConfig(awsCfg)
	sc := schedule.Config{
		DB: db, Table: cfg.Table, Ledger: ledger.NewStore(db, cfg.Table, nil),
		Queue:  queue.New(queue.Config{SQS: queues, DispatchURL: cfg.DispatchQueueURL}),
		Logger: log,
	}
	if cfg.WebhookQueueURL != "" {
		sc.Events = event.NewPublisher(queues, cfg.WebhookQueueURL) // schedule.fired
	}
	return schedule.New(sc)
}
