package main

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	posseconfig "github.com/posse-dev/posse/shared/config"
	outbox "github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/httpapi"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/webhook"
)

// addWebhooks wires the webhook routes into d: endpoints whose secrets are
// sealed with a vault that can only seal (kms:GenerateDataKey), the
// outbox for pings and replays, and the webhook queue. URLs must be public
// https ones except on the local stack. It does no I/O.
func addWebhooks(cfg posseconfig.Config, awsCfg aws.Config, db *dynamodb.Client, queues *sqs.Client, log *slog.Logger, d *httpapi.Deps) error {
	if err := cfg.Require("POSSE_WEBHOOK_QUEUE_URL", "POSSE_KMS_KEY_ID"); err != nil {
		return err
	}
	sealer, err := vault.NewSealer(kms.NewFromConfig(awsCfg), vault.Config{KeyID: cfg.KMSKeyID, Logger: log})
	if err != nil {
		return err
	}
	svc, err := webhook.NewService(webhook.ServiceConfig{
		Store: webhook.NewStore(db, cfg.Table), Events: outbox.NewStore(db, cfg.Table), Sealer: sealer,
		Queue: outbox.NewPublisher(queues, cfg.WebhookQueueURL),
		Rules: webhook.Rules{AllowInsecure: cfg.Env == "local"},
	})
	if err != nil {
		return err
	}
	d.Webhooks = svc
	return nil
}
