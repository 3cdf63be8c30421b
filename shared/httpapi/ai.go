package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/stats"
)

// aiAdapter writes a target's text with an LLM (shared/ai.Router).
type aiAdapter interface {
	Adapt(ctx context.Context, in ai.Input) (ai.Result, error)
	Usage(ctx context.Context, siteID string, from, to time.Time) ([]ai.UsageRow, error)
}

// siteSettings changes a site's settings (shared/site.Store).
type siteSettings interface {
	SetAI(ctx context.Context, id string, a site.AI) (site.Site, error)
}

// previewConcurrency bounds the targets of one preview adapted at once.
const previewConcurrency = 4

// addAIRoutes registers the AI routes and the admin's site settings.
func (s *Server) addAIRoutes() {
	s.add("POST", "/v1/ai/preview", SiteKey, s.aiPreview)
	s.add("GET", "/v1/ai/usage", SiteKey, s.aiUsage)
	s.add("PATCH", "/v1/sites/{siteId}", AdminKey, s.updateSite)
}

// updateSite answers PATCH /v1/sites/{siteId}: the admin sets a site's AI
// settings (budget, provider chain, strategy).
func (s *Server) updateSite(w http.ResponseWriter, r *http.Request, _ Principal) error {
	if s.d.SiteSettings == nil {
		return errNotConfigured("site settings")
	}
	var in site.Update
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	if in.AI == nil {
		return apperr.Invalid("ai", "is required (the only setting a site changes after creation)")
	}
	if ps := in.AI.Validate(); len(ps) > 0 {
		return apperr.InvalidProblems(ps)
	}
	st, err := s.d.SiteSettings.SetAI(r.Context(), r.PathValue("siteId"), *in.AI)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// previewTarget is one target's answer in a preview.
type previewTarget struct {
	TargetID string `json:"targetId"`
	Platform string `json:"platform"`
	Text     string `json:"text"`
	// Length is the text's count under the platform's counting rule, and
	// Limit its maximum.
	Length    int      `json:"length"`
	Limit     int      `json:"limit"`
	CountRule string   `json:"countRule"`
	AltTexts  []string `json:"altTexts"`
	// Source is ai, fallback, override or composed (the target does not
	// adapt with AI).
	Source     string  `json:"source"`
	Provider   string  `json:"provider,omitempty"`
	Model      string  `json:"model,omitempty"`
	Cost       float64 `json:"cost"`
	CostMicros int64   `json:"costMicros"`
	Estimated  bool    `json:"estimated,omitempty"`
	Cached     bool    `json:"cached,omitempty"`
	Reason     string  `json:"reason,omitempty"`
}

// aiPreview answers POST /v1/ai/preview: the dispatch body's targets, each
// with the text that would be published, written now by the AI router (or
// the override, or the composed text of a target without AI). Nothing is
// queued; a dispatch of the same revision reuses the generations, and
// overrides publish exactly what an editor approved.
func (s *Server) aiPreview(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.Targets == nil || s.d.Publishers == nil || s.d.Connections == nil {
		return errNotConfigured("preview dependency")
	}
	ctx := r.Context()
	var in dispatchRequest
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	post, plans, err := s.planRequest(ctx, p.SiteID, in, true, "preview_rejected", "nothing was previewed")
	if err != nil {
		return err
	}
	st, err := s.d.Sites.Get(ctx, p.SiteID)
	if err != nil {
		return err
	}
	out := make([]previewTarget, len(plans))
	errs := make([]error, len(plans))
	sem := make(chan struct{}, previewConcurrency)
	var wg sync.WaitGroup
	for i, pl := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = s.previewOne(ctx, st, post, pl)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"postId": post.PostID, "revision": post.Revision, "targets": out})
}

// previewOne adapts one planned target.
func (s *Server) previewOne(ctx context.Context, st site.Site, post compose.Post, pl planned) (previewTarget, error) {
	pub, _ := s.d.Publishers.Publisher(pl.t.Platform)
	lim := compose.LimitOf(pub.Capabilities())
	v := previewTarget{TargetID: pl.t.ID, Platform: string(pl.t.Platform), Text: pl.post.Text, Source: "composed",
		Limit: lim.Max, CountRule: string(lim.Rule), AltTexts: []string{}}
	switch {
	case pl.ai != nil && pl.ai.Source == ledger.AIOverride:
		v.Source = ledger.AIOverride
	case pl.ai != nil && pl.ai.Source == ledger.AIPending:
		res, err := s.d.AI.Adapt(ctx, ai.InputFor(ai.Request{
			SiteID: st.ID, PostID: post.PostID, Revision: post.Revision, Platform: pl.t.Platform, Limit: lim,
			Title: post.Title, Excerpt: post.Excerpt, Body: post.Body, Link: pl.post.Link, Media: pl.post.Media,
			Settings: pl.ai.Settings, Fallback: pl.post.Text, Validate: ai.ValidateWith(pub, pl.post),
			BudgetMicros: st.AI.BudgetMicros(s.d.AIDefaultBudgetMicros), Chain: st.AI.Providers, Strategy: st.AI.Strategy,
		}))
		if err != nil {
			return previewTarget{}, err
		}
		v.Text, v.AltTexts, v.Source = res.Text, res.AltTexts, res.Source
		v.Provider, v.Model, v.CostMicros, v.Estimated, v.Cached, v.Reason = res.Provider, res.Model, res.CostMicros, res.Estimated, res.Cached, res.Reason
		v.Cost = float64(res.CostMicros) / 1e6
	}
	v.Length = lim.Count(v.Text)
	return v, nil
}

// aiUsage answers GET /v1/ai/usage?from=&to=: calls, tokens and cost by
// day, provider and model, with totals, from the UTC day from to the UTC
// day to (default: the 30 days ending today).
func (s *Server) aiUsage(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.AI == nil {
		return writeJSON(w, http.StatusOK, usageView{Items: []ai.UsageRow{}})
	}
	from, to, err := dayRange(r, s.d.Now())
	if err != nil {
		return err
	}
	rows, err := s.d.AI.Usage(r.Context(), p.SiteID, from, to)
	if err != nil {
		return err
	}
	v := usageView{From: from.Format(stats.DateLayout), To: to.Format(stats.DateLayout), Items: rows}
	if v.Items == nil {
		v.Items = []ai.UsageRow{}
	}
	for _, row := range rows {
		v.Total.Calls += row.Calls
		v.Total.Failures += row.Failures
		v.Total.InputTokens += row.InputTokens
		v.Total.OutputTokens += row.OutputTokens
		v.Total.CostMicros += row.CostMicros
	}
	v.Total.Cost = float64(v.Total.CostMicros) / 1e6
	return writeJSON(w, http.StatusOK, v)
}

// usageView is the answer of GET /v1/ai/usage.
type usageView struct {
	From  string        `json:"from"`
	To    string        `json:"to"`
	Items []ai.UsageRow `json:"items"`
	Total struct {
		Calls        int64   `json:"calls"`
		Failures     int64   `json:"failures"`
		InputTokens  int64   `json:"inputTokens"`
		OutputTokens int64   `json:"outputTokens"`
		CostMicros   int64   `json:"costMicros"`
		Cost         float64 `json:"cost"`
	} `json:"total"`
}
