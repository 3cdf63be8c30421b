package vault

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/posse-dev/posse/shared/apperr"
)

// The encryption context keys a Context maps to.
const (
	ContextSite       = "site"
	ContextConnection = "connection"
	ContextPurpose    = "purpose"
)

// Purposes POSSE seals secrets for. Context.Purpose is free text; these are
// the values the services use.
const (
	PurposeOAuthTokens   = "oauth_tokens"
	PurposePKCEVerifier  = "pkce_verifier"
	PurposeWebhookSecret = "webhook_secret"
)

// aadLabel prefixes the canonical context so the bytes cannot be confused
// with any other use of the same data key.
const aadLabel = "posse.vault.v1"

// Context binds a sealed secret to its owner. It becomes the KMS encryption
// context ({"site":…, "connection":…, "purpose":…}) and, canonicalized, the
// AES-GCM additional authenticated data, so a record copied to another site,
// connection or purpose does not open.
//
// The caller of Open derives the Context from where the record lives (the
// item's keys), never from the record itself.
type Context struct {
	Site       string // the site that owns the secret
	Connection string // the connection, OAuth state or other owner id within the site
	Purpose    string // what the secret is, e.g. PurposeOAuthTokens
}

// Map returns c as a KMS encryption context.
func (c Context) Map() map[string]string {
	return map[string]string{
		ContextSite:       c.Site,
		ContextConnection: c.Connection,
		ContextPurpose:    c.Purpose,
	}
}

// String renders c for error messages and logs; it holds no secret.
func (c Context) String() string {
	return "site=" + c.Site + " connection=" + c.Connection + " purpose=" + c.Purpose
}

// Validate reports a Context with an empty field: every field takes part in
// the binding, so none may be left out.
func (c Context) Validate() error {
	var missing string
	switch {
	case c.Site == "":
		missing = ContextSite
	case c.Connection == "":
		missing = ContextConnection
	case c.Purpose == "":
		missing = ContextPurpose
	default:
		return nil
	}
	return apperr.New(apperr.KindInternal, "vault.invalid_context", "vault context: "+missing+" is required")
}

// canonical encodes an encryption context unambiguously: the label, then
// every pair sorted by key, each string prefixed by its length.
func canonical(ec map[string]string) []byte {
	keys := slices.Sorted(maps.Keys(ec))
	n := len(aadLabel) + binary.MaxVarintLen64
	for _, k := range keys {
		n += len(k) + len(ec[k]) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(aadLabel)))
	b = append(b, aadLabel...)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(ec[k])))
		b = append(b, ec[k]...)
	}
	return b
}
