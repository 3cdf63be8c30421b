// Package ai adapts a post to one platform with a large language model: it
// picks providers (shared/llm) in an order, calls them with a prompt that
// keeps the post as data, validates the answer against the platform's
// counting rule and the caller's checks, and falls back to the caller's
// deterministic text whenever no provider gives a valid answer in time. A
// post is never lost, nor delayed past the chain budget, because an LLM is
// down or over budget.
//
// Around the calls it keeps, in the one DynamoDB table (TTL attribute
// expires_at, epoch seconds):
//
//	PK=SITE#<site>#AIGEN    SK=<post>#<rev>#<platform>#<input hash>#<variant>
//	    the generation cache: one LLM generation per post revision, platform,
//	    settings and link; a lease while generating; TTL 30 days
//	PK=SITE#<site>#AIBUDGET SK=<YYYY-MM>
//	    committed_micros: the month's cost, reserved before each call
//	    (conditionally, so concurrent calls never pass the budget) and
//	    settled to the real cost after it
//	PK=SITE#<site>#AICALL   SK=<time>#<id>
//	    the cost ledger: one item per LLM call; TTL 400 days
//	PK=SITE#<site>#AIUSAGE  SK=<YYYY-MM-DD>#<provider>#<model>
//	    daily counters: calls, failures, input_tokens, output_tokens,
//	    cost_micros; TTL 400 days
//	PK=AI#COOLDOWN          SK=<provider>
//	    failures in the current window and the end of a cooldown, shared
//	    by every warm instance
//
// Costs are integers in micro-USD (1e-6 USD). Neither prompts nor answers
// are ever logged, stored in the ledger or put into an error: only their
// lengths and SHA-256 hashes.
//
// Only AI texts are cached. A chain that falls back marks its generation
// item failed: Adapt calls waiting on it in the same burst fall back too
// (calling the same failing providers again would only spend the chain
// budget), and the next Adapt, a retry minutes later, tries the providers
// again. A delivery freezes whatever text it got, so either way a retry
// publishes the same words.
//
// DynamoDB calls of one Adapt: a cache hit makes 1 (GetItem). A miss
// answered by the first provider makes 8: GetItem (cache), PutItem
// (lease), Query (cooldowns; skipped when this instance read them less
// than 2 s ago), UpdateItem (reserve), then side by side UpdateItem
// (settle; skipped when the cost equals the reservation), PutItem (ledger)
// and UpdateItem (daily counters), and PutItem (cache). Each further
// provider tried adds 4, plus 1-3 UpdateItems when its failure counts
// toward a cooldown.
package ai

import (
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

// Image is an image of the post that needs alt text.
type Image struct {
	// Index is the image's position in the post's media.
	Index int    `json:"index"`
	URL   string `json:"url"`
}

// Strategy orders the provider chain.
type Strategy string

// The strategies.
const (
	// StrategyCost tries the cheapest provider first, by the price table
	// for a typical call. It is the default.
	StrategyCost Strategy = "cost"
	// StrategyLatency tries the provider that answered fastest on this
	// instance first (an exponentially weighted moving average; a provider
	// not measured yet counts Config.TypicalLatency).
	StrategyLatency Strategy = "latency"
	// StrategyQuality keeps the operator's ranking: the order of
	// Config.Providers, or of Input.Chain when the site gave one.
	StrategyQuality Strategy = "quality"
)

// Valid reports whether s is a strategy; "" (the default) is valid.
func (s Strategy) Valid() bool {
	switch s {
	case "", StrategyCost, StrategyLatency, StrategyQuality:
		return true
	}
	return false
}

// Input is one adaptation: one post for one platform.
type Input struct {
	SiteID   string
	PostID   string
	Revision string
	// DeliveryID is recorded in the cost ledger; empty for previews.
	DeliveryID string
	Platform   platform.Name
	// Limit is the platform's text limit (counting rule, maximum, byte
	// cap); the answer must fit it.
	Limit   text.Limit
	Title   string
	Excerpt string
	Body    string
	// Link is the exact link the text must carry once, verbatim; "" means
	// the text must carry no URL at all.
	Link     string
	Settings Settings
	// ImagesNeedingAlt lists the images to write alt text for (only when
	// Settings.GenerateAltText).
	ImagesNeedingAlt []Image
	// Fallback is the deterministic text the caller composed: what is
	// published when no provider gives a valid answer.
	Fallback string
	// Validate is the platform adapter's check of the final post's text;
	// nil checks nothing more.
	Validate func(text string) []apperr.Problem
	// Budget is the site's monthly AI budget in micro-USD; 0 turns AI off.
	Budget int64
	// Chain is the site's chain: these providers (those configured), in
	// this order. Empty means every configured provider, in the order of
	// Strategy.
	Chain []llm.Name
	// Strategy orders the providers when Chain is empty; "" means
	// Config.Strategy.
	Strategy Strategy
	// Variant 0 is the default wording; a positive variant asks for a
	// distinct wording (and is cached apart).
	Variant int
}

// The sources of a Result's text.
const (
	SourceAI       = "ai"       // the model's answer, validated
	SourceFallback = "fallback" // the caller's deterministic text
)

// Reasons a Result falls back. ReasonAllFailed is followed by ": " and one
// provider=code pair per provider of the chain, e.g.
// "all_providers_failed: openai=llm.rate_limited,gemini=cooldown".
const (
	ReasonAIDisabled      = "ai_disabled"      // Settings.Enabled is false
	ReasonBudgetZero      = "budget_zero"      // the site has no AI budget
	ReasonBudgetExhausted = "budget_exhausted" // the month's budget cannot pay for another call
	ReasonNoProviders     = "no_providers"     // no configured provider is in the chain
	ReasonAllFailed       = "all_providers_failed"
	ReasonCanceled        = "canceled" // the caller's context ended first
	// ReasonDeadline: the chain budget ran out while waiting for the same
	// generation in flight elsewhere.
	ReasonDeadline = "chain_budget_exhausted"
)

// Codes in a ReasonAllFailed list and in AttemptInfo besides the llm.Code*
// codes.
const (
	CodeCooldown = "cooldown" // skipped: the provider is cooling down
	CodeDeadline = "deadline" // skipped: the chain budget was used up
	CodeOK       = "ok"       // the call gave a valid answer
)

// AttemptInfo is one provider of the chain, tried or skipped.
type AttemptInfo struct {
	Provider string `json:"provider" dynamodbav:"provider"` // an llm.Name
	Model    string `json:"model" dynamodbav:"model"`
	// Code is CodeOK, an llm.Code* error code, CodeCooldown or
	// CodeDeadline.
	Code       string `json:"code" dynamodbav:"code"`
	LatencyMS  int64  `json:"latencyMs" dynamodbav:"latency_ms"`
	CostMicros int64  `json:"costMicros" dynamodbav:"cost_micros"`
}

// Result is an adaptation. Source tells whether Text is the model's
// (validated) or the caller's fallback.
type Result struct {
	Text string `json:"text" dynamodbav:"text"`
	// AltTexts holds one alt text per Input.ImagesNeedingAlt, in that
	// order ("" where the model gave none); nil on fallback.
	AltTexts []string `json:"altTexts,omitempty" dynamodbav:"alt_texts,omitempty"`
	// Source is SourceAI or SourceFallback.
	Source string `json:"source" dynamodbav:"source"`
	// Cached is true when the text came from an earlier generation of the
	// same post revision, platform, settings and link: no provider was
	// called and nothing was spent.
	Cached bool `json:"cached" dynamodbav:"cached"`
	// Provider (an llm.Name) and Model answered, for AI texts.
	Provider string `json:"provider,omitempty" dynamodbav:"provider,omitempty"`
	Model    string `json:"model,omitempty" dynamodbav:"model,omitempty"`
	// CostMicros is what this Adapt spent, failed calls included.
	CostMicros int64 `json:"costMicros" dynamodbav:"cost_micros"`
	// Estimated is true when a call's cost was estimated (no reported
	// usage, or a model missing from the price table).
	Estimated bool `json:"estimated,omitempty" dynamodbav:"estimated,omitempty"`
	// Reason says why the result fell back (a Reason* value); "" for AI.
	Reason string `json:"reason,omitempty" dynamodbav:"reason,omitempty"`
	// BudgetWarning is true when a reservation of this Adapt took the
	// month's committed cost across 80% of the budget.
	BudgetWarning bool          `json:"budgetWarning,omitempty" dynamodbav:"budget_warning,omitempty"`
	Attempts      []AttemptInfo `json:"attempts,omitempty" dynamodbav:"attempts,omitempty"`
}
