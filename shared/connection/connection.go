// Package connection owns a site's connected platform accounts: connecting
// them (OAuth authorization code flow for X, LinkedIn, Facebook Pages,
// Instagram, Threads and TikTok; a Bluesky app password or a Mastodon
// access token given by the site), keeping their credentials sealed with
// the vault, refreshing tokens before they expire, and validating them.
//
// # Items
//
// One table (architecture §5):
//
//	SITE#<site>  CONN#<id>  the connection: platform, account id, handle,
//	                        status (active|expiring|broken), token_version,
//	                        token_expires_at, sealed_credentials, lease
//	                        (lease_owner, lease_until), and
//	                        GSI2PK "REFRESH" / GSI2SK "<expiry>#<site>#<id>"
//	                        while the token expires, so the refresh function
//	                        finds what expires within its window, and
//	                        GSI1PK "VALIDATE" / GSI1SK "<requested>#<site>#<id>"
//	                        while a validation is pending.
//	OAUTH#<state> META      an OAuth state: site, platform, redirect URI,
//	                        return URL, created_at, expires_at (the table's
//	                        TTL attribute, epoch seconds, 10 minutes ahead).
//
// Token expiry is stored as token_expires_at, never expires_at: that is the
// table's TTL attribute, and DynamoDB would delete the connection.
//
// The credentials (access and refresh token, expiries, scopes, and platform
// extras: Facebook Page id, Bluesky DID and PDS, Mastodon instance URL) are
// one JSON document sealed with vault context {site, connection id,
// "oauth_tokens"}; a sealed record copied to another item does not open.
// A connection id is derived from (site, platform, account id), so
// connecting the same account again updates its connection instead of
// adding a second one.
//
// # State and PKCE without kms:Decrypt
//
// The api function runs the OAuth start and callback but holds only
// kms:GenerateDataKey: it can seal, never open (architecture §3). X
// requires PKCE, so the callback must send the code_verifier it chose at
// authorize time — which a sealed verifier in the state item would make
// impossible to read back. Decision: the verifier is never stored. It is
// derived from the state as base64url(HMAC-SHA-256(K, "pkce-verifier:" +
// state)), computed by KMS GenerateMac with a dedicated HMAC_256 key
// (OAuthStateKey in template.yaml, kms:GenerateMac granted to the api
// function only). The same call at authorize and at callback gives the same
// 43-character verifier; without the key it cannot be computed from the
// state, which travels through the browser. The state itself is 256 random
// bits, single use (a conditional DeleteItem that returns the item), bound
// to its site and platform, and refused after 10 minutes even before the
// TTL sweeps it.
//
// # Refresh
//
// X, TikTok and Bluesky rotate refresh tokens: using one twice kills the
// token family. A refresh therefore runs single-flight per connection: a
// conditional lease on the connection item (lease_owner, lease_until, and
// the token_version the refresher read), then the new credentials are
// sealed and written with a compare-and-swap on token_version and the lease
// owner before anyone uses them. Other callers wait for token_version to
// move and read the new credentials. See Refresher.
package connection

import (
	"crypto/sha256"
	"encoding/base32"
	"regexp"
	"time"

	"github.com/posse-dev/posse/shared/platform"
)

// Status is a connection's health.
type Status string

// Statuses.
const (
	StatusActive   Status = "active"   // the token works (as far as we know)
	StatusExpiring Status = "expiring" // it will die soon and cannot be renewed without the user (LinkedIn)
	StatusBroken   Status = "broken"   // it was refused: the account must be connected again
)

// Connection is a connected platform account as the API shows it. It never
// holds a credential.
type Connection struct {
	ID           string        `json:"id" dynamodbav:"connection_id"`
	SiteID       string        `json:"-" dynamodbav:"site_id"`
	Platform     platform.Name `json:"platform" dynamodbav:"platform"`
	AccountID    string        `json:"accountId" dynamodbav:"account_id"`
	Handle       string        `json:"handle" dynamodbav:"handle"`
	Name         string        `json:"name,omitempty" dynamodbav:"display_name,omitempty"`
	InstanceURL  string        `json:"instanceUrl,omitempty" dynamodbav:"instance_url,omitempty"`
	Status       Status        `json:"status" dynamodbav:"status"`
	StatusReason string        `json:"statusReason,omitempty" dynamodbav:"status_reason,omitempty"`
	Scopes       []string      `json:"scopes,omitempty" dynamodbav:"scopes,omitempty"`
	TokenVersion int64         `json:"tokenVersion" dynamodbav:"token_version"`
	// TokenExpiresAt is when the access token expires; nil when it does not
	// (Facebook Page tokens, Mastodon).
	TokenExpiresAt        *time.Time `json:"tokenExpiresAt,omitempty" dynamodbav:"token_expires_at,omitempty"`
	CreatedAt             time.Time  `json:"createdAt" dynamodbav:"created_at"`
	UpdatedAt             time.Time  `json:"updatedAt" dynamodbav:"updated_at"`
	RefreshedAt           *time.Time `json:"refreshedAt,omitempty" dynamodbav:"refreshed_at,omitempty"`
	ValidatedAt           *time.Time `json:"validatedAt,omitempty" dynamodbav:"validated_at,omitempty"`
	ValidationRequestedAt *time.Time `json:"validationRequestedAt,omitempty" dynamodbav:"validation_requested_at,omitempty"`
}

// Credentials are what is sealed for a connection. Never log, return or
// store them unsealed.
type Credentials struct {
	AccessToken   string    `json:"access_token"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	Expiry        time.Time `json:"expiry,omitzero"`
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
	IssuedAt      time.Time `json:"issued_at,omitzero"`
	Scopes        []string  `json:"scopes,omitempty"`
	// Platform extras.
	PageID      string `json:"page_id,omitempty"`      // Facebook Page
	UserID      string `json:"user_id,omitempty"`      // TikTok open_id and the like
	DID         string `json:"did,omitempty"`          // Bluesky
	PDS         string `json:"pds,omitempty"`          // Bluesky PDS URL
	InstanceURL string `json:"instance_url,omitempty"` // Mastodon instance
}

// String never shows a credential, so a careless %v cannot leak one.
func (Credentials) String() string { return "connection.Credentials{[REDACTED]}" }

// GoString is String for %#v.
func (c Credentials) GoString() string { return c.String() }

// baseURL is the API base the account lives on (Mastodon instance, PDS).
func (c Credentials) baseURL() string {
	if c.InstanceURL != "" {
		return c.InstanceURL
	}
	return c.PDS
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ConnectionID is the id of the connection of (site, platform, account): a
// stable, opaque hash, so connecting an account again updates its
// connection.
func ConnectionID(siteID string, p platform.Name, accountID string) string {
	sum := sha256.Sum256([]byte("posse.connection.v1\x00" + siteID + "\x00" + string(p) + "\x00" + accountID))
	return "conn_" + idEncoding.EncodeToString(sum[:16])
}

// urlQuery matches the query of a URL in error text: platform calls may
// carry a token there (Meta takes access_token as a parameter).
var urlQuery = regexp.MustCompile(`(https?://[^\s?"']+)\?[^\s"']*`)

// logErr renders err for a log line without URL queries; the logger's own
// redaction then removes bearer strings and JWTs.
func logErr(err error) string {
	if err == nil {
		return ""
	}
	return urlQuery.ReplaceAllString(err.Error(), "$1?[REDACTED]")
}
