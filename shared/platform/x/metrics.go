package x

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// metricsBatch is how many ids GET /2/tweets takes.
const metricsBatch = 100

// MetricsBatch implements platform.MetricsReader.
func (a *Adapter) MetricsBatch() int { return metricsBatch }

// MetricsScopes implements platform.MetricsReader: reading posts needs
// tweet.read and users.read, which publishing already asks for. The read
// is billed per post on X's pay-per-use tier (unverified: the price).
func (a *Adapter) MetricsScopes() []string { return []string{"tweet.read", "users.read"} }

// publicMetrics is a post's public_metrics object; absent fields stay nil.
type publicMetrics struct {
	Impressions *int64 `json:"impression_count"`
	Likes       *int64 `json:"like_count"`
	Retweets    *int64 `json:"retweet_count"`
	Replies     *int64 `json:"reply_count"`
	Quotes      *int64 `json:"quote_count"`
	Bookmarks   *int64 `json:"bookmark_count"`
}

// ReadMetrics implements platform.MetricsReader with
// GET /2/tweets?ids=…&tweet.fields=public_metrics. A post X reports as
// resource-not-found is gone; a post it withholds for another reason
// (protected, suspended) gets no reading.
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, ids []string) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	for _, batch := range platform.Batches(ids, metricsBatch) {
		q := url.Values{"ids": {strings.Join(batch, ",")}, "tweet.fields": {"public_metrics"}}
		var ans struct {
			Data []struct {
				ID            string         `json:"id"`
				PublicMetrics *publicMetrics `json:"public_metrics"`
			} `json:"data"`
			Errors []struct {
				ResourceID string `json:"resource_id"`
				Value      string `json:"value"`
				Type       string `json:"type"`
			} `json:"errors"`
		}
		now := a.clock.Now()
		var raw json.RawMessage
		err := a.do(ctx, request{method: http.MethodGet, path: "/2/tweets?" + q.Encode(), token: acct.AccessToken}, &raw)
		if e, ok := apperr.As(err); ok && e.HTTPStatus == http.StatusForbidden {
			return out, platform.MissingScope(err, string(platform.X), "X refuses to read posts with this token: reconnect with tweet.read and users.read")
		}
		if err != nil {
			return out, err
		}
		if err := json.Unmarshal(raw, &ans); err != nil || (ans.Data == nil && ans.Errors == nil) {
			return out, errs.Unexpected(http.StatusOK, raw, false, errors.Join(err, errors.New("want data or errors")))
		}
		for _, d := range ans.Data {
			if d.PublicMetrics == nil {
				return out, errs.Unexpected(http.StatusOK, raw, false, errors.New("a post without public_metrics"))
			}
			r := platform.NewReading(d.ID, now)
			m := d.PublicMetrics
			r.Set(platform.Views, "impression_count", m.Impressions)
			r.Set(platform.Likes, "like_count", m.Likes)
			r.Set(platform.Reposts, "retweet_count", m.Retweets)
			r.Set(platform.Replies, "reply_count", m.Replies)
			r.Set(platform.Quotes, "quote_count", m.Quotes)
			r.Set(platform.Saves, "bookmark_count", m.Bookmarks)
			out[d.ID] = r
		}
		for _, e := range ans.Errors {
			id := firstNonEmpty(e.ResourceID, e.Value)
			if strings.HasSuffix(e.Type, "/resource-not-found") && id != "" {
				r := platform.NewReading(id, now)
				r.Gone = true
				out[id] = r
			}
		}
	}
	return out, nil
}
