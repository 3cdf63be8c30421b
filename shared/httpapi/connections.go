package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/platform"
)

// connectionService is what the API needs of connections (see
// shared/connection.Service).
type connectionService interface {
	Authorize(ctx context.Context, r connection.AuthorizeRequest) (connection.Authorization, error)
	Callback(ctx context.Context, p platform.Name, q url.Values) (string, error)
	Connect(ctx context.Context, siteID string, m connection.ManualRequest) (connection.Connection, error)
	List(ctx context.Context, siteID string, limit int, cursor string) ([]connection.Connection, string, error)
	Get(ctx context.Context, siteID, id string) (connection.Connection, error)
	Delete(ctx context.Context, siteID, id string) error
	RequestValidation(ctx context.Context, siteID, id string) (connection.Connection, error)
}

// addConnectionRoutes registers the connection and OAuth routes.
func (s *Server) addConnectionRoutes() {
	s.add("POST", "/v1/connections/{platform}/authorize", SiteKey, s.authorizeConnection)
	s.add("GET", "/v1/oauth/{platform}/callback", Public, s.oauthCallback)
	s.add("POST", "/v1/connections", SiteKey, s.createConnection)
	s.add("GET", "/v1/connections", SiteKey, s.listConnections)
	s.add("GET", "/v1/connections/{id}", SiteKey, s.getConnection)
	s.add("DELETE", "/v1/connections/{id}", SiteKey, s.deleteConnection)
	s.add("POST", "/v1/connections/{id}/validate", SiteKey, s.validateConnection)
}

// errNoConnections answers when the API was built without a connection
// service.
var errNoConnections = errors.New("httpapi: no connection service configured")

func (s *Server) connections() (connectionService, error) {
	if s.d.Connections == nil {
		return nil, errNoConnections
	}
	return s.d.Connections, nil
}

// authorizeBody is the optional body of POST /v1/connections/{platform}/authorize.
type authorizeBody struct {
	// PageID picks the Facebook Page to connect (default: the first one).
	PageID string `json:"pageId"`
}

func (s *Server) authorizeConnection(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	name, err := connection.ParsePlatform(r.PathValue("platform"))
	if err != nil {
		return err
	}
	// The body is optional: no body, or an empty one, means no options.
	var in authorizeBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.d.MaxBodyBytes))
		if err != nil {
			return jsonError(err, s.d.MaxBodyBytes)
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
				return err
			}
		}
	}
	a, err := svc.Authorize(r.Context(), connection.AuthorizeRequest{
		SiteID: p.SiteID, Platform: name, PageID: strings.TrimSpace(in.PageID), RequestBase: requestBase(r),
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

// requestBase is scheme://host of r as the client addressed it (API
// Gateway sets X-Forwarded-Proto).
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0])); p == "http" || p == "https" {
		scheme = p
	}
	if r.Host == "" {
		return ""
	}
	return scheme + "://" + r.Host
}

// oauthCallback is where a platform sends the browser back. It always
// answers with a redirect to the site, or — when the state names no site —
// a problem; never with a platform's error page.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request, _ Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	name, err := connection.ParsePlatform(r.PathValue("platform"))
	if err != nil {
		return err
	}
	// The query holds an authorization code: keep this URL out of Referer
	// headers and caches.
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	target, err := svc.Callback(r.Context(), name, r.URL.Query())
	if err != nil {
		return err
	}
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	var in connection.ManualRequest
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	c, err := svc.Connect(r.Context(), p.SiteID, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/connections/"+c.ID)
	return writeJSON(w, http.StatusCreated, c)
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	items, next, err := svc.List(r.Context(), p.SiteID, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, items, next)
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	c, err := svc.Get(r.Context(), p.SiteID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), p.SiteID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// validateConnection queues a "who am I" check. The api function cannot
// open credentials, so the refresh function runs the check on its next
// pass; the answer is 202 with the connection, whose validatedAt and
// status change when it is done.
func (s *Server) validateConnection(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.connections()
	if err != nil {
		return err
	}
	c, err := svc.RequestValidation(r.Context(), p.SiteID, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/connections/"+c.ID)
	return writeJSON(w, http.StatusAccepted, c)
}
