package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/audit"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
)

// txRoutes write their change, its Idempotency-Key answer and its audit
// entry in one DynamoDB transaction (call economy, issue 10) when the
// stores can (Server.tx).
var txRoutes = map[string]bool{
	"POST /v1/dispatch": true,
}

// Stores that give their writes to a transaction instead of making them
// (shared/ledger.Store, compose.Snapshots, idempotency.Store, audit.Store).
type (
	deliveryCreatorWith interface {
		CreateWith(ctx context.Context, ds []ledger.NewDelivery, companions func([]ledger.Delivery, []bool) ([]ledger.Companion, error)) ([]ledger.Delivery, []bool, error)
	}
	snapshotPutter interface {
		Put(siteID string, p compose.Post) (types.Put, error)
	}
	idempotencyPutter interface {
		DonePut(siteID, key, fingerprint string, r idempotency.Response) (types.Put, idempotency.Claim, bool, error)
		Lookup(ctx context.Context, siteID, key, fingerprint string) (*idempotency.Response, error)
		Release(ctx context.Context, c idempotency.Claim) error
	}
	auditPutter interface {
		Put(e audit.Entry) (audit.Entry, types.Put, error)
	}
)

// txStores are the stores of the one-transaction write; nil fields are
// not configured (no Idempotency-Key store, no audit log).
type txStores struct {
	deliveries deliveryCreatorWith
	snapshots  snapshotPutter
	idem       idempotencyPutter
	audit      auditPutter
}

// txStoresOf returns the stores of d when each configured one can join a
// transaction, else nil (the routes then write call by call).
func txStoresOf(d Deps) *txStores {
	var t txStores
	var ok bool
	if t.deliveries, ok = d.Deliveries.(deliveryCreatorWith); !ok {
		return nil
	}
	if t.snapshots, ok = d.Snapshots.(snapshotPutter); !ok {
		return nil
	}
	if d.Idempotency != nil {
		if t.idem, ok = d.Idempotency.(idempotencyPutter); !ok {
			return nil
		}
	}
	if d.Audit != nil {
		if t.audit, ok = d.Audit.(auditPutter); !ok {
			return nil
		}
	}
	return &t
}

// txIdem is a call's Idempotency-Key, for its transaction.
type txIdem struct{ key, fingerprint string }

type txIdemKey struct{}

// errKeyTaken: the transaction was cancelled by the Idempotency-Key's
// condition (the key is held); idempotentTx answers from the stored record.
var errKeyTaken = errors.New("idempotency key taken")

// idempotentTx honours Idempotency-Key like idempotent, for a route that
// stores its answer in the transaction of its change (txWrite): no claim
// before and no completion after. A call the transaction refuses because
// the key is held, or that fails, is answered from the key's record: the
// stored answer for the same request (replayed), 422 for another request,
// 409 while one runs.
func (s *Server) idempotentTx(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		key := r.Header.Get(IdempotencyKeyHeader)
		if key == "" {
			return h(w, r, p)
		}
		if s.tx.idem == nil {
			return errNotConfigured("idempotency store")
		}
		body, err := s.keyedBody(w, r, key)
		if err != nil {
			return err
		}
		fp := idempotency.Fingerprint(r.Method, r.URL.RequestURI(), body)
		r = r.WithContext(context.WithValue(r.Context(), txIdemKey{}, &txIdem{key: key, fingerprint: fp}))
		for range 2 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			buf := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
			herr := h(buf, r, p)
			if herr == nil && buf.status < 400 {
				buf.flush(w)
				return nil
			}
			stored, lerr := s.tx.idem.Lookup(r.Context(), p.SiteID, key, fp)
			switch {
			case errors.Is(lerr, idempotency.ErrReused) || errors.Is(lerr, idempotency.ErrInFlight):
				return reusedAs(r, lerr)
			case lerr != nil:
				s.d.Logger.ErrorContext(r.Context(), "idempotency key not read", "err", lerr)
			case stored != nil:
				replay(w, r, stored)
				return nil
			case errors.Is(herr, errKeyTaken):
				continue // freed in between: run again
			}
			if errors.Is(herr, errKeyTaken) {
				return idempotency.ErrInFlight
			}
			if herr != nil {
				return herr
			}
			buf.flush(w)
			return nil
		}
		return idempotency.ErrInFlight
	}
}

// reusedAs is err for the route: the bulk route answers a key reused with
// another body 409 (issue 10); the others keep 422.
func reusedAs(r *http.Request, err error) error {
	if errors.Is(err, idempotency.ErrReused) && strings.HasSuffix(r.URL.Path, "/dispatch/bulk") {
		return apperr.New(apperr.KindConflict, "idempotency_key_reused",
			"Idempotency-Key: this key was used with a different request (method, path or body); use a new key")
	}
	return err
}

// replay writes a stored answer.
func replay(w http.ResponseWriter, r *http.Request, stored *idempotency.Response) {
	if n := noteOf(r); n != nil {
		n.replayed = true
	}
	if stored.ContentType != "" {
		w.Header().Set("Content-Type", stored.ContentType)
	}
	if stored.Location != "" {
		w.Header().Set("Location", stored.Location)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(stored.Status)
	_, _ = w.Write(stored.Body)
}

// txWrite is one call's transaction: the post snapshot (kept when the
// revision has one), the deliveries, and, when the call has them, its
// Idempotency-Key answer (status with answer(deliveries, created) as JSON)
// and its audit entry. idemKey and withAudit say whether this write
// carries them (a bulk call's items carry their own keys and no entry).
type txWrite struct {
	siteID  string
	post    compose.Post
	news    []ledger.NewDelivery
	idem    *txIdem
	status  int
	answer  func(ds []ledger.Delivery, created []bool) any
	entry   *audit.Entry
	release *idempotency.Claim
}

// write runs w's transaction and returns the deliveries, which were
// created, and the answer's JSON (as writeJSON writes it). The Idempotency-
// Key condition failing is errKeyTaken.
func (s *Server) write(ctx context.Context, w *txWrite) ([]ledger.Delivery, []bool, []byte, error) {
	var body []byte
	idemAt := -1
	ds, created, err := s.tx.deliveries.CreateWith(ctx, w.news, func(ds []ledger.Delivery, created []bool) ([]ledger.Companion, error) {
		snap, err := s.tx.snapshots.Put(w.siteID, w.post)
		if err != nil {
			return nil, err
		}
		cs := []ledger.Companion{{Put: snap, KeepExisting: true}}
		b, err := json.Marshal(w.answer(ds, created))
		if err != nil {
			return nil, fmt.Errorf("encode response: %w", err)
		}
		body = append(b, '\n')
		idemAt, w.release = -1, nil
		if w.idem != nil && s.tx.idem != nil {
			put, claim, ok, err := s.tx.idem.DonePut(w.siteID, w.idem.key, w.idem.fingerprint,
				idempotency.Response{Status: w.status, ContentType: "application/json", Body: body})
			if err != nil {
				return nil, err
			}
			if ok {
				idemAt, w.release = len(cs), &claim
				cs = append(cs, ledger.Companion{Put: put})
			}
		}
		if w.entry != nil && s.tx.audit != nil {
			_, put, err := s.tx.audit.Put(*w.entry)
			if err != nil {
				return nil, err
			}
			cs = append(cs, ledger.Companion{Put: put})
		}
		return cs, nil
	})
	var cc *ledger.CompanionConflict
	if errors.As(err, &cc) && cc.Index == idemAt {
		return nil, nil, nil, errKeyTaken
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return ds, created, body, nil
}

// releaseAfter frees w's Idempotency-Key when what followed its
// transaction failed (the messages could not be sent), so a retry with the
// key runs again and enqueues them.
func (s *Server) releaseAfter(ctx context.Context, w *txWrite) {
	if w.release == nil || s.tx.idem == nil {
		return
	}
	if err := s.tx.idem.Release(context.WithoutCancel(ctx), *w.release); err != nil {
		s.d.Logger.ErrorContext(ctx, "idempotency key not released", "err", err)
	}
}

// idemOf is the call's Idempotency-Key for its transaction, or nil.
func idemOf(r *http.Request) *txIdem {
	t, _ := r.Context().Value(txIdemKey{}).(*txIdem)
	return t
}
