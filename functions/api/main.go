// Command api is the HTTP API function: API Gateway HTTP API (payload v2)
// → aws-lambda-go-api-proxy → the plain http.Handler in shared/httpapi.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	_ "time/tzdata" // provided.al2023 ships no zoneinfo; sites name IANA zones

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/health"
	"github.com/posse-dev/posse/shared/httpapi"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/site"
)

func main() {
	h, log, err := build(context.Background())
	if err != nil {
		// Before lambda.Start: failing the cold start with a precise message is
		// what we want (Lambda reports it as an init error).
		slog.Error("cold start failed", "err", err)
		os.Exit(1)
	}
	log.Info("cold start done", "version", posseconfig.Version)
	lambda.Start(httpadapter.NewV2(withRequestID(h)).ProxyWithContext)
}

// build wires config → clients → services → handler (which flushes the
// request's metrics after it).
func build(ctx context.Context) (http.Handler, *slog.Logger, error) {
	cfg, err := posseconfig.Load(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Require("POSSE_DISPATCH_QUEUE_URL"); err != nil {
		return nil, nil, err
	}
	log := logging.New(os.Stdout, cfg.LogLevel, "api")
	rec := metrics.New(metrics.Options{Function: "api"})
	awsCfg, err := posseconfig.LoadAWS(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if cfg, err = cfg.ResolvePlatformSecret(ctx, secretsmanager.NewFromConfig(awsCfg)); err != nil {
		return nil, nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	queues := sqs.NewFromConfig(awsCfg)
	sites := site.NewStore(db, cfg.Table, nil, nil)
	conns, err := buildConnections(ctx, cfg, awsCfg, db, sites, log)
	if err != nil {
		return nil, nil, err
	}
	deps := httpapi.Deps{
		Sites:          sites,
		Connections:    conns,
		Health:         health.New(db, queues, cfg.Table, map[string]string{"dispatchQueue": cfg.DispatchQueueURL}),
		AdminKeySHA256: cfg.AdminKeySHA256,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Version:        posseconfig.Version,
		Logger:         log,
		HealthCacheTTL: cfg.HealthCacheTTL,
		KeyCacheTTL:    httpapi.DefaultKeyCacheTTL,
	}
	if err := addPublishing(cfg, db, queues, conns, &deps); err != nil {
		return nil, nil, err
	}
	if err := addSchedules(cfg, awsCfg, db, queues, log, &deps); err != nil {
		return nil, nil, err
	}
	if err := addAI(cfg, db, sites, rec, log, &deps); err != nil {
		return nil, nil, err
	}
	if err := addWebhooks(cfg, awsCfg, db, queues, log, &deps); err != nil {
		return nil, nil, err
	}
	return flushMetrics(httpapi.New(deps), rec, log), log, nil
}

// flushMetrics writes the metrics of each request (one invocation) after
// it is answered; a failure is logged, never answered.
func flushMetrics(next http.Handler, rec *metrics.Recorder, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if err := rec.Flush(r.Context()); err != nil {
			log.WarnContext(r.Context(), "metrics flush", "err", err)
		}
	})
}

// withRequestID carries API Gateway's request id into the request context,
// so every log line and problem answer shows the id API Gateway logged, and
// the caller's IP from its request context into httpapi.SourceIPHeader
// (replacing any value the client sent) for the audit log.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(httpapi.SourceIPHeader)
		if gw, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok {
			if gw.RequestID != "" {
				r = r.WithContext(logging.WithRequestID(r.Context(), gw.RequestID))
			}
			if gw.HTTP.SourceIP != "" {
				r.Header.Set(httpapi.SourceIPHeader, gw.HTTP.SourceIP)
			}
		}
		next.ServeHTTP(w, r)
	})
}
