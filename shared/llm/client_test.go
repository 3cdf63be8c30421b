package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/llm"
)

const testKey = "sk-unit-0123456789abcdef"

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := llm.Config{Name: llm.OpenAI, APIKey: testKey, Model: "m"}
	cases := []struct {
		name string
		edit func(c *llm.Config)
		want string // "" = valid
	}{
		{"valid with defaults", func(*llm.Config) {}, ""},
		{"valid with a plain http base", func(c *llm.Config) { c.BaseURL = "http://127.0.0.1:8080/openai/v1/" }, ""},
		{"unknown provider", func(c *llm.Config) { c.Name = "mistral" }, `llm: unknown provider "mistral"`},
		{"no key", func(c *llm.Config) { c.APIKey = "" }, "llm: openai: APIKey is required"},
		{"key with a newline", func(c *llm.Config) { c.APIKey = "sk-abc\r\nX-Evil: 1" }, "llm: openai: APIKey holds spaces or control characters"},
		{"no model", func(c *llm.Config) { c.Model = " " }, "llm: openai: Model is required"},
		{"relative base", func(c *llm.Config) { c.BaseURL = "/v1" }, "llm: openai: BaseURL must be an absolute http(s) URL"},
		{"ftp base", func(c *llm.Config) { c.BaseURL = "ftp://api.example" }, "llm: openai: BaseURL must be"},
		{"base with credentials", func(c *llm.Config) { c.BaseURL = "https://user:secret@api.example" }, "llm: openai: BaseURL must be"},
		{"base with a query", func(c *llm.Config) { c.BaseURL = "https://api.example/?key=secret" }, "llm: openai: BaseURL must be"},
		{"negative tokens", func(c *llm.Config) { c.MaxOutputTokens = -1 }, "llm: openai: MaxOutputTokens must not be negative"},
		{"negative timeout", func(c *llm.Config) { c.Timeout = -time.Second }, "llm: openai: Timeout must not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tc.edit(&cfg)
			p, err := llm.New(cfg)
			switch {
			case tc.want == "" && (err != nil || p == nil):
				t.Fatalf("got %v, want a provider", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error starting %q", err, tc.want)
			case err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sk-abc")):
				t.Errorf("got %q, want no credential in the message", err)
			}
		})
	}
}

func TestDefaultBaseURL(t *testing.T) {
	t.Parallel()
	cases := map[llm.Name]string{
		llm.OpenAI:    "https://api.openai.com/v1/chat/completions",
		llm.Anthropic: "https://api.anthropic.com/v1/messages",
		llm.Gemini:    "https://generativelanguage.googleapis.com/v1beta/models/gemini-x:generateContent",
		llm.Cohere:    "https://api.cohere.com/v2/chat",
	}
	for p, wantURL := range cases {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			rt := &recordingTransport{status: 500}
			model := "m-x"
			if p == llm.Gemini {
				model = "models/gemini-x" // the "models/" prefix is tolerated
			}
			c, err := llm.New(llm.Config{Name: p, APIKey: testKey, Model: model, HTTPClient: &http.Client{Transport: rt}})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Generate(context.Background(), llm.Request{User: "u", Schema: json.RawMessage(`{"type":"object"}`)})
			if rt.url != wantURL {
				t.Errorf("got %s, want %s", rt.url, wantURL)
			}
			if !bytes.Contains(rt.body, []byte(":600")) {
				t.Errorf("got body %s, want the default 600 output tokens", rt.body)
			}
		})
	}
}

// recordingTransport answers every request with status and keeps the last
// request's URL and body.
type recordingTransport struct {
	status int
	url    string
	body   []byte
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.url = r.URL.String()
	rt.body, _ = io.ReadAll(r.Body)
	return &http.Response{StatusCode: rt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

// canned serves one answer to every request.
func canned(t *testing.T, status int, header http.Header, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func generate(t *testing.T, p llm.Name, base string, edit func(*llm.Config)) (llm.Response, error) {
	t.Helper()
	cfg := llm.Config{Name: p, BaseURL: base, APIKey: testKey, Model: "m", Timeout: 2 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	c, err := llm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.Generate(context.Background(), llm.Request{System: "s", User: "u", SchemaName: "a", Schema: json.RawMessage(`{"type":"object"}`)})
}

func TestOddAnswers(t *testing.T) {
	t.Parallel()
	html := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	cases := []struct {
		name   string
		p      llm.Name
		status int
		body   string
		want   string // a Code*
	}{
		{"openai no choices", llm.OpenAI, 200, `{"choices":[]}`, llm.CodeMalformed},
		{"openai content not JSON", llm.OpenAI, 200, `{"choices":[{"message":{"content":"Sure! Here you go"},"finish_reason":"stop"}]}`, llm.CodeMalformed},
		{"openai content a JSON array", llm.OpenAI, 200, `{"choices":[{"message":{"content":"[1,2]"},"finish_reason":"stop"}]}`, llm.CodeMalformed},
		{"openai content null", llm.OpenAI, 200, `{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}`, llm.CodeMalformed},
		{"openai content an array of parts", llm.OpenAI, 200, `{"choices":[{"message":{"content":[{"type":"text"}]}}]}`, llm.CodeMalformed},
		{"openai length", llm.OpenAI, 200, `{"choices":[{"message":{"content":"{\"te"},"finish_reason":"length"}]}`, llm.CodeTruncated},
		{"openai content filter", llm.OpenAI, 200, `{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}`, llm.CodeRefusal},
		{"openai null body", llm.OpenAI, 200, `null`, llm.CodeMalformed},
		{"openai array body", llm.OpenAI, 200, `[]`, llm.CodeMalformed},
		{"openai empty 204", llm.OpenAI, 204, ``, llm.CodeMalformed},
		{"openai HTML 200", llm.OpenAI, 200, html, llm.CodeMalformed},
		{"openai HTML 502", llm.OpenAI, 502, html, llm.CodeServer},
		{"openai HTML 404", llm.OpenAI, 404, html, llm.CodeBadRequest},
		{"openai no quota", llm.OpenAI, 429, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`, llm.CodeAuth},
		{"openai 403", llm.OpenAI, 403, `{"error":{"message":"unsupported_country_region_territory","type":"request_forbidden","code":"unsupported_country_region_territory"}}`, llm.CodeAuth},
		{"anthropic text instead of tool_use", llm.Anthropic, 200, `{"content":[{"type":"text","text":"{}"}],"stop_reason":"end_turn"}`, llm.CodeMalformed},
		{"anthropic input a string", llm.Anthropic, 200, `{"content":[{"type":"tool_use","name":"a","input":"{}"}],"stop_reason":"tool_use"}`, llm.CodeMalformed},
		{"anthropic content not a list", llm.Anthropic, 200, `{"content":{"type":"tool_use"}}`, llm.CodeMalformed},
		{"anthropic max_tokens", llm.Anthropic, 200, `{"content":[{"type":"tool_use","name":"a","input":{}}],"stop_reason":"max_tokens"}`, llm.CodeTruncated},
		{"anthropic overloaded as 429", llm.Anthropic, 429, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, llm.CodeOverloaded},
		{"anthropic overloaded as 500", llm.Anthropic, 500, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, llm.CodeOverloaded},
		{"anthropic unknown model", llm.Anthropic, 404, `{"type":"error","error":{"type":"not_found_error","message":"model: x"}}`, llm.CodeBadRequest},
		{"gemini empty object", llm.Gemini, 200, `{}`, llm.CodeMalformed},
		{"gemini no content", llm.Gemini, 200, `{"candidates":[{"finishReason":"OTHER"}]}`, llm.CodeMalformed},
		{"gemini safety", llm.Gemini, 200, `{"candidates":[{"finishReason":"SAFETY"}]}`, llm.CodeRefusal},
		{"gemini recitation", llm.Gemini, 200, `{"candidates":[{"content":{"parts":[{"text":"{}"}]},"finishReason":"RECITATION"}]}`, llm.CodeRefusal},
		{"gemini prompt blocked", llm.Gemini, 200, `{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"}}`, llm.CodeRefusal},
		{"gemini max tokens", llm.Gemini, 200, `{"candidates":[{"content":{"parts":[{"text":"{\"t"}]},"finishReason":"MAX_TOKENS"}]}`, llm.CodeTruncated},
		{"gemini key invalid as 400", llm.Gemini, 400, `{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}`, llm.CodeAuth},
		{"gemini bad argument", llm.Gemini, 400, `{"error":{"code":400,"message":"bad schema","status":"INVALID_ARGUMENT"}}`, llm.CodeBadRequest},
		{"cohere invalid token 498", llm.Cohere, 498, `{"message":"invalid api token"}`, llm.CodeAuth},
		{"cohere internal error", llm.Cohere, 200, `{"finish_reason":"ERROR","message":{"content":[]}}`, llm.CodeServer},
		{"cohere timeout", llm.Cohere, 200, `{"finish_reason":"TIMEOUT","message":{"content":[]}}`, llm.CodeTimeout},
		{"cohere max tokens", llm.Cohere, 200, `{"finish_reason":"MAX_TOKENS","message":{"content":[{"type":"text","text":"{"}]}}`, llm.CodeTruncated},
		{"cohere toxic", llm.Cohere, 200, `{"finish_reason":"ERROR_TOXIC","message":{"content":[]}}`, llm.CodeRefusal},
		{"cohere no text", llm.Cohere, 200, `{"finish_reason":"COMPLETE","message":{"content":[]}}`, llm.CodeMalformed},
		{"cohere tool call", llm.Cohere, 200, `{"finish_reason":"TOOL_CALL","message":{"tool_calls":[{}]}}`, llm.CodeMalformed},
		{"cohere 422", llm.Cohere, 422, `{"message":"invalid schema"}`, llm.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := canned(t, tc.status, http.Header{"Content-Type": {"application/json"}}, tc.body)
			_, err := generate(t, tc.p, base, nil)
			e, ok := apperr.As(err)
			if !ok || e.Code != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if e.HTTPStatus != tc.status || e.Platform != string(tc.p) {
				t.Errorf("got status %d platform %q, want %d and %q", e.HTTPStatus, e.Platform, tc.status, tc.p)
			}
			if tc.body == html && !strings.Contains(e.Redacted, "502 Bad Gateway") {
				t.Errorf("got Redacted %q, want the page", e.Redacted)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    llm.Name
		body string
		want llm.Response
	}{
		{"openai without usage", llm.OpenAI, `{"model":"gpt-x-2026","choices":[{"message":{"content":" {\"text\": \"a<b\"} "},"finish_reason":"stop"}]}`,
			llm.Response{Text: `{"text":"a<b"}`, Model: "gpt-x-2026"}},
		{"anthropic tool_use after text", llm.Anthropic,
			`{"model":"claude-x","content":[{"type":"text","text":"ok"},{"type":"tool_use","name":"a","input":{ "text" : "é&" }}],"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":3}}`,
			llm.Response{Text: `{"text":"é&"}`, Model: "claude-x", Usage: llm.Usage{InputTokens: 10, OutputTokens: 3, Reported: true}}},
		{"gemini parts joined, thoughts skipped, thinking billed", llm.Gemini,
			`{"candidates":[{"content":{"parts":[{"text":"plan","thought":true},{"text":"{\"text\":"},{"text":"\"x\"}"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":4,"thoughtsTokenCount":20},"modelVersion":"gemini-x-001"}`,
			llm.Response{Text: `{"text":"x"}`, Model: "gemini-x-001", Usage: llm.Usage{InputTokens: 7, OutputTokens: 24, Reported: true}}},
		{"cohere billed units only", llm.Cohere,
			`{"finish_reason":"COMPLETE","message":{"content":[{"type":"text","text":"{\"text\":\"c\"}"}]},"usage":{"billed_units":{"input_tokens":12,"output_tokens":5}}}`,
			llm.Response{Text: `{"text":"c"}`, Model: "m", Usage: llm.Usage{InputTokens: 12, OutputTokens: 5, Reported: true}}},
		{"cohere tokens win", llm.Cohere,
			`{"finish_reason":"complete","message":{"content":[{"type":"text","text":"{}"}]},"usage":{"billed_units":{"input_tokens":1,"output_tokens":1},"tokens":{"input_tokens":30.0,"output_tokens":2}}}`,
			llm.Response{Text: `{}`, Model: "m", Usage: llm.Usage{InputTokens: 30, OutputTokens: 2, Reported: true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := canned(t, 200, nil, tc.body)
			got, err := generate(t, tc.p, base, func(c *llm.Config) { c.Now = func() time.Time { return time.Unix(0, 0) } })
			if err != nil {
				t.Fatalf("got %v, want an answer", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHugeAnswers(t *testing.T) {
	t.Parallel()
	huge := `{"choices":[{"message":{"content":"` + strings.Repeat("a", 2<<20) + `"}}]}`
	for _, status := range []int{200, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			_, err := generate(t, llm.OpenAI, canned(t, status, nil, huge), nil)
			want := map[int]string{200: llm.CodeMalformed, 500: llm.CodeServer}[status]
			e, ok := apperr.As(err)
			if !ok || e.Code != want || len(e.Redacted) > 4096 {
				t.Fatalf("got %v (Redacted %d bytes), want %s with a short Redacted", err, len(e.Redacted), want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		p      llm.Name
		header string
		body   string
		want   time.Duration
	}{
		{"seconds", llm.OpenAI, "7", `{}`, 7 * time.Second},
		{"HTTP date", llm.Anthropic, now.Add(90 * time.Second).Format(http.TimeFormat), `{}`, 90 * time.Second},
		{"date in the past", llm.Anthropic, now.Add(-time.Minute).Format(http.TimeFormat), `{}`, time.Second},
		{"garbage", llm.Cohere, "soon", `{"message":"slow down"}`, 0},
		{"absent", llm.Cohere, "", `{"message":"slow down"}`, 0},
		{"Gemini RetryInfo", llm.Gemini, "",
			`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}`, 37 * time.Second},
		{"the header wins", llm.Gemini, "5",
			`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}`, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tc.header != "" {
				h.Set("Retry-After", tc.header)
			}
			_, err := generate(t, tc.p, canned(t, 429, h, tc.body), func(c *llm.Config) { c.Now = func() time.Time { return now } })
			checkErr(t, err, wantErr{kind: apperr.KindRateLimited, code: llm.CodeRateLimited, retryAfter: tc.want, status: 429})
		})
	}
}

func TestTimeoutsAndTransport(t *testing.T) {
	t.Parallel()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client leaving only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(hang.Close)
	dead := httptest.NewServer(nil)
	dead.Close()
	var calls atomic.Int32
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	t.Cleanup(counting.Close)

	cases := []struct {
		name string
		base string
		ctx  func() (context.Context, context.CancelFunc)
		cfg  func(c *llm.Config)
		want string
	}{
		{"client timeout", hang.URL, func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			func(c *llm.Config) { c.Timeout = 100 * time.Millisecond }, llm.CodeTimeout},
		{"caller deadline", hang.URL, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, nil, llm.CodeTimeout},
		{"http.Client timeout", hang.URL, func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			func(c *llm.Config) { c.HTTPClient = &http.Client{Timeout: 100 * time.Millisecond} }, llm.CodeTimeout},
		{"connection refused", dead.URL, func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			nil, llm.CodeTransport},
		{"cancelled before sending", counting.URL, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, nil, llm.CodeTransport},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := llm.Config{Name: llm.OpenAI, BaseURL: tc.base, APIKey: testKey, Model: "m", Timeout: 5 * time.Second}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			c, err := llm.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			began := time.Now()
			_, err = c.Generate(ctx, llm.Request{User: "u"})
			checkErr(t, err, wantErr{kind: apperr.KindTransient, code: tc.want})
			if d := time.Since(began); d > 3*time.Second {
				t.Errorf("returned after %v, want about 100ms", d)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("got %d requests from a cancelled call, want none", n)
	}
}

func TestRequestChecks(t *testing.T) {
	t.Parallel()
	rt := &recordingTransport{status: 200}
	c, err := llm.New(llm.Config{Name: llm.OpenAI, APIKey: testKey, Model: "m", HTTPClient: &http.Client{Transport: rt}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Generate(context.Background(), llm.Request{User: "u", Schema: json.RawMessage(`["not","an","object"]`)})
	checkErr(t, err, wantErr{kind: apperr.KindPermanent, code: llm.CodeBadRequest})
	if rt.url != "" {
		t.Errorf("got a request to %s, want none for a bad schema", rt.url)
	}
	_, _ = c.Generate(context.Background(), llm.Request{User: "u", SchemaName: "post adaptation/v1", Schema: json.RawMessage(`{"type":"object"}`)})
	if !bytes.Contains(rt.body, []byte(`"name":"post_adaptation_v1"`)) || !bytes.Contains(rt.body, []byte(`"strict":true`)) {
		t.Errorf("got body %s, want the schema name made safe and strict on", rt.body)
	}
	_, _ = c.Generate(context.Background(), llm.Request{User: "u"})
	if !bytes.Contains(rt.body, []byte(`"response_format":{"type":"json_object"}`)) || bytes.Contains(rt.body, []byte(`"role":"system"`)) {
		t.Errorf("got body %s, want JSON mode without a schema and no empty system message", rt.body)
	}
}

func TestRedactedHidesAnswers(t *testing.T) {
	t.Parallel()
	secret := "the adapted post about my private trip"
	cases := []struct {
		p    llm.Name
		body string
	}{
		{llm.OpenAI, `{"choices":[{"message":{"content":"` + secret + `","refusal":"` + secret + `"},"finish_reason":"stop"}]}`},
		{llm.Anthropic, `{"content":[{"type":"tool_use","name":"a","input":{"text":"` + secret + `"}}],"stop_reason":"max_tokens"}`},
		{llm.Gemini, `{"candidates":[{"content":{"parts":[{"text":"` + secret + `"}]},"finishReason":"SAFETY"}]}`},
		{llm.Cohere, `{"finish_reason":"MAX_TOKENS","message":{"content":[{"type":"text","text":"` + secret + `"}]}}`},
	}
	for _, tc := range cases {
		t.Run(string(tc.p), func(t *testing.T) {
			t.Parallel()
			_, err := generate(t, tc.p, canned(t, 200, nil, tc.body), nil)
			e, ok := apperr.As(err)
			if !ok || e.Redacted == "" || strings.Contains(e.Redacted, secret) || strings.Contains(e.Error(), secret) {
				t.Errorf("got %v with Redacted %q, want the shape without the answer", err, e.Redacted)
			}
		})
	}
}

// echoKey answers with the status named by the first path segment and a
// body that echoes the API key in every field a client might read.
func echoKey(key string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		status, err := strconv.Atoi(seg)
		if err != nil {
			status = 500
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"type":"error","error":{"message":"Incorrect API key provided: `+key+`","type":"`+key+`","code":"`+key+`","status":"`+key+
			`"},"message":"bad key `+key+`","choices":[{"message":{"content":"`+key+`"},"finish_reason":"`+key+`"}],"finish_reason":"`+key+`"}`)
	})
}
