package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/posse-dev/posse/shared/target"
)

// targetStore is what the API needs of targets (shared/target.Store).
type targetStore interface {
	Create(ctx context.Context, siteID string, in target.Input) (target.Target, error)
	Get(ctx context.Context, siteID, id string) (target.Target, error)
	GetMany(ctx context.Context, siteID string, ids []string) (map[string]target.Target, error)
	List(ctx context.Context, siteID string, limit int, cursor string) ([]target.Target, string, error)
	Update(ctx context.Context, siteID, id string, in target.Input) (target.Target, error)
	Delete(ctx context.Context, siteID, id string) error
}

// addTargetRoutes registers the target routes.
func (s *Server) addTargetRoutes() {
	s.add("POST", "/v1/targets", SiteKey, s.createTarget)
	s.add("GET", "/v1/targets", SiteKey, s.listTargets)
	s.add("GET", "/v1/targets/{id}", SiteKey, s.getTarget)
	s.add("PATCH", "/v1/targets/{id}", SiteKey, s.updateTarget)
	s.add("DELETE", "/v1/targets/{id}", SiteKey, s.deleteTarget)
}

// errNotConfigured answers a route whose dependency the API was built
// without (a wiring bug: 500).
func errNotConfigured(what string) error {
	return errors.New("httpapi: no " + what + " configured")
}

func (s *Server) targets() (targetStore, error) {
	if s.d.Targets == nil {
		return nil, errNotConfigured("target store")
	}
	return s.d.Targets, nil
}

func (s *Server) createTarget(w http.ResponseWriter, r *http.Request, p Principal) error {
	ts, err := s.targets()
	if err != nil {
		return err
	}
	var in target.Input
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	t, err := ts.Create(r.Context(), p.SiteID, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/targets/"+t.ID)
	return writeJSON(w, http.StatusCreated, t)
}

func (s *Server) listTargets(w http.ResponseWriter, r *http.Request, p Principal) error {
	ts, err := s.targets()
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	items, next, err := ts.List(r.Context(), p.SiteID, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, items, next)
}

func (s *Server) getTarget(w http.ResponseWriter, r *http.Request, p Principal) error {
	ts, err := s.targets()
	if err != nil {
		return err
	}
	t, err := ts.Get(r.Context(), p.SiteID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) updateTarget(w http.ResponseWriter, r *http.Request, p Principal) error {
	ts, err := s.targets()
	if err != nil {
		return err
	}
	var in target.Input
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	t, err := ts.Update(r.Context(), p.SiteID, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request, p Principal) error {
	ts, err := s.targets()
	if err != nil {
		return err
	}
	if err := ts.Delete(r.Context(), p.SiteID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
