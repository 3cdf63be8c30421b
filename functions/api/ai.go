package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/shared/ai"
	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/httpapi"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/site"
)

// addAI wires AI adaptation into d: the router behind POST /v1/ai/preview
// and GET /v1/ai/usage (LLM keys from the environment or the platform
// secret), whether requestAiAssets can be honoured, and the admin's site
// settings; the router's calls and cost go to rec. It does no I/O.
func addAI(cfg posseconfig.Config, db *dynamodb.Client, sites *site.Store, rec *metrics.Recorder, log *slog.Logger, d *httpapi.Deps) error {
	a, err := posseconfig.LoadAI(os.Getenv, cfg.AIKeys)
	if err != nil {
		return err
	}
	router, err := ai.FromConfig(a, db, cfg.Table, rec, log)
	if err != nil {
		return err
	}
	if router != nil {
		d.AI = router
	}
	d.AIConfigured = a.Configured()
	d.AIDefaultBudgetMicros = a.DefaultMonthlyBudgetMicros
	d.SiteSettings = sites
	return nil
}
