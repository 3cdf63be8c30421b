// Package webhooktest holds in-memory stand-ins for what shared/webhook's
// Service uses (the endpoint store, the outbox, the webhook queue and the
// sealer), for unit tests of the API routes. The DynamoDB store itself is
// tested against moto.
package webhooktest

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/webhook"
)

// Store keeps endpoints in memory, with the DynamoDB store's rules: at most
// webhook.MaxEndpoints per site, every read and write keyed by site.
type Store struct {
	mu       sync.Mutex
	m        map[string]webhook.Endpoint // site/id
	attempts map[string][]webhook.Attempt
	// Writes counts successful writes.
	Writes int
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{m: map[string]webhook.Endpoint{}, attempts: map[string][]webhook.Attempt{}}
}

// Create implements the service's store.
func (s *Store) Create(_ context.Context, e webhook.Endpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.m {
		if len(k) > len(e.SiteID) && k[:len(e.SiteID)+1] == e.SiteID+"/" {
			n++
		}
	}
	if n >= webhook.MaxEndpoints {
		return apperr.Unprocessable("too_many_webhooks", "a site can have at most "+strconv.Itoa(webhook.MaxEndpoints)+" webhooks; delete one first", nil)
	}
	s.m[e.SiteID+"/"+e.ID] = e
	s.Writes++
	return nil
}

// Get implements the service's store.
func (s *Store) Get(_ context.Context, siteID, id string) (webhook.Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[siteID+"/"+id]
	if !ok {
		return webhook.Endpoint{}, apperr.NotFound("webhook")
	}
	e.EventTypes = slices.Clone(e.EventTypes)
	return e, nil
}

// List implements the service's store (one page, ordered by id).
func (s *Store) List(_ context.Context, siteID string, _ int, _ string) ([]webhook.Endpoint, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []webhook.Endpoint
	for _, e := range s.m {
		if e.SiteID == siteID {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, "", nil
}

// Change implements the service's store.
func (s *Store) Change(ctx context.Context, siteID, id string, now func() time.Time, f func(e *webhook.Endpoint) error) (webhook.Endpoint, error) {
	e, err := s.Get(ctx, siteID, id)
	if err != nil {
		return webhook.Endpoint{}, err
	}
	if err := f(&e); err != nil {
		return webhook.Endpoint{}, err
	}
	e.Version++
	e.UpdatedAt = now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[siteID+"/"+id] = e
	s.Writes++
	return e, nil
}

// Delete implements the service's store.
func (s *Store) Delete(_ context.Context, siteID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[siteID+"/"+id]; !ok {
		return apperr.NotFound("webhook")
	}
	delete(s.m, siteID+"/"+id)
	s.Writes++
	return nil
}

// AddAttempt stores an attempt for Attempts to list.
func (s *Store) AddAttempt(a webhook.Attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := a.SiteID + "/" + a.WebhookID
	s.attempts[k] = append([]webhook.Attempt{a}, s.attempts[k]...)
}

// Attempts implements the service's store.
func (s *Store) Attempts(_ context.Context, siteID, webhookID string, _ int, _ string) ([]webhook.Attempt, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts[siteID+"/"+webhookID]), "", nil
}

// Count is how many endpoints siteID has.
func (s *Store) Count(siteID string) int {
	out, _, _ := s.List(context.Background(), siteID, 0, "")
	return len(out)
}

// Events is an in-memory outbox.
type Events struct {
	mu sync.Mutex
	m  map[string]event.Event // site/id
}

// NewEvents returns an empty outbox.
func NewEvents() *Events { return &Events{m: map[string]event.Event{}} }

// Put implements the service's event store.
func (s *Events) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[e.SiteID+"/"+e.ID] = e
	return nil
}

// Get implements the service's event store.
func (s *Events) Get(_ context.Context, siteID, id string) (event.Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[siteID+"/"+id]
	if !ok {
		return event.Stored{}, apperr.NotFound("event")
	}
	return event.Stored{Event: e, Body: e.Body()}, nil
}

// Queue records the messages sent to the webhook queue.
type Queue struct {
	mu   sync.Mutex
	Sent []event.Message
	// Err, when set, fails every send.
	Err error
}

// Send implements the service's queue.
func (q *Queue) Send(_ context.Context, m event.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Err != nil {
		return q.Err
	}
	q.Sent = append(q.Sent, m)
	return nil
}

// Messages returns what was sent.
func (q *Queue) Messages() []event.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.Sent)
}

// Sealer "seals" by keeping the plaintext reversed with the context, so a
// test can tell what was sealed (Opened) without KMS.
type Sealer struct{}

// Seal implements the service's sealer.
func (Sealer) Seal(_ context.Context, c vault.Context, plaintext []byte) (vault.Sealed, error) {
	if err := c.Validate(); err != nil {
		return vault.Sealed{}, err
	}
	b := slices.Clone(plaintext)
	slices.Reverse(b)
	return vault.Sealed{Version: vault.FormatV1, KeyID: "test", EncryptedKey: []byte("k"), Nonce: make([]byte, vault.NonceSize), Ciphertext: b, Context: c.Map()}, nil
}

// Open reverses Seal, checking the context as vault.Opener does.
func (Sealer) Open(_ context.Context, c vault.Context, s vault.Sealed) ([]byte, error) {
	for k, v := range c.Map() {
		if s.Context[k] != v {
			return nil, errors.New("webhooktest: context mismatch")
		}
	}
	b := slices.Clone(s.Ciphertext)
	slices.Reverse(b)
	return b, nil
}
