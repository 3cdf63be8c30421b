package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLoadAI(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	t.Run("defaults: nothing configured", func(t *testing.T) {
		a, err := LoadAI(env(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.Configured() || a.Strategy != "cost" || a.ChainBudget != 8*time.Second || a.DefaultMonthlyBudgetMicros != 5_000_000 {
			t.Fatalf("got %+v, want no providers, cost, 8s, $5", a)
		}
	})
	t.Run("order, models, secret keys win", func(t *testing.T) {
		a, err := LoadAI(env(map[string]string{
			"POSSE_AI_PROVIDERS":                  "gemini, openai,cohere",
			"POSSE_AI_GEMINI_API_KEY":             "env-g",
			"POSSE_AI_OPENAI_API_KEY":             "env-o",
			"POSSE_AI_OPENAI_MODEL":               "gpt-x",
			"POSSE_AI_GEMINI_BASE_URL":            "http://127.0.0.1:4710/gemini/",
			"POSSE_AI_STRATEGY":                   "Quality",
			"POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD": "0.25",
		}), Secrets{"OPENAI_API_KEY": "sec-o"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range a.Providers {
			names = append(names, p.Name)
		}
		if got := strings.Join(names, ","); got != "gemini,openai" {
			t.Fatalf("providers: got %s, want gemini,openai (cohere has no key)", got)
		}
		if a.Providers[1].APIKey != "sec-o" || a.Providers[1].Model != "gpt-x" || a.Providers[0].BaseURL != "http://127.0.0.1:4710/gemini" {
			t.Fatalf("got %+v", a.Providers)
		}
		if a.Strategy != "quality" || a.DefaultMonthlyBudgetMicros != 250_000 {
			t.Fatalf("got strategy %s budget %d", a.Strategy, a.DefaultMonthlyBudgetMicros)
		}
		if s := fmt.Sprintf("%v %#v %+v", a, a, a.Providers); strings.Contains(s, "sec-o") || strings.Contains(s, "env-g") {
			t.Fatalf("printing the settings shows a key: %s", s)
		}
	})
	for _, tt := range []struct{ k, v, want string }{
		{"POSSE_AI_PROVIDERS", "openai,mistral", `POSSE_AI_PROVIDERS names "mistral"`},
		{"POSSE_AI_STRATEGY", "cheapest", "POSSE_AI_STRATEGY must be"},
		{"POSSE_AI_CHAIN_BUDGET", "2m", "POSSE_AI_CHAIN_BUDGET must be"},
		{"POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD", "-1", "POSSE_AI_DEFAULT_MONTHLY_BUDGET_USD must be"},
		{"POSSE_AI_OPENAI_BASE_URL", "ftp://x", "POSSE_AI_OPENAI_BASE_URL must be"},
		{"POSSE_AI_MAX_OUTPUT_TOKENS", "10", "POSSE_AI_MAX_OUTPUT_TOKENS must be"},
	} {
		t.Run(tt.k, func(t *testing.T) {
			_, err := LoadAI(env(map[string]string{tt.k: tt.v}), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPlatformSecretKeepsAIKeys(t *testing.T) {
	t.Parallel()
	c, err := Config{}.WithPlatformSecret(`{"ANTHROPIC_API_KEY":"sk-ant-generated","X_CLIENT_ID":"a","X_CLIENT_SECRET":"b"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.AIKeys["ANTHROPIC_API_KEY"] != "sk-ant-generated" {
		t.Fatalf("AIKeys: got %v", c.AIKeys)
	}
	if s := fmt.Sprintf("%v %#v", c.AIKeys, c.AIKeys); strings.Contains(s, "sk-ant-generated") {
		t.Fatalf("printing AIKeys shows the key: %s", s)
	}
}
