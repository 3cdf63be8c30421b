package httpapi

import (
	"context"
	"net"
	"net/http"
	"path"
	"strings"

	"github.com/posse-dev/posse/shared/audit"
	"github.com/posse-dev/posse/shared/logging"
)

// SourceIPHeader carries the caller's IP from API Gateway's request
// context. The api function's main sets it on every request, replacing
// any value a client sent, so it can be trusted here.
const SourceIPHeader = "X-Posse-Source-Ip"

// auditLog records and lists audit entries (shared/audit.Store).
type auditLog interface {
	Record(ctx context.Context, e audit.Entry) (audit.Entry, error)
	List(ctx context.Context, siteID string, limit int, cursor string) ([]audit.Entry, string, error)
}

// addAuditRoutes registers GET /v1/audit.
func (s *Server) addAuditRoutes() {
	s.add("GET", "/v1/audit", SiteKey, s.listAudit)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.Audit == nil {
		return errNotConfigured("audit log")
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	items, next, err := s.d.Audit.List(r.Context(), p.SiteID, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, items, next)
}

// actions names what each mutating route does, for the audit log. A route
// not listed is recorded as "<METHOD> <pattern>".
var actions = map[string]string{
	"POST /v1/sites":                            "site.create",
	"POST /v1/sites/{siteId}/keys":              "key.issue",
	"DELETE /v1/sites/{siteId}/keys/{keyId}":    "key.revoke",
	"POST /v1/connections/{platform}/authorize": "connection.authorize",
	"POST /v1/connections":                      "connection.create",
	"DELETE /v1/connections/{id}":               "connection.delete",
	"POST /v1/connections/{id}/validate":        "connection.validate",
	"POST /v1/targets":                          "target.create",
	"PATCH /v1/targets/{id}":                    "target.update",
	"DELETE /v1/targets/{id}":                   "target.delete",
	"POST /v1/dispatch":                         "post.dispatch",
	"POST /v1/dispatch/bulk":                    "post.dispatch_bulk",
	"POST /v1/deliveries/{id}/retry":            "delivery.retry",
	"POST /v1/deliveries/{id}/cancel":           "delivery.cancel",
	"POST /v1/deliveries/{id}/resolve":          "delivery.resolve",
	"POST /v1/queue/redrive":                    "queue.redrive",
	"POST /v1/queue/move-task":                  "queue.move_task_start",
	"DELETE /v1/queue/move-task":                "queue.move_task_cancel",
	"POST /v1/webhooks":                         "webhook.create",
	"PATCH /v1/webhooks/{id}":                   "webhook.update",
	"DELETE /v1/webhooks/{id}":                  "webhook.delete",
	"POST /v1/webhooks/{id}/rotate-secret":      "webhook.rotate_secret",
	"POST /v1/webhooks/{id}/test":               "webhook.test",
	"POST /v1/webhook-events/{id}/replay":       "event.replay",
}

// entityTypes names the entity of a route's first path segment.
var entityTypes = map[string]string{
	"sites": "site", "connections": "connection", "targets": "target", "deliveries": "delivery", "queue": "queue",
	"webhooks": "webhook", "webhook-events": "event",
}

// auditNote lets a handler refine its audit entry.
type auditNote struct {
	action, entityType, entityID string
	replayed                     bool // an Idempotency-Key replay: nothing was done
	// audited: the handler wrote the entry in its own transaction.
	audited bool
	// replayBody, when set, is stored for Idempotency-Key replays instead
	// of the answer (an answer that shows a secret once).
	replayBody []byte
}

type auditKey struct{}

func noteOf(r *http.Request) *auditNote {
	n, _ := r.Context().Value(auditKey{}).(*auditNote)
	return n
}

// noteEntity names the entity a call acted on, when the route does not.
func noteEntity(r *http.Request, typ, id string) {
	if n := noteOf(r); n != nil {
		n.entityType, n.entityID = typ, id
	}
}

// noteReplayBody sets the body an Idempotency-Key replay of this call
// answers, instead of the one sent now.
func noteReplayBody(r *http.Request, b []byte) {
	if n := noteOf(r); n != nil {
		n.replayBody = b
	}
}

// noteAction replaces the route's action name for this call.
func noteAction(r *http.Request, action string) {
	if n := noteOf(r); n != nil {
		n.action = action
	}
}

// mutation wraps a mutating route (any method but GET, behind a key):
// site-key routes honour Idempotency-Key, and every call that succeeds
// (status below 400, and not a replay) is recorded in the audit log of its
// site. A failed audit write is logged, never turned into a failed call:
// the change was made.
func (s *Server) mutation(method, pattern string, access Access, h handlerFunc) handlerFunc {
	if method == http.MethodGet || method == http.MethodHead || access == Public {
		return h
	}
	if access == SiteKey {
		if txRoutes[method+" "+pattern] && s.tx != nil {
			h = s.idempotentTx(h)
		} else {
			h = s.idempotent(h)
		}
	}
	action := actions[method+" "+pattern]
	if action == "" {
		action = method + " " + pattern
	}
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		note := &auditNote{action: action}
		r = r.WithContext(context.WithValue(r.Context(), auditKey{}, note))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if err := h(rec, r, p); err != nil {
			return err
		}
		if rec.status < 400 && !note.replayed && !note.audited {
			s.audit(r, p, pattern, rec, note)
		}
		return nil
	}
}

// audit records one successful call.
func (s *Server) audit(r *http.Request, p Principal, pattern string, rec *statusRecorder, note *auditNote) {
	if s.d.Audit == nil {
		return
	}
	e, ok := s.auditEntry(r, p, pattern, rec.status, rec.Header().Get("Location"), note)
	if !ok {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	if _, err := s.d.Audit.Record(ctx, e); err != nil {
		s.d.Logger.ErrorContext(ctx, "audit entry not recorded", "action", e.Action, "site", e.SiteID, "err", err)
	}
}

// auditEntry is the entry of a call that answered status (and loc as its
// Location); false when it belongs to no site.
func (s *Server) auditEntry(r *http.Request, p Principal, pattern string, status int, loc string, note *auditNote) (audit.Entry, bool) {
	e := audit.Entry{
		SiteID: p.SiteID, KeyID: p.KeyID, Action: note.action, Method: r.Method, Path: r.URL.Path,
		Status: status, SourceIP: sourceIP(r), RequestID: logging.RequestID(r.Context()),
		EntityType: note.entityType, EntityID: note.entityID, At: s.d.Now(),
	}
	if p.Admin {
		e.KeyID = "admin"
		e.SiteID = r.PathValue("siteId")
		if e.SiteID == "" && strings.HasPrefix(loc, "/v1/sites/") {
			e.SiteID = path.Base(loc)
		}
	}
	if e.SiteID == "" {
		return audit.Entry{}, false
	}
	if e.EntityType == "" {
		seg := strings.SplitN(strings.TrimPrefix(pattern, "/v1/"), "/", 2)[0]
		e.EntityType = entityTypes[seg]
		switch {
		case r.PathValue("id") != "":
			e.EntityID = r.PathValue("id")
		case r.PathValue("keyId") != "":
			e.EntityType, e.EntityID = "key", r.PathValue("keyId")
		case loc != "":
			e.EntityID = path.Base(loc)
		case r.PathValue("siteId") != "":
			e.EntityID = r.PathValue("siteId")
		}
	}
	return e, true
}

// sourceIP is the caller's address: the header the api function sets from
// API Gateway's request context, else the first X-Forwarded-For entry,
// else the connection's peer.
func sourceIP(r *http.Request) string {
	if v := strings.TrimSpace(r.Header.Get(SourceIPHeader)); v != "" {
		return v
	}
	if v := r.Header.Get("X-Forwarded-For"); v != "" {
		if ip := strings.TrimSpace(strings.Split(v, ",")[0]); net.ParseIP(ip) != nil {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
