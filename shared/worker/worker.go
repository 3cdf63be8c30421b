// Package worker is the wiring the back-office functions share, so each
// main stays a few lines: configuration read and checked once, the logger,
// the metrics recorder and the AWS clients (Base, all a webhook function
// needs); then for dispatch, sweep and refresh the platform secret, a vault
// that opens and seals credentials, the platform adapters and the
// connection refresher, and the dispatcher configuration dispatch and
// sweep both start from.
//
// It reads nothing itself: main passes os.Getenv, as to config.Load.
package worker

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/vault"
)

// Options say what one function needs.
type Options struct {
	// Function names the function in every log line.
	Function string
	// Require lists the settings the function cannot run without
	// (config.Config.Require names), besides POSSE_KMS_KEY_ID.
	Require []string
	// HTTPTimeout bounds one platform request (default 20 s); keep it well
	// below the function's timeout and the refresh lease.
	HTTPTimeout time.Duration
}

// Worker is what the back-office functions are built from.
type Worker struct {
	Config   config.Config
	Dispatch config.Dispatch
	Log      *slog.Logger
	// Metrics buffers the invocation's metrics (EMF on stdout); the
	// handler flushes it once per invocation.
	Metrics *metrics.Recorder
	AWS     aws.Config
	DB      *dynamodb.Client
	// HTTP is the one client every platform adapter and OAuth call shares.
	HTTP      *http.Client
	Adapters  *registry.Registry
	Refresher *connection.Refresher
}

// Base is what every back-office function starts from: the configuration,
// the logger, the AWS configuration and the DynamoDB client. It holds no
// platform secret and no vault: a function that needs neither (webhook)
// stops here.
type Base struct {
	Config config.Config
	Log    *slog.Logger
	// Metrics buffers the invocation's metrics (EMF on stdout); the
	// handler flushes it once per invocation.
	Metrics *metrics.Recorder
	AWS     aws.Config
	DB      *dynamodb.Client
}

// NewBase reads and checks the configuration with getenv (require lists
// the settings the function cannot run without), builds the logger and
// loads the AWS configuration. It reads no secret.
func NewBase(ctx context.Context, getenv func(string) string, function string, require ...string) (*Base, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.Require(require...); err != nil {
		return nil, err
	}
	log := logging.New(os.Stdout, cfg.LogLevel, function)
	awsCfg, err := config.LoadAWS(getenv)
	if err != nil {
		return nil, err
	}
	return &Base{Config: cfg, Log: log, Metrics: metrics.New(metrics.Options{Function: function}), AWS: awsCfg, DB: dynamodb.NewFromConfig(awsCfg)}, nil
}

// New reads and checks the configuration with getenv, loads the AWS
// configuration and the platform secret, and builds the clients. An error
// names what is missing or wrong; main fails the cold start with it.
func New(ctx context.Context, getenv func(string) string, o Options) (*Worker, error) {
	b, err := NewBase(ctx, getenv, o.Function, append([]string{"POSSE_KMS_KEY_ID"}, o.Require...)...)
	if err != nil {
		return nil, err
	}
	dc, err := config.LoadDispatch(getenv)
	if err != nil {
		return nil, err
	}
	cfg, log, awsCfg := b.Config, b.Log, b.AWS
	if cfg, err = cfg.ResolvePlatformSecret(ctx, secretsmanager.NewFromConfig(awsCfg)); err != nil {
		return nil, err
	}
	// Opens credentials, and seals them again when a token is refreshed.
	v, err := vault.New(kms.NewFromConfig(awsCfg), vault.Config{KeyID: cfg.KMSKeyID, Logger: log})
	if err != nil {
		return nil, err
	}
	timeout := o.HTTPTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	w := &Worker{Config: cfg, Dispatch: dc, Log: log, Metrics: b.Metrics, AWS: awsCfg, DB: b.DB, HTTP: &http.Client{Timeout: timeout}}
	// Media URLs and Mastodon instances are caller-chosen: the outbound
	// policy, with loopback only on the local stack (the simulator).
	local := cfg.Env == "local"
	w.Adapters = registry.New(registry.Config{BaseURL: cfg.PlatformBaseURL, FederatedBaseURL: cfg.FederatedBaseURL, MediaPollInterval: cfg.MediaPollInterval, HTTPClient: w.HTTP,
		Media: platform.MediaClient(local), Instances: outbound.NewClient(outbound.Options{Timeout: timeout, AllowLoopback: local})})
	if w.Refresher, err = connection.RefresherFor(cfg, w.DB, v, w.Adapters, w.HTTP, w.Metrics, log); err != nil {
		return nil, err
	}
	if cfg.WebhookQueueURL != "" {
		// connection.broken and connection.expiring.
		w.Refresher.PublishEvents(event.NewPublisher(sqs.NewFromConfig(awsCfg), cfg.WebhookQueueURL))
	}
	return w, nil
}

// DispatchConfig is the dispatcher configuration dispatch and sweep share:
// the ledger and its policy, credentials, adapters, limits, statistics, the
// dispatch queue, and the webhook queue events go to. Callers add what
// only they use.
func (w *Worker) DispatchConfig() dispatch.Config {
	dc := w.Dispatch
	queues := sqs.NewFromConfig(w.AWS)
	c := dispatch.Config{
		Ledger:   ledger.NewStore(w.DB, w.Config.Table, nil),
		Policy:   ledger.Policy{MaxAttempts: dc.MaxAttempts, Lease: dc.Lease, BackoffBase: dc.BackoffBase, BackoffMax: dc.BackoffMax},
		Accounts: w.Refresher, Publishers: w.Adapters,
		Limiter: ratelimit.New(w.DB, w.Config.Table, nil), Stats: stats.New(w.DB, w.Config.Table),
		Queue: queues, QueueURL: w.Config.DispatchQueueURL,
		Metrics: w.Metrics, Logger: w.Log,
	}
	if w.Config.WebhookQueueURL != "" {
		// The events outcomes record go to the webhook queue; the sweep
		// sends those whose message was lost.
		c.Events = event.NewPublisher(queues, w.Config.WebhookQueueURL)
		c.Outbox = event.NewStore(w.DB, w.Config.Table)
	}
	return c
}

// FlushMetrics writes the invocation's metrics; a failure (a dropped
// sample, stdout closed) is logged, never returned: metrics must not fail
// an invocation.
func (w *Worker) FlushMetrics(ctx context.Context) {
	if err := w.Metrics.Flush(ctx); err != nil {
		w.Log.WarnContext(ctx, "metrics flush", "err", err)
	}
}
