// Package httpapi is POSSE's HTTP API as a plain http.Handler: routing,
// authentication scoped to one site, JSON decoding that names the field at
// fault, and errors answered as application/problem+json through one
// kind→status table. The api function wraps it with the API Gateway adapter;
// tests drive it with httptest, without any Lambda types.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/site"
)

var (
	ioEOF           = io.EOF
	ioUnexpectedEOF = io.ErrUnexpectedEOF
)

// AdminKeyPrefix starts the admin key.
const AdminKeyPrefix = "posse_admin_"

// Access is who may call a route.
type Access int

// Access levels.
const (
	Public   Access = iota // no key (health, OpenAPI, OAuth callbacks)
	SiteKey                // a site's API key; the handler acts for that site only
	AdminKey               // the admin key from configuration
)

// Principal is the authenticated caller.
type Principal struct {
	Admin  bool
	SiteID string
	KeyID  string
}

// handlerFunc is a route's handler; a returned error is answered as a problem.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p Principal) error

// Route describes one route, for the router and the OpenAPI check.
type Route struct {
	Method  string
	Pattern string // ServeMux pattern path, e.g. /v1/sites/{siteId}
	Access  Access
	handler handlerFunc
}

// siteStore is what the API needs of sites and keys.
type siteStore interface {
	Create(ctx context.Context, n site.NewSite) (site.Site, error)
	Get(ctx context.Context, id string) (site.Site, error)
	List(ctx context.Context, limit int, cursor string) ([]site.Site, string, error)
	IssueKey(ctx context.Context, siteID, name string) (site.Key, string, error)
	Keys(ctx context.Context, siteID string) ([]site.Key, error)
	RevokeKey(ctx context.Context, siteID, keyID string) error
	Authenticate(ctx context.Context, presented string) (site.Key, error)
}

// HealthChecker reports whether each dependency answers.
type HealthChecker interface {
	Check(ctx context.Context) map[string]error
}

// Deps are what the API is built from.
type Deps struct {
	Sites          siteStore
	Health         HealthChecker
	AdminKeySHA256 string // "" disables the admin routes
	MaxBodyBytes   int64
	Version        string
	Logger         *slog.Logger
	Now            func() time.Time
	HealthCacheTTL time.Duration
	// Connections runs the connection and OAuth routes.
	Connections connectionService
	// Targets, Deliveries (the ledger), Snapshots, Publishers (the
	// adapters' Capabilities and Validate) and Queue run the publishing
	// routes: targets, dispatch, deliveries and queue operations.
	Targets    targetStore
	Deliveries deliveryLedger
	Snapshots  snapshotSaver
	Publishers publisherRegistry
	Queue      queueOps
	// Idempotency keeps Idempotency-Key answers of mutating routes.
	Idempotency idempotencyStore
	// Audit records every successful mutating call and lists them.
	Audit auditLog
	// Analytics answers GET /v1/analytics.
	Analytics analyticsQuery
	// RecentStats (shared/stats.Store) and Blocks (the platform blocks of
	// shared/ratelimit.Limiter) answer GET /v1/platforms/health, with
	// Connections.
	RecentStats recentStats
	Blocks      blockReader
	// Readings lists engagement readings (shared/engagement.Store) for
	// GET /v1/deliveries/{id}/metrics.
	Readings readingStore
	// Schedules runs the schedule routes (shared/schedule.Service); they
	// compose and validate with Targets, Connections and Publishers.
	Schedules scheduleService
	// AI runs POST /v1/ai/preview and GET /v1/ai/usage (shared/ai.Router).
	// AIConfigured says whether any LLM provider is configured: without
	// one, requestAiAssets is refused (422 ai_not_configured).
	AI                    aiAdapter
	AIConfigured          bool
	AIDefaultBudgetMicros int64
	// SiteSettings runs PATCH /v1/sites/{siteId} (shared/site.Store).
	SiteSettings siteSettings
	// Webhooks runs the webhook routes (shared/webhook.Service).
	Webhooks webhookService
	// KeyCacheTTL is how long a successful API key lookup is trusted
	// without reading the key again (DefaultKeyCacheTTL in the api
	// function): the longest a revoked key may still pass on another warm
	// instance. 0 reads the key on every call.
	KeyCacheTTL time.Duration
}

// Server is the API. Create it with New.
type Server struct {
	d      Deps
	mux    *http.ServeMux
	routes []Route
	health healthCache
	keys   keyCache
	// tx writes dispatches in one transaction; nil when a store cannot.
	tx *txStores
}

// New returns the API with every route registered.
func New(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	s := &Server{d: d, mux: http.NewServeMux()}
	s.health.ttl = d.HealthCacheTTL
	s.keys.ttl = d.KeyCacheTTL
	s.tx = txStoresOf(d)
	s.add("GET", "/v1/health", Public, s.getHealth)
	s.add("GET", "/v1/openapi.json", Public, s.getOpenAPI)
	s.add("GET", "/v1/site", SiteKey, s.getOwnSite)
	s.add("POST", "/v1/sites", AdminKey, s.createSite)
	s.add("GET", "/v1/sites", AdminKey, s.listSites)
	s.add("GET", "/v1/sites/{siteId}", AdminKey, s.getSite)
	s.add("POST", "/v1/sites/{siteId}/keys", AdminKey, s.issueKey)
	s.add("GET", "/v1/sites/{siteId}/keys", AdminKey, s.listKeys)
	s.add("DELETE", "/v1/sites/{siteId}/keys/{keyId}", AdminKey, s.revokeKey)
	s.addConnectionRoutes()
	s.addTargetRoutes()
	s.addDispatchRoutes()
	s.addDeliveryRoutes()
	s.addQueueRoutes()
	s.addAnalyticsRoutes()
	s.addPlatformRoutes()
	s.addEngagementRoutes()
	s.addAuditRoutes()
	s.addScheduleRoutes()
	s.addAIRoutes()
	s.addWebhookRoutes()
	return s
}

// Routes lists the registered routes, sorted by pattern and method.
func (s *Server) Routes() []Route {
	out := append([]Route(nil), s.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Method < out[j].Method
	})
	return out
}

func (s *Server) add(method, pattern string, access Access, h handlerFunc) {
	h = s.mutation(method, pattern, access, h)
	rt := Route{Method: method, Pattern: pattern, Access: access, handler: h}
	s.routes = append(s.routes, rt)
	s.mux.HandleFunc(method+" "+pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r, access)
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			writeError(w, r, s.d.Logger, err)
		}
	})
}

// ServeHTTP implements http.Handler: request id, access log, routing, and
// problem+json answers for unknown routes (404) and methods (405).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if logging.RequestID(ctx) == "" {
		ctx = logging.WithRequestID(ctx, newRequestID())
		r = r.WithContext(ctx)
	}
	start := s.d.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	w.Header().Set("X-Request-Id", logging.RequestID(ctx))
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.unmatched(rec, r)
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	s.d.Logger.InfoContext(ctx, "request", "method", r.Method, "route", routeOf(r), "status", rec.status,
		"duration_ms", s.d.Now().Sub(start).Milliseconds())
}

// unmatched answers a request no route took: 405 with Allow when the path
// exists under another method, else 404.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	probe := httptest.NewRecorder()
	s.mux.ServeHTTP(probe, r)
	if probe.Code == http.StatusMethodNotAllowed {
		allow := probe.Header().Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, r, s.d.Logger, apperr.Newf(apperr.KindMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		return
	}
	writeError(w, r, s.d.Logger, apperr.Newf(apperr.KindNotFound, "route_not_found", "no route %s %s", r.Method, r.URL.Path))
}

func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// authenticate checks the bearer key against the route's access level.
func (s *Server) authenticate(r *http.Request, access Access) (Principal, error) {
	if access == Public {
		return Principal{}, nil
	}
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if h == "" {
		return Principal{}, apperr.New(apperr.KindUnauthorized, "missing_key", "send the API key as Authorization: Bearer <key>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return Principal{}, apperr.New(apperr.KindUnauthorized, "invalid_authorization", "the Authorization header must be Bearer <key>")
	}
	key = strings.TrimSpace(key)
	if strings.HasPrefix(key, AdminKeyPrefix) {
		if !s.isAdminKey(key) {
			return Principal{}, site.ErrUnknownKey
		}
		if access != AdminKey {
			return Principal{}, apperr.New(apperr.KindForbidden, "admin_key_not_site_key", "the admin key manages sites and keys; use a site key for this route")
		}
		return Principal{Admin: true}, nil
	}
	hash := site.HashKey(key)
	k, cached := s.keys.get(hash, s.d.Now())
	if !cached {
		var err error
		if k, err = s.d.Sites.Authenticate(r.Context(), key); err != nil {
			s.keys.drop(hash)
			return Principal{}, err
		}
		s.keys.put(hash, k, s.d.Now())
	}
	if access == AdminKey {
		return Principal{}, apperr.New(apperr.KindForbidden, "admin_only", "this route needs the admin key")
	}
	return Principal{SiteID: k.SiteID, KeyID: k.ID}, nil
}

func (s *Server) isAdminKey(key string) bool {
	if s.d.AdminKeySHA256 == "" {
		return false
	}
	sum := sha256.Sum256([]byte(key))
	got := hex.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.d.AdminKeySHA256)) == 1
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// statusRecorder remembers the status written, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
