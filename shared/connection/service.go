package connection

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

// sealer seals credentials; the api function's vault.Sealer (which cannot
// open anything) is enough.
type sealer interface {
	Seal(ctx context.Context, c vault.Context, plaintext []byte) (vault.Sealed, error)
}

// siteGetter reads the site a connection flow returns to.
type siteGetter interface {
	Get(ctx context.Context, id string) (site.Site, error)
}

// blueskyLogin starts a Bluesky app-password session (the bluesky adapter).
type blueskyLogin interface {
	Login(ctx context.Context, identifier, appPassword string) (bluesky.Session, error)
}

// ServiceConfig is what a Service is built from.
type ServiceConfig struct {
	Store  *Store
	Sealer sealer
	Sites  siteGetter
	OAuth  *oauth.Registry
	// MAC and StateKeyID derive PKCE verifiers (kms:GenerateMac on the
	// OAuth state key). Without them, platforms that need PKCE (X) are not
	// configured.
	MAC        macAPI
	StateKeyID string
	// Identifiers are the adapters' "who am I", by platform. An OAuth
	// platform without one is identified by the oauth package; Mastodon
	// needs one.
	Identifiers map[platform.Name]platform.Identifier
	// Bluesky logs in with an app password; BlueskyPDS is the service it
	// logs in at, stored as the account's PDS when the session names none.
	Bluesky    blueskyLogin
	BlueskyPDS string
	// PublicURL is the API's public base URL for OAuth redirect URIs; when
	// empty, the base the authorize request came to is used.
	PublicURL string
	// AllowHTTPInstances accepts http:// Mastodon instances and instances
	// on loopback (the local stack, whose simulator is on 127.0.0.1);
	// otherwise only https on public addresses.
	AllowHTTPInstances bool
	// Resolver resolves an instance's host name for the check before the
	// token is sent (net.DefaultResolver when nil). Tests give one that
	// maps names to private addresses.
	Resolver outbound.Resolver
	Logger   *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
}

// Service is the api function's side of connections: it starts and
// finishes OAuth flows, connects Bluesky and Mastodon accounts, and lists,
// shows, deletes and asks for validation of a site's connections. It seals
// credentials but never opens them.
type Service struct {
	cfg ServiceConfig
	log *slog.Logger
}

// NewService returns a Service. It does no I/O.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Sealer == nil || cfg.Sites == nil || cfg.OAuth == nil {
		return nil, errors.New("connection: NewService needs Store, Sealer, Sites and OAuth")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	cfg.BlueskyPDS = strings.TrimRight(cfg.BlueskyPDS, "/")
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log}, nil
}

// ParsePlatform returns the platform named in a path, or not_found.
func ParsePlatform(s string) (platform.Name, error) {
	p := platform.Name(s)
	if !p.Valid() {
		return "", apperr.Newf(apperr.KindNotFound, "unknown_platform", "unknown platform %q", s)
	}
	return p, nil
}

// AuthorizeRequest starts an OAuth flow.
type AuthorizeRequest struct {
	SiteID   string
	Platform platform.Name
	// PageID picks the Facebook Page to connect; empty takes the first.
	PageID string
	// RequestBase is scheme://host of the authorize request, the redirect
	// base when no PublicURL is configured.
	RequestBase string
}

// Authorization is where to send the browser.
type Authorization struct {
	AuthURL   string    `json:"authUrl"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CallbackPath is the path of platform p's OAuth callback; redirect URIs
// are the public base plus this, and must be registered with the platform.
func CallbackPath(p platform.Name) string { return "/v1/oauth/" + string(p) + "/callback" }

// Authorize creates a single-use state bound to the site and platform and
// returns the platform's authorize URL.
func (s *Service) Authorize(ctx context.Context, r AuthorizeRequest) (Authorization, error) {
	if !r.Platform.Valid() {
		return Authorization{}, apperr.Newf(apperr.KindNotFound, "unknown_platform", "unknown platform %q", string(r.Platform))
	}
	if !oauth.IsOAuth(r.Platform) {
		return Authorization{}, apperr.Newf(apperr.KindUnprocessable, "manual_platform",
			"%s accounts are connected with POST /v1/connections, not through OAuth", r.Platform)
	}
	if r.PageID != "" && (r.Platform != platform.Facebook || !validPageID(r.PageID)) {
		if r.Platform != platform.Facebook {
			return Authorization{}, apperr.Invalid("pageId", "is only used for facebook")
		}
		return Authorization{}, apperr.Invalid("pageId", "must be a Facebook Page id (digits)")
	}
	prov, err := s.cfg.OAuth.Provider(r.Platform)
	if err != nil {
		return Authorization{}, err
	}
	if prov.PKCE() && (s.cfg.MAC == nil || s.cfg.StateKeyID == "") {
		return Authorization{}, apperr.Newf(apperr.KindUnprocessable, "platform_not_configured",
			"platform not configured: %s needs PKCE and no OAuth state key is configured", r.Platform)
	}
	st, err := s.cfg.Sites.Get(ctx, r.SiteID)
	if err != nil {
		return Authorization{}, fmt.Errorf("authorize %s: read site %s: %w", r.Platform, r.SiteID, err)
	}
	base := s.cfg.PublicURL
	if base == "" {
		base = strings.TrimRight(r.RequestBase, "/")
	}
	if base == "" {
		return Authorization{}, fmt.Errorf("authorize %s: no public URL to build the redirect URI from", r.Platform)
	}
	raw := make([]byte, stateBytes)
	if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
		return Authorization{}, fmt.Errorf("authorize %s: generate state: %w", r.Platform, err)
	}
	state := base64.RawURLEncoding.EncodeToString(raw)
	redirectURI := base + CallbackPath(r.Platform)
	var verifier string
	if prov.PKCE() {
		if verifier, err = deriveVerifier(ctx, s.cfg.MAC, s.cfg.StateKeyID, state); err != nil {
			return Authorization{}, fmt.Errorf("authorize %s: %w", r.Platform, err)
		}
	}
	authURL, err := prov.AuthURL(oauth.AuthRequest{State: state, RedirectURI: redirectURI, Verifier: verifier})
	if err != nil {
		return Authorization{}, fmt.Errorf("authorize %s: %w", r.Platform, err)
	}
	now := s.cfg.Now().UTC()
	expires := now.Add(StateTTL)
	if err := s.cfg.Store.putState(ctx, state, oauthState{
		SiteID: r.SiteID, Platform: r.Platform, RedirectURI: redirectURI, ReturnURL: st.ReturnURL,
		PageID: r.PageID, CreatedAt: now, ExpiresAt: expires.Unix(),
	}); err != nil {
		return Authorization{}, fmt.Errorf("authorize %s: %w", r.Platform, err)
	}
	s.log.InfoContext(ctx, "oauth authorize started", "site", r.SiteID, "platform", string(r.Platform))
	return Authorization{AuthURL: authURL, State: state, ExpiresAt: expires.Truncate(time.Second)}, nil
}

func validPageID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for _, r := range id {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ErrInvalidState answers a callback whose state is missing, unknown or
// already used: there is no site to send the browser back to.
var ErrInvalidState = apperr.New(apperr.KindInvalid, "invalid_state",
	"the OAuth state is missing, unknown, expired or already used: start the connection again")

// Callback error codes sent to the site's return URL as error=<code>.
const (
	CallbackAccessDenied   = "access_denied"
	CallbackExpiredState   = "expired_state"
	CallbackInvalidState   = "invalid_state"
	CallbackInvalidRequest = "invalid_request"
	CallbackNotConfigured  = "platform_not_configured"
	CallbackExchangeFailed = "exchange_failed"
	CallbackIdentityFailed = "identity_failed"
	CallbackServerError    = "server_error"
	CallbackAuthFailed     = "authorization_failed"
)

// passedThrough are the platform's own error codes the site sees as they
// are (RFC 6749 §4.1.2.1); anything else becomes authorization_failed.
var passedThrough = map[string]string{
	"access_denied":             CallbackAccessDenied,
	"user_cancelled_authorize":  CallbackAccessDenied, // LinkedIn
	"user_cancelled_login":      CallbackAccessDenied, // LinkedIn
	"invalid_scope":             "invalid_scope",
	"server_error":              "server_error",
	"temporarily_unavailable":   "temporarily_unavailable",
	"unauthorized_client":       "unauthorized_client",
	"unsupported_response_type": "unsupported_response_type",
}

// Callback finishes an OAuth flow from the platform's redirect query: it
// consumes the state, exchanges the code at once, identifies the account,
// seals the tokens and stores the connection. It returns the URL to send
// the browser to — the site's return URL with connectionId=<id>, or
// error=<code> — or ErrInvalidState when the state names no site.
func (s *Service) Callback(ctx context.Context, p platform.Name, q url.Values) (string, error) {
	if !p.Valid() {
		return "", apperr.Newf(apperr.KindNotFound, "unknown_platform", "unknown platform %q", string(p))
	}
	state := q.Get("state")
	if state == "" {
		s.log.InfoContext(ctx, "oauth callback refused", "platform", string(p), "reason", "no_state")
		return "", ErrInvalidState
	}
	st, found, err := s.cfg.Store.consumeState(ctx, state)
	if err != nil {
		return "", fmt.Errorf("oauth callback for %s: %w", p, err)
	}
	if !found {
		s.log.InfoContext(ctx, "oauth callback refused", "platform", string(p), "reason", "unknown_or_used_state")
		return "", ErrInvalidState
	}
	back := func(params url.Values) string { return withParams(st.ReturnURL, params) }
	fail := func(code, reason string, err error) (string, error) {
		attrs := []any{"site", st.SiteID, "platform", string(p), "error_code", code, "reason", reason}
		if err != nil {
			attrs = append(attrs, "err", logErr(err))
			if e, ok := apperr.As(err); ok {
				attrs = append(attrs, "kind", string(e.Kind), "platform_code", e.PlatformCode, "platform_status", e.HTTPStatus, "platform_response", e.Redacted)
			}
		}
		s.log.WarnContext(ctx, "oauth callback failed", attrs...)
		return back(url.Values{"error": {code}, "platform": {string(p)}}), nil
	}
	now := s.cfg.Now()
	switch {
	case !now.Before(time.Unix(st.ExpiresAt, 0)):
		return fail(CallbackExpiredState, "state older than 10 minutes", nil)
	case st.Platform != p:
		return fail(CallbackInvalidState, "state issued for "+string(st.Platform), nil)
	}
	if pe := q.Get("error"); pe != "" {
		code, ok := passedThrough[pe]
		if !ok {
			code = CallbackAuthFailed
		}
		return fail(code, "the platform answered error="+safeCode(pe), nil)
	}
	code := q.Get("code")
	if code == "" {
		return fail(CallbackInvalidRequest, "no code and no error", nil)
	}
	prov, err := s.cfg.OAuth.Provider(p)
	if err != nil {
		return fail(CallbackNotConfigured, "no client configured", err)
	}
	var verifier string
	if prov.PKCE() {
		if s.cfg.MAC == nil {
			return fail(CallbackNotConfigured, "no OAuth state key", nil)
		}
		if verifier, err = deriveVerifier(ctx, s.cfg.MAC, s.cfg.StateKeyID, state); err != nil {
			return fail(CallbackServerError, "derive the PKCE verifier", err)
		}
	}
	grant, err := prov.Exchange(ctx, oauth.ExchangeRequest{Code: code, RedirectURI: st.RedirectURI, Verifier: verifier, PageID: st.PageID})
	if err != nil {
		return fail(CallbackExchangeFailed, "code exchange", err)
	}
	id, err := s.identify(ctx, prov, grant)
	if err != nil {
		return fail(CallbackIdentityFailed, "who am I", err)
	}
	creds := Credentials{
		AccessToken: grant.Token.AccessToken, RefreshToken: grant.Token.RefreshToken,
		Expiry: grant.Token.Expiry, RefreshExpiry: grant.Token.RefreshExpiry, IssuedAt: grant.Token.IssuedAt,
		Scopes: grant.Token.Scopes, PageID: grant.PageID, UserID: grant.Token.UserID,
	}
	conn, err := s.store(ctx, st.SiteID, p, id, creds)
	if err != nil {
		return fail(CallbackServerError, "store the connection", err)
	}
	return back(url.Values{"connectionId": {conn.ID}, "platform": {string(p)}}), nil
}

// safeCode keeps a platform's error code loggable: short, plain characters.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '?'
	}, s)
}

// withParams adds params to a URL's query.
func withParams(raw string, params url.Values) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// identify returns who a fresh grant belongs to: what the exchange said
// (the Facebook Page), else the adapter's WhoAmI, else the oauth lookup.
func (s *Service) identify(ctx context.Context, prov *oauth.Provider, g oauth.Grant) (platform.Identity, error) {
	if g.Identity.ID != "" {
		return g.Identity, nil
	}
	return whoAmI(ctx, s.cfg.Identifiers, prov, platform.Account{ID: g.Token.UserID, AccessToken: g.Token.AccessToken}, g.Token)
}

// whoAmI asks the adapter's identifier when there is one, else the OAuth
// provider.
func whoAmI(ctx context.Context, ids map[platform.Name]platform.Identifier, prov *oauth.Provider, acct platform.Account, tok oauth.Token) (platform.Identity, error) {
	if idf, ok := ids[prov.Name()]; ok && idf != nil {
		id, err := idf.WhoAmI(ctx, acct)
		if err != nil {
			return platform.Identity{}, fmt.Errorf("%s who am I: %w", prov.Name(), err)
		}
		if id.ID == "" {
			return platform.Identity{}, fmt.Errorf("%s who am I: no account id", prov.Name())
		}
		return id, nil
	}
	id, err := prov.Identify(ctx, tok)
	if err != nil {
		return platform.Identity{}, fmt.Errorf("%s who am I: %w", prov.Name(), err)
	}
	return id, nil
}

// store seals creds for the connection of (site, platform, account) and
// saves it.
func (s *Service) store(ctx context.Context, siteID string, p platform.Name, id platform.Identity, creds Credentials) (Connection, error) {
	connID := ConnectionID(siteID, p, id.ID)
	sealed, err := sealCredentials(ctx, s.cfg.Sealer, siteID, connID, creds)
	if err != nil {
		return Connection{}, err
	}
	handle := id.Handle
	if handle == "" {
		handle = id.ID
	}
	conn, err := s.cfg.Store.save(ctx, connected{
		SiteID: siteID, ID: connID, Platform: p, AccountID: id.ID, Handle: handle, Name: id.Name,
		InstanceURL: creds.InstanceURL, Scopes: creds.Scopes, Expiry: creds.Expiry, Sealed: sealed, Now: s.cfg.Now().UTC(),
	})
	if err != nil {
		return Connection{}, err
	}
	s.log.InfoContext(ctx, "platform connected", "site", siteID, "platform", string(p), "connection_id", connID, "token_version", conn.TokenVersion)
	return conn, nil
}

// credentialsContext is the vault context of a connection's credentials.
func credentialsContext(siteID, connID string) vault.Context {
	return vault.Context{Site: siteID, Connection: connID, Purpose: vault.PurposeOAuthTokens}
}

// sealCredentials seals creds as JSON and clears the plaintext.
func sealCredentials(ctx context.Context, sl sealer, siteID, connID string, creds Credentials) (vault.Sealed, error) {
	plain, err := json.Marshal(creds)
	if err != nil {
		return vault.Sealed{}, fmt.Errorf("encode credentials of %s: %w", connID, err)
	}
	defer clear(plain)
	sealed, err := sl.Seal(ctx, credentialsContext(siteID, connID), plain)
	if err != nil {
		return vault.Sealed{}, fmt.Errorf("seal credentials of %s: %w", connID, err)
	}
	return sealed, nil
}

// ManualRequest is the body of POST /v1/connections: a Bluesky handle and
// app password, or a Mastodon instance URL and access token.
type ManualRequest struct {
	Platform    platform.Name `json:"platform"`
	Handle      string        `json:"handle,omitempty"`
	AppPassword string        `json:"appPassword,omitempty"`
	InstanceURL string        `json:"instanceUrl,omitempty"`
	AccessToken string        `json:"accessToken,omitempty"`
}

// String never shows the app password or token.
func (m ManualRequest) String() string {
	return fmt.Sprintf("{platform:%s handle:%s instanceUrl:%s}", m.Platform, m.Handle, m.InstanceURL)
}

// GoString is String for %#v.
func (m ManualRequest) GoString() string { return m.String() }

// Connect connects a Bluesky or Mastodon account from credentials the site
// gives: Bluesky logs in once (createSession) and keeps the refresh JWT, so
// later posts never log in again; Mastodon checks the token with
// verify_credentials.
func (s *Service) Connect(ctx context.Context, siteID string, m ManualRequest) (Connection, error) {
	switch m.Platform {
	case platform.Bluesky:
		return s.connectBluesky(ctx, siteID, m)
	case platform.Mastodon:
		return s.connectMastodon(ctx, siteID, m)
	case "":
		return Connection{}, apperr.Invalid("platform", "is required (bluesky or mastodon)")
	}
	if m.Platform.Valid() {
		return Connection{}, apperr.Unprocessable("oauth_platform",
			fmt.Sprintf("%s accounts are connected through OAuth: POST /v1/connections/%s/authorize", m.Platform, m.Platform),
			[]apperr.Problem{{Field: "platform", Message: "use the OAuth flow for " + string(m.Platform)}})
	}
	return Connection{}, apperr.Invalid("platform", "must be bluesky or mastodon")
}

func (s *Service) connectBluesky(ctx context.Context, siteID string, m ManualRequest) (Connection, error) {
	var ps []apperr.Problem
	handle := strings.TrimPrefix(strings.TrimSpace(m.Handle), "@")
	if handle == "" {
		ps = append(ps, apperr.Problem{Field: "handle", Message: "is required (a handle such as alice.bsky.social, or a DID)"})
	} else if len(handle) > 253 || strings.ContainsAny(handle, " /?#") {
		ps = append(ps, apperr.Problem{Field: "handle", Message: "is not a Bluesky handle or DID"})
	}
	if m.AppPassword == "" {
		ps = append(ps, apperr.Problem{Field: "appPassword", Message: "is required (create an app password in Bluesky's settings)"})
	}
	if m.InstanceURL != "" || m.AccessToken != "" {
		ps = append(ps, apperr.Problem{Field: "instanceUrl", Message: "is only used for mastodon"})
	}
	if len(ps) > 0 {
		return Connection{}, apperr.InvalidProblems(ps)
	}
	if s.cfg.Bluesky == nil {
		return Connection{}, apperr.New(apperr.KindUnprocessable, "platform_not_configured", "platform not configured: bluesky")
	}
	sess, err := s.cfg.Bluesky.Login(ctx, handle, m.AppPassword)
	if err != nil {
		if e, ok := apperr.As(err); ok && (e.Code == "bluesky.bad_credentials" || e.Kind == apperr.KindInvalid) {
			return Connection{}, apperr.Unprocessable("bluesky.bad_credentials", "Bluesky refused the handle or app password",
				[]apperr.Problem{{Field: "appPassword", Message: "Bluesky refused the handle or app password"}})
		}
		return Connection{}, fmt.Errorf("connect bluesky %s: %w", handle, err)
	}
	now := s.cfg.Now().UTC()
	pds := sess.PDS
	if pds == "" {
		pds = s.cfg.BlueskyPDS
	}
	creds := blueskyCredentials(sess, pds, now)
	return s.store(ctx, siteID, platform.Bluesky, platform.Identity{ID: sess.DID, Handle: sess.Handle, Name: sess.Handle}, creds)
}

// blueskyAccessTTL is assumed when an access JWT carries no exp claim.
const blueskyAccessTTL = 2 * time.Hour

// blueskyCredentials turns a session into credentials.
func blueskyCredentials(sess bluesky.Session, pds string, now time.Time) Credentials {
	exp := jwtExpiry(sess.AccessJwt)
	if exp.IsZero() {
		exp = now.Add(blueskyAccessTTL)
	}
	return Credentials{
		AccessToken: sess.AccessJwt, RefreshToken: sess.RefreshJwt, Expiry: exp,
		RefreshExpiry: jwtExpiry(sess.RefreshJwt), IssuedAt: now, DID: sess.DID, PDS: strings.TrimRight(pds, "/"),
	}
}

// jwtExpiry reads a JWT's exp claim without verifying it (we only schedule
// with it); zero when there is none.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(claims.Exp, 0).UTC()
}

func (s *Service) connectMastodon(ctx context.Context, siteID string, m ManualRequest) (Connection, error) {
	var ps []apperr.Problem
	instance, problem := s.instanceURL(m.InstanceURL)
	if problem != "" {
		ps = append(ps, apperr.Problem{Field: "instanceUrl", Message: problem})
	}
	if strings.TrimSpace(m.AccessToken) == "" {
		ps = append(ps, apperr.Problem{Field: "accessToken", Message: "is required (an access token with write:statuses, write:media and profile)"})
	}
	if m.Handle != "" || m.AppPassword != "" {
		ps = append(ps, apperr.Problem{Field: "appPassword", Message: "is only used for bluesky"})
	}
	if len(ps) > 0 {
		return Connection{}, apperr.InvalidProblems(ps)
	}
	idf := s.cfg.Identifiers[platform.Mastodon]
	if idf == nil {
		return Connection{}, apperr.New(apperr.KindUnprocessable, "platform_not_configured", "platform not configured: mastodon")
	}
	host, hostname := instance, instance
	if u, err := url.Parse(instance); err == nil {
		host, hostname = u.Host, u.Hostname()
	}
	// The instance is the caller's choice: refuse a name that resolves to
	// an address the outbound policy refuses before the token is sent to
	// it. The Identifier's client checks again at dial time, so a name
	// rebound after this check is refused there.
	policy := outbound.Policy{AllowLoopback: s.cfg.AllowHTTPInstances}
	if err := policy.CheckHost(ctx, s.cfg.Resolver, hostname); err != nil {
		if b, ok := outbound.Blocked(err); ok {
			return Connection{}, notPublic(host, b)
		}
		// A name that does not resolve: WhoAmI below reports it as
		// unreachable.
	}
	token := strings.TrimSpace(m.AccessToken)
	id, err := idf.WhoAmI(ctx, platform.Account{AccessToken: token, BaseURL: instance})
	if err != nil {
		if b, ok := outbound.Blocked(err); ok {
			return Connection{}, notPublic(host, b)
		}
		e, typed := apperr.As(err)
		switch {
		case typed && e.Code == "mastodon.instance_unreachable":
			return Connection{}, apperr.Unprocessable("mastodon.instance_unreachable",
				fmt.Sprintf("the Mastodon instance %s could not be reached", host),
				[]apperr.Problem{{Field: "instanceUrl", Message: "instance " + host + " could not be reached"}})
		case typed && (e.Kind == apperr.KindReconnect || e.Kind == apperr.KindUnauthorized || e.Kind == apperr.KindForbidden || e.HTTPStatus == 401 || e.HTTPStatus == 403):
			return Connection{}, apperr.Unprocessable("mastodon.token_rejected",
				fmt.Sprintf("the Mastodon instance %s refused the access token", host),
				[]apperr.Problem{{Field: "accessToken", Message: "refused by " + host}})
		case typed && e.Kind == apperr.KindPermanent:
			return Connection{}, apperr.Unprocessable("mastodon.verify_failed",
				fmt.Sprintf("the Mastodon instance %s did not verify the access token", host),
				[]apperr.Problem{{Field: "instanceUrl", Message: host + " did not answer verify_credentials as a Mastodon instance"}})
		}
		return Connection{}, fmt.Errorf("connect mastodon at %s: %w", host, err)
	}
	creds := Credentials{AccessToken: token, IssuedAt: s.cfg.Now().UTC(), InstanceURL: instance}
	return s.store(ctx, siteID, platform.Mastodon, id, creds)
}

// notPublic is the 422 of an instance whose name resolves to an address
// the outbound policy refuses; it names the class, not the address.
func notPublic(host string, b *outbound.BlockedError) error {
	return apperr.Unprocessable("mastodon.instance_not_public",
		fmt.Sprintf("the Mastodon instance %s resolves to an address that is not public (%s)", host, b.Reason),
		[]apperr.Problem{{Field: "instanceUrl", Message: "resolves to an address that is not public (" + b.Reason + ")"}})
}

// instanceURL normalises a Mastodon instance URL ("mastodon.social" or
// "https://mastodon.social/") and says what is wrong with it.
func (s *Service) instanceURL(raw string) (string, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", "is required (for example https://mastodon.social)"
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		return "", "is not a URL"
	case u.Scheme != "https" && !(u.Scheme == "http" && s.cfg.AllowHTTPInstances):
		return "", "must be an https URL"
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", "must be the instance's base URL, without credentials, query or fragment"
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && (outbound.Policy{AllowLoopback: s.cfg.AllowHTTPInstances}).Check(ip) != nil {
		return "", "must be a public instance"
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), ""
}

// Get returns a site's connection.
func (s *Service) Get(ctx context.Context, siteID, id string) (Connection, error) {
	return s.cfg.Store.Get(ctx, siteID, id)
}

// List returns a page of a site's connections.
func (s *Service) List(ctx context.Context, siteID string, limit int, cursor string) ([]Connection, string, error) {
	return s.cfg.Store.List(ctx, siteID, limit, cursor)
}

// Delete removes a site's connection with its sealed credentials.
func (s *Service) Delete(ctx context.Context, siteID, id string) error {
	if err := s.cfg.Store.Delete(ctx, siteID, id); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "connection deleted", "site", siteID, "connection_id", id)
	return nil
}

// RequestValidation asks the refresh function, which can open credentials,
// to check the connection with the platform's "who am I" on its next run;
// the result shows in the connection's status and validatedAt.
func (s *Service) RequestValidation(ctx context.Context, siteID, id string) (Connection, error) {
	c, err := s.cfg.Store.requestValidation(ctx, siteID, id, s.cfg.Now().UTC())
	if err != nil {
		return Connection{}, err
	}
	s.log.InfoContext(ctx, "connection validation requested", "site", siteID, "connection_id", id)
	return c, nil
}

// GetMany returns a site's connections by id in one read (Store.GetMany).
func (s *Service) GetMany(ctx context.Context, siteID string, ids []string) (map[string]Connection, error) {
	return s.cfg.Store.GetMany(ctx, siteID, ids)
}
