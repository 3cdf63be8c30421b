package webhook

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/vault"
)

// endpointStore keeps endpoints and attempts: Store (webhooktest.Store in
// tests).
type endpointStore interface {
	Create(ctx context.Context, e Endpoint) error
	Get(ctx context.Context, siteID, id string) (Endpoint, error)
	List(ctx context.Context, siteID string, limit int, cursor string) ([]Endpoint, string, error)
	Change(ctx context.Context, siteID, id string, now func() time.Time, f func(e *Endpoint) error) (Endpoint, error)
	Delete(ctx context.Context, siteID, id string) error
	Attempts(ctx context.Context, siteID, webhookID string, limit int, cursor string) ([]Attempt, string, error)
}

// sealer seals secrets: vault.Sealer (kms:GenerateDataKey only).
type sealer interface {
	Seal(ctx context.Context, c vault.Context, plaintext []byte) (vault.Sealed, error)
}

// eventStore reads events and writes the ones without a state change of
// their own: shared/event.Store.
type eventStore interface {
	Get(ctx context.Context, siteID, id string) (event.Stored, error)
	Put(ctx context.Context, e event.Event) error
}

// sender puts a message on the webhook queue: shared/event.Publisher.
type sender interface {
	Send(ctx context.Context, m event.Message) error
}

// ServiceConfig is what a Service is built from.
type ServiceConfig struct {
	Store  endpointStore
	Events eventStore
	Sealer sealer
	Queue  sender
	// Rules check endpoint URLs (AllowInsecure only for the local stack).
	Rules Rules
	// DefaultOverlap is how long a rotated-out secret keeps signing unless
	// the request says (default 24 h).
	DefaultOverlap time.Duration
	Now            func() time.Time
	// Rand makes ids and secrets; crypto/rand when nil.
	Rand io.Reader
}

// Service manages a site's endpoints for the API. It can seal secrets,
// never open them.
type Service struct {
	cfg ServiceConfig
}

// NewService returns a Service, or an error naming what is missing. It
// does no I/O.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Events == nil || cfg.Sealer == nil || cfg.Queue == nil {
		return nil, fmt.Errorf("webhook: NewService needs Store, Events, Sealer and Queue")
	}
	if cfg.DefaultOverlap <= 0 {
		cfg.DefaultOverlap = DefaultOverlap
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Service{cfg: cfg}, nil
}

// WithSecret is an endpoint and its new signing secret: the answer of
// create and rotate-secret, the only times the secret is shown.
type WithSecret struct {
	Endpoint
	Secret string `json:"secret"`
}

// seal makes a new secret for an endpoint and seals it.
func (s *Service) seal(ctx context.Context, siteID, id string) (string, vault.Sealed, error) {
	secret, err := NewSecret(s.cfg.Rand)
	if err != nil {
		return "", vault.Sealed{}, err
	}
	sealed, err := s.cfg.Sealer.Seal(ctx, secretContext(siteID, id), []byte(secret))
	if err != nil {
		return "", vault.Sealed{}, fmt.Errorf("seal the secret of webhook %s: %w", id, err)
	}
	return secret, sealed, nil
}

// Create validates in and registers a new enabled endpoint of siteID with
// a new secret. More than MaxEndpoints is 422.
func (s *Service) Create(ctx context.Context, siteID string, in Input) (WithSecret, error) {
	now := s.cfg.Now().UTC()
	e := Endpoint{SiteID: siteID, Enabled: true, CreatedAt: now, UpdatedAt: now, Version: 1}
	if ps := in.apply(&e, true, s.cfg.Rules); len(ps) > 0 {
		return WithSecret{}, apperr.InvalidProblems(ps)
	}
	id, err := newID(s.cfg.Rand, IDPrefix)
	if err != nil {
		return WithSecret{}, err
	}
	e.ID = id
	secret, sealed, err := s.seal(ctx, siteID, id)
	if err != nil {
		return WithSecret{}, err
	}
	e.Secret = sealed
	if err := s.cfg.Store.Create(ctx, e); err != nil {
		return WithSecret{}, err
	}
	return WithSecret{Endpoint: e, Secret: secret}, nil
}

// Get returns one of the site's endpoints.
func (s *Service) Get(ctx context.Context, siteID, id string) (Endpoint, error) {
	return s.cfg.Store.Get(ctx, siteID, id)
}

// List returns a page of the site's endpoints.
func (s *Service) List(ctx context.Context, siteID string, limit int, cursor string) ([]Endpoint, string, error) {
	return s.cfg.Store.List(ctx, siteID, limit, cursor)
}

// Update applies in's given fields. Enabling an endpoint POSSE disabled
// clears its reason and failure streak.
func (s *Service) Update(ctx context.Context, siteID, id string, in Input) (Endpoint, error) {
	if _, err := s.cfg.Store.Get(ctx, siteID, id); err != nil {
		return Endpoint{}, err
	}
	// Validate once before any read-modify-write, so bad input is a 400
	// even when the endpoint changes meanwhile.
	if ps := in.apply(&Endpoint{}, false, s.cfg.Rules); len(ps) > 0 {
		return Endpoint{}, apperr.InvalidProblems(ps)
	}
	return s.cfg.Store.Change(ctx, siteID, id, s.cfg.Now, func(e *Endpoint) error {
		in.apply(e, false, s.cfg.Rules)
		return nil
	})
}

// Delete removes an endpoint.
func (s *Service) Delete(ctx context.Context, siteID, id string) error {
	return s.cfg.Store.Delete(ctx, siteID, id)
}

// RotateInput is the body of POST /v1/webhooks/{id}/rotate-secret.
type RotateInput struct {
	// OverlapSeconds is how long the current secret keeps signing next to
	// the new one (default 24 h; 0 stops it at once; at most 7 days).
	OverlapSeconds *int64 `json:"overlapSeconds"`
}

// RotateSecret gives an endpoint a new secret, answered once; the current
// one keeps signing too until the overlap ends, so the site can switch
// without missing a delivery. A secret rotated out earlier and still in
// its overlap is dropped.
func (s *Service) RotateSecret(ctx context.Context, siteID, id string, in RotateInput) (WithSecret, error) {
	overlap := s.cfg.DefaultOverlap
	if in.OverlapSeconds != nil {
		o := time.Duration(*in.OverlapSeconds) * time.Second
		if *in.OverlapSeconds < 0 || o > MaxOverlap {
			return WithSecret{}, apperr.Invalid("overlapSeconds", fmt.Sprintf("must be from 0 to %d (7 days)", int64(MaxOverlap/time.Second)))
		}
		overlap = o
	}
	if _, err := s.cfg.Store.Get(ctx, siteID, id); err != nil {
		return WithSecret{}, err
	}
	secret, sealed, err := s.seal(ctx, siteID, id)
	if err != nil {
		return WithSecret{}, err
	}
	e, err := s.cfg.Store.Change(ctx, siteID, id, s.cfg.Now, func(e *Endpoint) error {
		now := s.cfg.Now().UTC()
		e.SecretRotatedAt = &now
		if overlap > 0 {
			prev, until := e.Secret, now.Add(overlap)
			e.PreviousSecret, e.PreviousSecretExpiresAt = &prev, &until
		} else {
			e.PreviousSecret, e.PreviousSecretExpiresAt = nil, nil
		}
		e.Secret = sealed
		return nil
	})
	if err != nil {
		return WithSecret{}, err
	}
	return WithSecret{Endpoint: e, Secret: secret}, nil
}

// Queued is the answer of test and replay: the event that was queued.
type Queued struct {
	EventID   string     `json:"eventId"`
	EventType event.Type `json:"eventType"`
	// Replay names the replay round (replay only).
	Replay string `json:"replay,omitempty"`
}

// Test queues a ping event to one endpoint, enabled or not.
func (s *Service) Test(ctx context.Context, siteID, id string) (Queued, error) {
	if _, err := s.cfg.Store.Get(ctx, siteID, id); err != nil {
		return Queued{}, err
	}
	nonce, err := newID(s.cfg.Rand, "")
	if err != nil {
		return Queued{}, err
	}
	ev, err := event.New(siteID, event.Ping, s.cfg.Now(), event.PingData{WebhookID: id, Message: "This is a test event from POSSE."}, "ping", id, nonce)
	if err != nil {
		return Queued{}, err
	}
	if err := s.cfg.Events.Put(ctx, ev); err != nil {
		return Queued{}, err
	}
	if err := s.cfg.Queue.Send(ctx, event.EventMessage(siteID, ev.ID)); err != nil {
		return Queued{}, apperr.Wrap(err, apperr.KindTransient, "queue_unavailable", "the test event could not be queued; try again")
	}
	return Queued{EventID: ev.ID, EventType: ev.Type}, nil
}

// Attempts returns a page of an endpoint's attempts, newest first.
func (s *Service) Attempts(ctx context.Context, siteID, id string, limit int, cursor string) ([]Attempt, string, error) {
	if _, err := s.cfg.Store.Get(ctx, siteID, id); err != nil {
		return nil, "", err
	}
	return s.cfg.Store.Attempts(ctx, siteID, id, limit, cursor)
}

// Replay sends one of the site's events again, now, to every enabled
// endpoint subscribed to it (a ping, to its endpoint): new attempts with
// the same event id and body.
func (s *Service) Replay(ctx context.Context, siteID, eventID string) (Queued, error) {
	ev, err := s.cfg.Events.Get(ctx, siteID, eventID)
	if err != nil {
		return Queued{}, err
	}
	round, err := newID(s.cfg.Rand, "r")
	if err != nil {
		return Queued{}, err
	}
	m := event.EventMessage(siteID, ev.ID)
	m.Replay = round
	if err := s.cfg.Queue.Send(ctx, m); err != nil {
		return Queued{}, apperr.Wrap(err, apperr.KindTransient, "queue_unavailable", "the replay could not be queued; try again")
	}
	return Queued{EventID: ev.ID, EventType: ev.Type, Replay: round}, nil
}
