// Package event is POSSE's outbox: the events a site's webhooks are told
// about, each written in the same DynamoDB write as the state change that
// causes it (a delivery's outcome, a schedule's fire, a connection going
// broken or expiring), so no state change is without its event and no
// event without its state change.
//
// An event's id is derived from what caused it (for a delivery outcome:
// the delivery, the attempt's sequence number and the type), and its item
// is written conditional on not existing: a redelivered or redriven message
// never records an event twice, because only the winning conditional write
// of the state change carries one.
//
// Items (one table):
//
//	PK=SITE#<site>#EVT  SK=<event id>   the event: type, createdAt, data and the
//	                                    exact JSON body every attempt sends
//	  GSI2PK=EVTPENDING  GSI2SK=<createdAt>#<site>#<event id>
//	                                    while the event is not yet handed to the
//	                                    webhook queue's fan-out (sparse)
//	  expires_at                        30 days after createdAt (TTL)
//
// After the write, the writer puts a Message on the webhook queue
// (Publisher); if that send fails, the sweep finds the event still pending
// (Store.Pending) and sends it again. The webhook function's fan-out clears
// the pending mark (Store.Handed) once every endpoint has its attempt.
package event

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

// Type is what happened. The values are part of the API.
type Type string

// The event types.
const (
	// DeliverySent: a delivery was published (data: DeliveryData with
	// platformPostId and url).
	DeliverySent Type = "delivery.sent"
	// DeliveryFailed: the platform rejected the post for good, or its token
	// is dead.
	DeliveryFailed Type = "delivery.failed"
	// DeliveryDead: the attempts ran out.
	DeliveryDead Type = "delivery.dead"
	// DeliveryUnknown: an attempt may have published and the platform cannot
	// tell; a person must decide (retry with confirmation, or resolve).
	DeliveryUnknown Type = "delivery.unknown"
	// DeliveryRetrying: a transient failure; the next attempt runs at
	// nextAttemptAt.
	DeliveryRetrying Type = "delivery.retrying"
	// ScheduleFired: a scheduled post's time came and its deliveries were
	// queued.
	ScheduleFired Type = "schedule.fired"
	// ConnectionBroken: a connection's token is dead; the account must be
	// connected again.
	ConnectionBroken Type = "connection.broken"
	// ConnectionExpiring: a connection's token ends soon and cannot be
	// refreshed; the account should be connected again.
	ConnectionExpiring Type = "connection.expiring"
	// AIBudgetWarning: an AI call took the site's month past 80% of its
	// budget (data: AIBudgetData).
	AIBudgetWarning Type = "ai.budget_warning"
	// AIBudgetExhausted: a delivery was published with its deterministic
	// text because the month's AI budget could not pay for a call.
	AIBudgetExhausted Type = "ai.budget_exhausted"
	// Ping: POST /v1/webhooks/{id}/test; sent to that endpoint only.
	Ping Type = "ping"
)

// Types lists the types an endpoint can subscribe to, in a stable order.
// Ping is not among them: it goes to the endpoint that asked for it.
var Types = []Type{DeliverySent, DeliveryFailed, DeliveryDead, DeliveryUnknown, DeliveryRetrying,
	ScheduleFired, ConnectionBroken, ConnectionExpiring, AIBudgetWarning, AIBudgetExhausted}

// AIBudgetData is the data of the ai.budget_* events: the delivery whose
// adaptation crossed the threshold or found the budget spent.
type AIBudgetData struct {
	DeliveryID string `json:"deliveryId"`
	PostID     string `json:"postId"`
	Platform   string `json:"platform"`
	Reason     string `json:"reason,omitempty"`
}

// Valid reports whether t is a type an endpoint can subscribe to.
func (t Type) Valid() bool { return slices.Contains(Types, t) }

// TypeNames is Types as strings, for messages that list them.
func TypeNames() []string {
	out := make([]string, len(Types))
	for i, t := range Types {
		out[i] = string(t)
	}
	return out
}

// Retention is how long an event is kept (its item's TTL).
const Retention = 30 * 24 * time.Hour

// Event is one event as webhooks receive it: the JSON body of every
// attempt is exactly Body.
type Event struct {
	ID        string          `json:"id"`
	Type      Type            `json:"type"`
	CreatedAt time.Time       `json:"createdAt"`
	SiteID    string          `json:"siteId"`
	Data      json.RawMessage `json:"data"`
}

// New returns the event of type typ for siteID at at, with data, and the id
// derived from cause (the parts that identify the state change).
func New(siteID string, typ Type, at time.Time, data any, cause ...string) (Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s event data: %w", typ, err)
	}
	return Event{ID: ID(cause...), Type: typ, CreatedAt: at.UTC(), SiteID: siteID, Data: b}, nil
}

// Body is the JSON every attempt of e sends, byte for byte.
func (e Event) Body() []byte {
	b, _ := json.Marshal(e) // strings, a time and raw JSON that was marshalled: always encodes
	return b
}

// IDPrefix starts every event id.
const IDPrefix = "evt_"

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ID derives an event id from the parts that identify the state change, so
// the same change always names the same event. The id never holds a '.',
// as Standard Webhooks asks of webhook-id.
func ID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so ("a|b","c") and ("a","b|c") differ.
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return IDPrefix + idEncoding.EncodeToString(h.Sum(nil)[:20])
}

// DeliveryEventID is the id of the event of type typ that the attempt with
// sequence number seq of delivery deliveryID records.
func DeliveryEventID(deliveryID string, seq int, typ Type) string {
	return ID("delivery", deliveryID, fmt.Sprint(seq), string(typ))
}

// ValidID reports whether id can be an event id, before it reaches a key.
func ValidID(id string) bool {
	if !strings.HasPrefix(id, IDPrefix) || len(id) > 64 || len(id) == len(IDPrefix) {
		return false
	}
	for _, r := range id[len(IDPrefix):] {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// Error is a failed attempt's typed error, as events show it. It never
// holds a platform response or a credential.
type Error struct {
	Kind    string `json:"kind"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// DeliveryData is the data of the delivery.* events.
type DeliveryData struct {
	DeliveryID string `json:"deliveryId"`
	PostID     string `json:"postId"`
	Revision   string `json:"revision"`
	TargetID   string `json:"targetId"`
	Platform   string `json:"platform"`
	// State is the delivery's state after the change: sent, failed, dead,
	// unknown or retrying.
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// PlatformPostID and URL are the published post (delivery.sent).
	PlatformPostID string `json:"platformPostId,omitempty"`
	URL            string `json:"url,omitempty"`
	// NextAttemptAt and ErrorKind say when and why it tries again
	// (delivery.retrying).
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	ErrorKind     string     `json:"errorKind,omitempty"`
	// Error is the attempt's error (every type but delivery.sent).
	Error *Error `json:"error,omitempty"`
}

// ScheduleData is the data of schedule.fired.
type ScheduleData struct {
	ScheduleID   string    `json:"scheduleId"`
	PostID       string    `json:"postId"`
	Revision     string    `json:"revision"`
	ScheduledFor time.Time `json:"scheduledFor"`
	Version      int       `json:"version"`
	DeliveryIDs  []string  `json:"deliveryIds"`
}

// ConnectionData is the data of connection.broken and connection.expiring.
type ConnectionData struct {
	ConnectionID string `json:"connectionId"`
	Platform     string `json:"platform"`
	AccountName  string `json:"accountName,omitempty"`
	Status       string `json:"status"`
	// Reason says why (connection.broken).
	Reason string `json:"reason,omitempty"`
	// ExpiresAt is when the token ends (connection.expiring).
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// PingData is the data of ping.
type PingData struct {
	WebhookID string `json:"webhookId"`
	Message   string `json:"message"`
}

// Message types on the webhook queue.
const (
	// MessageEvent: fan an event out to the site's endpoints (or, with
	// WebhookID, to that one endpoint).
	MessageEvent = "event"
	// MessageAttempt: send one attempt of an event to one endpoint.
	MessageAttempt = "attempt"
)

// MessageVersion is the version of Message that Encode writes.
const MessageVersion = 1

// Message is the body of a webhook queue message. It names an event (and an
// endpoint, an attempt) and never carries the event's data or a secret.
type Message struct {
	V       int    `json:"v"`
	Type    string `json:"type"`
	SiteID  string `json:"siteId"`
	EventID string `json:"eventId"`
	// WebhookID limits an event's fan-out to one endpoint (ping), or names
	// an attempt's endpoint.
	WebhookID string `json:"webhookId,omitempty"`
	// Replay names a replay of an event: its fan-out makes new attempts.
	Replay string `json:"replay,omitempty"`
	// AttemptID names the attempt of an attempt message.
	AttemptID string `json:"attemptId,omitempty"`
}

// EventMessage returns the message that fans event eventID out.
func EventMessage(siteID, eventID string) Message {
	return Message{V: MessageVersion, Type: MessageEvent, SiteID: siteID, EventID: eventID}
}

// Encode returns the message body.
func (m Message) Encode() string {
	if m.V == 0 {
		m.V = MessageVersion
	}
	b, _ := json.Marshal(m) // strings and an int always marshal
	return string(b)
}

// DecodeMessage parses a message body. An error is apperr invalid: the
// message can never be processed.
func DecodeMessage(body string) (Message, error) {
	var m Message
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, apperr.Wrap(err, apperr.KindInvalid, "bad_message", "decode webhook message: not JSON of the expected shape")
	}
	switch {
	case m.V != MessageVersion:
		return Message{}, apperr.Newf(apperr.KindInvalid, "bad_message", "decode webhook message: unsupported version %d", m.V)
	case m.SiteID == "":
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode webhook message: siteId is required")
	case !ValidID(m.EventID):
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode webhook message: eventId is not an event id")
	case m.Type == MessageAttempt && (m.WebhookID == "" || m.AttemptID == ""):
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode webhook message: an attempt needs webhookId and attemptId")
	case m.Type != MessageEvent && m.Type != MessageAttempt:
		return Message{}, apperr.Newf(apperr.KindInvalid, "bad_message", "decode webhook message: unknown type %q", m.Type)
	}
	return m, nil
}
