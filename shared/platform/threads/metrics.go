package threads

import (
	"context"
	"net/http"
	"net/url"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/facebook/graph"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// MetricsBatch implements platform.MetricsReader: media insights take one
// object.
func (a *Adapter) MetricsBatch() int { return 1 }

// MetricsScopes implements platform.MetricsReader (Config.ReadScopes).
func (a *Adapter) MetricsScopes() []string { return a.cfg.ReadScopes }

// ReadMetrics implements platform.MetricsReader with GET
// /{media-id}/insights?metric=… (Config.Insights). Code 100/33 or a 404
// means the post is gone; code 10 or 200-299 a missing
// threads_manage_insights.
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, ids []string) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	for _, id := range ids {
		const what = "read insights"
		now := a.clock.Now()
		q := url.Values{"metric": {graph.InsightNames(a.cfg.Insights)}}
		resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.endpoint(url.PathEscape(id)+"/insights") + "?" + q.Encode(),
			Token: acct.AccessToken, What: what})
		if err != nil {
			return out, err
		}
		if !resp.OK() {
			g, ok := parseGraphError(resp.Body)
			switch {
			case resp.Status == http.StatusNotFound || (ok && g.Code == 100 && g.Subcode == 33):
				r := platform.NewReading(id, now)
				r.Gone = true
				out[id] = r
				continue
			case resp.Status == http.StatusForbidden || (ok && (g.Code == 10 || (g.Code >= 200 && g.Code <= 299))):
				return out, platform.MissingScope(a.apiError(resp, what, false), string(platform.Threads),
					"Threads refuses to read insights with this token: reconnect with threads_manage_insights")
			}
			return out, a.apiError(resp, what, false)
		}
		r := platform.NewReading(id, now)
		if err := graph.ParseInsights(&r, a.cfg.Insights, resp.Body); err != nil {
			return out, errs.Shape(resp, false, what, err)
		}
		out[id] = r
	}
	return out, nil
}
