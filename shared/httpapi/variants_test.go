package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/target"
)

func TestDispatchWithVariants(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	body := dispatchBody(goodPost, []string{f.tx, f.tbsky}, `,"variants":[{"customMessage":"Version one"},{"customMessage":"Version two"}]`)
	w := f.do("POST", "/v1/dispatch", f.siteKey, body)
	if w.Code != http.StatusAccepted {
		t.Fatalf("dispatch: got %d %s, want 202", w.Code, w.Body)
	}
	var resp dispatchResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range resp.Deliveries {
		want := map[string]string{"a": "Version one", "b": "Version two"}[d.Variant]
		if want == "" || !strings.Contains(d.Text, want) {
			t.Errorf("delivery %s: got variant %q text %q, want a or b with its message", d.TargetID, d.Variant, d.Text)
		}
		seen[d.Variant] = true
	}
	if len(seen) != 2 {
		t.Errorf("variants used: got %v, want both a and b (one per target)", seen)
	}
	// The same request gets the same assignment.
	w2 := f.do("POST", "/v1/dispatch", f.siteKey, body)
	var again dispatchResponse
	_ = json.Unmarshal(w2.Body.Bytes(), &again)
	for i := range again.Deliveries {
		if again.Deliveries[i].Variant != resp.Deliveries[i].Variant {
			t.Errorf("repeat: got variant %q, want %q", again.Deliveries[i].Variant, resp.Deliveries[i].Variant)
		}
	}
}

func TestAssignVariantsIsBalancedPerPlatform(t *testing.T) {
	t.Parallel()
	var plans []planned
	for _, p := range []struct {
		name platform.Name
		n    int
	}{{platform.X, 5}, {platform.Bluesky, 3}, {platform.Mastodon, 1}} {
		for i := range p.n {
			plans = append(plans, planned{t: target.Target{ID: string(p.name) + string(rune('0'+i)), Platform: p.name}})
		}
	}
	for k := 2; k <= 4; k++ {
		got := assignVariants("post-1", plans, k)
		per := map[platform.Name]map[int]int{}
		total := map[int]int{}
		for _, pl := range plans {
			if per[pl.t.Platform] == nil {
				per[pl.t.Platform] = map[int]int{}
			}
			per[pl.t.Platform][got[pl.t.ID]]++
			total[got[pl.t.ID]]++
		}
		for p, counts := range per {
			lo, hi := 1<<30, 0
			for v := range k {
				lo, hi = min(lo, counts[v]), max(hi, counts[v])
			}
			if hi-lo > 1 {
				t.Errorf("k=%d %s: got counts %v, want them within one of each other", k, p, counts)
			}
		}
		if len(total) != k {
			t.Errorf("k=%d: got variants %v in use, want all %d", k, total, k)
		}
		again := assignVariants("post-1", plans, k)
		for id, v := range got {
			if again[id] != v {
				t.Fatalf("k=%d: assignment not deterministic for %s", k, id)
			}
		}
	}
}

func TestDispatchVariantsBadInput(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	tests := []struct {
		name, extra, field string
		targets            []string
	}{
		{"one variant", `,"variants":[{"customMessage":"only"}]`, "variants", nil},
		{"five variants", `,"variants":[{"customMessage":"1"},{"customMessage":"2"},{"customMessage":"3"},{"customMessage":"4"},{"customMessage":"5"}]`, "variants", nil},
		{"identical", `,"variants":[{"customMessage":"same"},{"customMessage":" same "}]`, "variants[1]", nil},
		{"empty entry", `,"variants":[{"customMessage":"one"},{}]`, "variants[1]", nil},
		{"fewer targets", `,"variants":[{"customMessage":"1"},{"customMessage":"2"},{"customMessage":"3"}]`, "variants", nil},
		{"count without AI", `,"requestAiAssets":false,"variants":{"count":2}`, "variants.count", nil},
		{"count out of range", `,"variants":{"count":7}`, "variants.count", nil},
		{"override of another target", `,"variants":[{"customMessage":"1"},{"overrides":{"tgt_nope":"x"}}]`, "variants[1].overrides.tgt_nope", nil},
		{"with top-level overrides", `,"overrides":{"` + "TX" + `":"x"},"variants":[{"customMessage":"1"},{"customMessage":"2"}]`, "overrides", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := []string{f.tx, f.tbsky}
			extra := strings.ReplaceAll(tt.extra, `"TX"`, `"`+f.tx+`"`)
			before := f.w.n["delivery"]
			w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, ids, extra))
			if w.Code != http.StatusUnprocessableEntity || !hasField(problemOf(t, w.Body.String()), tt.field) {
				t.Fatalf("got %d %s, want 422 naming %s", w.Code, w.Body, tt.field)
			}
			if f.w.n["delivery"] != before {
				t.Errorf("delivery writes: got %d, want %d (none)", f.w.n["delivery"], before)
			}
		})
	}
}

func TestPostVariants(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	// X gives views: a 100/10000 (1%), b 200/10000 (2%): significant.
	f.seedSent(f.siteID, "dlv_1", "p1", "r1", platform.X, "a", map[string]int64{"views": 10000, "likes": 100})
	f.seedSent(f.siteID, "dlv_2", "p1", "r1", platform.X, "b", map[string]int64{"views": 10000, "likes": 200})
	// Bluesky gives no views: raw figures, not enough data.
	f.seedSent(f.siteID, "dlv_3", "p1", "r1", platform.Bluesky, "a", map[string]int64{"likes": 3})
	f.seedSent(f.siteID, "dlv_4", "p1", "r1", platform.Bluesky, "b", map[string]int64{"likes": 4})
	w := f.do("GET", "/v1/posts/p1/variants", f.siteKey, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET variants: got %d %s", w.Code, w.Body)
	}
	var got variantsView
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.ByPlatform) != 2 {
		t.Fatalf("byPlatform: got %+v, want bluesky and x", got.ByPlatform)
	}
	bsky, x := got.ByPlatform[0], got.ByPlatform[1]
	if b := bsky.Variants[1]; b.Basis != "raw" || b.Rate != nil || b.Significance == nil || !strings.Contains(b.Significance.Note, "not enough data") {
		t.Errorf("bluesky b: got %+v, want raw, no rate, not enough data", b)
	}
	b := x.Variants[1]
	if b.Rate == nil || *b.Rate != 0.02 || b.Lift == nil || *b.Lift != 1 || b.Significance == nil || !b.Significance.Significant {
		t.Errorf("x b: got %+v, want rate 0.02, lift 1 (100%%), significant", b)
	}
	if len(got.Variants) != 2 || got.Variants[1].Figures["likes"] != 204 {
		t.Errorf("overall: got %+v, want a and b with every platform's likes", got.Variants)
	}
	if w := f.do("GET", "/v1/posts/p1/variants", f.otherKey, ""); w.Code != http.StatusNotFound {
		t.Errorf("another site: got %d, want 404", w.Code)
	}
	_ = ledger.StateSent
}

func TestDispatchVariantsWrittenByAI(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	f.srv.d.AIConfigured = true
	w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tx, f.tbsky}, `,"requestAiAssets":true,"variants":{"count":2}`))
	if w.Code != http.StatusAccepted {
		t.Fatalf("dispatch: got %d %s, want 202", w.Code, w.Body)
	}
	var resp dispatchResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	for _, d := range resp.Deliveries {
		if d.AI == nil || d.AI.Source != ledger.AIPending {
			t.Errorf("delivery %s: got AI %+v, want pending (the router writes each variant)", d.TargetID, d.AI)
		}
		labels[d.Variant] = true
	}
	if !labels["a"] || !labels["b"] {
		t.Errorf("variants: got %v, want a and b", labels)
	}
	if ledger.VariantIndex("b") != 1 || ledger.VariantIndex("") != 0 {
		t.Errorf("VariantIndex: b is %d, empty is %d; want 1 and 0 (ai.Input.Variant)", ledger.VariantIndex("b"), ledger.VariantIndex(""))
	}
}
