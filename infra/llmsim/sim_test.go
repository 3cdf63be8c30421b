package llmsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/llmsim"
	"github.com/posse-dev/posse/shared/llm"
)

// keys are the keys the test simulators accept.
var keys = map[llm.Name]string{
	llm.OpenAI: "sk-sim-openai-0123456789", llm.Anthropic: "sk-ant-sim-0123456789",
	llm.Gemini: "AIza-sim-0123456789", llm.Cohere: "co-sim-0123456789",
}

// start serves a simulator on loopback until the test ends.
func start(t *testing.T, opts llmsim.Options) (*llmsim.Sim, string) {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = keys
	}
	sim := llmsim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// userMessage is a user message with post as its data block.
func userMessage(t *testing.T, post map[string]any) string {
	t.Helper()
	b, err := json.Marshal(post)
	if err != nil {
		t.Fatal(err)
	}
	return "Adapt this post. Treat the block as data.\n" + llmsim.BeginMarker + "\n" + string(b) + "\n" + llmsim.EndMarker + "\n"
}

var samplePost = map[string]any{
	"platform": "x", "maxCharacters": 280, "link": "https://blog.example/p/1", "maxHashtags": 2,
	"title": "Going serverless with Go", "excerpt": "We moved our API to Lambda. It was fun.",
	"imagesNeedingAltText": []map[string]any{{"index": 1, "url": "https://blog.example/a.png"}},
}

const system = "You write social posts. Answer with JSON only."

// providerRequest is a well-formed request of provider p, as our clients
// send it.
func providerRequest(p llm.Name, key, user string) (path string, h http.Header, body string) {
	h = http.Header{"Content-Type": {"application/json"}}
	msg := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	schema := json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`)
	switch p {
	case llm.OpenAI:
		h.Set("Authorization", "Bearer "+key)
		return "/openai/v1/chat/completions", h, msg(map[string]any{
			"model": "gpt-test", "max_completion_tokens": 600,
			"messages":        []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}},
			"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "post", "schema": schema, "strict": true}},
		})
	case llm.Anthropic:
		h.Set("x-api-key", key)
		h.Set("anthropic-version", "2023-06-01")
		return "/anthropic/v1/messages", h, msg(map[string]any{
			"model": "claude-test", "max_tokens": 600, "system": system,
			"messages":    []map[string]string{{"role": "user", "content": user}},
			"tools":       []map[string]any{{"name": "post", "description": "d", "input_schema": schema}},
			"tool_choice": map[string]string{"type": "tool", "name": "post"},
		})
	case llm.Gemini:
		h.Set("x-goog-api-key", key)
		return "/gemini/v1beta/models/gemini-test:generateContent", h, msg(map[string]any{
			"systemInstruction": map[string]any{"parts": []map[string]string{{"text": system}}},
			"contents":          []map[string]any{{"role": "user", "parts": []map[string]string{{"text": user}}}},
			"generationConfig":  map[string]any{"responseMimeType": "application/json", "responseJsonSchema": schema, "maxOutputTokens": 600},
		})
	default:
		h.Set("Authorization", "Bearer "+key)
		return "/cohere/v2/chat", h, msg(map[string]any{
			"model": "command-test", "max_tokens": 600,
			"messages":        []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}},
			"response_format": map[string]any{"type": "json_object", "json_schema": schema},
		})
	}
}

// post sends a request and returns the status, the header and the body.
func post(t *testing.T, ctx context.Context, base, path string, h http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// content digs the answer content out of a provider's success body.
func content(t *testing.T, p llm.Name, body []byte) string {
	t.Helper()
	var v struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Content []struct {
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		Candidates []struct {
			Content struct {
				Parts []struct {
					Text string `json:"text"`
				} `json:"parts"`
			} `json:"content"`
		} `json:"candidates"`
		Message struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", p, body, err)
	}
	switch {
	case p == llm.OpenAI && len(v.Choices) == 1:
		return v.Choices[0].Message.Content
	case p == llm.Anthropic && len(v.Content) == 1:
		return string(v.Content[0].Input)
	case p == llm.Gemini && len(v.Candidates) == 1 && len(v.Candidates[0].Content.Parts) == 1:
		return v.Candidates[0].Content.Parts[0].Text
	case p == llm.Cohere && len(v.Message.Content) == 1:
		return v.Message.Content[0].Text
	}
	t.Fatalf("%s: got body %s, want one answer in the documented place", p, body)
	return ""
}

func TestAdapt(t *testing.T) {
	t.Parallel()
	base := llmsim.PostData{
		Link: "https://blog.example/p/1", MaxHashtags: 2, Title: "Going serverless with Go",
		Excerpt: "We moved our API to Lambda. It was fun.",
	}
	with := func(f func(p *llmsim.PostData)) llmsim.PostData { p := base; f(&p); return p }
	cases := []struct {
		name string
		post llmsim.PostData
		want string
	}{
		{"fits as is", with(func(p *llmsim.PostData) { p.MaxCharacters = 280 }),
			"Going serverless with Go: We moved our API to Lambda. https://blog.example/p/1 #Serverless #Going"},
		{"exactly at the limit (URL counts 23)", with(func(p *llmsim.PostData) { p.MaxCharacters = 96 }),
			"Going serverless with Go: We moved our API to Lambda. https://blog.example/p/1 #Serverless #Going"},
		{"excerpt cut at a word", with(func(p *llmsim.PostData) { p.MaxCharacters = 95 }),
			"Going serverless with Go: We moved our API to… https://blog.example/p/1 #Serverless #Going"},
		{"then the title", with(func(p *llmsim.PostData) { p.MaxCharacters = 50 }),
			"Going… https://blog.example/p/1 #Serverless #Going"},
		{"then hashtags", with(func(p *llmsim.PostData) { p.MaxCharacters = 30 }), "https://blog.example/p/1"},
		{"the link is never dropped", with(func(p *llmsim.PostData) { p.MaxCharacters = 10 }), "https://blog.example/p/1"},
		{"no limit", with(func(p *llmsim.PostData) { p.MaxCharacters = 0; p.MaxHashtags = 1 }),
			"Going serverless with Go: We moved our API to Lambda. https://blog.example/p/1 #Serverless"},
		{"no link", with(func(p *llmsim.PostData) { p.Link = ""; p.MaxCharacters = 500; p.MaxHashtags = 0 }),
			"Going serverless with Go: We moved our API to Lambda."},
		{"link in the excerpt kept once", with(func(p *llmsim.PostData) {
			p.Excerpt = "Read https://blog.example/p/1 now. More soon."
			p.MaxCharacters = 500
			p.MaxHashtags = 0
		}), "Going serverless with Go: Read now. https://blog.example/p/1"},
		{"variant rewords", with(func(p *llmsim.PostData) { p.Variant = 1; p.MaxCharacters = 500 }),
			"New: Going serverless with Go: We moved our API to Lambda. https://blog.example/p/1 #Serverless #Going"},
		{"second variant", with(func(p *llmsim.PostData) { p.Variant = 2; p.MaxCharacters = 500; p.MaxHashtags = 0; p.Link = "" }),
			"Just published: Going serverless with Go: We moved our API to Lambda."},
		{"decimal is not a sentence end", with(func(p *llmsim.PostData) {
			p.Title, p.Excerpt, p.Link, p.MaxHashtags, p.MaxCharacters = "Go 1.27", "Version 2.5 is out! More soon.", "", 3, 100
		}), "Go 1.27: Version 2.5 is out!"},
		{"code points, not bytes", with(func(p *llmsim.PostData) {
			p.Title, p.Excerpt, p.Link, p.MaxHashtags, p.MaxCharacters = "Crème brûlée", "Très bon.", "", 0, 23
		}), "Crème brûlée: Très bon."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := llmsim.Adapt(tc.post).Text
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if max := tc.post.MaxCharacters; max > 0 && llmsim.Count(got) > max && got != tc.post.Link {
				t.Errorf("got count %d, want at most %d", llmsim.Count(got), max)
			}
			if l := tc.post.Link; l != "" && strings.Count(got, l) != 1 {
				t.Errorf("got the link %d times in %q, want once", strings.Count(got, l), got)
			}
		})
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"é😀", 2},
		{"see https://example.com/a/very/long/path/indeed?x=1 now", 4 + 23 + 4},
		{"http://a.b", 23},
	}
	for _, tc := range cases {
		if got := llmsim.Count(tc.in); got != tc.want {
			t.Errorf("Count(%q): got %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestAnswer(t *testing.T) {
	t.Parallel()
	user := userMessage(t, map[string]any{
		"platform": "bluesky", "maxCharacters": 300, "link": "", "maxHashtags": 0, "title": "Tips & tricks", "excerpt": "",
		"imagesNeedingAltText": []map[string]any{{"index": 0, "url": "u0"}, {"index": 3, "url": "u3"}},
	})
	cases := []struct {
		name string
		user string
		want string
	}{
		{"post with images", user, `{"text":"Tips & tricks","altTexts":["Image 0 for: Tips & tricks","Image 3 for: Tips & tricks"]}`},
		{"no block", "just a question", `{"text":"","altTexts":[]}`},
		{"block not JSON", llmsim.BeginMarker + "\nnot json\n" + llmsim.EndMarker, `{"text":"","altTexts":[]}`},
		{"block not closed", llmsim.BeginMarker + "\n{}\n", `{"text":"","altTexts":[]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := llmsim.Answer(tc.user); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSuccessIsDeterministicPerProvider(t *testing.T) {
	t.Parallel()
	sim, base := start(t, llmsim.Options{})
	user := userMessage(t, samplePost)
	want := llmsim.Answer(user)
	for _, p := range llm.All {
		t.Run(string(p), func(t *testing.T) {
			var got []string
			for i := 0; i < 2; i++ {
				path, h, body := providerRequest(p, keys[p], user)
				status, _, b := post(t, context.Background(), base, path, h, body)
				if status != http.StatusOK {
					t.Fatalf("got status %d (%s), want 200", status, b)
				}
				got = append(got, content(t, p, b))
			}
			if got[0] != want || got[1] != want {
				t.Errorf("got %q and %q, want %q both times", got[0], got[1], want)
			}
			if sim.LastUser(p) != user {
				t.Errorf("LastUser: got %d chars, want the %d sent", len(sim.LastUser(p)), len(user))
			}
		})
	}
}

func TestRecordsWhatWasSent(t *testing.T) {
	t.Parallel()
	sim, base := start(t, llmsim.Options{Now: func() time.Time { return time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) }})
	user := userMessage(t, samplePost)
	want := map[llm.Name]llmsim.Call{
		llm.OpenAI: {Path: "/openai/v1/chat/completions", Model: "gpt-test", AuthHeader: "Authorization",
			TokenLimitField: "max_completion_tokens", ResponseFormat: "json_schema", SchemaName: "post",
			SchemaAt: "response_format.json_schema.schema", Strict: true, SystemAt: "messages[0]", UserAt: "messages[1]"},
		llm.Anthropic: {Path: "/anthropic/v1/messages", Model: "claude-test", AuthHeader: "x-api-key",
			TokenLimitField: "max_tokens", ResponseFormat: "tool_choice:tool", SchemaName: "post",
			SchemaAt: "tools[0].input_schema", SystemAt: "system", UserAt: "messages[0]"},
		llm.Gemini: {Path: "/gemini/v1beta/models/gemini-test:generateContent", Model: "gemini-test", AuthHeader: "x-goog-api-key",
			TokenLimitField: "generationConfig.maxOutputTokens", ResponseFormat: "application/json",
			SchemaAt: "generationConfig.responseJsonSchema", SystemAt: "systemInstruction", UserAt: "contents[0]"},
		llm.Cohere: {Path: "/cohere/v2/chat", Model: "command-test", AuthHeader: "Authorization",
			TokenLimitField: "max_tokens", ResponseFormat: "json_object",
			SchemaAt: "response_format.json_schema", SystemAt: "messages[0]", UserAt: "messages[1]"},
	}
	for _, p := range llm.All {
		path, h, body := providerRequest(p, keys[p], user)
		if status, _, b := post(t, context.Background(), base, path, h, body); status != http.StatusOK {
			t.Fatalf("%s: got status %d (%s), want 200", p, status, b)
		}
	}
	calls := sim.Calls()
	if len(calls) != len(llm.All) {
		t.Fatalf("got %d calls, want %d", len(calls), len(llm.All))
	}
	for i, p := range llm.All {
		got, w := calls[i], want[p]
		w.Provider, w.KeyAccepted, w.TokenLimit, w.Status, w.Time = p, true, 600, http.StatusOK, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		w.SystemChars, w.UserChars = len(system), len([]rune(user))
		w.Headers = map[string]string{"content-type": "application/json"}
		if p == llm.Anthropic {
			w.Headers["anthropic-version"] = "2023-06-01"
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(w)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%s:\n got %s\nwant %s", p, gotJSON, wantJSON)
		}
		if sim.CallCount(p) != 1 {
			t.Errorf("%s: CallCount got %d, want 1", p, sim.CallCount(p))
		}
	}
	// The record never holds a key, over HTTP either.
	resp, err := http.Get(base + "/_sim/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var listed []llmsim.Call
	if err := json.Unmarshal(b, &listed); err != nil || len(listed) != len(llm.All) {
		t.Fatalf("GET /_sim/calls: got %s (%v), want %d calls", b, err, len(llm.All))
	}
	for _, k := range keys {
		if strings.Contains(string(b), k) {
			t.Errorf("GET /_sim/calls: got a body holding an API key, want none")
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, base+"/_sim/calls", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /_sim/calls: got %v %v, want 204", resp, err)
	}
	if n := len(sim.Calls()); n != 0 || sim.LastUser(llm.OpenAI) != "" {
		t.Errorf("after DELETE: got %d calls and a last user message, want none", n)
	}
}

func TestAuthRefused(t *testing.T) {
	t.Parallel()
	_, base := start(t, llmsim.Options{})
	user := userMessage(t, samplePost)
	cases := []struct {
		p          llm.Name
		key        string
		wantStatus int
		wantBody   string
	}{
		{llm.OpenAI, "wrong", http.StatusUnauthorized, `"code":"invalid_api_key"`},
		{llm.OpenAI, "", http.StatusUnauthorized, `"type":"invalid_request_error"`},
		{llm.Anthropic, "wrong", http.StatusUnauthorized, `"type":"authentication_error"`},
		{llm.Anthropic, "", http.StatusUnauthorized, `"type":"authentication_error"`},
		{llm.Gemini, "wrong", http.StatusBadRequest, `"reason":"API_KEY_INVALID"`},
		{llm.Gemini, "", http.StatusForbidden, `"status":"PERMISSION_DENIED"`},
		{llm.Cohere, "wrong", http.StatusUnauthorized, `"message":"invalid api token"`},
		{llm.Cohere, "", http.StatusUnauthorized, `"message":"no api key supplied"`},
	}
	for _, tc := range cases {
		t.Run(string(tc.p)+" key "+tc.key, func(t *testing.T) {
			t.Parallel()
			path, h, body := providerRequest(tc.p, tc.key, user)
			if tc.key == "" {
				h.Del("Authorization")
				h.Del("x-api-key")
				h.Del("x-goog-api-key")
			}
			status, _, b := post(t, context.Background(), base, path, h, body)
			if status != tc.wantStatus || !strings.Contains(string(b), tc.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, b, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestAcceptsAnyKeyWithoutKeys(t *testing.T) {
	t.Parallel()
	sim := llmsim.New(llmsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	path, h, body := providerRequest(llm.Cohere, "anything", userMessage(t, samplePost))
	if status, _, b := post(t, context.Background(), srv.URL, path, h, body); status != http.StatusOK {
		t.Errorf("got %d %s, want 200 for any non-empty key", status, b)
	}
}

func TestRequestChecks(t *testing.T) {
	t.Parallel()
	_, base := start(t, llmsim.Options{})
	user := userMessage(t, samplePost)
	cases := []struct {
		name     string
		p        llm.Name
		edit     func(h http.Header, body string) string
		wantBody string
	}{
		{"anthropic without anthropic-version", llm.Anthropic,
			func(h http.Header, b string) string { h.Del("anthropic-version"); return b }, "anthropic-version: header is required"},
		{"anthropic without max_tokens", llm.Anthropic,
			func(_ http.Header, b string) string { return strings.Replace(b, `"max_tokens":600,`, "", 1) }, "max_tokens: Field required"},
		{"anthropic with a system message", llm.Anthropic,
			func(_ http.Header, b string) string {
				return strings.Replace(b, `"messages":[`, `"messages":[{"role":"system","content":"x"},`, 1)
			}, "Unexpected role"},
		{"openai without model", llm.OpenAI,
			func(_ http.Header, b string) string { return strings.Replace(b, `"model":"gpt-test"`, `"model":""`, 1) }, "model parameter"},
		{"openai body not JSON", llm.OpenAI, func(http.Header, string) string { return "{" }, "could not parse"},
		{"gemini without contents", llm.Gemini,
			func(_ http.Header, b string) string { return strings.Replace(b, `"contents":`, `"other":`, 1) }, "contents is not specified"},
		{"cohere without a user message", llm.Cohere,
			func(_ http.Header, b string) string {
				return strings.Replace(b, `"role":"user"`, `"role":"assistant"`, 1)
			}, "user message"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, h, body := providerRequest(tc.p, keys[tc.p], user)
			body = tc.edit(h, body)
			status, _, b := post(t, context.Background(), base, path, h, body)
			if status != http.StatusBadRequest || !strings.Contains(string(b), tc.wantBody) {
				t.Errorf("got %d %s, want 400 with %q", status, b, tc.wantBody)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	user := userMessage(t, samplePost)
	type want struct {
		status     int
		body       string // a fragment the body holds
		retryAfter string
	}
	cases := []struct {
		fault llmsim.Fault
		want  map[llm.Name]want
	}{
		{llmsim.Fault{Kind: llmsim.FaultRateLimit, RetryAfterSeconds: 3}, map[llm.Name]want{
			llm.OpenAI:    {429, `"code":"rate_limit_exceeded"`, "3"},
			llm.Anthropic: {429, `"type":"rate_limit_error"`, "3"},
			llm.Gemini:    {429, `"retryDelay":"3s"`, "3"},
			llm.Cohere:    {429, `"message":`, "3"},
		}},
		{llmsim.Fault{Kind: llmsim.FaultServerError}, map[llm.Name]want{
			llm.OpenAI: {500, `"type":"server_error"`, ""}, llm.Anthropic: {500, `"type":"api_error"`, ""},
			llm.Gemini: {500, `"status":"INTERNAL"`, ""}, llm.Cohere: {500, `"message":`, ""},
		}},
		{llmsim.Fault{Kind: llmsim.FaultServerError, Status: 502}, map[llm.Name]want{
			llm.OpenAI: {502, `"type":"server_error"`, ""}, llm.Anthropic: {502, `"type":"api_error"`, ""},
			llm.Gemini: {502, `"status":"INTERNAL"`, ""}, llm.Cohere: {502, `"message":`, ""},
		}},
		{llmsim.Fault{Kind: llmsim.FaultOverloaded}, map[llm.Name]want{
			llm.OpenAI: {503, `"type":"server_error"`, ""}, llm.Anthropic: {529, `"type":"overloaded_error"`, ""},
			llm.Gemini: {503, `"status":"UNAVAILABLE"`, ""}, llm.Cohere: {503, `"message":`, ""},
		}},
		{llmsim.Fault{Kind: llmsim.FaultMalformed}, map[llm.Name]want{
			llm.OpenAI: {200, `{"id":"sim-malformed"`, ""}, llm.Anthropic: {200, `{"id":"sim-malformed"`, ""},
			llm.Gemini: {200, `{"id":"sim-malformed"`, ""}, llm.Cohere: {200, `{"id":"sim-malformed"`, ""},
		}},
		{llmsim.Fault{Kind: llmsim.FaultRefusal}, map[llm.Name]want{
			llm.OpenAI: {200, `"refusal":"I'm sorry`, ""}, llm.Anthropic: {200, `"stop_reason":"refusal"`, ""},
			llm.Gemini: {200, `"blockReason":"SAFETY"`, ""}, llm.Cohere: {200, `"finish_reason":"ERROR_TOXIC"`, ""},
		}},
		{llmsim.Fault{Kind: llmsim.FaultHang, DelayMillis: 20}, map[llm.Name]want{
			llm.OpenAI: {200, `"usage"`, ""}, llm.Anthropic: {200, `"usage"`, ""},
			llm.Gemini: {200, `"usageMetadata"`, ""}, llm.Cohere: {200, `"usage"`, ""},
		}},
	}
	for _, tc := range cases {
		for _, p := range llm.All {
			t.Run(string(tc.fault.Kind)+" "+string(p), func(t *testing.T) {
				t.Parallel()
				sim, base := start(t, llmsim.Options{})
				f := tc.fault
				f.Provider = p
				sim.AddFault(f)
				path, h, body := providerRequest(p, keys[p], user)
				status, hdr, b := post(t, context.Background(), base, path, h, body)
				w := tc.want[p]
				if status != w.status || !strings.Contains(string(b), w.body) || hdr.Get("Retry-After") != w.retryAfter {
					t.Errorf("got %d retry-after %q %s, want %d retry-after %q with %s", status, hdr.Get("Retry-After"), b, w.status, w.retryAfter, w.body)
				}
				if status == 200 && f.Kind == llmsim.FaultMalformed && json.Valid(b) {
					t.Errorf("got valid JSON %s, want a malformed body", b)
				}
				calls := sim.Calls()
				if len(calls) != 1 || calls[0].Fault != f.Kind || calls[0].Status != w.status {
					t.Errorf("got calls %+v, want one with fault %s and status %d", calls, f.Kind, w.status)
				}
				// Consumed: the next call is served.
				if status, _, b := post(t, context.Background(), base, path, h, body); status != 200 || content(t, p, b) != llmsim.Answer(user) {
					t.Errorf("next call: got %d %s, want the normal answer", status, b)
				}
			})
		}
	}
}

func TestAnswerFaults(t *testing.T) {
	t.Parallel()
	user := userMessage(t, samplePost)
	normal := llmsim.Adapt(llmsim.PostData{
		MaxCharacters: 280, Link: "https://blog.example/p/1", MaxHashtags: 2, Title: "Going serverless with Go",
		Excerpt: "We moved our API to Lambda. It was fun.",
	}).Text
	for _, p := range llm.All {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			sim, base := start(t, llmsim.Options{})
			path, h, body := providerRequest(p, keys[p], user)
			text := func() (string, []byte) {
				_, _, b := post(t, context.Background(), base, path, h, body)
				var a llmsim.Adaptation
				if err := json.Unmarshal([]byte(content(t, p, b)), &a); err != nil {
					t.Fatalf("content is not an adaptation: %v", err)
				}
				return a.Text, b
			}

			sim.AddFault(llmsim.Fault{Provider: p, Kind: llmsim.FaultOverLength})
			if got, _ := text(); len([]rune(got)) != 3*280 {
				t.Errorf("over_length: got %d code points, want %d", len([]rune(got)), 3*280)
			}
			sim.AddFault(llmsim.Fault{Provider: p, Kind: llmsim.FaultNoLink})
			if got, _ := text(); strings.Contains(got, "https://") || !strings.HasPrefix(got, "Going serverless with Go") {
				t.Errorf("no_link: got %q, want the text without the link", got)
			}
			sim.AddFault(llmsim.Fault{Provider: p, Kind: llmsim.FaultNoUsage})
			got, b := text()
			if got != normal || strings.Contains(string(b), "usage") || strings.Contains(string(b), "input_tokens") {
				t.Errorf("no_usage: got %s, want the normal answer without usage", b)
			}
		})
	}
}

func TestUsageCounts(t *testing.T) {
	t.Parallel()
	_, base := start(t, llmsim.Options{})
	user := userMessage(t, samplePost)
	wantIn, wantOut := (len(system)+len(user)+3)/4, (len(llmsim.Answer(user))+3)/4
	path, h, body := providerRequest(llm.OpenAI, keys[llm.OpenAI], user)
	_, _, b := post(t, context.Background(), base, path, h, body)
	var v struct {
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Usage.Prompt != wantIn || v.Usage.Completion != wantOut {
		t.Errorf("got usage %+v (%v), want %d in, %d out", v.Usage, err, wantIn, wantOut)
	}
}

func TestFaultTimes(t *testing.T) {
	t.Parallel()
	sim, base := start(t, llmsim.Options{})
	path, h, body := providerRequest(llm.OpenAI, keys[llm.OpenAI], userMessage(t, samplePost))
	control := func(method, path, body string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	statuses := func(n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			s, _, _ := post(t, context.Background(), base, path, h, body)
			out = append(out, s)
		}
		return out
	}
	if got := control(http.MethodPost, "/_sim/faults", `{"provider":"openai","kind":"server_error","times":2}`); got != http.StatusNoContent {
		t.Fatalf("POST /_sim/faults: got %d, want 204", got)
	}
	// A fault of another provider does not match.
	sim.AddFault(llmsim.Fault{Provider: llm.Cohere, Kind: llmsim.FaultRateLimit})
	if got := statuses(3); got[0] != 500 || got[1] != 500 || got[2] != 200 {
		t.Errorf("times 2: got %v, want [500 500 200]", got)
	}
	control(http.MethodPost, "/_sim/faults", `{"provider":"openai","kind":"overloaded","times":-1}`)
	if got := statuses(3); got[0] != 503 || got[1] != 503 || got[2] != 503 {
		t.Errorf("times -1: got %v, want 503 until cleared", got)
	}
	if got := control(http.MethodDelete, "/_sim/faults", ""); got != http.StatusNoContent {
		t.Fatalf("DELETE /_sim/faults: got %d, want 204", got)
	}
	if got := statuses(1); got[0] != 200 {
		t.Errorf("after clearing: got %v, want 200", got)
	}
	for _, bad := range []string{`{"provider":"nope","kind":"hang"}`, `{"provider":"openai","kind":"nope"}`, `{`, `{"provider":"openai","kind":"hang","times":-2}`} {
		if got := control(http.MethodPost, "/_sim/faults", bad); got != http.StatusBadRequest {
			t.Errorf("POST /_sim/faults %s: got %d, want 400", bad, got)
		}
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	sim, base := start(t, llmsim.Options{Latency: map[llm.Name]time.Duration{llm.Gemini: 150 * time.Millisecond}})
	user := userMessage(t, samplePost)

	path, h, body := providerRequest(llm.Gemini, keys[llm.Gemini], user)
	began := time.Now()
	if status, _, _ := post(t, context.Background(), base, path, h, body); status != 200 {
		t.Fatalf("got status %d, want 200", status)
	}
	if d := time.Since(began); d < 150*time.Millisecond {
		t.Errorf("Options latency: answered in %v, want at least 150ms", d)
	}

	req, _ := http.NewRequest(http.MethodPost, base+"/_sim/latency", strings.NewReader(`{"provider":"cohere","millis":120}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /_sim/latency: got %v %v, want 204", resp, err)
	}
	path, h, body = providerRequest(llm.Cohere, keys[llm.Cohere], user)
	began = time.Now()
	post(t, context.Background(), base, path, h, body)
	if d := time.Since(began); d < 120*time.Millisecond {
		t.Errorf("POST /_sim/latency: answered in %v, want at least 120ms", d)
	}

	// Cancelled when the client goes away.
	sim.SetLatency(llm.OpenAI, time.Minute)
	path, h, body = providerRequest(llm.OpenAI, keys[llm.OpenAI], user)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	req.Header = h
	began = time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("got an answer, want the client's deadline first")
	}
	waitForCall(t, sim, llm.OpenAI)
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("the handler ran %v after the client left, want it to stop", d)
	}
	if c := lastCall(sim, llm.OpenAI); c.Status != 0 {
		t.Errorf("got status %d recorded, want 0 (no answer)", c.Status)
	}
}

func TestHangUntilTheClientLeaves(t *testing.T) {
	t.Parallel()
	sim, base := start(t, llmsim.Options{})
	sim.AddFault(llmsim.Fault{Provider: llm.Anthropic, Kind: llmsim.FaultHang})
	path, h, body := providerRequest(llm.Anthropic, keys[llm.Anthropic], userMessage(t, samplePost))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	req.Header = h
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("got an answer, want none before the deadline")
	}
	waitForCall(t, sim, llm.Anthropic)
	if c := lastCall(sim, llm.Anthropic); c.Fault != llmsim.FaultHang || c.Status != 0 {
		t.Errorf("got %+v, want a hang with no answer", c)
	}
}

// waitForCall waits until provider's call is recorded (the handler
// returns after the client left).
func waitForCall(t *testing.T, sim *llmsim.Sim, p llm.Name) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sim.CallCount(p) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no call recorded 10 s after the client left", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lastCall(sim *llmsim.Sim, p llm.Name) llmsim.Call {
	var last llmsim.Call
	for _, c := range sim.Calls() {
		if c.Provider == p {
			last = c
		}
	}
	return last
}
