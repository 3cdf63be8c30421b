// Package webhook tells a site's CMS what happened without polling: the
// site registers endpoints (up to MaxEndpoints), each with the event types
// it wants, and every event of the outbox (shared/event) is posted to each
// subscribed endpoint, signed as Standard Webhooks specifies, and retried
// on a schedule until the endpoint answers 2xx or the schedule runs out.
//
// The api function manages endpoints (Service): it seals each endpoint's
// signing secret with the vault (purpose webhook_secret; it can seal, never
// open) and answers the secret once. The webhook function (Deliverer) fans
// an event out into one attempt per endpoint, opens the secrets and posts,
// through shared/outbound, which refuses addresses that are not public.
//
// Items (one table):
//
//	PK=SITE#<site>  SK=WH#<id>        an endpoint: url, event types, sealed
//	                                  secret (and the previous one during a
//	                                  rotation), enabled, failing since
//	PK=SITE#<site>  SK=WHCOUNT        how many endpoints the site has
//	PK=SITE#<site>#WHATT  SK=<attempt id>
//	                                  one event sent to one endpoint: state,
//	                                  tries, the last status code, latency,
//	                                  error kind and next try
//	  GSI1PK=SITE#<site>#WH#<id>#ATT  GSI1SK=<createdAt>#<attempt id>
//	                                  an endpoint's attempts, newest first
//	  GSI2PK=WHWAIT  GSI2SK=<due>#<site>#<attempt id>
//	                                  attempts waiting to be sent (sparse), for
//	                                  the sweep
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/vault"
)

// Limits.
const (
	// MaxEndpoints is how many endpoints one site may register.
	MaxEndpoints = 10
	// MaxURLChars bounds an endpoint's URL.
	MaxURLChars = 2048
	// MaxDescriptionChars bounds an endpoint's description.
	MaxDescriptionChars = 500
	// DefaultOverlap is how long the previous secret keeps signing after a
	// rotation, unless the request says otherwise; MaxOverlap bounds it.
	DefaultOverlap = 24 * time.Hour
	MaxOverlap     = 7 * 24 * time.Hour
)

// Endpoint is a URL a site's events are posted to. It never shows its
// secret: the secret is answered once, when it is made.
type Endpoint struct {
	ID          string       `json:"id" dynamodbav:"webhook_id"`
	SiteID      string       `json:"-" dynamodbav:"site_id"`
	URL         string       `json:"url" dynamodbav:"url"`
	EventTypes  []event.Type `json:"eventTypes" dynamodbav:"event_types"`
	Description string       `json:"description" dynamodbav:"description"`
	Enabled     bool         `json:"enabled" dynamodbav:"enabled"`
	// DisabledReason says why POSSE disabled the endpoint (it answered 410
	// Gone, or failed every attempt for too long); DisabledAt when.
	DisabledReason string     `json:"disabledReason,omitempty" dynamodbav:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabledAt,omitempty" dynamodbav:"disabled_at,omitempty"`
	// FailingSince is the first failed attempt since the last success.
	FailingSince *time.Time `json:"failingSince,omitempty" dynamodbav:"failing_since,omitempty"`
	// SecretRotatedAt is when the secret was last rotated; until
	// PreviousSecretExpiresAt the previous secret signs too.
	SecretRotatedAt         *time.Time `json:"secretRotatedAt,omitempty" dynamodbav:"secret_rotated_at,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt,omitempty" dynamodbav:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"createdAt" dynamodbav:"created_at"`
	UpdatedAt               time.Time  `json:"updatedAt" dynamodbav:"updated_at"`

	Version        int64         `json:"-" dynamodbav:"version"`
	Secret         vault.Sealed  `json:"-" dynamodbav:"sealed_secret"`
	PreviousSecret *vault.Sealed `json:"-" dynamodbav:"sealed_previous_secret,omitempty"`
}

// Subscribed reports whether the endpoint wants events of type t.
func (e Endpoint) Subscribed(t event.Type) bool { return slices.Contains(e.EventTypes, t) }

// Input is the body of POST /v1/webhooks and PATCH /v1/webhooks/{id}. Nil
// fields are not given.
type Input struct {
	URL         *string   `json:"url"`
	EventTypes  *[]string `json:"eventTypes"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
}

// Rules are what an endpoint's URL must satisfy.
type Rules struct {
	// AllowInsecure accepts http:// and hosts that are not public: the
	// local stack (POSSE_ENV=local) only.
	AllowInsecure bool
}

// apply validates in and applies its given fields to e; create requires
// the URL. It returns every problem found.
func (in Input) apply(e *Endpoint, create bool, rules Rules) []apperr.Problem {
	var ps []apperr.Problem
	if in.URL == nil && create {
		ps = append(ps, apperr.Problem{Field: "url", Message: "is required"})
	}
	if in.URL != nil {
		if msg := rules.checkURL(*in.URL); msg != "" {
			ps = append(ps, apperr.Problem{Field: "url", Message: msg})
		} else {
			e.URL = *in.URL
		}
	}
	if in.EventTypes != nil {
		types, msg := parseTypes(*in.EventTypes)
		if msg != "" {
			ps = append(ps, apperr.Problem{Field: "eventTypes", Message: msg})
		} else {
			e.EventTypes = types
		}
	} else if create {
		e.EventTypes = slices.Clone(event.Types)
	}
	if in.Description != nil {
		if utf8.RuneCountInString(*in.Description) > MaxDescriptionChars {
			ps = append(ps, apperr.Problem{Field: "description", Message: fmt.Sprintf("must be at most %d characters", MaxDescriptionChars)})
		} else {
			e.Description = *in.Description
		}
	}
	if in.Enabled != nil {
		e.Enabled = *in.Enabled
		if *in.Enabled {
			// Enabled again by the site: start over.
			e.DisabledReason, e.DisabledAt, e.FailingSince = "", nil, nil
		}
	}
	return ps
}

// checkURL returns what is wrong with u, or "".
func (r Rules) checkURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > MaxURLChars {
		return fmt.Sprintf("must be at most %d characters", MaxURLChars)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "must be an absolute http(s) URL"
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !r.AllowInsecure {
			return "must use https"
		}
	default:
		return "must be an absolute http(s) URL"
	}
	if u.User != nil {
		return "must not carry credentials (user:password@)"
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "must not have a fragment"
	}
	host := u.Hostname()
	if host == "" {
		return "must name a host"
	}
	if !r.AllowInsecure {
		if a, err := netip.ParseAddr(host); err == nil {
			if outbound.Check(a) != nil {
				return "must point at a public address"
			}
		} else if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") ||
			strings.HasSuffix(h, ".internal") || strings.HasSuffix(h, ".local") || !strings.Contains(h, ".") {
			return "must point at a public host name"
		}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "has an invalid port"
		}
	}
	return ""
}

// parseTypes checks the event types an endpoint subscribes to: at least
// one, each known; duplicates are dropped, the order is Types'.
func parseTypes(in []string) ([]event.Type, string) {
	if len(in) == 0 {
		return nil, "must name at least one event type; omit it for all of them"
	}
	var unknown []string
	for _, s := range in {
		if !event.Type(s).Valid() {
			unknown = append(unknown, strconv.Quote(s))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Sprintf("unknown event type %s; valid types are %s", strings.Join(unknown, ", "), strings.Join(event.TypeNames(), ", "))
	}
	var out []event.Type
	for _, t := range event.Types {
		if slices.Contains(in, string(t)) {
			out = append(out, t)
		}
	}
	return out, ""
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Prefixes of the ids this package makes.
const (
	IDPrefix        = "wh_"
	AttemptIDPrefix = "wha_"
)

// validID reports whether id can be an id with prefix, before it reaches a
// key.
func validID(id, prefix string) bool {
	if !strings.HasPrefix(id, prefix) || len(id) > 64 || len(id) == len(prefix) {
		return false
	}
	for _, r := range id[len(prefix):] {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// ValidID reports whether id can be an endpoint id.
func ValidID(id string) bool { return validID(id, IDPrefix) }

// newID returns a random id with prefix.
func newID(rand io.Reader, prefix string) (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return prefix + idEncoding.EncodeToString(b), nil
}

// AttemptID is the id of the attempt that sends event eventID to endpoint
// webhookID, in replay round replay ("" for the first fan-out): the same
// fan-out makes the same attempts.
func AttemptID(eventID, webhookID, replay string) string {
	h := sha256.New()
	for _, p := range []string{eventID, webhookID, replay} {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return AttemptIDPrefix + idEncoding.EncodeToString(h.Sum(nil)[:20])
}

// SecretPrefix starts every signing secret, as Standard Webhooks asks.
const SecretPrefix = "whsec_"

// secretBytes is the length of a new secret's key (Standard Webhooks: at
// least 24 bytes, at most 64).
const secretBytes = 32

// NewSecret returns a new signing secret: "whsec_" and the base64 of 32
// random bytes.
func NewSecret(rand io.Reader) (string, error) {
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	defer clear(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// DecodeSecret returns the HMAC key of a secret: the base64-decoded part
// after "whsec_".
func DecodeSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook secret: not a whsec_ secret")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("webhook secret: not base64 after whsec_")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("webhook secret: %d bytes, want 24 to 64", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header of a message: one
// "v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">" per key, space
// separated, as Standard Webhooks specifies. During a rotation it is
// given the current and the previous key.
func Sign(id string, timestamp int64, body []byte, keys ...[]byte) string {
	sigs := make([]string, 0, len(keys))
	ts := strconv.FormatInt(timestamp, 10)
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// secretContext is the vault context of an endpoint's secrets.
func secretContext(siteID, webhookID string) vault.Context {
	return vault.Context{Site: siteID, Connection: webhookID, Purpose: vault.PurposeWebhookSecret}
}
