package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/compose"
	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/httpapi"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/schedule"
)

// addSchedules wires the schedule routes into d: the schedule service on
// the ledger and the post snapshots, writing one-time schedules to
// EventBridge Scheduler (paced and retried as POSSE_SCHEDULER_* say) that
// target the dispatch queue. It does no I/O.
func addSchedules(cfg posseconfig.Config, awsCfg aws.Config, db *dynamodb.Client, queues *sqs.Client, log *slog.Logger, d *httpapi.Deps) error {
	if err := cfg.Require("POSSE_DISPATCH_QUEUE_URL", "POSSE_DISPATCH_QUEUE_ARN", "POSSE_SCHEDULE_GROUP",
		"POSSE_SCHEDULER_ROLE_ARN", "POSSE_SCHEDULER_DLQ_ARN"); err != nil {
		return err
	}
	sc, err := posseconfig.LoadSchedule(os.Getenv)
	if err != nil {
		return err
	}
	svc, err := schedule.New(schedule.Config{
		DB: db, Table: cfg.Table, Ledger: ledger.NewStore(db, cfg.Table, nil), Snapshots: compose.NewSnapshots(db, cfg.Table, nil),
		Scheduler: scheduler.NewFromConfig(awsCfg), Group: cfg.ScheduleGroup, QueueARN: cfg.DispatchQueueARN,
		RoleARN: cfg.SchedulerRoleARN, DLQARN: cfg.SchedulerDLQARN,
		Limits: schedule.Limits{Rate: sc.Rate, Burst: sc.Burst, MaxAttempts: sc.MaxAttempts},
		SQS:    queues, QueueURL: cfg.DispatchQueueURL,
		Logger: log,
	})
	if err != nil {
		return err
	}
	d.Schedules = svc
	return nil
}
