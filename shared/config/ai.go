package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AIProviders are the LLM providers POSSE can adapt posts with, in their
// default order of preference (the "quality" strategy's order).
var AIProviders = []string{"openai", "anthropic", "gemini", "cohere"}

// AIProvider is one LLM provider's settings. A provider without an API key
// is not configured.
type AIProvider struct {
	Name    string
	APIKey  string
	Model   string // "" = the client's default model
	BaseURL string // "" = the provider's public API
}

// String never shows the key, so printing a Config cannot leak it.
func (p AIProvider) String() string {
	k := ""
	if p.APIKey != "" {
		k = " key:[REDACTED]"
	}
	return "{" + p.Name + " model:" + p.Model + " base:" + p.BaseURL + k + "}"
}

// GoString is String for %#v.
func (p AIProvider) GoString() string { return p.String() }

// AI holds the AI adaptation settings (dispatch and api functions).
type AI struct {
	// Providers are the configured providers (those with an API key), in
	// the order of POSSE_AI_PROVIDERS (default: AIProviders' order). Keys
	// come from POSSE_AI_<P>_API_KEY or from the platform secret's
	// <P>_API_KEY; POSSE_AI_<P>_MODEL and POSSE_AI_<P>_BASE_URL override
	// the model and the endpoint.
	Providers []AIProvider
	// Strategy (POSSE_AI_STRATEGY: cost, latency or quality; default cost)
	// orders the chain of a site that chose none.
	Strategy string
	// ChainBudget (POSSE_AI_CHAIN_BUDGET, default 8s) bounds one adaptation
	// through every provider; CallTimeout (POSSE_AI_CALL_TIMEOUT, default
	// 5s) bounds one provider call.
	ChainBudget time.Duration
	CallTimeout time.Duration
	// DefaultMonthlyBudgetMicros (POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD,
	// default 5) is the monthly AI budget of a site whose admin set none,
	// in micro-USD; 0 turns AI off for such sites.
	DefaultMonthlyBudgetMicros int64
	// Prices (POSSE_AI_PRICES) is a JSON price table merged over the one in
	// the repository (shared/ai/prices.json).
	Prices string
	// MaxOutputTokens (POSSE_AI_MAX_OUTPUT_TOKENS, default 1000) bounds an
	// answer.
	MaxOutputTokens int
}

// Configured reports whether any provider can be called.
func (a AI) Configured() bool { return len(a.Providers) > 0 }

// aiKeyName is the platform secret's key (and, with POSSE_AI_, the
// environment's name) of provider p's API key.
func aiKeyName(p string) string { return strings.ToUpper(p) + "_API_KEY" }

// LoadAI reads the AI settings with getenv. secret holds the API keys found
// in the platform secret (WithPlatformSecret keeps them in Config.AIKeys);
// a key there replaces the environment's.
func LoadAI(getenv func(string) string, secret Secrets) (AI, error) {
	a := AI{Strategy: "cost", ChainBudget: 8 * time.Second, CallTimeout: 5 * time.Second,
		DefaultMonthlyBudgetMicros: 5_000_000, MaxOutputTokens: 1000, Prices: strings.TrimSpace(getenv("POSSE_AI_PRICES"))}
	var errs []error
	order := AIProviders
	if v := strings.TrimSpace(getenv("POSSE_AI_PROVIDERS")); v != "" {
		order = nil
		seen := map[string]bool{}
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if !contains(AIProviders, name) {
				errs = append(errs, fmt.Errorf("config: POSSE_AI_PROVIDERS names %q; use some of %s", name, strings.Join(AIProviders, ", ")))
				continue
			}
			if !seen[name] {
				seen[name] = true
				order = append(order, name)
			}
		}
	}
	for _, name := range order {
		up := "POSSE_AI_" + strings.ToUpper(name)
		p := AIProvider{Name: name, APIKey: strings.TrimSpace(getenv(up + "_API_KEY")),
			Model: strings.TrimSpace(getenv(up + "_MODEL")), BaseURL: strings.TrimRight(strings.TrimSpace(getenv(up+"_BASE_URL")), "/")}
		if k := strings.TrimSpace(secret[aiKeyName(name)]); k != "" {
			p.APIKey = k
		}
		if p.BaseURL != "" {
			if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("config: %s_BASE_URL must be an http(s) URL, got %q", up, p.BaseURL))
			}
		}
		if p.APIKey != "" {
			a.Providers = append(a.Providers, p)
		}
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("POSSE_AI_STRATEGY"))); v {
	case "":
	case "cost", "latency", "quality":
		a.Strategy = v
	default:
		errs = append(errs, fmt.Errorf("config: POSSE_AI_STRATEGY must be cost, latency or quality, got %q", v))
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
		max  time.Duration
	}{
		{"POSSE_AI_CHAIN_BUDGET", &a.ChainBudget, 40 * time.Second},
		{"POSSE_AI_CALL_TIMEOUT", &a.CallTimeout, 40 * time.Second},
	} {
		v := strings.TrimSpace(getenv(d.name))
		if v == "" {
			continue
		}
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 || t > d.max {
			errs = append(errs, fmt.Errorf("config: %s must be a duration from 1ms to %s (inside the dispatch function's 60 s), got %q", d.name, d.max, v))
			continue
		}
		*d.dst = t
	}
	if v := strings.TrimSpace(getenv("POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD")); v != "" {
		usd, err := strconv.ParseFloat(v, 64)
		if err != nil || usd < 0 || usd > 1e6 || math.IsNaN(usd) {
			errs = append(errs, fmt.Errorf("config: POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD must be a number of dollars from 0 to 1000000, got %q", v))
		} else {
			a.DefaultMonthlyBudgetMicros = int64(math.Round(usd * 1e6))
		}
	}
	if v := strings.TrimSpace(getenv("POSSE_AI_MAX_OUTPUT_TOKENS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 50 || n > 8000 {
			errs = append(errs, fmt.Errorf("config: POSSE_AI_MAX_OUTPUT_TOKENS must be a whole number from 50 to 8000, got %q", v))
		} else {
			a.MaxOutputTokens = n
		}
	}
	if len(errs) > 0 {
		return AI{}, errors.Join(errs...)
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
