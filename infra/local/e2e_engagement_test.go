package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
)

// engDelivery is the part of a delivery the engagement test reads.
type engDelivery struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	State    string `json:"state"`
	Variant  string `json:"variant"`
	History  []struct {
		Outcome string `json:"outcome"`
	} `json:"history"`
}

// engMetrics is GET /v1/deliveries/{id}/metrics.
type engMetrics struct {
	Platform       string           `json:"platform"`
	Variant        string           `json:"variant"`
	PlatformPostID string           `json:"platformPostId"`
	Status         string           `json:"status"`
	Reason         string           `json:"reason"`
	Latest         map[string]int64 `json:"latest"`
	Readings       []struct {
		N       int              `json:"n"`
		ReadAt  time.Time        `json:"readAt"`
		Figures map[string]int64 `json:"figures"`
		Raw     map[string]int64 `json:"raw"`
	} `json:"readings"`
}

// TestEngagementEndToEnd dispatches one post with two variants to the eight
// platforms through the whole local stack, with the refresh function's
// schedule at one minute and readings 3 s and 6 s after sending, then
// checks that every reading equals the simulator's figures at the time it
// was taken, that the per-delivery metrics, the analytics sums and the
// variant comparison agree with them, that LinkedIn (whose read permission
// is not granted by default) stops with the reason, and that a post
// dispatched while readings run is published at once.
func TestEngagementEndToEnd(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	if d := os.Getenv("POSSE_E2E_STATE"); d != "" {
		state = d
	}
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "2",
		"-param", "RefreshScheduleExpression=rate(1 minute)",
		"-fn-env", "POSSE_METRICS_READ_AFTER=3s,6s", "-fn-env", "POSSE_METRICS_READS_PER_HOUR=1000",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", state)
	defer l.stop(t)
	api, simURL := l.info["API URL"], l.info["Simulator"]
	s := &e2eSite{id: l.info["Site id"], c: apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}}
	connectEveryPlatform(t, s, 1, simURL, func(p, cid string) map[string]any {
		body := map[string]any{"connectionId": cid, "name": p}
		if p == "tiktok" {
			body["defaults"] = map[string]any{"options": map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE"}}
		}
		return body
	})
	platforms := []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok", "bluesky", "mastodon"}
	var ids []string
	for _, p := range platforms {
		ids = append(ids, s.targets[p])
	}
	media := []map[string]string{{"url": simURL + "/_sim/media/cover.jpg", "kind": "image", "altText": "cover"}}
	dispatch := func(rev string, variants any) []engDelivery {
		t.Helper()
		body := map[string]any{
			"post": map[string]any{"postId": "ab-post", "revision": rev, "title": "A/B " + rev, "excerpt": "An excerpt",
				"url": "https://blog.example/ab", "body": "Body.", "media": media},
			"targetIds": ids,
		}
		if variants != nil {
			body["variants"] = variants
		}
		var out struct{ Deliveries []engDelivery }
		s.c.must(202, "POST", "/dispatch", body, &out)
		return out.Deliveries
	}
	waitSent := func(ds []engDelivery, within time.Duration) []engDelivery {
		t.Helper()
		deadline := time.Now().Add(within)
		out := make([]engDelivery, len(ds))
		for i, d := range ds {
			for {
				s.c.must(200, "GET", "/deliveries/"+url.PathEscape(d.ID), nil, &out[i])
				if out[i].State == "sent" {
					break
				}
				if out[i].State == "failed" || out[i].State == "dead" || out[i].State == "unknown" || time.Now().After(deadline) {
					t.Fatalf("delivery %s (%s): got %s, want sent within %v", d.ID, d.Platform, out[i].State, within)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		return out
	}

	ds := waitSent(dispatch("1", []map[string]string{{"customMessage": "Variant one wording"}, {"customMessage": "Variant two wording"}}), 120*time.Second)
	count := map[string]int{}
	for _, d := range ds {
		count[d.Variant]++
	}
	if count["a"] != 4 || count["b"] != 4 {
		t.Fatalf("variants: got %v, want 4 deliveries of a and 4 of b", count)
	}

	// Wait for the readings: two per delivery, or stopped.
	metrics := map[string]engMetrics{}
	deadline := time.Now().Add(4 * time.Minute)
	for _, d := range ds {
		for {
			var m engMetrics
			s.c.must(200, "GET", "/deliveries/"+url.PathEscape(d.ID)+"/metrics", nil, &m)
			if m.Status == "done" || m.Status == "stopped" || m.Status == "deleted" {
				metrics[d.ID] = m
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: readings still %q (%d taken) after 4 min", d.Platform, m.Status, len(m.Readings))
			}
			time.Sleep(time.Second)
		}
	}

	t.Run("readings equal the simulator's figures", func(t *testing.T) {
		for _, d := range ds {
			m := metrics[d.ID]
			if d.Platform == "linkedin" {
				if m.Status != "stopped" || !strings.Contains(m.Reason, "r_member_social") {
					t.Errorf("linkedin: got %s (%s), want stopped for the missing r_member_social", m.Status, m.Reason)
				}
				continue
			}
			if m.Status != "done" || len(m.Readings) != 2 {
				t.Errorf("%s: got %s with %d readings (%s), want done with 2", d.Platform, m.Status, len(m.Readings), m.Reason)
				continue
			}
			for _, r := range m.Readings {
				if !matchesSim(t, simURL, d.Platform, m.PlatformPostID, r.ReadAt, r.Raw) {
					t.Errorf("%s reading %d at %v: raw %v match no simulator figures within 2 s", d.Platform, r.N, r.ReadAt, r.Raw)
				}
			}
			last := m.Readings[len(m.Readings)-1].Figures
			for k, v := range last {
				if m.Latest[k] != v {
					t.Errorf("%s latest %s: got %d, want %d (the last reading)", d.Platform, k, m.Latest[k], v)
				}
			}
			if _, has := last["views"]; has != (d.Platform != "bluesky" && d.Platform != "mastodon") {
				t.Errorf("%s views: present %v, want present only where the platform gives views", d.Platform, has)
			}
		}
	})

	t.Run("analytics sum the latest figures", func(t *testing.T) {
		var rep struct {
			ByPlatform []struct {
				Platform   string `json:"platform"`
				Engagement struct {
					Posts   int64            `json:"posts"`
					Figures map[string]int64 `json:"figures"`
				} `json:"engagement"`
			} `json:"byPlatform"`
		}
		s.c.must(200, "GET", "/analytics", nil, &rep)
		want := map[string]map[string]int64{}
		for _, d := range ds {
			if want[d.Platform] == nil {
				want[d.Platform] = map[string]int64{}
			}
			for k, v := range metrics[d.ID].Latest {
				want[d.Platform][k] += v
			}
		}
		for _, bp := range rep.ByPlatform {
			w := want[bp.Platform]
			if len(w) != len(bp.Engagement.Figures) {
				t.Errorf("%s: got figures %v, want %v", bp.Platform, bp.Engagement.Figures, w)
				continue
			}
			for k, v := range w {
				if bp.Engagement.Figures[k] != v {
					t.Errorf("%s %s: got %d, want %d", bp.Platform, k, bp.Engagement.Figures[k], v)
				}
			}
		}
	})

	t.Run("the variant comparison agrees", func(t *testing.T) {
		var cmp struct {
			ByPlatform []struct {
				Platform string `json:"platform"`
				Variants []struct {
					Variant      string           `json:"variant"`
					Deliveries   int              `json:"deliveries"`
					Figures      map[string]int64 `json:"figures"`
					Interactions int64            `json:"interactions"`
					Rate         *float64         `json:"rate"`
					Basis        string           `json:"basis"`
					Significance *struct {
						Note string `json:"note"`
					} `json:"significance"`
				} `json:"variants"`
			} `json:"byPlatform"`
		}
		s.c.must(200, "GET", "/posts/ab-post/variants", nil, &cmp)
		if len(cmp.ByPlatform) != 8 {
			t.Fatalf("platforms: got %d, want 8", len(cmp.ByPlatform))
		}
		for _, bp := range cmp.ByPlatform {
			for _, v := range bp.Variants {
				want := map[string]int64{}
				var inter int64
				for _, d := range ds {
					if d.Platform == bp.Platform && d.Variant == v.Variant {
						for k, n := range metrics[d.ID].Latest {
							want[k] += n
							if k != "views" {
								inter += n
							}
						}
					}
				}
				if fmt.Sprint(want) != fmt.Sprint(v.Figures) || inter != v.Interactions {
					t.Errorf("%s %s: got %v (%d interactions), want %v (%d)", bp.Platform, v.Variant, v.Figures, v.Interactions, want, inter)
				}
				if views, ok := want["views"]; ok && views > 0 && (v.Rate == nil || *v.Rate != float64(inter)/float64(views)) {
					t.Errorf("%s %s rate: got %v, want %d/%d", bp.Platform, v.Variant, v.Rate, inter, views)
				}
			}
		}
	})
	t.Run("a publish after readings is not delayed", func(t *testing.T) {
		start := time.Now()
		for _, d := range waitSent(dispatch("2", nil), 60*time.Second) {
			for _, h := range d.History {
				if h.Outcome == "deferred" {
					t.Errorf("%s: deferred, want published in its slot", d.Platform)
				}
			}
		}
		t.Logf("8 publishes during readings took %v", time.Since(start))
	})

}

// matchesSim reports whether raw equals the simulator's figures of the post
// at some whole second within 2 s of at (the function's and the
// simulator's clocks read a few milliseconds apart).
func matchesSim(t *testing.T, simURL, platform, postID string, at time.Time, raw map[string]int64) bool {
	t.Helper()
	for off := -2 * time.Second; off <= 2*time.Second; off += 250 * time.Millisecond {
		var out struct {
			Figures map[string]int64 `json:"figures"`
		}
		q := url.Values{"platform": {platform}, "id": {postID}, "at": {at.Add(off).UTC().Format(time.RFC3339Nano)}}
		simJSON(t, simURL+"/_sim/metrics?"+q.Encode(), &out)
		if fmt.Sprint(out.Figures) == fmt.Sprint(raw) {
			return true
		}
	}
	return false
}
