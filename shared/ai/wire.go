package ai

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

// DefaultModel is the model used for provider n when the configuration
// names none: the cheap model of each provider that prices.json lists.
func DefaultModel(n llm.Name) string {
	switch n {
	case llm.OpenAI:
		return "gpt-4.1-nano"
	case llm.Anthropic:
		return "claude-haiku-4-5"
	case llm.Gemini:
		return "gemini-2.5-flash-lite"
	case llm.Cohere:
		return "command-r7b-12-2024"
	}
	return ""
}

// FromConfig builds the Router of a deployment: one llm client per
// configured provider (its model, or DefaultModel), the price table merged
// with a.Prices, the chain budget, call timeout, default strategy and
// output cap of a, and the function's metrics m (nil: none). It does no
// I/O. It returns a Router even when no provider is configured: Adapt then
// falls back (no_providers) and Usage still reads the history.
func FromConfig(a config.AI, db dynamoAPI, table string, m *metrics.Recorder, log *slog.Logger) (*Router, error) {
	prices, err := ParsePrices(a.Prices)
	if err != nil {
		return nil, fmt.Errorf("config: POSSE_AI_PRICES: %w", err)
	}
	ps := make([]llm.Provider, 0, len(a.Providers))
	for _, cp := range a.Providers {
		name := llm.Name(cp.Name)
		model := strings.TrimSpace(cp.Model)
		if model == "" {
			model = DefaultModel(name)
		}
		p, err := llm.New(llm.Config{Name: name, BaseURL: cp.BaseURL, APIKey: cp.APIKey, Model: model,
			MaxOutputTokens: a.MaxOutputTokens, Timeout: a.CallTimeout})
		if err != nil {
			return nil, fmt.Errorf("ai: %w", err) // llm's errors never hold the key
		}
		ps = append(ps, p)
	}
	return New(Config{
		Providers: ps, DB: db, Table: table, Prices: prices,
		ChainBudget: a.ChainBudget, CallTimeout: a.CallTimeout, Strategy: Strategy(a.Strategy),
		MaxOutputTokens: a.MaxOutputTokens, Metrics: m, Logger: log,
	})
}

// Request is one adaptation in the shapes callers hold it (the delivery's
// media, the site's budget and chain); InputFor makes it an Input.
type Request struct {
	SiteID, PostID, Revision string
	DeliveryID               string // "" for previews
	Platform                 platform.Name
	Limit                    text.Limit
	Title, Excerpt, Body     string
	Link                     string
	// Media are the post's media; with Settings.GenerateAltText the images
	// without alt text get one.
	Media    []platform.Media
	Settings Settings
	Fallback string
	Validate func(text string) []apperr.Problem
	// BudgetMicros is the site's monthly budget (0 turns AI off).
	BudgetMicros int64
	// Chain and Strategy are the site's choice ("" strategy: the
	// deployment's).
	Chain    []llm.Name
	Strategy string
	Variant  int
}

// InputFor returns the Input of r.
func InputFor(r Request) Input {
	in := Input{
		SiteID: r.SiteID, PostID: r.PostID, Revision: r.Revision, DeliveryID: r.DeliveryID, Platform: r.Platform,
		Limit: r.Limit, Title: r.Title, Excerpt: r.Excerpt, Body: r.Body, Link: r.Link, Settings: r.Settings,
		Fallback: r.Fallback, Validate: r.Validate, Budget: r.BudgetMicros, Chain: r.Chain,
		Strategy: Strategy(r.Strategy), Variant: r.Variant,
	}
	if r.Settings.GenerateAltText {
		for i, m := range r.Media {
			if m.Kind == platform.Image && strings.TrimSpace(m.AltText) == "" {
				in.ImagesNeedingAlt = append(in.ImagesNeedingAlt, Image{Index: i, URL: m.URL})
			}
		}
	}
	return in
}

// postValidator checks a post without the network: a platform adapter
// (platform.Publisher).
type postValidator interface {
	Validate(p platform.Post) []apperr.Problem
}

// ValidateWith returns an Input.Validate that checks a text as the text of
// post with v. Only the text's problems count: a media or option problem
// is no fault of the model's answer (and would reject every answer). A nil
// v checks nothing.
func ValidateWith(v postValidator, post platform.Post) func(text string) []apperr.Problem {
	if v == nil {
		return nil
	}
	return func(t string) []apperr.Problem {
		p := post
		p.Text = t
		var out []apperr.Problem
		for _, pr := range v.Validate(p) {
			if pr.Field == "text" || strings.HasPrefix(pr.Field, "text.") || strings.HasPrefix(pr.Field, "text[") {
				out = append(out, pr)
			}
		}
		return out
	}
}

// Request is the provider request Adapt sends for in: the system prompt,
// the post as a delimited data block and the answer's schema. For
// measuring a provider directly against the router (make bench).
func (r *Router) Request(in Input) (llm.Request, error) { return buildRequest(in, r.maxOut) }

// Chain is the order in which Adapt would try the providers for in now
// (cooled-down providers included).
func (r *Router) Chain(in Input) []llm.Provider { return r.chain(in) }
