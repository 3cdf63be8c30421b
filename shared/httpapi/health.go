package httpapi

import (
	_ "embed"
	"net/http"
	"sync"
	"time"
)

//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return openapiDoc }

// healthCache keeps the last dependency check for ttl.
type healthCache struct {
	ttl  time.Duration
	mu   sync.Mutex
	at   time.Time
	last map[string]string
	ok   bool
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request, _ Principal) error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	now := s.d.Now()
	if s.health.last == nil || now.Sub(s.health.at) >= s.health.ttl {
		checks := map[string]string{}
		ok := true
		if s.d.Health != nil {
			for name, err := range s.d.Health.Check(r.Context()) {
				if err != nil {
					ok = false
					checks[name] = "unavailable"
					s.d.Logger.WarnContext(r.Context(), "health check failed", "dependency", name, "err", err)
				} else {
					checks[name] = "ok"
				}
			}
		}
		s.health.last, s.health.ok, s.health.at = checks, ok, now
	}
	status, code := "ok", http.StatusOK
	if !s.health.ok {
		status, code = "degraded", http.StatusServiceUnavailable
	}
	return writeJSON(w, code, map[string]any{"status": status, "version": s.d.Version, "checks": s.health.last})
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request, _ Principal) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiDoc)
	return nil
}
