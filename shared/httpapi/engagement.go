package httpapi

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// readingStore lists a delivery's engagement readings (shared/engagement).
type readingStore interface {
	Readings(ctx context.Context, siteID, deliveryID string) ([]engagement.Reading, error)
}

// maxScan bounds how many deliveries one post or top-posts answer reads.
const maxScan = 5000

// addEngagementRoutes registers the engagement routes.
func (s *Server) addEngagementRoutes() {
	s.add("GET", "/v1/deliveries/{id}/metrics", SiteKey, s.deliveryMetrics)
	s.add("GET", "/v1/posts/{postId}", SiteKey, s.getPost)
	s.add("GET", "/v1/analytics/top", SiteKey, s.topPosts)
	s.add("GET", "/v1/posts/{postId}/variants", SiteKey, s.postVariants)
}

// metricsView is where a delivery's readings stand.
type metricsView struct {
	DeliveryID     string               `json:"deliveryId"`
	PostID         string               `json:"postId"`
	Revision       string               `json:"revision"`
	Platform       platform.Name        `json:"platform"`
	Variant        string               `json:"variant,omitempty"`
	PlatformPostID string               `json:"platformPostId,omitempty"`
	Status         string               `json:"status"` // pending, reading, done, deleted, stopped, not_sent
	Reason         string               `json:"reason,omitempty"`
	NextReadAt     *time.Time           `json:"nextReadAt,omitempty"`
	Latest         map[string]int64     `json:"latest"`
	Readings       []engagement.Reading `json:"readings"`
}

// metricsStatus names where a delivery's readings stand.
func metricsStatus(d ledger.Delivery) string {
	switch {
	case d.MetricsStatus != "":
		return d.MetricsStatus
	case d.State != ledger.StateSent:
		return "not_sent"
	case d.MetricsReads == 0:
		return "pending"
	}
	return "reading"
}

func latest(d ledger.Delivery) map[string]int64 {
	if d.MetricsLast == nil {
		return map[string]int64{}
	}
	return d.MetricsLast
}

// deliveryMetrics answers every reading of one of the site's deliveries,
// oldest first; another site's delivery is 404.
func (s *Server) deliveryMetrics(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	if s.d.Readings == nil {
		return errNotConfigured("engagement readings")
	}
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	d, err := dl.Get(r.Context(), p.SiteID, id)
	if err != nil {
		return err
	}
	rs, err := s.d.Readings.Readings(r.Context(), p.SiteID, d.ID)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []engagement.Reading{}
	}
	return writeJSON(w, http.StatusOK, metricsView{DeliveryID: d.ID, PostID: d.PostID, Revision: d.Revision, Platform: d.Platform,
		Variant: d.Variant, PlatformPostID: d.PlatformPostID, Status: metricsStatus(d), Reason: d.MetricsReason,
		NextReadAt: d.MetricsNextAt, Latest: latest(d), Readings: rs})
}

// listAll pages through the site's deliveries matching f, up to maxScan.
func listAll(ctx context.Context, dl deliveryLedger, siteID string, f ledger.Filter) ([]ledger.Delivery, error) {
	var out []ledger.Delivery
	cursor := ""
	for {
		page, next, err := dl.List(ctx, siteID, f, ledger.MaxListLimit, cursor)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" || len(out) >= maxScan {
			return out, nil
		}
		cursor = next
	}
}

// postDelivery is one delivery of a post with its latest figures.
type postDelivery struct {
	ID             string           `json:"id"`
	TargetID       string           `json:"targetId"`
	Platform       platform.Name    `json:"platform"`
	State          ledger.State     `json:"state"`
	Variant        string           `json:"variant,omitempty"`
	PlatformPostID string           `json:"platformPostId,omitempty"`
	PlatformURL    string           `json:"platformUrl,omitempty"`
	SentAt         *time.Time       `json:"sentAt,omitempty"`
	MetricsStatus  string           `json:"metricsStatus"`
	Figures        map[string]int64 `json:"figures"`
}

type postRevision struct {
	Revision   string         `json:"revision"`
	Deliveries []postDelivery `json:"deliveries"`
}

type postView struct {
	PostID    string           `json:"postId"`
	Revisions []postRevision   `json:"revisions"`
	Totals    map[string]int64 `json:"totals"`
}

// getPost answers every delivery of every revision of a post of the site
// with its latest figures, and the figures summed.
func (s *Server) getPost(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	postID := r.PathValue("postId")
	if postID == "" || len(postID) > 200 {
		return apperr.NotFound("post")
	}
	ds, err := listAll(r.Context(), dl, p.SiteID, ledger.Filter{PostID: postID})
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		return apperr.NotFound("post")
	}
	view := postView{PostID: postID, Totals: map[string]int64{}}
	byRev := map[string]*postRevision{}
	var revs []string
	for _, d := range ds {
		rv := byRev[d.Revision]
		if rv == nil {
			rv = &postRevision{Revision: d.Revision}
			byRev[d.Revision] = rv
			revs = append(revs, d.Revision)
		}
		rv.Deliveries = append(rv.Deliveries, postDelivery{ID: d.ID, TargetID: d.TargetID, Platform: d.Platform, State: d.State,
			Variant: d.Variant, PlatformPostID: d.PlatformPostID, PlatformURL: d.PlatformURL, SentAt: d.SentAt,
			MetricsStatus: metricsStatus(d), Figures: latest(d)})
		for k, v := range d.MetricsLast {
			view.Totals[k] += v
		}
	}
	sort.Strings(revs)
	for _, rv := range revs {
		ds := byRev[rv].Deliveries
		sort.Slice(ds, func(i, j int) bool {
			return ds[i].Platform+platform.Name(ds[i].ID) < ds[j].Platform+platform.Name(ds[j].ID)
		})
		view.Revisions = append(view.Revisions, *byRev[rv])
	}
	return writeJSON(w, http.StatusOK, view)
}

// topPost is one post in the top list.
type topPost struct {
	PostID     string                  `json:"postId"`
	Value      int64                   `json:"value"`
	Deliveries int                     `json:"deliveries"`
	ByPlatform map[platform.Name]int64 `json:"byPlatform"`
}

// topPosts answers the site's posts sent from the UTC day from to the UTC
// day to with the highest sum of metric over their deliveries (only
// deliveries whose platform gives the figure count).
func (s *Server) topPosts(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	metric := r.URL.Query().Get("metric")
	if metric == "" {
		metric = string(platform.Likes)
	}
	if !slices.Contains(platform.Metrics, platform.Metric(metric)) {
		names := make([]string, len(platform.Metrics))
		for i, m := range platform.Metrics {
			names[i] = string(m)
		}
		return apperr.Invalid("metric", "must be one of "+strings.Join(names, ", "))
	}
	limit := 10
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return apperr.Invalid("limit", "must be a whole number from 1 to 100")
		}
		limit = n
	}
	from, to, err := dayRange(r, s.d.Now())
	if err != nil {
		return err
	}
	ds, err := listAll(r.Context(), dl, p.SiteID, ledger.Filter{State: ledger.StateSent, Since: from, Until: to.AddDate(0, 0, 1)})
	if err != nil {
		return err
	}
	byPost := map[string]*topPost{}
	for _, d := range ds {
		v, ok := d.MetricsLast[metric]
		if !ok {
			continue
		}
		tp := byPost[d.PostID]
		if tp == nil {
			tp = &topPost{PostID: d.PostID, ByPlatform: map[platform.Name]int64{}}
			byPost[d.PostID] = tp
		}
		tp.Value += v
		tp.Deliveries++
		tp.ByPlatform[d.Platform] += v
	}
	posts := make([]topPost, 0, len(byPost))
	for _, tp := range byPost {
		posts = append(posts, *tp)
	}
	sort.Slice(posts, func(i, j int) bool {
		if posts[i].Value != posts[j].Value {
			return posts[i].Value > posts[j].Value
		}
		return posts[i].PostID < posts[j].PostID
	})
	if len(posts) > limit {
		posts = posts[:limit]
	}
	return writeJSON(w, http.StatusOK, map[string]any{"metric": metric, "from": from.Format("2006-01-02"), "to": to.Format("2006-01-02"), "posts": posts})
}
