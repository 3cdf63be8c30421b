// Package platformsim is a local simulator of the publishing and OAuth APIs
// of every platform POSSE supports, faithful to the reference in the
// project's platform notes: the same paths under a per-platform prefix
// (/x, /linkedin, /facebook, /instagram, /threads, /tiktok, /bluesky,
// /mastodon), the same required headers, status codes and body shapes.
//
// It records every post it accepts (GET/DELETE /_sim/posts), knows the
// accounts and tokens it issued or was told about (POST /_sim/accounts), and
// injects faults per platform (POST/DELETE /_sim/faults). It also receives
// POSSE's own webhooks (/_sim/webhooks/{name}, webhooks.go), verifying their
// Standard Webhooks signatures. It is used by `make dev` and by tests; it
// only ever listens on loopback.
package platformsim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind is a failure the simulator can inject.
type FaultKind string

// Faults. Each platform renders them in its own shapes.
const (
	FaultRateLimit          FaultKind = "rate_limit"           // 429 (or the platform's equivalent) with reset headers
	FaultServerError        FaultKind = "server_error"         // 5xx before anything is written
	FaultTimeoutAfterCreate FaultKind = "timeout_after_create" // the post is created, then the connection is dropped
	FaultExpiredToken       FaultKind = "expired_token"        // the platform's dead-token answer
	FaultDuplicate          FaultKind = "duplicate"            // the platform's duplicate-content rejection
	FaultMediaFetch         FaultKind = "media_fetch"          // media download/processing fails
	FaultSlow               FaultKind = "slow"                 // the answer is delayed by Delay
	FaultAccessDenied       FaultKind = "access_denied"        // the OAuth authorize page answers error=access_denied
	FaultInvalidGrant       FaultKind = "invalid_grant"        // the token endpoint rejects the code or refresh token
)

// Fault is one injected failure.
type Fault struct {
	Platform string    `json:"platform"`
	Kind     FaultKind `json:"kind"`
	// Times is how many matching requests it affects; 0 means 1.
	Times int `json:"times,omitempty"`
	// ResetSeconds is how far ahead the rate-limit reset lies (default 60).
	ResetSeconds int `json:"resetSeconds,omitempty"`
	// DelayMillis delays the answer (FaultSlow).
	DelayMillis int `json:"delayMillis,omitempty"`
	// Status overrides the HTTP status of FaultServerError when it is a
	// 5xx (default: the platform's usual 500 or 503).
	Status int `json:"status,omitempty"`
}

// Post is one post the simulator accepted.
type Post struct {
	Platform  string            `json:"platform"`
	ID        string            `json:"id"`
	URL       string            `json:"url,omitempty"`
	AccountID string            `json:"accountId"`
	Text      string            `json:"text"`
	Media     []string          `json:"media,omitempty"` // media ids or URLs
	Extra     map[string]string `json:"extra,omitempty"` // idempotency key, rkey, visibility...
	CreatedAt time.Time         `json:"createdAt"`
}

// Account is an account the simulator knows, with its current access token.
type Account struct {
	Platform    string `json:"platform"`
	ID          string `json:"accountId"`
	Handle      string `json:"handle"`
	AccessToken string `json:"accessToken"`
	// RefreshToken is set by the OAuth endpoints; rotating platforms reject
	// the previous one.
	RefreshToken string    `json:"refreshToken,omitempty"`
	ExpiresAt    time.Time `json:"expiresAt,omitempty"`
	Password     string    `json:"password,omitempty"` // Bluesky app password
	// Privacy is a Mastodon account's default post visibility
	// (source.privacy: public, unlisted, private or direct; default public).
	Privacy string `json:"privacy,omitempty"`
}

// Options configure a Server.
type Options struct {
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// PublicURL is the simulator's own base URL (http://127.0.0.1:port),
	// used in upload URLs and post URLs it hands out. Set it once the
	// listener is bound.
	PublicURL string
	// Clients are the OAuth client credentials each platform accepts, by
	// platform name. A platform with no entry accepts any non-empty pair.
	Clients map[string]Client
	// MetricsStep is the time step of the engagement figures (default one
	// second): figures grow once per step since a post was created.
	MetricsStep time.Duration
	// AfterCreate, when set, is called with every post the simulator has
	// just created, before the answer is written: the local runner's fault
	// soak crashes the publishing function there, so the post exists and
	// its answer is lost.
	AfterCreate func(Post)
}

// Client is an OAuth client registered with a platform.
type Client struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// Server is the simulator. Create it with New; it is an http.Handler.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	seq      int
	posts    []Post
	faults   []*Fault
	accounts map[string]*Account // by platform + "|" + access token
	byID     map[string]*Account // by platform + "|" + account id
	state    map[string]any      // per-platform state (containers, uploads...), keyed by platform-defined keys
	calls    map[string]int      // counts per "platform op", for tests (e.g. "x token_refresh")
	// issued holds every credential the simulator issued or was given:
	// tokens, refresh tokens, codes, passwords, client secrets (Secrets).
	issued map[string]struct{}
	// hooks are the simulated webhook endpoints (webhooks.go).
	hooks *receivers
}

// New returns a simulator with every platform's routes registered.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:     opts,
		mux:      http.NewServeMux(),
		accounts: map[string]*Account{},
		byID:     map[string]*Account{},
		state:    map[string]any{},
		calls:    map[string]int{},
		issued:   map[string]struct{}{},
		hooks:    newReceivers(),
	}
	for _, c := range opts.Clients {
		s.issueLocked(c.Secret)
	}
	s.mux.HandleFunc("GET /_sim/posts", s.handleListPosts)
	s.mux.HandleFunc("DELETE /_sim/posts", s.handleClearPosts)
	s.mux.HandleFunc("POST /_sim/faults", s.handleAddFault)
	s.mux.HandleFunc("GET /_sim/faults", s.handleListFaults)
	s.mux.HandleFunc("DELETE /_sim/faults", s.handleClearFaults)
	s.mux.HandleFunc("POST /_sim/accounts", s.handleAddAccount)
	s.mux.HandleFunc("GET /_sim/calls", s.handleCalls)
	s.mux.HandleFunc("GET /_sim/secrets", s.handleSecrets)
	s.mux.HandleFunc("GET /_sim/media/{name}", s.handleMedia)
	s.registerWebhookReceiver()
	for _, register := range platformRoutes {
		register(s)
	}
	return s
}

// platformRoutes is filled by each platform's file in init.
var platformRoutes []func(*Server)

// SetPublicURL sets the base URL once the listener is bound.
func (s *Server) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.PublicURL = u
}

// PublicURL is the simulator's base URL.
func (s *Server) PublicURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.PublicURL
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handle registers a route ("POST /x/2/tweets").
func (s *Server) handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// nextID returns a fresh numeric id as text.
func (s *Server) nextID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return strconv.Itoa(1000000 + s.seq)
}

// record stores an accepted post and returns it.
func (s *Server) record(p Post) Post {
	s.mu.Lock()
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.opts.Now().UTC()
	}
	s.posts = append(s.posts, p)
	hook := s.opts.AfterCreate
	s.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return p
}

// Posts returns the recorded posts, optionally of one platform.
func (s *Server) Posts(platform string) []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Post{}
	for _, p := range s.posts {
		if platform == "" || p.Platform == platform {
			out = append(out, p)
		}
	}
	return out
}

// AddAccount registers an account and its token (tests and OAuth use it).
func (s *Server) AddAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := a
	s.issueLocked(a.AccessToken, a.RefreshToken, a.Password)
	s.byID[a.Platform+"|"+a.ID] = &cp
	if a.AccessToken != "" {
		s.accounts[a.Platform+"|"+a.AccessToken] = &cp
	}
}

// accountByToken returns the account whose current access token is tok.
func (s *Server) accountByToken(platform, tok string) (*Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[platform+"|"+tok]
	if !ok {
		return nil, false
	}
	if !a.ExpiresAt.IsZero() && s.opts.Now().After(a.ExpiresAt) {
		return nil, false
	}
	return a, true
}

// accountByID returns a known account.
func (s *Server) accountByID(platform, id string) (*Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byID[platform+"|"+id]
	return a, ok
}

// setToken replaces an account's access token (OAuth refresh).
func (s *Server) setToken(a *Account, access string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, a.Platform+"|"+a.AccessToken)
	a.AccessToken = access
	a.ExpiresAt = expires
	s.issueLocked(access)
	s.accounts[a.Platform+"|"+access] = a
}

// issueLocked remembers credentials the simulator issued or was given; the
// caller holds s.mu.
func (s *Server) issueLocked(secrets ...string) {
	for _, v := range secrets {
		if v != "" {
			s.issued[v] = struct{}{}
		}
	}
}

// Secrets lists every credential the simulator issued or was given:
// access and refresh tokens, authorization codes, app passwords, OAuth
// client secrets. Tests scan logs and stored data for them.
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.issued))
	for v := range s.issued {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// with runs f holding the simulator's lock, for platform state.
func (s *Server) with(f func(state map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.state)
}

// count adds one to a per-platform operation counter.
func (s *Server) count(platform, op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[platform+" "+op]++
}

// Calls returns how often platform op was called ("x token_refresh").
func (s *Server) Calls(platform, op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[platform+" "+op]
}

// AddFault injects a fault.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.ResetSeconds <= 0 {
		f.ResetSeconds = 60
	}
	cp := f
	s.faults = append(s.faults, &cp)
}

// Faults lists the faults still pending, in order, with the requests each
// will still affect (Times).
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, len(s.faults))
	for i, f := range s.faults {
		out[i] = *f
	}
	return out
}

// takeFault consumes and returns the first pending fault of platform whose
// kind is one of kinds, or nil.
func (s *Server) takeFault(platform string, kinds ...FaultKind) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Platform != platform {
			continue
		}
		for _, k := range kinds {
			if f.Kind == k {
				f.Times--
				out := *f
				if f.Times <= 0 {
					s.faults = append(s.faults[:i], s.faults[i+1:]...)
				}
				return &out
			}
		}
	}
	return nil
}

// now is the simulator's clock.
func (s *Server) now() time.Time { return s.opts.Now() }

// dropConnection closes the client's connection without an answer: what a
// client sees when the platform wrote the post and the response was lost.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONEncoded is writeJSON, gzip-encoded when the request accepts
// gzip, as the platforms' front ends answer (Go's client asks for gzip and
// decodes it without the caller knowing).
func writeJSONEncoded(w http.ResponseWriter, r *http.Request, status int, v any) {
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		writeJSON(w, status, v)
		return
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_ = json.NewEncoder(zw).Encode(v)
	_ = zw.Close()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// acceptsGzip reports whether an Accept-Encoding value accepts gzip (a
// q=0 weight refuses it).
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(coding) != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// bearer returns the bearer token of r, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) > len(p) && (h[:len(p)] == p || h[:len(p)] == "bearer ") {
		return h[len(p):]
	}
	return ""
}

func (s *Server) handleListPosts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"posts": s.Posts(r.URL.Query().Get("platform"))})
}

func (s *Server) handleClearPosts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.posts = nil
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAddFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.Platform == "" || f.Kind == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {platform, kind, times?, resetSeconds?, delayMillis?, status?}"})
		return
	}
	s.AddFault(f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": s.Faults()})
}

func (s *Server) handleClearFaults(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAddAccount(w http.ResponseWriter, r *http.Request) {
	var a Account
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil || a.Platform == "" || a.ID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {platform, accountId, handle, accessToken}"})
		return
	}
	s.AddAccount(a)
	w.WriteHeader(http.StatusNoContent)
}

// handleSecrets answers Secrets as {"secrets": [...]}: a test accessor of a
// simulator whose credentials are all made up, served on loopback only.
func (s *Server) handleSecrets(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"secrets": s.Secrets()})
}

func (s *Server) handleCalls(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.calls))
	for k := range s.calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]int{}
	for _, k := range keys {
		out[k] = s.calls[k]
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// maxGeneratedMedia bounds ?bytes= (X's 8 GB video cap).
const maxGeneratedMedia = 8 << 30

// handleMedia serves generated media so pull-from-URL flows have something
// real to fetch: /_sim/media/<name>.jpg|.png|.gif|.mp4. A name starting
// with "missing" answers 404. ?bytes=N makes the file N bytes long,
// generated as it is written, so a large video is served without being
// held; ?unsized=1 leaves Content-Length out (a chunked answer).
func (s *Server) handleMedia(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if len(name) >= 7 && name[:7] == "missing" {
		http.NotFound(w, r)
		return
	}
	ct, body := mediaBytes(name)
	size := int64(len(body))
	if q := r.URL.Query().Get("bytes"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < int64(len(body)) || n > maxGeneratedMedia {
			http.Error(w, "bytes must be between 4096 and 8 GiB", http.StatusBadRequest)
			return
		}
		size = n
	}
	w.Header().Set("Content-Type", ct)
	if r.URL.Query().Get("unsized") == "" {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
	// The rest repeats a 64 KiB block: the first bytes carry the magic
	// number, the rest is filler.
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i * 7)
	}
	for left := size - int64(len(body)); left > 0; {
		n := min(left, int64(len(block)))
		if _, err := w.Write(block[:n]); err != nil {
			return
		}
		left -= n
	}
}

// mediaBytes returns a small payload whose first bytes carry the right magic
// number for the extension, so content sniffing works.
func mediaBytes(name string) (string, []byte) {
	var ct string
	var head []byte
	switch {
	case hasSuffix(name, ".png"):
		ct, head = "image/png", []byte("\x89PNG\r\n\x1a\n")
	case hasSuffix(name, ".mp4"):
		ct, head = "video/mp4", []byte("\x00\x00\x00\x18ftypmp42")
	case hasSuffix(name, ".gif"):
		ct, head = "image/gif", []byte("GIF89a")
	default:
		ct, head = "image/jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
	}
	body := make([]byte, 4096)
	copy(body, head)
	for i := len(head); i < len(body); i++ {
		body[i] = byte(i)
	}
	return ct, body
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }
