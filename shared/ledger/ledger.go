// Package ledger is the delivery ledger of architecture §6: one record per
// (site, post, revision, target) that says where a delivery stands, so a post
// is never published twice and never silently lost.
//
// The API side creates deliveries (CreateAll), lists and reads them, cancels,
// retries and resolves them. The dispatcher claims a delivery with a lease
// and a fencing token (Claim), records checkpoints through a Journal bound to
// that claim, and records the outcome; every write after a claim is
// conditional on its fencing token, so a stale worker cannot overwrite a
// newer one. The outcome write (Lease.Finish) records the outcome's event
// (shared/event: delivery.sent, .failed, .dead, .unknown, .retrying) in the
// same transaction, so only the write that wins the fence records it.
//
// Items (one table):
//
//	PK=SITE#<site>  SK=DLV#<id>   the delivery
//	  GSI1PK=SITE#<site>#DLV  GSI1SK=<createdAt RFC3339Nano>#<id>   per-site listing, newest first
//	  GSI2PK=LEASE|QUEUED|WAITING  GSI2SK=<deadline RFC3339Nano>#<site>#<id>   the sweep's work queues
//	  GSI2PK=METRICS#SENT  GSI2SK=<sentAt>#<site>#<id>         sent, no engagement reading yet (shared/engagement
//	                                                              reads it once sentAt + the first interval has passed)
//	  GSI2PK=METRICS       GSI2SK=<metricsNextAt>#<site>#<id>  sent, the next engagement reading is due then
package ledger

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// State is where a delivery stands. The values are part of the API.
type State string

// The states of architecture §6.
const (
	StateQueued     State = "queued"     // created, a message is (or will be) on the dispatch queue
	StatePublishing State = "publishing" // claimed by a worker under a lease
	StateSent       State = "sent"       // published; terminal
	StateRetrying   State = "retrying"   // a transient failure; the next attempt waits for NextAttemptAt
	StateDeferred   State = "deferred"   // rate limited; waits for the platform's reset (NextAttemptAt)
	StateFailed     State = "failed"     // permanent failure or dead token; terminal until a retry is requested
	StateUnknown    State = "unknown"    // ambiguous and reconciliation could not tell; a person decides
	StateDead       State = "dead"       // attempts past the policy; terminal until a retry is requested
	StateCancelled  State = "cancelled"  // cancelled before a claim; terminal
	StateScheduled  State = "scheduled"  // waiting for its schedule to fire
)

// States lists every state in a stable order.
var States = []State{StateQueued, StatePublishing, StateSent, StateRetrying, StateDeferred,
	StateFailed, StateUnknown, StateDead, StateCancelled, StateScheduled}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// Claimable reports whether a worker may claim a delivery in state s.
func (s State) Claimable() bool {
	switch s {
	case StateQueued, StateRetrying, StateDeferred, StateScheduled:
		return true
	}
	return false
}

// Settled reports whether s needs no work from the dispatcher: a message for
// a delivery in such a state is acknowledged and does nothing.
func (s State) Settled() bool {
	switch s {
	case StateSent, StateFailed, StateCancelled, StateDead, StateUnknown:
		return true
	}
	return false
}

// Media is a media item as the API receives it; Delivery carries the
// adapters' platform.Media.
type Media struct {
	URL     string `json:"url"`
	Kind    string `json:"kind"`
	AltText string `json:"altText,omitempty"`
}

// ErrorInfo is the typed error of an attempt, as stored and shown by the
// API. It never holds a platform response body or a credential.
type ErrorInfo struct {
	Kind         apperr.Kind `json:"kind" dynamodbav:"kind"`
	Code         string      `json:"code,omitempty" dynamodbav:"code,omitempty"`
	Message      string      `json:"message,omitempty" dynamodbav:"message,omitempty"`
	Retryable    bool        `json:"retryable" dynamodbav:"retryable"`
	RetryAfterMS int64       `json:"retryAfterMs,omitempty" dynamodbav:"retry_after_ms,omitempty"`
	Platform     string      `json:"platform,omitempty" dynamodbav:"platform,omitempty"`
	PlatformCode string      `json:"platformCode,omitempty" dynamodbav:"platform_code,omitempty"`
	HTTPStatus   int         `json:"httpStatus,omitempty" dynamodbav:"http_status,omitempty"`
}

// Attempt is one entry of a delivery's history: a publish attempt, a
// reconciliation, or an operator's action.
type Attempt struct {
	N          int           `json:"n" dynamodbav:"n"`
	StartedAt  time.Time     `json:"startedAt" dynamodbav:"started_at"`
	EndedAt    time.Time     `json:"endedAt" dynamodbav:"ended_at"`
	Outcome    State         `json:"outcome" dynamodbav:"outcome"`
	ErrorKind  string        `json:"errorKind,omitempty" dynamodbav:"error_kind,omitempty"`
	ErrorCode  string        `json:"errorCode,omitempty" dynamodbav:"error_code,omitempty"`
	Message    string        `json:"message,omitempty" dynamodbav:"message,omitempty"`
	RetryAfter time.Duration `json:"retryAfter,omitempty" dynamodbav:"retry_after,omitempty"` // nanoseconds in JSON
}

// Delivery is one post published to one target. It never holds a
// credential.
type Delivery struct {
	ID               string            `json:"id" dynamodbav:"id"`
	SiteID           string            `json:"siteId" dynamodbav:"site_id"`
	PostID           string            `json:"postId" dynamodbav:"post_id"`
	Revision         string            `json:"revision" dynamodbav:"revision"`
	TargetID         string            `json:"targetId" dynamodbav:"target_id"`
	ConnectionID     string            `json:"connectionId" dynamodbav:"connection_id"`
	Platform         platform.Name     `json:"platform" dynamodbav:"platform"`
	State            State             `json:"state" dynamodbav:"state"`
	Text             string            `json:"text" dynamodbav:"text"`
	Link             string            `json:"link,omitempty" dynamodbav:"link,omitempty"`
	Title            string            `json:"title,omitempty" dynamodbav:"title,omitempty"`
	Media            []platform.Media  `json:"media,omitempty" dynamodbav:"media,omitempty"`
	Options          map[string]string `json:"options,omitempty" dynamodbav:"options,omitempty"`
	RateLimitPerHour int               `json:"rateLimitPerHour,omitempty" dynamodbav:"rate_limit_per_hour,omitempty"`
	Attempts         int               `json:"attempts" dynamodbav:"attempts"`
	History          []Attempt         `json:"history,omitempty" dynamodbav:"history,omitempty"`
	PlatformPostID   string            `json:"platformPostId,omitempty" dynamodbav:"platform_post_id,omitempty"`
	PlatformURL      string            `json:"platformUrl,omitempty" dynamodbav:"platform_url,omitempty"`
	LastError        *ErrorInfo        `json:"lastError,omitempty" dynamodbav:"last_error,omitempty"`
	NextAttemptAt    *time.Time        `json:"nextAttemptAt,omitempty" dynamodbav:"next_attempt_at,omitempty"`
	ScheduleID       string            `json:"scheduleId,omitempty" dynamodbav:"schedule_id,omitempty"`
	// AI is how the text was written when the dispatch asked for AI
	// adaptation (requestAiAssets) or sent an override; nil otherwise.
	AI        *AIInfo    `json:"ai,omitempty" dynamodbav:"ai,omitempty"`
	CreatedAt time.Time  `json:"createdAt" dynamodbav:"created_at"`
	UpdatedAt time.Time  `json:"updatedAt" dynamodbav:"updated_at"`
	SentAt    *time.Time `json:"sentAt,omitempty" dynamodbav:"sent_at,omitempty"`
	// Variant is the A/B variant the delivery publishes ("a", "b", ...);
	// empty when the dispatch had no variants.
	Variant string `json:"variant,omitempty" dynamodbav:"variant,omitempty"`
	// MetricsReads is how many engagement readings shared/engagement wrote
	// for the sent delivery; MetricsNextAt is when the next one is due.
	MetricsReads  int        `json:"metricsReads,omitempty" dynamodbav:"metrics_reads,omitempty"`
	MetricsNextAt *time.Time `json:"metricsNextAt,omitempty" dynamodbav:"metrics_next_at,omitempty"`
	// MetricsStatus is empty while readings are due, then MetricsDone,
	// MetricsDeleted or MetricsStopped (MetricsReason says why).
	MetricsStatus string `json:"metricsStatus,omitempty" dynamodbav:"metrics_status,omitempty"`
	MetricsReason string `json:"metricsReason,omitempty" dynamodbav:"metrics_reason,omitempty"`
	// MetricsLast holds the figures of the latest reading, from which the
	// next one's additions to the daily counters are taken.
	MetricsLast map[string]int64 `json:"-" dynamodbav:"metrics_last,omitempty"`
}

// Where reading a sent delivery's engagement stands (Delivery.MetricsStatus).
const (
	MetricsDone    = "done"    // every scheduled reading was taken
	MetricsDeleted = "deleted" // the platform says the post is gone
	MetricsStopped = "stopped" // the connection is broken or lacks a read permission
)

// NewDelivery is the input of CreateAll. Text is composed and fitted by the
// caller and frozen: every attempt publishes the same words.
type NewDelivery struct {
	SiteID, PostID, Revision, TargetID, ConnectionID string
	Platform                                         platform.Name
	Text, Link, Title                                string
	Media                                            []platform.Media
	Options                                          map[string]string
	RateLimitPerHour                                 int
	State                                            State // StateQueued (the default when empty) or StateScheduled
	ScheduleID                                       string
	// AI, when set, asks for the text to be adapted at the first claim
	// (Source AIPending), or records an editor's override (AIOverride).
	AI *AIInfo
	// Variant is the A/B variant ("a" to "d") the delivery publishes; empty
	// without variants.
	Variant string
}

// VariantLabel names the i-th A/B variant: "a", "b", ...
func VariantLabel(i int) string { return string(rune('a' + i)) }

// VariantIndex is the position of a variant label ("a" is 0); 0 for an
// empty or unknown label. The AI router asks for a distinct wording for
// every positive index (ai.Input.Variant).
func VariantIndex(label string) int {
	if len(label) != 1 || label[0] < 'a' || label[0] > 'z' {
		return 0
	}
	return int(label[0] - 'a')
}

// AI sources: how a delivery's text was written.
const (
	// AIPending: adaptation was asked for and has not run yet; the first
	// claim runs it and freezes the result (Lease.Adapt) before publishing.
	AIPending = "pending"
	// AIGenerated: an LLM wrote the text.
	AIGenerated = "ai"
	// AIFallback: no LLM answer was usable (or the budget was spent); the
	// deterministic text was published. Reason says why.
	AIFallback = "fallback"
	// AIOverride: the dispatch carried an editor's text for this target.
	AIOverride = "override"
)

// AIInfo is the AI adaptation of one delivery. Once Source is no longer
// AIPending it never changes: every attempt publishes the frozen text.
type AIInfo struct {
	Source string `json:"source" dynamodbav:"source"`
	// Settings are the target's AI settings, frozen at dispatch.
	Settings   ai.Settings `json:"settings" dynamodbav:"settings"`
	Provider   string      `json:"provider,omitempty" dynamodbav:"provider,omitempty"`
	Model      string      `json:"model,omitempty" dynamodbav:"model,omitempty"`
	CostMicros int64       `json:"costMicros" dynamodbav:"cost_micros"`
	Estimated  bool        `json:"estimated,omitempty" dynamodbav:"estimated,omitempty"`
	Cached     bool        `json:"cached,omitempty" dynamodbav:"cached,omitempty"`
	Reason     string      `json:"reason,omitempty" dynamodbav:"reason,omitempty"`
	// BudgetWarning: this adaptation took the site's month past 80% of its
	// AI budget (an ai.budget_warning event was recorded with it).
	BudgetWarning bool       `json:"budgetWarning,omitempty" dynamodbav:"budget_warning,omitempty"`
	AdaptedAt     *time.Time `json:"adaptedAt,omitempty" dynamodbav:"adapted_at,omitempty"`
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DeliveryID returns the delivery id of (site, post, revision, target). It is
// deterministic, so a second dispatch of the same revision finds the same
// deliveries.
func DeliveryID(siteID, postID, revision, targetID string) string {
	h := sha256.New()
	for _, part := range []string{siteID, postID, revision, targetID} {
		// Length-prefixed, so ("a|b","c") and ("a","b|c") differ.
		fmt.Fprintf(h, "%d:%s;", len(part), part)
	}
	return "dlv_" + idEncoding.EncodeToString(h.Sum(nil)[:20])
}

// Message types.
const (
	MessageDelivery = "delivery" // publish one delivery
	MessageSchedule = "schedule" // a fired schedule (shared/schedule expands it)
)

// MessageVersion is the version of Message that Encode writes.
const MessageVersion = 1

// Message is the body of a dispatch queue message. It names a delivery and
// never carries the post or a credential: the ledger is the truth.
type Message struct {
	V          int    `json:"v"`
	Type       string `json:"type"`
	SiteID     string `json:"siteId"`
	DeliveryID string `json:"deliveryId,omitempty"`
	ScheduleID string `json:"scheduleId,omitempty"`
	// ScheduleVersion is the version of the schedule a fired schedule
	// message was written for: a fire of an older version (the schedule was
	// changed since) does nothing.
	ScheduleVersion int `json:"scheduleVersion,omitempty"`
}

// DeliveryMessage returns the message that dispatches one delivery.
func DeliveryMessage(siteID, deliveryID string) Message {
	return Message{V: MessageVersion, Type: MessageDelivery, SiteID: siteID, DeliveryID: deliveryID}
}

// ScheduleMessage returns the message a schedule fires with: the schedule
// and the version it was written for.
func ScheduleMessage(siteID, scheduleID string, version int) Message {
	return Message{V: MessageVersion, Type: MessageSchedule, SiteID: siteID, ScheduleID: scheduleID, ScheduleVersion: version}
}

// Encode returns the message body.
func (m Message) Encode() string {
	if m.V == 0 {
		m.V = MessageVersion
	}
	b, _ := json.Marshal(m) // a struct of strings and an int always marshals
	return string(b)
}

// DecodeMessage parses a message body. An error is apperr invalid: the
// message can never be processed.
func DecodeMessage(body string) (Message, error) {
	var m Message
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return Message{}, apperr.Wrap(err, apperr.KindInvalid, "bad_message", "decode dispatch message: not JSON of the expected shape")
	}
	switch {
	case m.V != MessageVersion:
		return Message{}, apperr.Newf(apperr.KindInvalid, "bad_message", "decode dispatch message: unsupported version %d", m.V)
	case m.SiteID == "":
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode dispatch message: siteId is required")
	case m.Type == MessageDelivery && m.DeliveryID == "":
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode dispatch message: deliveryId is required")
	case m.Type == MessageSchedule && m.ScheduleID == "":
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode dispatch message: scheduleId is required")
	case m.Type == MessageSchedule && m.ScheduleVersion < 1:
		return Message{}, apperr.New(apperr.KindInvalid, "bad_message", "decode dispatch message: scheduleVersion is required")
	case m.Type != MessageDelivery && m.Type != MessageSchedule:
		return Message{}, apperr.Newf(apperr.KindInvalid, "bad_message", "decode dispatch message: unknown type %q", m.Type)
	}
	return m, nil
}

// Filter narrows List. Zero fields do not filter.
type Filter struct {
	PostID, TargetID string
	State            State
	Since, Until     time.Time // on CreatedAt; Since inclusive, Until exclusive
}
