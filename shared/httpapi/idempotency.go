package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/idempotency"
)

// IdempotencyKeyHeader is the header a client repeats a mutating call
// with; ReplayedHeader marks an answer served from the stored one.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	ReplayedHeader       = "Idempotent-Replayed"
)

// idempotencyStore keeps Idempotency-Key answers (shared/idempotency.Store).
type idempotencyStore interface {
	Begin(ctx context.Context, siteID, key, fingerprint string) (idempotency.Claim, *idempotency.Response, error)
	Complete(ctx context.Context, c idempotency.Claim, r idempotency.Response) error
	Release(ctx context.Context, c idempotency.Claim) error
}

// idempotent makes h honour Idempotency-Key (architecture §8): the first
// call with a key runs and, when it succeeds, its answer is stored for 24
// hours; the same key with the same method, path and body gets that answer
// again (with Idempotent-Replayed: true); with another request, 422; while
// the first still runs, 409. A call that fails (an error or a status of 400
// or more) releases its key, so a corrected or later retry runs. Without
// the header, h runs as it is.
func (s *Server) idempotent(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		key := r.Header.Get(IdempotencyKeyHeader)
		if key == "" {
			return h(w, r, p)
		}
		if s.d.Idempotency == nil {
			return errNotConfigured("idempotency store")
		}
		body, err := s.keyedBody(w, r, key)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		claim, replay, err := s.d.Idempotency.Begin(r.Context(), p.SiteID, key, idempotency.Fingerprint(r.Method, r.URL.RequestURI(), body))
		if err != nil {
			return reusedAs(r, err)
		}
		if replay != nil {
			if n := noteOf(r); n != nil {
				n.replayed = true
			}
			if replay.ContentType != "" {
				w.Header().Set("Content-Type", replay.ContentType)
			}
			if replay.Location != "" {
				w.Header().Set("Location", replay.Location)
			}
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set(ReplayedHeader, "true")
			w.WriteHeader(replay.Status)
			_, _ = w.Write(replay.Body)
			return nil
		}
		buf := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		herr := h(buf, r, p)
		ctx := context.WithoutCancel(r.Context())
		if herr != nil || buf.status >= 400 {
			if err := s.d.Idempotency.Release(ctx, claim); err != nil {
				s.d.Logger.ErrorContext(ctx, "idempotency key not released", "err", err)
			}
			if herr != nil {
				return herr
			}
			buf.flush(w)
			return nil
		}
		stored := idempotency.Response{Status: buf.status, ContentType: buf.header.Get("Content-Type"),
			Location: buf.header.Get("Location"), Body: buf.body.Bytes()}
		if n := noteOf(r); n != nil && n.replayBody != nil {
			stored.Body = n.replayBody // the answer shows a secret: store it without
		}
		if err := s.d.Idempotency.Complete(ctx, claim, stored); err != nil {
			// The change was made; a retry within the lease gets 409, after
			// it the call runs again (and, being idempotent, does no harm).
			s.d.Logger.ErrorContext(ctx, "idempotent answer not stored", "status", buf.status, "err", err)
		}
		buf.flush(w)
		return nil
	}
}

// bufferedResponse holds a handler's answer until it is stored.
type bufferedResponse struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}

// flush writes the held answer to w.
func (b *bufferedResponse) flush(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// keyedBody checks an Idempotency-Key and reads the request's body, which
// the key's fingerprint covers: what idempotent and idempotentTx share.
func (s *Server) keyedBody(w http.ResponseWriter, r *http.Request, key string) ([]byte, error) {
	if msg := idempotency.CheckKey(key); msg != "" {
		return nil, apperr.Invalid(IdempotencyKeyHeader, msg)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.d.MaxBodyBytes))
	if err != nil {
		return nil, jsonError(err, s.d.MaxBodyBytes)
	}
	return b, nil
}
