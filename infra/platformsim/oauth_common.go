package platformsim

// OAuth helpers every platform's simulator uses: authorization codes,
// client checks, the account an authorize page approves, refresh tokens,
// PKCE and redirects.

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"
)

// authCode is an authorization code an authorize page issued.
type authCode struct {
	ClientID    string
	RedirectURI string
	AccountID   string
	Scope       string
	Challenge   string // PKCE code_challenge
	Method      string // PKCE code_challenge_method (X; the others take S256 only)
	Issued      time.Time
}

// verifierOK reports whether verifier answers c's S256 PKCE challenge; any
// verifier does when c has none.
func (c authCode) verifierOK(verifier string) bool {
	return c.Challenge == "" || s256(verifier) == c.Challenge
}

// issueCode stores c under code, a code of platform's own format, and
// returns code.
func issueCode(s *Server, platform, code string, c authCode) string {
	c.Issued = s.now()
	s.with(func(st map[string]any) { st[platform+"|code|"+code] = c; s.issueLocked(code) })
	return code
}

// redeemCode consumes code (codes are single use, even when the exchange
// fails) and returns it when it was issued to clientID for redirectURI less
// than ttl ago.
func redeemCode(s *Server, platform, code, clientID, redirectURI string, ttl time.Duration) (authCode, bool) {
	key := platform + "|code|" + code
	var c authCode
	var ok bool
	s.with(func(st map[string]any) {
		c, ok = st[key].(authCode)
		delete(st, key)
	})
	if !ok || c.ClientID != clientID || c.RedirectURI != redirectURI || s.now().Sub(c.Issued) > ttl {
		return authCode{}, false
	}
	return c, true
}

// redeemCodeAccount is redeemCode that also finds the account the code was
// issued for.
func redeemCodeAccount(s *Server, platform, code, clientID, redirectURI string, ttl time.Duration) (authCode, *Account, bool) {
	c, ok := redeemCode(s, platform, code, clientID, redirectURI, ttl)
	if !ok {
		return authCode{}, nil, false
	}
	a, ok := s.accountByID(platform, c.AccountID)
	return c, a, ok
}

// codeParams are the query an authorize page redirects with: the code, and
// the state when the client sent one.
func codeParams(code, state string) url.Values {
	params := url.Values{"code": {code}}
	if state != "" {
		params.Set("state", state)
	}
	return params
}

// checkClient reports whether id/secret are the registered client of platform.
func (s *Server) checkClient(platform, id, secret string) bool {
	if id == "" {
		return false
	}
	c, ok := s.opts.Clients[platform]
	if !ok {
		return secret != "" || platform == "x" // X public clients use PKCE without a secret
	}
	return c.ID == id && (c.Secret == secret || (platform == "x" && secret == ""))
}

// clientIDOK reports whether id may start platform's authorize flow, which
// sees no secret: the registered client's id, or any non-empty id when none
// is registered.
func clientIDOK(s *Server, platform, id string) bool {
	c, ok := s.opts.Clients[platform]
	if !ok {
		return id != ""
	}
	return id != "" && c.ID == id
}

// clientSecretOK reports whether secret is the registered secret of
// platform's client (any non-empty secret when none is registered).
func clientSecretOK(s *Server, platform, secret string) bool {
	c, ok := s.opts.Clients[platform]
	if !ok {
		return secret != ""
	}
	return c.Secret == secret
}

// SimUserParam is the authorize-page query parameter that picks which
// simulated person approves: the same value gives the same account, each
// new value a new one, as people with different accounts would. Without it
// every authorization of a client approves as one default person.
const SimUserParam = "sim_user"

// clientAccount returns the account the OAuth authorize page of platform
// approves for clientID as person user ("" for the default person),
// creating it (with an id from newID) on first use.
func clientAccount(s *Server, platform, clientID, user, handlePrefix string, newID func() string) *Account {
	key := platform + "|clientacct|" + clientID + "|" + user
	var id string
	s.with(func(st map[string]any) { id, _ = st[key].(string) })
	if id != "" {
		if a, ok := s.accountByID(platform, id); ok {
			return a
		}
	}
	id = newID()
	s.AddAccount(Account{Platform: platform, ID: id, Handle: handlePrefix + id})
	s.with(func(st map[string]any) { st[key] = id })
	a, _ := s.accountByID(platform, id)
	return a
}

// setRefresh sets a's refresh token under the simulator's lock.
func setRefresh(s *Server, a *Account, rt string) {
	s.with(func(map[string]any) { a.RefreshToken = rt; s.issueLocked(rt) })
}

// bindRefresh makes rt the current refresh token of a. The previous one stops
// working, which is what rotating platforms do; non-rotating platforms call
// it once per consent.
func bindRefresh(s *Server, a *Account, rt string) {
	s.with(func(st map[string]any) {
		delete(st, a.Platform+"|refresh|"+a.RefreshToken)
		a.RefreshToken = rt
		s.issueLocked(rt)
		st[a.Platform+"|refresh|"+rt] = a.ID
	})
}

// accountByRefresh returns the account whose current refresh token is rt.
func accountByRefresh(s *Server, platform, rt string) (*Account, bool) {
	var id string
	s.with(func(st map[string]any) { id, _ = st[platform+"|refresh|"+rt].(string) })
	if id == "" || rt == "" {
		return nil, false
	}
	a, ok := s.accountByID(platform, id)
	if !ok {
		return nil, false
	}
	var current string
	s.with(func(map[string]any) { current = a.RefreshToken })
	return a, current == rt
}

// s256 is the PKCE S256 code challenge of verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// redirectWith answers 302 to redirectURI with params added to its query and
// an optional fragment.
func redirectWith(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, fragment string) {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" || u.Host == "" {
		http.Error(w, "redirect_uri is not an absolute URL", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	u.Fragment = fragment
	http.Redirect(w, r, u.String(), http.StatusFound)
}
