package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds one Generate, from sending to the last byte of
	// the answer.
	DefaultTimeout = 8 * time.Second
	// DefaultMaxOutputTokens bounds an answer when neither the Config nor
	// the Request says otherwise.
	DefaultMaxOutputTokens = 600
	// MaxAnswerBytes is how much of an answer Generate reads; a longer
	// success answer is CodeMalformed.
	MaxAnswerBytes = 1 << 20
)

// Config configures one provider's client. Name, APIKey and Model are
// required; the zero value of every other field is a valid choice.
type Config struct {
	// Name is the provider.
	Name Name
	// BaseURL is the API's base URL, an absolute http(s) URL without
	// credentials (default: DefaultBaseURL(Name)). Paths are appended to
	// it: "<BaseURL>/chat/completions" for OpenAI, "<BaseURL>/v1/messages"
	// for Anthropic, "<BaseURL>/v1beta/models/<model>:generateContent" for
	// Gemini and "<BaseURL>/v2/chat" for Cohere.
	BaseURL string
	// APIKey authenticates every call. It never appears in an error.
	APIKey string
	// Model is the model used when a Request names none.
	Model string
	// MaxOutputTokens bounds answers when a Request sets no bound
	// (default DefaultMaxOutputTokens).
	MaxOutputTokens int
	// Timeout bounds one Generate (default DefaultTimeout).
	Timeout time.Duration
	// HTTPClient sends the requests (default: bounded dials and TLS
	// handshakes, no overall timeout, see platformhttp.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock Response.Latency and HTTP-date Retry-After values
	// are measured with (default time.Now).
	Now func() time.Time
}

// DefaultBaseURL is the public base URL of provider n, or "" for an unknown
// provider.
func DefaultBaseURL(n Name) string {
	switch n {
	case OpenAI:
		return "https://api.openai.com/v1"
	case Anthropic:
		return "https://api.anthropic.com"
	case Gemini:
		return "https://generativelanguage.googleapis.com"
	case Cohere:
		return "https://api.cohere.com"
	}
	return ""
}

// New returns the client of cfg.Name, after validating cfg and filling in
// its defaults. It does no I/O. Errors name the field at fault
// ("llm: openai: Model is required") and never include the API key.
func New(cfg Config) (Provider, error) {
	if !cfg.Name.Valid() {
		return nil, fmt.Errorf("llm: unknown provider %q (want one of openai, anthropic, gemini, cohere)", cfg.Name)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("llm: %s: %s", cfg.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.APIKey == "":
		return nil, fail("APIKey is required")
	case !headerSafe(cfg.APIKey):
		return nil, fail("APIKey holds spaces or control characters, which an HTTP header cannot carry")
	case strings.TrimSpace(cfg.Model) == "":
		return nil, fail("Model is required")
	case cfg.MaxOutputTokens < 0:
		return nil, fail("MaxOutputTokens must not be negative")
	case cfg.Timeout < 0:
		return nil, fail("Timeout must not be negative")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL(cfg.Name)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// The URL itself is not quoted: it might carry credentials.
		return nil, fail("BaseURL must be an absolute http(s) URL without credentials, query or fragment")
	}
	c := &client{
		name:    cfg.Name,
		base:    strings.TrimRight(base, "/"),
		key:     cfg.APIKey,
		model:   strings.TrimSpace(cfg.Model),
		maxOut:  cfg.MaxOutputTokens,
		timeout: cfg.Timeout,
		hc:      cfg.HTTPClient,
		now:     cfg.Now,
	}
	if c.maxOut == 0 {
		c.maxOut = DefaultMaxOutputTokens
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		c.hc = platformhttp.DefaultClient()
	}
	if c.now == nil {
		c.now = time.Now
	}
	switch cfg.Name {
	case OpenAI:
		c.d = openAI{}
	case Anthropic:
		c.d = anthropic{}
	case Gemini:
		c.d = gemini{}
	case Cohere:
		c.d = cohere{}
	}
	return c, nil
}

// headerSafe reports whether s can be sent as (part of) a header value as
// is: printable ASCII without spaces.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// dialect is what differs between providers: the request they take, the
// answer they give and the error bodies they send.
type dialect interface {
	// request returns the path under the base URL, the headers (the
	// credentials among them) and the body of one generation.
	request(key, model string, req Request, maxOut int) (path string, header map[string]string, body any)
	// decode reads a 2xx answer. A failure is an *answerError.
	decode(body []byte, req Request) (Response, error)
	// errorInfo reads a non-2xx answer's body, which may be anything.
	errorInfo(status int, body []byte) errorInfo
}

// errorInfo is what a provider's error body says.
type errorInfo struct {
	// Code is the provider's error type, status or code, for PlatformCode.
	Code string
	// Message is the provider's message, for the logged cause.
	Message string
	// Overloaded: the body says the provider is overloaded.
	Overloaded bool
	// Auth: the body says the key is not valid, whatever the status.
	Auth bool
	// Quota: the account has no quota left (not a rate limit to wait out).
	Quota bool
	// RetryAfter is a wait the body asks for (Gemini's RetryInfo).
	RetryAfter time.Duration
}

// answerError is a 2xx answer that is not a usable generation.
type answerError struct {
	code   string // a Code* code
	reason string // the provider's finish/stop/block reason, for PlatformCode
	cause  error
}

func (e *answerError) Error() string { return e.cause.Error() }

// malformed is the answerError of an answer not in the documented shape.
func malformed(format string, args ...any) *answerError {
	return &answerError{code: CodeMalformed, cause: fmt.Errorf(format, args...)}
}

// client is the Provider of every provider; d holds the differences.
type client struct {
	name    Name
	base    string
	key     string
	model   string
	maxOut  int
	timeout time.Duration
	hc      *http.Client
	now     func() time.Time
	d       dialect
}

// Name implements Provider.
func (c *client) Name() Name { return c.name }

// Model implements Provider.
func (c *client) Model() string { return c.model }

// Generate implements Provider: one POST, no retries.
func (c *client) Generate(ctx context.Context, req Request) (Response, error) {
	if strings.TrimSpace(req.Model) == "" {
		req.Model = c.model
	}
	maxOut := req.MaxOutputTokens
	if maxOut <= 0 {
		maxOut = c.maxOut
	}
	if len(req.Schema) > 0 && !isJSONObject(req.Schema) {
		return Response{}, c.fail(CodeBadRequest, 0, "", nil, errors.New("build request: the schema is not a JSON object"))
	}
	req.SchemaName = schemaName(req.SchemaName)
	path, header, body := c.d.request(c.key, req.Model, req, maxOut)
	raw, err := json.Marshal(body)
	if err != nil {
		return Response{}, c.fail(CodeBadRequest, 0, "", nil, fmt.Errorf("build request: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return Response{}, c.transport(ctx, err)
	}
	start := c.now()
	resp, err := platformhttp.Send(ctx, c.hc, platformhttp.Request{
		Method: http.MethodPost, URL: c.base + path, Body: raw, ContentType: "application/json", Header: header,
	}, MaxAnswerBytes+1)
	latency := c.now().Sub(start)
	if err != nil {
		return Response{}, c.transport(ctx, err)
	}
	tooLong := len(resp.Body) > MaxAnswerBytes
	if tooLong {
		resp.Body = resp.Body[:MaxAnswerBytes]
	}
	if !resp.OK() {
		return Response{}, c.classify(resp)
	}
	if tooLong {
		return Response{}, c.fail(CodeMalformed, resp.Status, "", resp.Body, fmt.Errorf("read answer: longer than %d bytes", MaxAnswerBytes))
	}
	out, err := c.d.decode(resp.Body, req)
	if err != nil {
		var ae *answerError
		if !errors.As(err, &ae) {
			ae = &answerError{code: CodeMalformed, cause: err}
		}
		return Response{}, c.fail(ae.code, resp.Status, ae.reason, resp.Body, fmt.Errorf("decode answer: %w", ae.cause))
	}
	if out.Model == "" {
		out.Model = req.Model
	}
	out.Latency = latency
	return out, nil
}

// transport classifies a failure to get a complete answer.
func (c *client) transport(ctx context.Context, err error) *apperr.Error {
	var be *platformhttp.BuildError
	if errors.As(err, &be) {
		return c.fail(CodeBadRequest, 0, "", nil, fmt.Errorf("build request: %w", be.Err))
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
	// Drop the URL from the cause: no query string or path reaches a log.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if timeout {
		return c.fail(CodeTimeout, 0, "", nil, fmt.Errorf("call %s: %w", c.name, err))
	}
	return c.fail(CodeTransport, 0, "", nil, fmt.Errorf("call %s: %w", c.name, err))
}

// classify turns a non-2xx answer into an error.
func (c *client) classify(resp platformhttp.Response) *apperr.Error {
	info := c.d.errorInfo(resp.Status, resp.Body)
	// A provider may quote the key back (OpenAI's "Incorrect API key
	// provided: ..."): scrub it before it enters the cause.
	info.Code, info.Message = c.scrub(info.Code), c.scrub(info.Message)
	code := CodeBadRequest
	switch s := resp.Status; {
	case info.Quota:
		code = CodeAuth
	case info.Overloaded || s == 529 || s == http.StatusServiceUnavailable:
		code = CodeOverloaded
	case s == http.StatusTooManyRequests:
		code = CodeRateLimited
	case s >= 500:
		code = CodeServer
	case s == http.StatusUnauthorized || s == http.StatusForbidden || info.Auth:
		code = CodeAuth
	case s >= 400:
		code = CodeBadRequest
	default: // 1xx, 3xx: nothing a client can use
		code = CodeMalformed
	}
	msg := ""
	if info.Message != "" {
		msg = ": " + platformhttp.Clip(info.Message)
	}
	e := c.fail(code, resp.Status, platformhttp.OrStatus(info.Code, resp.Status), resp.Body,
		fmt.Errorf("call %s: HTTP %d%s", c.name, resp.Status, msg))
	if code == CodeRateLimited || code == CodeOverloaded {
		if d, ok := retryAfter(resp.Header, c.now()); ok {
			e.RetryAfter = d
		} else if info.RetryAfter > 0 {
			e.RetryAfter = info.RetryAfter
		}
	}
	return e
}

// retryAfter reads Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if d, ok := platformhttp.RetryAfter(h); ok {
		return d, true
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return platformhttp.UntilReset(t, now), true
}

// kinds is the Kind of each Code* a client returns.
var kinds = map[string]apperr.Kind{
	CodeRateLimited: apperr.KindRateLimited,
	CodeOverloaded:  apperr.KindTransient,
	CodeServer:      apperr.KindTransient,
	CodeTimeout:     apperr.KindTransient,
	CodeTransport:   apperr.KindTransient,
	CodeMalformed:   apperr.KindTransient,
	CodeTruncated:   apperr.KindTransient,
	CodeAuth:        apperr.KindPermanent,
	CodeBadRequest:  apperr.KindPermanent,
	CodeRefusal:     apperr.KindPermanent,
}

// messages is the client-safe message of each code; %s is the provider.
var messages = map[string]string{
	CodeRateLimited: "%s rate-limited the call",
	CodeOverloaded:  "%s is overloaded",
	CodeServer:      "%s failed with a server error",
	CodeTimeout:     "%s did not answer in time",
	CodeTransport:   "the call to %s failed before an answer",
	CodeMalformed:   "%s answered in an unexpected shape",
	CodeTruncated:   "%s's answer stopped at the token limit",
	CodeAuth:        "%s refused the API key or its access",
	CodeBadRequest:  "%s rejected the request",
	CodeRefusal:     "%s declined to answer",
}

// displayNames name the providers in messages.
var displayNames = map[Name]string{OpenAI: "OpenAI", Anthropic: "Anthropic", Gemini: "Gemini", Cohere: "Cohere"}

// fail builds the *apperr.Error of code. cause must not hold the API key
// (causes are built from scrubbed provider text, and net/http never quotes
// header values); the key is scrubbed from platformCode and the body here.
// A 2xx body keeps its shape but not its content (answers are never
// logged).
func (c *client) fail(code string, status int, platformCode string, body []byte, cause error) *apperr.Error {
	e := apperr.Wrap(cause, kinds[code], code, fmt.Sprintf(messages[code], displayNames[c.name]))
	e.Platform = string(c.name)
	e.HTTPStatus = status
	e.PlatformCode = c.scrub(platformCode)
	if body != nil {
		body = bytes.ReplaceAll(body, []byte(c.key), []byte("[redacted]"))
		if status >= 200 && status <= 299 {
			e.Redacted = redactAnswer(body)
		} else {
			e.Redacted = platformhttp.Redact(body)
		}
	}
	return e
}

// scrub removes the API key from s.
func (c *client) scrub(s string) string { return strings.ReplaceAll(s, c.key, "[redacted]") }

// contentKeys are the JSON keys under which answers carry generated text.
var contentKeys = map[string]bool{
	"content": true, "text": true, "refusal": true, "input": true, "arguments": true, "thinking": true, "partial_json": true,
}

// redactAnswer is the Redacted copy of a 2xx answer: its JSON shape with
// every generated text replaced by its length, so that a log shows what was
// wrong with the shape without the completion. A body that is not JSON is
// kept as platformhttp.Redact keeps it.
func redactAnswer(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return platformhttp.Redact(body)
	}
	b, err := json.Marshal(hideContent(v, ""))
	if err != nil {
		return platformhttp.Redact(body)
	}
	return platformhttp.Redact(b)
}

func hideContent(v any, key string) any {
	switch t := v.(type) {
	case map[string]any:
		if key == "input" || key == "arguments" {
			return fmt.Sprintf("[object of %d keys]", len(t))
		}
		for k, x := range t {
			t[k] = hideContent(x, k)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = hideContent(x, key)
		}
		return t
	case string:
		if contentKeys[key] {
			return fmt.Sprintf("[%d bytes]", len(t))
		}
	}
	return v
}

// isJSONObject reports whether b is one JSON object.
func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil
}

// objectText checks that s is one JSON object and returns it compacted
// (without escaping HTML characters, so that the text is what was sent).
func objectText(s []byte) (string, *answerError) {
	if !isJSONObject(s) {
		return "", malformed("the content is not a JSON object (%d bytes)", len(s))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, bytes.TrimSpace(s)); err != nil {
		return "", malformed("compact the content: %v", err)
	}
	return buf.String(), nil
}

// schemaName is name made acceptable to every provider (OpenAI and
// Anthropic want ^[a-zA-Z0-9_-]{1,64}$); "answer" when empty.
func schemaName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() == 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "answer"
	}
	return b.String()
}

// schemaOrObject is the request's schema, or the schema of any object.
func schemaOrObject(s json.RawMessage) json.RawMessage {
	if len(s) == 0 {
		return json.RawMessage(`{"type":"object"}`)
	}
	return s
}

// chatMessage is a message of the OpenAI and Cohere chat APIs and of
// Anthropic's messages API.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatMessages is the system message (when there is one) and the user
// message.
func chatMessages(req Request) []chatMessage {
	var ms []chatMessage
	if req.System != "" {
		ms = append(ms, chatMessage{Role: "system", Content: req.System})
	}
	return append(ms, chatMessage{Role: "user", Content: req.User})
}

// decodeJSON unmarshals a 2xx body into v, or fails as malformed.
func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return malformed("not the documented JSON: %v", err)
	}
	return nil
}
