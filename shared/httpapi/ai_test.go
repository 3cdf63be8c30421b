package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/site"
)

// fakeAI is the AI router: it writes "AI <platform>: <title> <link>" and
// records what it was asked.
type fakeAI struct {
	mu  sync.Mutex
	ins []ai.Input
}

func (f *fakeAI) Adapt(_ context.Context, in ai.Input) (ai.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ins = append(f.ins, in)
	return ai.Result{Text: "AI " + string(in.Platform) + ": " + in.Title + " " + in.Link, Source: ai.SourceAI,
		Provider: "gemini", Model: "m", CostMicros: 42}, nil
}

func (f *fakeAI) Usage(context.Context, string, time.Time, time.Time) ([]ai.UsageRow, error) {
	return []ai.UsageRow{{Day: "2026-11-26", Provider: "gemini", Model: "m", Calls: 3, InputTokens: 30, OutputTokens: 9, CostMicros: 126}}, nil
}

// fakeSiteSettings keeps AI settings on the fixture's fake sites.
type fakeSiteSettings struct{ sites *fakeSites }

func (f fakeSiteSettings) SetAI(_ context.Context, id string, a site.AI) (site.Site, error) {
	f.sites.mu.Lock()
	defer f.sites.mu.Unlock()
	s, ok := f.sites.sites[id]
	if !ok {
		return site.Site{}, apperr.NotFound("site")
	}
	s.AI = a
	f.sites.sites[id] = s
	return s, nil
}

func newAIFixture(t *testing.T, configured bool) (*pubFixture, *fakeAI) {
	t.Helper()
	f := newPubFixture(t)
	fa := &fakeAI{}
	f.srv.d.AI, f.srv.d.AIConfigured, f.srv.d.AIDefaultBudgetMicros = fa, configured, 5_000_000
	f.srv.d.SiteSettings = fakeSiteSettings{sites: f.sites}
	return f, fa
}

func TestDispatchWithoutProviderRefusesAIAndWritesNothing(t *testing.T) {
	t.Parallel()
	f, _ := newAIFixture(t, false)
	w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tx}, `,"requestAiAssets":true`))
	if w.Code != 422 || problemOf(t, w.Body.String()).Code != "ai_not_configured" {
		t.Fatalf("got %d %s, want 422 ai_not_configured", w.Code, w.Body)
	}
	if n := f.w.total(); n != 0 {
		t.Fatalf("writes: got %d, want 0", n)
	}
}

func TestDispatchAIRequestAndOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		extra      string
		wantStatus int
		wantFields []string
	}{
		{"override for a target not dispatched", `,"overrides":{"tgt_nope":"hi"}`, 422, []string{"overrides.tgt_nope"}},
		{"empty override", `,"overrides":{"TX":"  "}`, 422, []string{"overrides.TX"}},
		{"override over X's limit", `,"overrides":{"TX":"` + strings.Repeat("long words ", 40) + `"}`, 422, []string{"overrides.TX"}},
		{"overrides of the wrong type", `,"overrides":["a"]`, 400, []string{"overrides"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := newAIFixture(t, true)
			extra := strings.ReplaceAll(tt.extra, "TX", f.tx)
			w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tx, f.tbsky}, extra))
			if w.Code != tt.wantStatus {
				t.Fatalf("status: got %d %s, want %d", w.Code, w.Body, tt.wantStatus)
			}
			p := problemOf(t, w.Body.String())
			for _, field := range tt.wantFields {
				field = strings.ReplaceAll(field, "TX", f.tx)
				if !hasField(p, field) {
					t.Errorf("problems %+v do not name %s", p.Errors, field)
				}
			}
			if tt.name == "override over X's limit" && !strings.Contains(w.Body.String(), "the limit is 280") {
				t.Errorf("the problem does not state X's limit: %s", w.Body)
			}
			if n := f.w.total(); n != 0 {
				t.Fatalf("writes: got %d, want 0", n)
			}
		})
	}

	t.Run("pending adaptation and an override", func(t *testing.T) {
		t.Parallel()
		f, _ := newAIFixture(t, true)
		w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tx, f.tbsky},
			`,"requestAiAssets":true,"overrides":{"`+f.tbsky+`":"Approved words https://blog.example/p"}`))
		if w.Code != 202 {
			t.Fatalf("got %d %s, want 202", w.Code, w.Body)
		}
		byTarget := deliveriesByTarget(t, w.Body.Bytes())
		if d := byTarget[f.tx]; d.AI == nil || d.AI.Source != ledger.AIPending || !d.AI.Settings.Enabled || d.AI.Settings.MaxHashtags != 3 {
			t.Errorf("X delivery ai: got %+v, want pending with the target's default settings", d.AI)
		}
		if d := byTarget[f.tbsky]; d.AI == nil || d.AI.Source != ledger.AIOverride || d.Text != "Approved words https://blog.example/p" {
			t.Errorf("Bluesky delivery: got ai %+v text %q, want the override", d.AI, d.Text)
		}
	})

	t.Run("a target with AI disabled keeps its composed text", func(t *testing.T) {
		t.Parallel()
		f, _ := newAIFixture(t, true)
		if w := f.do("PATCH", "/v1/targets/"+f.tbsky, f.siteKey, `{"ai":{"enabled":false}}`); w.Code != 200 {
			t.Fatalf("disable AI: got %d %s", w.Code, w.Body)
		}
		w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tbsky}, `,"requestAiAssets":true`))
		if w.Code != 202 {
			t.Fatalf("got %d %s, want 202", w.Code, w.Body)
		}
		if d := deliveriesByTarget(t, w.Body.Bytes())[f.tbsky]; d.AI != nil {
			t.Errorf("ai: got %+v, want none", d.AI)
		}
	})
}

func deliveriesByTarget(t *testing.T, body []byte) map[string]ledger.Delivery {
	t.Helper()
	var out struct{ Deliveries []ledger.Delivery }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	m := map[string]ledger.Delivery{}
	for _, d := range out.Deliveries {
		m[d.TargetID] = d
	}
	return m
}

func TestTargetAISettingsRejectUnknownFields(t *testing.T) {
	t.Parallel()
	f, _ := newAIFixture(t, true)
	w := f.do("PATCH", "/v1/targets/"+f.tx, f.siteKey, `{"ai":{"colour":"blue"}}`)
	if w.Code != 400 || !hasField(problemOf(t, w.Body.String()), "colour") {
		t.Errorf("got %d %s, want 400 naming colour", w.Code, w.Body)
	}
}

func TestSiteAISettings(t *testing.T) {
	t.Parallel()
	f, _ := newAIFixture(t, true)
	path := "/v1/sites/" + f.siteID
	for _, tt := range []struct {
		key, body string
		status    int
		field     string
	}{
		{f.siteKey, `{"ai":{"monthlyBudgetUsd":1}}`, 403, ""},
		{adminKey, `{"ai":{"monthlyBudgetUsd":-1}}`, 400, "ai.monthlyBudgetUsd"},
		{adminKey, `{"ai":{"providers":["openai","mistral"]}}`, 400, "ai.providers[1]"},
		{adminKey, `{"ai":{"strategy":"cheapest"}}`, 400, "ai.strategy"},
		{adminKey, `{}`, 400, "ai"},
	} {
		w := f.do("PATCH", path, tt.key, tt.body)
		if w.Code != tt.status || (tt.field != "" && !hasField(problemOf(t, w.Body.String()), tt.field)) {
			t.Errorf("PATCH %s: got %d %s, want %d naming %q", tt.body, w.Code, w.Body, tt.status, tt.field)
		}
	}
	w := f.do("PATCH", path, adminKey, `{"ai":{"monthlyBudgetUsd":2.5,"providers":["gemini","openai"],"strategy":"quality"}}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"monthlyBudgetUsd":2.5`) {
		t.Fatalf("valid settings: got %d %s", w.Code, w.Body)
	}
	if w := f.do("PATCH", "/v1/sites/site_nope", adminKey, `{"ai":{"monthlyBudgetUsd":1}}`); w.Code != 404 {
		t.Errorf("unknown site: got %d, want 404", w.Code)
	}
}

func TestAIPreviewAndUsage(t *testing.T) {
	t.Parallel()
	f, fa := newAIFixture(t, true)
	w := f.do("PATCH", "/v1/sites/"+f.siteID, adminKey, `{"ai":{"monthlyBudgetUsd":0.5,"providers":["cohere"]}}`)
	if w.Code != 200 {
		t.Fatalf("site settings: got %d %s", w.Code, w.Body)
	}
	w = f.do("POST", "/v1/ai/preview", f.siteKey, dispatchBody(goodPost, []string{f.tx, f.tbsky}, `,"overrides":{"`+f.tbsky+`":"Mine"}`))
	if w.Code != 200 {
		t.Fatalf("preview: got %d %s", w.Code, w.Body)
	}
	var pv struct {
		Targets []previewTarget `json:"targets"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &pv); err != nil {
		t.Fatal(err)
	}
	if len(pv.Targets) != 2 || pv.Targets[0].Source != "ai" || pv.Targets[0].Limit != 280 || pv.Targets[0].CostMicros != 42 ||
		pv.Targets[0].Length == 0 || pv.Targets[1].Source != "override" || pv.Targets[1].Text != "Mine" {
		t.Fatalf("preview: got %+v", pv.Targets)
	}
	if len(fa.ins) != 1 || fa.ins[0].Budget != 500_000 || len(fa.ins[0].Chain) != 1 || fa.ins[0].Chain[0] != "cohere" || fa.ins[0].DeliveryID != "" {
		t.Errorf("router input: got %+v, want the site's budget and chain, no delivery", fa.ins)
	}
	if n := f.w.get("message"); n != 0 {
		t.Errorf("preview queued %d messages, want 0", n)
	}
	w = f.do("GET", "/v1/ai/usage?from=2026-11-01&to=2026-11-30", f.siteKey, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"total":{"calls":3`) {
		t.Fatalf("usage: got %d %s", w.Code, w.Body)
	}
	if w := f.do("GET", "/v1/ai/usage?from=2026-12-01&to=2026-11-01", f.siteKey, ""); w.Code != 400 {
		t.Errorf("usage with to before from: got %d, want 400", w.Code)
	}
}
