package mastodon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// MetricsBatch implements platform.MetricsReader: GET
// /api/v1/statuses/:id reads one status (the batch form
// /api/v1/statuses?id[]= exists only from 4.3 and is not assumed).
func (a *Adapter) MetricsBatch() int { return 1 }

// MetricsScopes implements platform.MetricsReader: reading a status needs
// read:statuses (or read). Mastodon has no views.
func (a *Adapter) MetricsScopes() []string { return []string{"read:statuses"} }

// statusCounts are the counters of a Status entity; quotes_count exists
// from Mastodon 4.5 and is absent on older instances.
type statusCounts struct {
	ID         string `json:"id"`
	Favourites *int64 `json:"favourites_count"`
	Reblogs    *int64 `json:"reblogs_count"`
	Replies    *int64 `json:"replies_count"`
	Quotes     *int64 `json:"quotes_count"`
}

// ReadMetrics implements platform.MetricsReader. A 404 means the status
// was deleted.
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, ids []string) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	base, err := a.base(acct)
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		const what = "read status"
		now := a.clock.Now()
		resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: base + "/api/v1/statuses/" + url.PathEscape(id),
			Token: acct.AccessToken, What: what})
		if err != nil {
			return out, err
		}
		switch {
		case resp.Status == http.StatusNotFound || resp.Status == http.StatusGone:
			r := platform.NewReading(id, now)
			r.Gone = true
			out[id] = r
			continue
		case resp.Status == http.StatusForbidden:
			return out, platform.MissingScope(a.apiError(resp, what), string(platform.Mastodon),
				"the Mastodon token cannot read statuses: reconnect with read:statuses")
		case !resp.OK():
			return out, a.apiError(resp, what)
		}
		var sc statusCounts
		if err := json.Unmarshal(resp.Body, &sc); err != nil || sc.ID == "" {
			return out, errs.Shape(resp, false, what, errors.Join(err, errors.New("no id")))
		}
		r := platform.NewReading(id, now)
		r.Set(platform.Likes, "favourites_count", sc.Favourites)
		r.Set(platform.Reposts, "reblogs_count", sc.Reblogs)
		r.Set(platform.Replies, "replies_count", sc.Replies)
		r.Set(platform.Quotes, "quotes_count", sc.Quotes)
		out[id] = r
	}
	return out, nil
}
