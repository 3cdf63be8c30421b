package instagram

import (
	"context"

	"github.com/posse-dev/posse/shared/platform"
)

// MetricsBatch implements platform.MetricsReader: insights take one object.
func (a *Adapter) MetricsBatch() int { return 1 }

// MetricsScopes implements platform.MetricsReader (Config.ReadScopes).
func (a *Adapter) MetricsScopes() []string { return a.cfg.ReadScopes }

// ReadMetrics implements platform.MetricsReader with GET
// /{id}/insights?metric=… (Config.Insights).
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, ids []string) (map[string]platform.Reading, error) {
	return a.graph.ReadInsights(ctx, acct.AccessToken, ids, a.cfg.Insights)
}
