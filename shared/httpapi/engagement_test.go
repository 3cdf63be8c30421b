package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// memReadings is an in-memory readingStore, by "site/delivery".
type memReadings struct {
	m map[string][]engagement.Reading
}

func (r *memReadings) Readings(_ context.Context, siteID, id string) ([]engagement.Reading, error) {
	return r.m[siteID+"/"+id], nil
}

// seedSent puts a sent delivery with latest figures in the ledger.
func (f *pubFixture) seedSent(site, id, post, rev string, p platform.Name, variant string, last map[string]int64) ledger.Delivery {
	sent := f.now.Add(-time.Hour)
	d := ledger.Delivery{ID: id, SiteID: site, PostID: post, Revision: rev, TargetID: "tgt_" + string(p), Platform: p, State: ledger.StateSent,
		PlatformPostID: "pp_" + id, SentAt: &sent, CreatedAt: f.now.Add(-2 * time.Hour), Variant: variant, MetricsLast: last}
	if last != nil {
		d.MetricsReads = 1
	}
	f.ledger.m[site+"/"+id] = d
	return d
}

func TestDeliveryMetrics(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	f.seedSent(f.siteID, "dlv_a", "p1", "r1", platform.X, "", map[string]int64{"likes": 5, "views": 100})
	f.seedSent(f.otherSite, "dlv_o", "p1", "r1", platform.X, "", nil)
	f.readings.m[f.siteID+"/dlv_a"] = []engagement.Reading{
		{DeliveryID: "dlv_a", N: 1, Platform: platform.X, Figures: map[string]int64{"likes": 5, "views": 100}},
	}
	w := f.do("GET", "/v1/deliveries/dlv_a/metrics", f.siteKey, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET metrics: got %d %s, want 200", w.Code, w.Body)
	}
	var got metricsView
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "reading" || len(got.Readings) != 1 || got.Latest["likes"] != 5 {
		t.Errorf("metrics: got %+v, want status reading, 1 reading, likes 5", got)
	}
	if _, has := got.Latest["replies"]; has {
		t.Errorf("replies: got present, want absent")
	}
	if w := f.do("GET", "/v1/deliveries/dlv_o/metrics", f.siteKey, ""); w.Code != http.StatusNotFound {
		t.Errorf("another site's delivery: got %d, want 404", w.Code)
	}
}

func TestGetPost(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	f.seedSent(f.siteID, "dlv_1", "p1", "r1", platform.X, "", map[string]int64{"likes": 5})
	f.seedSent(f.siteID, "dlv_2", "p1", "r2", platform.Bluesky, "", map[string]int64{"likes": 3, "reposts": 1})
	f.seedSent(f.otherSite, "dlv_3", "p1", "r1", platform.X, "", map[string]int64{"likes": 1000})
	w := f.do("GET", "/v1/posts/p1", f.siteKey, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET post: got %d %s", w.Code, w.Body)
	}
	var got postView
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Revisions) != 2 || got.Totals["likes"] != 8 || got.Totals["reposts"] != 1 {
		t.Errorf("post: got %+v, want 2 revisions, likes 8 (not the other site's), reposts 1", got)
	}
	if w := f.do("GET", "/v1/posts/nope", f.siteKey, ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown post: got %d, want 404", w.Code)
	}
}

func TestTopPosts(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	f.seedSent(f.siteID, "dlv_1", "p1", "r1", platform.X, "", map[string]int64{"likes": 5})
	f.seedSent(f.siteID, "dlv_2", "p1", "r1", platform.Bluesky, "", map[string]int64{"likes": 3})
	f.seedSent(f.siteID, "dlv_3", "p2", "r1", platform.X, "", map[string]int64{"likes": 20})
	f.seedSent(f.siteID, "dlv_4", "p3", "r1", platform.X, "", nil) // not read yet
	f.seedSent(f.otherSite, "dlv_5", "p9", "r1", platform.X, "", map[string]int64{"likes": 1000})
	w := f.do("GET", "/v1/analytics/top?metric=likes", f.siteKey, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET top: got %d %s", w.Code, w.Body)
	}
	var got struct {
		Posts []topPost `json:"posts"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Posts) != 2 || got.Posts[0].PostID != "p2" || got.Posts[1].Value != 8 || got.Posts[1].Deliveries != 2 {
		t.Errorf("top: got %+v, want p2 (20) then p1 (8 over 2 deliveries)", got.Posts)
	}
	for _, q := range []struct{ query, field string }{{"?metric=hearts", "metric"}, {"?limit=0", "limit"}, {"?from=2026-13-01", "from"}} {
		w := f.do("GET", "/v1/analytics/top"+q.query, f.siteKey, "")
		if w.Code != http.StatusBadRequest || !hasField(problemOf(t, w.Body.String()), q.field) {
			t.Errorf("GET top%s: got %d %s, want 400 naming %s", q.query, w.Code, w.Body, q.field)
		}
	}
}
