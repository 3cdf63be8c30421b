// Package llm is the one small interface POSSE speaks to large language
// model providers through, and a plain net/http client for each provider the
// product names: OpenAI (chat completions), Anthropic (messages), Google
// Gemini (generateContent) and Cohere (v2 chat).
//
// The official SDKs weigh 6-23 MB each in a linux/arm64 bootstrap and retry
// on their own; the dispatch function may grow by at most 3 MiB, and the
// router (shared/ai) decides about retries and fallbacks itself. So each
// client here makes exactly one HTTP request per Generate and never retries.
//
// Errors are *apperr.Error with one of the Code* codes below, so the router
// can decide (next provider, cooldown, honour RetryAfter) without matching
// strings. Neither prompts nor completions are ever logged or put into an
// error message: only their lengths.
package llm

import (
	"context"
	"encoding/json"
	"time"
)

// Name identifies a provider. The values appear in the API and the cost
// ledger; never rename one.
type Name string

// The supported providers.
const (
	OpenAI    Name = "openai"
	Anthropic Name = "anthropic"
	Gemini    Name = "gemini"
	Cohere    Name = "cohere"
)

// All lists every provider in a stable order.
var All = []Name{OpenAI, Anthropic, Gemini, Cohere}

// Valid reports whether n is a supported provider.
func (n Name) Valid() bool {
	for _, p := range All {
		if p == n {
			return true
		}
	}
	return false
}

// Request is one generation: instructions, the data they apply to, and the
// JSON schema the answer must follow.
type Request struct {
	// Model overrides the provider's configured model when set.
	Model string
	// System holds the instructions. It never contains the post's content.
	System string
	// User is the data block (the post, delimited). A model is told to
	// treat it as data, never as instructions.
	User string
	// SchemaName names the answer's schema (OpenAI asks for one).
	SchemaName string
	// Schema is the JSON schema of the answer: an object.
	Schema json.RawMessage
	// MaxOutputTokens bounds the answer (0: the provider's configured
	// default).
	MaxOutputTokens int
}

// Usage is what the provider reported the call consumed.
type Usage struct {
	InputTokens  int `json:"inputTokens"`
	OutputTokens int `json:"outputTokens"`
	// Reported is false when the answer carried no usage: the caller then
	// estimates the cost and flags it estimated.
	Reported bool `json:"reported"`
}

// Response is a successful generation.
type Response struct {
	// Text is the answer's content: the JSON document the schema asked for
	// (validated as JSON, not against the schema: that is the caller's job).
	Text string
	// Model is the model that answered, as the provider named it.
	Model string
	// Usage is the token count the provider reported.
	Usage Usage
	// Latency is the time from sending the request to reading the answer.
	Latency time.Duration
}

// Provider is one LLM provider's client. Implementations are safe for
// concurrent use and make exactly one HTTP request per Generate.
type Provider interface {
	// Name is the provider.
	Name() Name
	// Model is the configured model (what Generate uses when the request
	// names none).
	Model() string
	// Generate runs one generation. Errors are *apperr.Error with a Code*
	// code; RetryAfter is set when the provider said when to come back.
	Generate(ctx context.Context, req Request) (Response, error)
}

// Error codes of the *apperr.Error a Provider returns.
const (
	// CodeRateLimited: HTTP 429 (apperr.KindRateLimited, RetryAfter from
	// the retry-after header when present).
	CodeRateLimited = "llm.rate_limited"
	// CodeOverloaded: the provider is overloaded (Anthropic's 529
	// overloaded_error, a 503 saying so); KindTransient.
	CodeOverloaded = "llm.overloaded"
	// CodeServer: any other 5xx; KindTransient.
	CodeServer = "llm.server_error"
	// CodeTimeout: the call did not answer within its timeout;
	// KindTransient.
	CodeTimeout = "llm.timeout"
	// CodeTransport: the connection failed; KindTransient.
	CodeTransport = "llm.transport"
	// CodeAuth: 401/403, the API key is wrong or lacks access;
	// KindPermanent.
	CodeAuth = "llm.auth"
	// CodeBadRequest: another 4xx, e.g. an unknown model; KindPermanent.
	CodeBadRequest = "llm.bad_request"
	// CodeMalformed: the answer is not the documented shape, or its content
	// is not a JSON object; KindTransient.
	CodeMalformed = "llm.malformed"
	// CodeRefusal: the model declined (OpenAI's refusal field, a
	// stop/finish reason of refusal or safety); KindPermanent.
	CodeRefusal = "llm.refusal"
	// CodeTruncated: the answer stopped at the token limit; KindTransient.
	CodeTruncated = "llm.truncated"
	// CodeInvalidOutput: the answer parsed but does not satisfy what the
	// caller asked (set by the router, not by providers).
	CodeInvalidOutput = "llm.invalid_output"
)
