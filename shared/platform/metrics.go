package platform

import (
	"context"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

// Metric is an engagement figure under its common name. Each adapter maps
// its platform's own fields onto these names.
type Metric string

// The common figures.
const (
	Views   Metric = "views" // impressions, plays, displays
	Likes   Metric = "likes" // likes, favourites, reactions counted as likes
	Reposts Metric = "reposts"
	Replies Metric = "replies" // replies, comments
	Quotes  Metric = "quotes"
	Shares  Metric = "shares"
	Saves   Metric = "saves" // bookmarks, saves
	Clicks  Metric = "clicks"
)

// Metrics lists every common figure in a stable order.
var Metrics = []Metric{Views, Likes, Reposts, Replies, Quotes, Shares, Saves, Clicks}

// Interactions are the figures that count as engagement (everything but
// views).
var Interactions = []Metric{Likes, Reposts, Replies, Quotes, Shares, Saves, Clicks}

// Reading is one read of one post's figures. A figure the platform does
// not give is absent from Figures, never 0.
type Reading struct {
	PostID string `json:"postId"`
	// Figures are the common figures the platform gave.
	Figures map[Metric]int64 `json:"figures"`
	// Raw are the platform's own fields as it named them.
	Raw map[string]int64 `json:"raw,omitempty"`
	// ReadAt is when the reader asked.
	ReadAt time.Time `json:"readAt"`
	// Gone means the platform says the post no longer exists (deleted by
	// its author or removed); Figures is then empty.
	Gone bool `json:"gone,omitempty"`
}

// NewReading starts an empty reading of post id at t.
func NewReading(id string, t time.Time) Reading {
	return Reading{PostID: id, Figures: map[Metric]int64{}, Raw: map[string]int64{}, ReadAt: t.UTC()}
}

// Set records the platform's field raw as metric m when v is present; a
// nil v (the platform did not give the figure) leaves both absent. An
// empty m records only the raw field.
func (r *Reading) Set(m Metric, raw string, v *int64) {
	if v == nil {
		return
	}
	r.Raw[raw] = *v
	if m != "" {
		r.Figures[m] += *v
	}
}

// MetricsReader is implemented by adapters that can read their posts'
// engagement figures back.
type MetricsReader interface {
	// ReadMetrics reads the figures of postIDs (at most MetricsBatch) as
	// acct, by the platform's post id. A post the platform says is deleted
	// gets a reading with Gone set. A failure for the whole call is an
	// *apperr.Error: rate_limited with RetryAfter, reconnect for a dead
	// token, forbidden with code "<platform>.missing_scope" when the token
	// lacks a read permission, permanent "<platform>.unexpected_response"
	// (with the redacted body) for an answer of an unknown shape. With an
	// error, the map holds the readings made before it.
	ReadMetrics(ctx context.Context, acct Account, postIDs []string) (map[string]Reading, error)
	// MetricsBatch is how many posts one ReadMetrics call takes.
	MetricsBatch() int
	// MetricsScopes are the OAuth scopes (or permissions) reading needs
	// beyond publishing's; empty when publishing's token can read.
	MetricsScopes() []string
}

// ReadGone reports whether err says the post read does not exist: HTTP
// 404 or 410.
func ReadGone(err error) bool {
	e, ok := apperr.As(err)
	return ok && (e.HTTPStatus == 404 || e.HTTPStatus == 410)
}

// MissingScope turns err into the missing-permission error of a metrics
// read: kind forbidden, code "<platform>.missing_scope", not retryable,
// keeping the platform's code, status and redacted body.
func MissingScope(err error, platformName, msg string) error {
	e, ok := apperr.As(err)
	out := apperr.New(apperr.KindForbidden, platformName+".missing_scope", msg)
	out.Platform = platformName
	if ok {
		out.PlatformCode, out.HTTPStatus, out.Redacted, out.Err = e.PlatformCode, e.HTTPStatus, e.Redacted, e
	}
	return out
}

// Batches splits ids into runs of at most n (n < 1 means 1).
func Batches(ids []string, n int) [][]string {
	n = max(n, 1)
	var out [][]string
	for len(ids) > 0 {
		k := min(n, len(ids))
		out = append(out, ids[:k])
		ids = ids[k:]
	}
	return out
}
