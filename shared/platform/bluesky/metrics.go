package bluesky

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// metricsBatch is how many at:// URIs app.bsky.feed.getPosts takes.
const metricsBatch = 25

// MetricsBatch implements platform.MetricsReader.
func (a *Adapter) MetricsBatch() int { return metricsBatch }

// MetricsScopes implements platform.MetricsReader: an app-password session
// reads posts; there are no scopes. Bluesky has no views.
func (a *Adapter) MetricsScopes() []string { return nil }

// ReadMetrics implements platform.MetricsReader with
// app.bsky.feed.getPosts through the account's PDS (which proxies it to
// the AppView). A URI missing from the answer is taken as deleted: the
// AppView leaves out posts it does not have (unverified: a post the
// AppView has not indexed yet is left out the same way, so the first read
// is scheduled long after publishing).
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, uris []string) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	for _, batch := range platform.Batches(uris, metricsBatch) {
		const what = "read posts"
		q := url.Values{"uris": batch}
		now := a.clock.Now()
		resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.base(acct) + "/xrpc/app.bsky.feed.getPosts?" + q.Encode(),
			Token: acct.AccessToken, What: what})
		if err != nil {
			return out, err
		}
		if !resp.OK() {
			return out, a.apiError(resp, what, false)
		}
		var ans struct {
			Posts []struct {
				URI     string `json:"uri"`
				Likes   *int64 `json:"likeCount"`
				Reposts *int64 `json:"repostCount"`
				Replies *int64 `json:"replyCount"`
				Quotes  *int64 `json:"quoteCount"`
			} `json:"posts"`
		}
		if err := json.Unmarshal(resp.Body, &ans); err != nil || ans.Posts == nil {
			return out, errs.Shape(resp, false, what, errors.Join(err, errors.New("no posts")))
		}
		for _, p := range ans.Posts {
			r := platform.NewReading(p.URI, now)
			r.Set(platform.Likes, "likeCount", p.Likes)
			r.Set(platform.Reposts, "repostCount", p.Reposts)
			r.Set(platform.Replies, "replyCount", p.Replies)
			r.Set(platform.Quotes, "quoteCount", p.Quotes)
			out[p.URI] = r
		}
		for _, u := range batch {
			if _, ok := out[u]; !ok {
				r := platform.NewReading(u, now)
				r.Gone = true
				out[u] = r
			}
		}
	}
	return out, nil
}
