package tiktok

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// metricsBatch is how many video ids POST /v2/video/query/ takes.
const metricsBatch = 20

// MetricsBatch implements platform.MetricsReader.
func (a *Adapter) MetricsBatch() int { return metricsBatch }

// MetricsScopes implements platform.MetricsReader: the Display API's
// video.list scope, which publishing does not ask for.
func (a *Adapter) MetricsScopes() []string { return []string{"video.list"} }

// ReadMetrics implements platform.MetricsReader with POST
// /v2/video/query/?fields=id,view_count,like_count,comment_count,share_count.
// TikTok answers only for the account's own public videos; an id left out
// is taken as deleted (or made private, which TikTok does not tell apart).
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, ids []string) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	for _, batch := range platform.Batches(ids, metricsBatch) {
		const what = "query videos"
		q := url.Values{"fields": {"id,view_count,like_count,comment_count,share_count"}}
		now := a.clock.Now()
		data, err := a.call(ctx, acct.AccessToken, http.MethodPost, "/v2/video/query/?"+q.Encode(),
			map[string]any{"filters": map[string]any{"video_ids": batch}}, what, false)
		if e, ok := apperr.As(err); ok && (e.PlatformCode == "scope_not_authorized" || e.PlatformCode == "scope_permission_missed") {
			return out, platform.MissingScope(err, string(platform.TikTok), "the TikTok token cannot read videos: reconnect with video.list")
		}
		if err != nil {
			return out, err
		}
		var ans struct {
			Videos []struct {
				ID       string `json:"id"`
				Views    *int64 `json:"view_count"`
				Likes    *int64 `json:"like_count"`
				Comments *int64 `json:"comment_count"`
				Shares   *int64 `json:"share_count"`
			} `json:"videos"`
		}
		if err := json.Unmarshal(data, &ans); err != nil || ans.Videos == nil {
			return out, errs.Shape(platformhttp.Response{Status: http.StatusOK, Body: data}, false, what, errors.Join(err, errors.New("no videos")))
		}
		for _, v := range ans.Videos {
			r := platform.NewReading(v.ID, now)
			r.Set(platform.Views, "view_count", v.Views)
			r.Set(platform.Likes, "like_count", v.Likes)
			r.Set(platform.Replies, "comment_count", v.Comments)
			r.Set(platform.Shares, "share_count", v.Shares)
			out[v.ID] = r
		}
		for _, id := range batch {
			if _, ok := out[id]; !ok {
				r := platform.NewReading(id, now)
				r.Gone = true
				out[id] = r
			}
		}
	}
	return out, nil
}
