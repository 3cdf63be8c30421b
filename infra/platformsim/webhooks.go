package platformsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The webhook receiver stands in for a CMS's webhook endpoints, so the
// local stack can deliver POSSE's own webhooks somewhere:
//
//	POST /_sim/webhooks/{name}       an endpoint: records what it receives and
//	                                 answers 204, or a fault
//	GET  /_sim/webhooks/{name}       what arrived, oldest first, each with
//	                                 verified true/false
//	DELETE /_sim/webhooks/{name}     forget what arrived
//	POST /_sim/webhook-secrets       {name, secret}: a whsec_ secret the endpoint
//	                                 verifies signatures with (repeat for a
//	                                 rotation: any of them may sign)
//	POST /_sim/webhook-faults        {name, status: 500|410|..., times, delayMillis}
//
// Verification follows Standard Webhooks: HMAC-SHA256 over
// "<webhook-id>.<webhook-timestamp>.<body>" keyed with the base64 part of
// the secret, any "v1,<base64>" entry of webhook-signature matching, and a
// timestamp within five minutes.

// WebhookRequest is one request a simulated endpoint received.
type WebhookRequest struct {
	ID        string `json:"webhookId"`
	Timestamp string `json:"webhookTimestamp"`
	Signature string `json:"webhookSignature"`
	// Headers are every header received (first value each).
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	// Status is what the endpoint answered.
	Status     int       `json:"status"`
	ReceivedAt time.Time `json:"receivedAt"`
	// Verified: a signature verified with one of the endpoint's secrets.
	Verified bool `json:"verified"`
	// VerifiedSignatures counts the entries of webhook-signature that
	// verified (2 during a rotation when both secrets are known).
	VerifiedSignatures int `json:"verifiedSignatures"`
}

// WebhookFault makes an endpoint answer Status (after DelayMillis) to its
// next Times requests.
type WebhookFault struct {
	Name        string `json:"name"`
	Status      int    `json:"status"`
	Times       int    `json:"times"`
	DelayMillis int    `json:"delayMillis"`
}

// webhookTolerance is how far webhook-timestamp may be from the clock.
const webhookTolerance = 5 * time.Minute

type receivers struct {
	mu       sync.Mutex
	requests map[string][]WebhookRequest
	secrets  map[string][]string
	faults   map[string][]*WebhookFault
}

func newReceivers() *receivers {
	return &receivers{requests: map[string][]WebhookRequest{}, secrets: map[string][]string{}, faults: map[string][]*WebhookFault{}}
}

func (s *Server) registerWebhookReceiver() {
	s.mux.HandleFunc("POST /_sim/webhooks/{name}", s.handleWebhook)
	s.mux.HandleFunc("GET /_sim/webhooks/{name}", s.handleListWebhooks)
	s.mux.HandleFunc("DELETE /_sim/webhooks/{name}", s.handleClearWebhooks)
	s.mux.HandleFunc("POST /_sim/webhook-secrets", s.handleWebhookSecret)
	s.mux.HandleFunc("POST /_sim/webhook-faults", s.handleWebhookFault)
}

// WebhookRequests returns what endpoint name received.
func (s *Server) WebhookRequests(name string) []WebhookRequest {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return slices.Clone(s.hooks.requests[name])
}

// AddWebhookSecret makes endpoint name accept signatures made with secret.
func (s *Server) AddWebhookSecret(name, secret string) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if !slices.Contains(s.hooks.secrets[name], secret) {
		s.hooks.secrets[name] = append(s.hooks.secrets[name], secret)
	}
}

// AddWebhookFault injects a fault into endpoint f.Name.
func (s *Server) AddWebhookFault(f WebhookFault) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.hooks.faults[f.Name] = append(s.hooks.faults[f.Name], &f)
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	req := WebhookRequest{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
		Signature: r.Header.Get("webhook-signature"), Headers: map[string]string{}, Body: string(body), ReceivedAt: s.now().UTC(), Status: http.StatusNoContent}
	for k, v := range r.Header {
		req.Headers[strings.ToLower(k)] = v[0]
	}
	s.hooks.mu.Lock()
	var delay time.Duration
	if fs := s.hooks.faults[name]; len(fs) > 0 {
		f := fs[0]
		req.Status, delay = f.Status, time.Duration(f.DelayMillis)*time.Millisecond
		if f.Times--; f.Times <= 0 {
			s.hooks.faults[name] = fs[1:]
		}
	}
	req.VerifiedSignatures = verifyStandardWebhook(s.hooks.secrets[name], req, s.now())
	req.Verified = req.VerifiedSignatures > 0
	s.hooks.requests[name] = append(s.hooks.requests[name], req)
	s.hooks.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(req.Status)
}

// verifyStandardWebhook counts the signatures of req that verify with one
// of secrets; none when the timestamp is not within the tolerance.
func verifyStandardWebhook(secrets []string, req WebhookRequest, now time.Time) int {
	ts, err := strconv.ParseInt(req.Timestamp, 10, 64)
	if err != nil || req.ID == "" {
		return 0
	}
	if d := now.Sub(time.Unix(ts, 0)); d > webhookTolerance || d < -webhookTolerance {
		return 0
	}
	var macs [][]byte
	for _, sec := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
		if err != nil {
			continue
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(req.ID + "." + req.Timestamp + "." + req.Body))
		macs = append(macs, m.Sum(nil))
	}
	n := 0
	for _, entry := range strings.Fields(req.Signature) {
		version, sig, ok := strings.Cut(entry, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if !ok || version != "v1" || err != nil {
			continue
		}
		for _, want := range macs {
			if subtle.ConstantTimeCompare(got, want) == 1 {
				n++
				break
			}
		}
	}
	return n
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"requests": append([]WebhookRequest{}, s.WebhookRequests(r.PathValue("name"))...)})
}

func (s *Server) handleClearWebhooks(w http.ResponseWriter, r *http.Request) {
	s.hooks.mu.Lock()
	delete(s.hooks.requests, r.PathValue("name"))
	s.hooks.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleWebhookSecret(w http.ResponseWriter, r *http.Request) {
	var in struct{ Name, Secret string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" || !strings.HasPrefix(in.Secret, "whsec_") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {name, secret: whsec_...}"})
		return
	}
	s.AddWebhookSecret(in.Name, in.Secret)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleWebhookFault(w http.ResponseWriter, r *http.Request) {
	var f WebhookFault
	if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.Name == "" || f.Status < 100 || f.Status > 599 || f.DelayMillis < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {name, status: 100-599, times?, delayMillis?}"})
		return
	}
	s.AddWebhookFault(f)
	w.WriteHeader(http.StatusNoContent)
}
