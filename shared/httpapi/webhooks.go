package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/posse-dev/posse/shared/webhook"
)

// webhookService manages a site's webhook endpoints (shared/webhook.Service).
type webhookService interface {
	Create(ctx context.Context, siteID string, in webhook.Input) (webhook.WithSecret, error)
	List(ctx context.Context, siteID string, limit int, cursor string) ([]webhook.Endpoint, string, error)
	Get(ctx context.Context, siteID, id string) (webhook.Endpoint, error)
	Update(ctx context.Context, siteID, id string, in webhook.Input) (webhook.Endpoint, error)
	Delete(ctx context.Context, siteID, id string) error
	RotateSecret(ctx context.Context, siteID, id string, in webhook.RotateInput) (webhook.WithSecret, error)
	Test(ctx context.Context, siteID, id string) (webhook.Queued, error)
	Attempts(ctx context.Context, siteID, id string, limit int, cursor string) ([]webhook.Attempt, string, error)
	Replay(ctx context.Context, siteID, eventID string) (webhook.Queued, error)
}

// addWebhookRoutes registers the webhook routes.
func (s *Server) addWebhookRoutes() {
	s.add("POST", "/v1/webhooks", SiteKey, s.createWebhook)
	s.add("GET", "/v1/webhooks", SiteKey, s.listWebhooks)
	s.add("GET", "/v1/webhooks/{id}", SiteKey, s.getWebhook)
	s.add("PATCH", "/v1/webhooks/{id}", SiteKey, s.updateWebhook)
	s.add("DELETE", "/v1/webhooks/{id}", SiteKey, s.deleteWebhook)
	s.add("POST", "/v1/webhooks/{id}/rotate-secret", SiteKey, s.rotateWebhookSecret)
	s.add("POST", "/v1/webhooks/{id}/test", SiteKey, s.testWebhook)
	s.add("GET", "/v1/webhooks/{id}/attempts", SiteKey, s.listWebhookAttempts)
	s.add("POST", "/v1/webhook-events/{id}/replay", SiteKey, s.replayWebhookEvent)
}

func (s *Server) webhooks() (webhookService, error) {
	if s.d.Webhooks == nil {
		return nil, errNotConfigured("webhook service")
	}
	return s.d.Webhooks, nil
}

// withoutSecret is what an Idempotency-Key replay of an answer that shows
// a secret gets: the same answer with the secret left out, so no secret is
// ever stored in the clear. The secret is shown once.
func withoutSecret(r *http.Request, e webhook.Endpoint) {
	b, err := json.Marshal(struct {
		webhook.Endpoint
		Secret *string `json:"secret"`
	}{Endpoint: e})
	if err == nil {
		noteReplayBody(r, append(b, '\n'))
	}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	var in webhook.Input
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	out, err := ws.Create(r.Context(), p.SiteID, in)
	if err != nil {
		return err
	}
	withoutSecret(r, out.Endpoint)
	w.Header().Set("Location", "/v1/webhooks/"+out.ID)
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	items, next, err := ws.List(r.Context(), p.SiteID, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, items, next)
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	e, err := ws.Get(r.Context(), p.SiteID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	var in webhook.Input
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	e, err := ws.Update(r.Context(), p.SiteID, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	if err := ws.Delete(r.Context(), p.SiteID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	var in webhook.RotateInput
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	out, err := ws.RotateSecret(r.Context(), p.SiteID, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	withoutSecret(r, out.Endpoint)
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	var in struct{}
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	q, err := ws.Test(r.Context(), p.SiteID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, q)
}

func (s *Server) listWebhookAttempts(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	items, next, err := ws.Attempts(r.Context(), p.SiteID, r.PathValue("id"), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, items, next)
}

func (s *Server) replayWebhookEvent(w http.ResponseWriter, r *http.Request, p Principal) error {
	ws, err := s.webhooks()
	if err != nil {
		return err
	}
	var in struct{}
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	q, err := ws.Replay(r.Context(), p.SiteID, r.PathValue("id"))
	if err != nil {
		return err
	}
	noteEntity(r, "event", q.EventID)
	return writeJSON(w, http.StatusAccepted, q)
}
