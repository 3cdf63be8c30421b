package httpapi

import (
	"net/http"
	"strconv"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/site"
)

func (s *Server) createSite(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var in site.NewSite
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	st, err := s.d.Sites.Create(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sites/"+st.ID)
	return writeJSON(w, http.StatusCreated, st)
}

func (s *Server) listSites(w http.ResponseWriter, r *http.Request, _ Principal) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	sites, next, err := s.d.Sites.List(r.Context(), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": sites, "nextCursor": next})
}

func (s *Server) getSite(w http.ResponseWriter, r *http.Request, _ Principal) error {
	st, err := s.d.Sites.Get(r.Context(), r.PathValue("siteId"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) getOwnSite(w http.ResponseWriter, r *http.Request, p Principal) error {
	st, err := s.d.Sites.Get(r.Context(), p.SiteID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// newKey is the body of POST /v1/sites/{siteId}/keys.
type newKey struct {
	Name string `json:"name"`
}

// issuedKey is the one answer that ever shows a key.
type issuedKey struct {
	site.Key
	Secret string `json:"key"`
}

func (s *Server) issueKey(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var in newKey
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	k, secret, err := s.d.Sites.IssueKey(r.Context(), r.PathValue("siteId"), in.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, issuedKey{Key: k, Secret: secret})
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, _ Principal) error {
	siteID := r.PathValue("siteId")
	if _, err := s.d.Sites.Get(r.Context(), siteID); err != nil {
		return err
	}
	keys, err := s.d.Sites.Keys(r.Context(), siteID)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []site.Key{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": keys})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, _ Principal) error {
	if err := s.d.Sites.RevokeKey(r.Context(), r.PathValue("siteId"), r.PathValue("keyId")); err != nil {
		return err
	}
	s.keys.forget(r.PathValue("siteId"), r.PathValue("keyId"))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pageLimit reads ?limit= (1..100, default 50).
func pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, apperr.Invalid("limit", "must be a whole number from 1 to 100")
	}
	return n, nil
}
