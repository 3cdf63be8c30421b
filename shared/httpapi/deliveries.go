package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/queue"
)

// deliveryLedger is what the API needs of the delivery ledger
// (shared/ledger.Store).
type deliveryLedger interface {
	CreateAll(ctx context.Context, ds []ledger.NewDelivery) ([]ledger.Delivery, []bool, error)
	Get(ctx context.Context, siteID, id string) (ledger.Delivery, error)
	List(ctx context.Context, siteID string, f ledger.Filter, limit int, cursor string) ([]ledger.Delivery, string, error)
	Cancel(ctx context.Context, siteID, id string) (ledger.Delivery, error)
	RequestRetry(ctx context.Context, siteID, id string, confirmNotPublished bool) (ledger.Delivery, error)
	Resolve(ctx context.Context, siteID, id, platformURL, platformPostID string) (ledger.Delivery, error)
	CountByState(ctx context.Context, siteID string) (map[ledger.State]int, error)
}

// addDeliveryRoutes registers the delivery routes.
func (s *Server) addDeliveryRoutes() {
	s.add("GET", "/v1/deliveries", SiteKey, s.listDeliveries)
	s.add("GET", "/v1/deliveries/{id}", SiteKey, s.getDelivery)
	s.add("POST", "/v1/deliveries/{id}/retry", SiteKey, s.retryDelivery)
	s.add("POST", "/v1/deliveries/{id}/cancel", SiteKey, s.cancelDelivery)
	s.add("POST", "/v1/deliveries/{id}/resolve", SiteKey, s.resolveDelivery)
}

func (s *Server) deliveries() (deliveryLedger, error) {
	if s.d.Deliveries == nil {
		return nil, errNotConfigured("delivery ledger")
	}
	return s.d.Deliveries, nil
}

// deliveryID returns the {id} of the path; one that cannot be a delivery
// id is not found (it never reaches a key).
func deliveryID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !strings.HasPrefix(id, "dlv_") || len(id) > 100 {
		return "", apperr.NotFound("delivery")
	}
	return id, nil
}

// queryTime parses an RFC 3339 time with an offset from query parameter
// name; "" is the zero time.
func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, apperr.Invalid(name, "must be an RFC 3339 time with an offset, e.g. 2026-05-01T09:30:00+02:00")
	}
	return t, nil
}

// queryState parses a delivery state from query parameter name.
func queryState(v, name string) (ledger.State, error) {
	if v == "" {
		return "", nil
	}
	st := ledger.State(v)
	if !st.Valid() {
		names := make([]string, len(ledger.States))
		for i, s := range ledger.States {
			names[i] = string(s)
		}
		return "", apperr.Invalid(name, "must be one of "+strings.Join(names, ", "))
	}
	return st, nil
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := ledger.Filter{PostID: q.Get("postId"), TargetID: q.Get("targetId")}
	if f.State, err = queryState(q.Get("status"), "status"); err != nil {
		return err
	}
	if f.Since, err = queryTime(r, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(r, "until"); err != nil {
		return err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return apperr.Invalid("until", "must be after since")
	}
	items, next, err := dl.List(r.Context(), p.SiteID, f, limit, q.Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, items, next)
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	d, err := dl.Get(r.Context(), p.SiteID, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

// decodeOptionalJSON decodes r's body into v when there is one; no body,
// or an empty one, leaves v as it is.
func (s *Server) decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.d.MaxBodyBytes))
	if err != nil {
		return jsonError(err, s.d.MaxBodyBytes)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return decodeJSON(w, r, s.d.MaxBodyBytes, v)
}

// retryBody is the optional body of POST /v1/deliveries/{id}/retry.
type retryBody struct {
	// Confirm "not_published" allows retrying an unknown delivery.
	Confirm string `json:"confirm"`
}

// retryDelivery puts a failed, dead or (confirmed) unknown delivery back
// in the queue and sends its message.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	if s.d.Queue == nil {
		return errNotConfigured("queue")
	}
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	var in retryBody
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	if in.Confirm != "" && in.Confirm != "not_published" {
		return apperr.Invalid("confirm", `must be "not_published" (after checking the platform) or absent`)
	}
	d, err := dl.RequestRetry(r.Context(), p.SiteID, id, in.Confirm == "not_published")
	if err != nil {
		return err
	}
	if err := s.enqueue(r.Context(), []queue.Outgoing{{ID: d.ID, Body: ledger.DeliveryMessage(p.SiteID, d.ID).Encode()}}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, d)
}

func (s *Server) cancelDelivery(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	var in struct{}
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	d, err := dl.Cancel(r.Context(), p.SiteID, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

// resolveBody is the body of POST /v1/deliveries/{id}/resolve.
type resolveBody struct {
	URL            string `json:"url"`
	PlatformPostID string `json:"platformPostId"`
}

// resolveDelivery records that an unknown delivery was found published.
func (s *Server) resolveDelivery(w http.ResponseWriter, r *http.Request, p Principal) error {
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	var in resolveBody
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	in.URL, in.PlatformPostID = strings.TrimSpace(in.URL), strings.TrimSpace(in.PlatformPostID)
	var ps problems
	switch {
	case in.URL == "":
		ps.add("url", "is required (where the post was found on the platform)")
	case !httpURL(in.URL):
		ps.add("url", "must be an absolute http(s) URL of at most %d characters", maxURLLength)
	}
	if len(in.PlatformPostID) > 256 {
		ps.add("platformPostId", "must be at most 256 characters")
	}
	if len(ps) > 0 {
		return apperr.InvalidProblems(ps)
	}
	d, err := dl.Resolve(r.Context(), p.SiteID, id, in.URL, in.PlatformPostID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}
