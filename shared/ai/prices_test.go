package ai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/llm"
)

func TestDefaultPrices(t *testing.T) {
	t.Parallel()
	ps := DefaultPrices().Prices()
	have := map[llm.Name]bool{}
	for _, p := range ps {
		have[p.Provider] = true
		if p.Source == "" || p.Date == "" || p.InputMicrosPerMTok <= 0 || p.OutputMicrosPerMTok <= 0 {
			t.Errorf("row %+v lacks a price, source or date", p)
		}
	}
	for _, n := range llm.All {
		if !have[n] {
			t.Errorf("no price for %s", n)
		}
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	pt := DefaultPrices()
	tests := []struct {
		provider  llm.Name
		model     string
		in, out   int
		want      int64
		estimated bool
	}{
		{llm.OpenAI, "gpt-4.1-nano", 1000, 300, 220, false},
		{llm.OpenAI, "gpt-4.1-nano-2025-04-14", 1000, 300, 220, false}, // a dated snapshot
		{llm.Gemini, "models/gemini-2.5-flash-lite", 1000, 300, 220, false},
		{llm.Anthropic, "claude-haiku-4-5-20251001", 1000, 300, 2500, false},
		{llm.Cohere, "command-r7b-12-2024", 1000, 300, 83, false}, // 82.5 rounded up
		{llm.Cohere, "command-r7b-12-2024", 1, 0, 1, false},       // any use costs at least a micro-USD
		{llm.Cohere, "command-r7b-12-2024", 0, 0, 0, false},
		{llm.OpenAI, "gpt-9-giant", 1000, 300, 220, true},           // unknown: the provider's dearest input and output
		{llm.Anthropic, "claude-haiku-4-5x", 1000, 300, 2500, true}, // not a dated snapshot
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			t.Parallel()
			got, est := pt.Cost(tt.provider, tt.model, tt.in, tt.out)
			if got != tt.want || est != tt.estimated {
				t.Errorf("Cost(%s, %s, %d, %d): got %d (estimated %v), want %d (%v)", tt.provider, tt.model, tt.in, tt.out, got, est, tt.want, tt.estimated)
			}
		})
	}
}

func TestParsePrices(t *testing.T) {
	t.Parallel()
	pt, err := ParsePrices(`[{"provider":"openai","model":"gpt-4.1-nano","inputPerMTok":0.2,"outputPerMTok":0.8},
		{"provider":"openai","model":"gpt-5-mini","inputPerMTok":0.25,"outputPerMTok":2.000001}]`)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pt.Cost(llm.OpenAI, "gpt-4.1-nano", 1000, 300); got != 440 {
		t.Errorf("overridden price: got %d, want 440", got)
	}
	p, ok := pt.Lookup(llm.OpenAI, "gpt-5-mini")
	if !ok || p.InputMicrosPerMTok != 250_000 || p.OutputMicrosPerMTok != 2_000_001 {
		t.Errorf("added row: got %+v, %v", p, ok)
	}
	if _, ok := pt.Lookup(llm.Anthropic, "claude-haiku-4-5"); !ok {
		t.Error("a default row was lost")
	}
	if def, err := ParsePrices("  "); err != nil || len(def.Prices()) != len(DefaultPrices().Prices()) {
		t.Errorf("empty configuration: got %v, want the defaults", err)
	}
	for _, bad := range []string{
		`{}`, `[{"provider":"mistral","model":"m","inputPerMTok":1,"outputPerMTok":1}]`,
		`[{"provider":"openai","model":"","inputPerMTok":1,"outputPerMTok":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":-1,"outputPerMTok":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":1e-7,"outputPerMTok":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":0.0000001,"outputPerMTok":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":99999,"outputPerMTok":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":1,"outputPerMTok":1,"extra":1}]`,
		`[{"provider":"openai","model":"m","inputPerMTok":1,"outputPerMTok":1},{"provider":"openai","model":"m","inputPerMTok":1,"outputPerMTok":1}]`,
	} {
		if _, err := ParsePrices(bad); err == nil || !strings.HasPrefix(err.Error(), "parse AI prices") {
			t.Errorf("ParsePrices(%s): got %v, want an error", bad, err)
		}
	}
}

func TestParseMicros(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "1": 1_000_000, "0.0375": 37_500, "0.000001": 1, "12.5": 12_500_000} {
		if got, err := parseMicros(json.Number(in)); err != nil || got != want {
			t.Errorf("parseMicros(%s): got %d, %v; want %d", in, got, err, want)
		}
	}
}
