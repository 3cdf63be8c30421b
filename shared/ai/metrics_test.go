package ai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/metrics"
)

// TestCallsAndCostAreMetrics: every provider call counts one AICalls by
// provider and outcome, and its cost adds to AICostMicros by provider;
// nothing names the site.
func TestCallsAndCostAreMetrics(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	rec := metrics.New(metrics.Options{Function: "dispatch", Writer: &out})
	st := newMemStore()
	r := newTestRouter(t, st, Config{Metrics: rec},
		provider(llm.OpenAI, fails(llm.CodeServer, 0)),
		provider(llm.Anthropic, answers(goodText)))
	in := baseInput()
	in.Chain = []llm.Name{llm.OpenAI, llm.Anthropic}
	res, err := r.Adapt(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != string(llm.Anthropic) || res.CostMicros <= 0 {
		t.Fatalf("result: got %+v, want anthropic's answer at a cost", res)
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, name := range []string{metrics.AICalls, metrics.AICostMicros} {
			if v, ok := m[name]; ok {
				key := fmt.Sprint(name, "/", m["Provider"])
				if o, ok := m["Outcome"]; ok {
					key += fmt.Sprint("/", o)
				}
				got[key] = fmt.Sprint(v)
			}
		}
		if strings.Contains(line, "site_a") || strings.Contains(line, "post_1") {
			t.Errorf("a metric line names the site or the post: %s", line)
		}
	}
	want := map[string]string{
		"AICalls/openai/server_error": "1",
		"AICalls/anthropic/ok":        "1",
		"AICostMicros/openai":         "0",
		"AICostMicros/anthropic":      fmt.Sprint(res.CostMicros),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics: got %v, want %v", got, want)
	}
}
