// Package llmsim is a local, deterministic simulator of the four LLM APIs
// POSSE adapts posts with: OpenAI chat completions, Anthropic messages,
// Gemini generateContent and Cohere v2 chat. Each is served at its real
// path under a per-provider prefix, so that a client's base URL is
// <sim>/openai/v1, <sim>/anthropic, <sim>/gemini or <sim>/cohere; each checks
// the credentials header and required headers its provider documents and
// answers in its provider's success, refusal and error shapes.
//
// The "model" is a function of the user message (see Adapt): the same
// request always gets the same answer content. Faults (rate limits, 5xx,
// overload, hangs, malformed or over-long answers, refusals, missing usage)
// are injected per provider with POST /_sim/faults or AddFault, latency with
// POST /_sim/latency or Options, and every call is recorded without its
// credentials (GET/DELETE /_sim/calls, Calls). Prompts are kept in memory
// for tests (LastUser) and never logged.
//
// The Sim is an http.Handler; it listens only where its caller binds it
// (tests: httptest on 127.0.0.1).
package llmsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/llm"
)

// FaultKind is a failure the simulator can inject.
type FaultKind string

// Faults. Each provider renders them in its own shapes.
const (
	FaultRateLimit   FaultKind = "rate_limit"   // 429 with retry-after
	FaultServerError FaultKind = "server_error" // 500, or Status when it is a 5xx
	FaultOverloaded  FaultKind = "overloaded"   // Anthropic: 529 overloaded_error; the others: 503
	FaultHang        FaultKind = "hang"         // no answer until the request ends, or DelayMillis (default 60 s) then the answer
	FaultMalformed   FaultKind = "malformed"    // 200 with a body that is not JSON
	FaultOverLength  FaultKind = "over_length"  // a valid answer whose text is 3× maxCharacters
	FaultNoLink      FaultKind = "no_link"      // a valid answer whose text lacks the link
	FaultRefusal     FaultKind = "refusal"      // the provider's refusal shape
	FaultNoUsage     FaultKind = "no_usage"     // a valid answer without usage fields
)

// FaultKinds lists every fault kind.
var FaultKinds = []FaultKind{
	FaultRateLimit, FaultServerError, FaultOverloaded, FaultHang, FaultMalformed,
	FaultOverLength, FaultNoLink, FaultRefusal, FaultNoUsage,
}

// DefaultHang is how long a hang fault without DelayMillis holds the
// answer back.
const DefaultHang = 60 * time.Second

// Fault is one injected failure. It applies to the next Times requests to
// Provider that pass the credentials and request checks.
type Fault struct {
	Provider llm.Name  `json:"provider"`
	Kind     FaultKind `json:"kind"`
	// Times is how many matching requests it affects: 0 means 1, -1 means
	// until the faults are cleared.
	Times int `json:"times,omitempty"`
	// RetryAfterSeconds is the rate limit's retry-after (default 1).
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// DelayMillis is how long a hang lasts before the answer (default
	// DefaultHang).
	DelayMillis int `json:"delayMillis,omitempty"`
	// Status is a server_error's status when it is a 5xx (default 500).
	Status int `json:"status,omitempty"`
}

// Call is one request the simulator received, without its credentials.
type Call struct {
	Provider llm.Name `json:"provider"`
	Path     string   `json:"path"`
	Model    string   `json:"model"`
	// AuthHeader names the header (or "key" query parameter) that carried
	// the key; its value is never kept. KeyAccepted says whether it was
	// the right one.
	AuthHeader  string `json:"authHeader"`
	KeyAccepted bool   `json:"keyAccepted"`
	// Headers holds other headers that matter (anthropic-version,
	// content-type).
	Headers map[string]string `json:"headers,omitempty"`
	// TokenLimitField is where the output bound was ("max_completion_tokens",
	// "max_tokens", "generationConfig.maxOutputTokens"), TokenLimit its
	// value.
	TokenLimitField string `json:"tokenLimitField,omitempty"`
	TokenLimit      int    `json:"tokenLimit,omitempty"`
	// ResponseFormat is how JSON was asked for: OpenAI's and Cohere's
	// response_format.type, Gemini's responseMimeType, Anthropic's
	// "tool_choice:<type>".
	ResponseFormat string `json:"responseFormat,omitempty"`
	// SchemaName is OpenAI's json_schema.name or the tool Anthropic's
	// tool_choice names.
	SchemaName string `json:"schemaName,omitempty"`
	// SchemaAt is where the schema was sent ("" when it was not), e.g.
	// "response_format.json_schema.schema", "tools[0].input_schema",
	// "generationConfig.responseJsonSchema", "response_format.json_schema".
	SchemaAt string `json:"schemaAt,omitempty"`
	// Strict is OpenAI's json_schema.strict.
	Strict bool `json:"strict,omitempty"`
	// SystemAt and UserAt are where the instructions and the data were
	// ("messages[0]", "system", "systemInstruction", "contents[0]"); the
	// lengths are in code points.
	SystemAt    string `json:"systemAt,omitempty"`
	SystemChars int    `json:"systemChars"`
	UserAt      string `json:"userAt,omitempty"`
	UserChars   int    `json:"userChars"`
	// Fault is the fault applied, if any.
	Fault FaultKind `json:"fault,omitempty"`
	// Status is the HTTP status answered; 0 when the client left first.
	Status int       `json:"status"`
	Time   time.Time `json:"time"`
}

// Options configure a Sim.
type Options struct {
	// Keys are the API keys each provider accepts. A provider without an
	// entry (and every provider when the map is empty) accepts any
	// non-empty key.
	Keys map[llm.Name]string
	// Latency delays each provider's answers.
	Latency map[llm.Name]time.Duration
	// Now is the clock of recorded calls and answer timestamps (default
	// time.Now).
	Now func() time.Time
}

// Sim is the simulator. Create it with New; it is an http.Handler and is
// safe for concurrent use.
type Sim struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	seq      int
	faults   []*Fault
	latency  map[llm.Name]time.Duration
	calls    []Call
	lastUser map[llm.Name]string
}

// New returns a simulator serving every provider's endpoint and the
// /_sim control endpoints.
func New(opts Options) *Sim {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sim{
		opts:     opts,
		mux:      http.NewServeMux(),
		latency:  map[llm.Name]time.Duration{},
		lastUser: map[llm.Name]string{},
	}
	for p, d := range opts.Latency {
		s.latency[p] = d
	}
	s.mux.HandleFunc("POST /openai/v1/chat/completions", s.serve(openAI{}))
	s.mux.HandleFunc("POST /anthropic/v1/messages", s.serve(anthropic{}))
	s.mux.HandleFunc("POST /gemini/v1beta/models/{call}", s.serve(gemini{}))
	s.mux.HandleFunc("POST /cohere/v2/chat", s.serve(cohere{}))
	s.mux.HandleFunc("POST /_sim/faults", s.handleAddFault)
	s.mux.HandleFunc("DELETE /_sim/faults", s.handleClearFaults)
	s.mux.HandleFunc("POST /_sim/latency", s.handleLatency)
	s.mux.HandleFunc("GET /_sim/calls", s.handleCalls)
	s.mux.HandleFunc("DELETE /_sim/calls", s.handleClearCalls)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AddFault injects a fault.
func (s *Sim) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every pending fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetLatency delays provider's answers by d from now on (0: none).
func (s *Sim) SetLatency(provider llm.Name, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency[provider] = d
}

// Calls returns the recorded calls, oldest first.
func (s *Sim) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	copy(out, s.calls)
	return out
}

// ClearCalls forgets the recorded calls and prompts.
func (s *Sim) ClearCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.lastUser = map[llm.Name]string{}
}

// CallCount is how many calls provider received.
func (s *Sim) CallCount(provider llm.Name) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Provider == provider {
			n++
		}
	}
	return n
}

// LastUser is the user message of provider's last well-formed call, for
// tests. It is kept in memory only.
func (s *Sim) LastUser(provider llm.Name) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastUser[provider]
}

// takeFault consumes and returns provider's first pending fault, or nil.
func (s *Sim) takeFault(provider llm.Name) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Provider != provider {
			continue
		}
		out := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

// accepts reports whether key is provider's key.
func (s *Sim) accepts(provider llm.Name, key string) bool {
	want, ok := s.opts.Keys[provider]
	if !ok {
		return key != ""
	}
	return key != "" && key == want
}

func (s *Sim) nextSeq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

func (s *Sim) record(c Call, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	if user != "" {
		s.lastUser[c.Provider] = user
	}
}

func (s *Sim) latencyOf(provider llm.Name) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency[provider]
}

// wait sleeps d, or until ctx ends; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// maxRequestBody is the largest request body the simulator reads.
const maxRequestBody = 4 << 20

// input is what a generation request asked for.
type input struct {
	model  string
	system string
	user   string
	// tool is the tool Anthropic was told to answer with ("" when none).
	tool string
}

// usage is a call's token counts.
type usage struct{ in, out int }

// errKind is a class of error answer, rendered in each provider's shape.
type errKind int

const (
	errAuth errKind = iota
	errBadRequest
	errTooLarge
	errRateLimit
	errServer
	errOverloaded
)

// apiError is an error answer to render.
type apiError struct {
	status     int
	kind       errKind
	message    string
	retryAfter int  // seconds, for errRateLimit
	missingKey bool // errAuth: no key at all, rather than a wrong one
}

// dialect is one provider's side of the simulator.
type dialect interface {
	name() llm.Name
	// key returns the credentials' header name and value ("" when
	// absent).
	key(r *http.Request) (header, key string)
	// parse reads the request and records what it sent in c; a non-empty
	// problem is answered 400.
	parse(r *http.Request, body []byte, c *Call) (in input, problem string)
	// success is the answer; u nil leaves usage out.
	success(seq int, now time.Time, in input, answer string, u *usage) any
	// refusal is the provider's refusal answer.
	refusal(seq int, now time.Time, in input, u usage) any
	// failure renders e: its status and body.
	failure(e apiError) (int, any)
	// overloadStatus is the status of an overloaded fault.
	overloadStatus() int
}

// serve is the handler of d's generation endpoint.
func (s *Sim) serve(d dialect) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		c := Call{Provider: d.name(), Path: r.URL.Path, Time: s.opts.Now().UTC(), Headers: map[string]string{}}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			c.Headers["content-type"] = ct
		}
		var in input
		defer func() {
			c.Status = w.status
			s.record(c, in.user)
		}()

		header, key := d.key(r)
		c.AuthHeader = header
		if key == "" {
			writeError(w, d, apiError{kind: errAuth, missingKey: true})
			return
		}
		if c.KeyAccepted = s.accepts(d.name(), key); !c.KeyAccepted {
			writeError(w, d, apiError{kind: errAuth})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err != nil {
			return // the client went away
		}
		if len(body) > maxRequestBody {
			writeError(w, d, apiError{status: http.StatusRequestEntityTooLarge, kind: errTooLarge, message: "request body too large"})
			return
		}
		parsed, problem := d.parse(r, body, &c)
		if problem != "" {
			writeError(w, d, apiError{status: http.StatusBadRequest, kind: errBadRequest, message: problem})
			return
		}
		in = parsed
		if !wait(r.Context(), s.latencyOf(d.name())) {
			return
		}

		f := s.takeFault(d.name())
		kind := FaultKind("")
		if f != nil {
			kind = f.Kind
			c.Fault = kind
		}
		switch kind {
		case FaultRateLimit:
			ra := f.RetryAfterSeconds
			if ra <= 0 {
				ra = 1
			}
			writeError(w, d, apiError{status: http.StatusTooManyRequests, kind: errRateLimit, message: "rate limit reached; retry later", retryAfter: ra})
			return
		case FaultServerError:
			st := http.StatusInternalServerError
			if f.Status >= 500 && f.Status <= 599 {
				st = f.Status
			}
			writeError(w, d, apiError{status: st, kind: errServer, message: "internal server error"})
			return
		case FaultOverloaded:
			writeError(w, d, apiError{status: d.overloadStatus(), kind: errOverloaded, message: "the model is overloaded; try again later"})
			return
		case FaultHang:
			delay := time.Duration(f.DelayMillis) * time.Millisecond
			if delay <= 0 {
				delay = DefaultHang
			}
			if !wait(r.Context(), delay) {
				return
			}
		case FaultMalformed:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"id":"sim-malformed","choices":[{"message":{"content":"{\"text\":`)
			return
		}

		inTokens := tokens(in.system + in.user)
		if kind == FaultRefusal {
			writeJSON(w, http.StatusOK, d.refusal(s.nextSeq(), s.opts.Now().UTC(), in, usage{in: inTokens}))
			return
		}
		answer := answerFor(in.user, kind)
		var u *usage
		if kind != FaultNoUsage {
			u = &usage{in: inTokens, out: tokens(answer)}
		}
		writeJSON(w, http.StatusOK, d.success(s.nextSeq(), s.opts.Now().UTC(), in, answer, u))
	}
}

// answerFor is the answer content to user under fault kind.
func answerFor(user string, kind FaultKind) string {
	p, ok := ParsePostData(user)
	if !ok {
		return Answer(user)
	}
	switch kind {
	case FaultNoLink:
		p.Link = ""
	case FaultOverLength:
		a := Adapt(p)
		a.Text = overLength(a.Text, p.MaxCharacters)
		return encode(a)
	}
	return encode(Adapt(p))
}

// tokens is the simulator's token count of s: a token per four bytes,
// rounded up.
func tokens(s string) int { return (len(s) + 3) / 4 }

// chars is the length of s in code points.
func chars(s string) int { return utf8.RuneCountInString(s) }

// writeError answers e in d's shape.
func writeError(w http.ResponseWriter, d dialect, e apiError) {
	status, body := d.failure(e)
	if e.kind == errRateLimit {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, status, body)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// statusWriter remembers the status answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// bearer returns the bearer token of r, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// textOf reads a message content: a string, or an array of blocks whose
// "text" fields are joined.
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var b strings.Builder
	for _, bl := range blocks {
		b.WriteString(bl.Text)
	}
	return b.String()
}

func (s *Sim) handleAddFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&f); err != nil || !f.Provider.Valid() || !knownFault(f.Kind) || f.Times < -1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": "want {provider: openai|anthropic|gemini|cohere, kind, times?, retryAfterSeconds?, delayMillis?, status?}",
		})
		return
	}
	s.AddFault(f)
	w.WriteHeader(http.StatusNoContent)
}

func knownFault(k FaultKind) bool {
	for _, f := range FaultKinds {
		if f == k {
			return true
		}
	}
	return false
}

func (s *Sim) handleClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) handleLatency(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Provider llm.Name `json:"provider"`
		Millis   int      `json:"millis"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || !in.Provider.Valid() || in.Millis < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {provider: openai|anthropic|gemini|cohere, millis >= 0}"})
		return
	}
	s.SetLatency(in.Provider, time.Duration(in.Millis)*time.Millisecond)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) handleCalls(w http.ResponseWriter, r *http.Request) {
	p := llm.Name(r.URL.Query().Get("provider"))
	out := []Call{}
	for _, c := range s.Calls() {
		if p == "" || c.Provider == p {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) handleClearCalls(w http.ResponseWriter, _ *http.Request) {
	s.ClearCalls()
	w.WriteHeader(http.StatusNoContent)
}
