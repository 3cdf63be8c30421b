package linkedin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// MetricsBatch implements platform.MetricsReader: GET
// /rest/socialActions/{urn} reads one post (the BATCH_GET form is not
// assumed).
func (a *Adapter) MetricsBatch() int { return 1 }

// MetricsScopes implements platform.MetricsReader (Config.ReadScopes).
func (a *Adapter) MetricsScopes() []string { return a.cfg.ReadScopes }

// ReadMetrics implements platform.MetricsReader with the Social Actions
// API: likes and comments. Impressions and clicks come only from
// organizationalEntityShareStatistics, for organization pages, and are not
// read; they stay absent.
func (a *Adapter) ReadMetrics(ctx context.Context, acct platform.Account, urns []string) (map[string]platform.Reading, error) {
	out := map[string]platform.Reading{}
	for _, urn := range urns {
		now := a.clock.Now()
		var raw json.RawMessage
		_, err := a.do(ctx, request{method: http.MethodGet, path: "/rest/socialActions/" + url.QueryEscape(urn), token: acct.AccessToken}, &raw)
		e, isApp := apperr.As(err)
		switch {
		case platform.ReadGone(err):
			r := platform.NewReading(urn, now)
			r.Gone = true
			out[urn] = r
			continue
		case isApp && e.HTTPStatus == http.StatusForbidden:
			return out, platform.MissingScope(err, string(platform.LinkedIn), "LinkedIn refuses to read social actions with this token: reconnect with "+a.cfg.ReadScopes[0])
		case err != nil:
			return out, err
		}
		var ans struct {
			Likes *struct {
				Total *int64 `json:"totalLikes"`
			} `json:"likesSummary"`
			Comments *struct {
				Total *int64 `json:"aggregatedTotalComments"`
			} `json:"commentsSummary"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil || (ans.Likes == nil && ans.Comments == nil) {
			return out, errs.Unexpected(http.StatusOK, raw, false, errors.Join(err, errors.New("no likesSummary or commentsSummary")))
		}
		r := platform.NewReading(urn, now)
		if ans.Likes != nil {
			r.Set(platform.Likes, "likesSummary.totalLikes", ans.Likes.Total)
		}
		if ans.Comments != nil {
			r.Set(platform.Replies, "commentsSummary.aggregatedTotalComments", ans.Comments.Total)
		}
		out[urn] = r
	}
	return out, nil
}
