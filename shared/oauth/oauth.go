// Package oauth is the OAuth 2.0 authorization-code flow of each platform
// POSSE connects that way — X, LinkedIn, Facebook Pages, Instagram, Threads
// and TikTok — built on golang.org/x/oauth2 where the platform follows the
// RFC, and by hand where it does not (Meta's GET token calls, TikTok's
// client_key on refresh):
//
//   - the authorize URL (X with PKCE S256 and offline.access; TikTok names
//     the client client_key; Meta and TikTok join scopes with commas);
//   - the code exchange (X authenticates with HTTP Basic; Instagram and
//     Threads codes arrive with "#_" appended, which is stripped), followed
//     by Meta's long-lived token exchange and, for Facebook, the choice of
//     the Page whose non-expiring Page token is kept;
//   - refresh (rotating refresh tokens on X and TikTok, LinkedIn partner
//     refresh, Instagram/Threads long-lived token extension by GET);
//   - a "who am I" lookup, used when no adapter identifier is configured.
//
// Every error is an *apperr.Error with Platform set: a refused code or dead
// refresh token is KindReconnect (code "oauth.invalid_grant"), 429 is
// rate_limited, 5xx and network failures are transient, anything else the
// platform refuses is permanent. No error, and nothing this package logs,
// holds a token, code, client secret or PKCE verifier.
//
// Endpoints default to the platforms' production URLs (platform notes,
// late 2026). With Config.BaseURL set — the local platform simulator — every
// endpoint moves to <BaseURL>/<platform><path of the real URL>.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// DefaultGraphVersion is the Meta Graph API version of the default Facebook
// and Instagram endpoints; pin it in configuration (platform notes §0.5).
const DefaultGraphVersion = "v26.0"

// DefaultThreadsVersion is the Threads Graph API version.
const DefaultThreadsVersion = "v1.0"

// Client is a platform app's client credentials (TikTok: client key and
// secret).
type Client struct {
	ID     string
	Secret string
}

// Endpoints are one platform's OAuth URLs. Empty fields are not used by
// that platform.
type Endpoints struct {
	AuthURL      string // the browser's authorize page
	TokenURL     string // code exchange (and refresh_token grant where there is one)
	LongLivedURL string // Meta: short-lived → long-lived token exchange (Facebook: the token URL)
	RefreshURL   string // Instagram/Threads: long-lived token extension
	IdentityURL  string // "who am I" for the token
	PagesURL     string // Facebook: the Pages the user manages (/me/accounts)
}

// Config configures the Registry.
type Config struct {
	// Clients are the configured apps by platform. A platform without one
	// is not configured (ErrNotConfigured).
	Clients map[platform.Name]Client
	// BaseURL, when set, is the platform simulator: every endpoint becomes
	// <BaseURL>/<platform><path of the real endpoint>.
	BaseURL string
	// GraphVersion is the Facebook/Instagram Graph version (default v26.0).
	GraphVersion string
	// Endpoints overrides the endpoints of a platform, field by field.
	Endpoints map[platform.Name]Endpoints
	// Scopes overrides the scopes a platform is asked for.
	Scopes map[platform.Name][]string
	// HTTPClient makes every platform call; a client with a 20 s timeout
	// when nil. Keep its timeout below the refresh lease.
	HTTPClient *http.Client
	// Now is the clock token expiries are computed with; time.Now when nil.
	Now func() time.Time
}

// Platforms are the platforms this package connects, in a stable order.
var Platforms = []platform.Name{platform.X, platform.LinkedIn, platform.Facebook, platform.Instagram, platform.Threads, platform.TikTok}

// IsOAuth reports whether p connects through this package.
func IsOAuth(p platform.Name) bool {
	for _, q := range Platforms {
		if p == q {
			return true
		}
	}
	return false
}

// ErrNotConfigured is returned by Registry.Provider for an OAuth platform
// whose app credentials are not configured.
var ErrNotConfigured = apperr.New(apperr.KindUnprocessable, "platform_not_configured", "platform not configured: this POSSE installation has no app credentials for it")

// Registry holds one Provider per configured OAuth platform.
type Registry struct {
	providers map[platform.Name]*Provider
}

// New returns a Registry. It does no I/O.
func New(cfg Config) *Registry {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	gv := cfg.GraphVersion
	if gv == "" {
		gv = DefaultGraphVersion
	}
	r := &Registry{providers: map[platform.Name]*Provider{}}
	for _, p := range Platforms {
		c, ok := cfg.Clients[p]
		if !ok || c.ID == "" || c.Secret == "" {
			continue
		}
		ep := defaultEndpoints(p, gv)
		if cfg.BaseURL != "" {
			ep = ep.under(strings.TrimRight(cfg.BaseURL, "/") + "/" + string(p))
		}
		ep = ep.override(cfg.Endpoints[p])
		scopes := defaultScopes[p]
		if s, ok := cfg.Scopes[p]; ok {
			scopes = s
		}
		r.providers[p] = &Provider{name: p, client: c, ep: ep, scopes: scopes, hc: hc, now: now}
	}
	return r
}

// Provider returns p's provider: a not_found error for a platform that is
// not an OAuth platform, ErrNotConfigured for one without app credentials.
func (r *Registry) Provider(p platform.Name) (*Provider, error) {
	if !IsOAuth(p) {
		return nil, apperr.Newf(apperr.KindNotFound, "unknown_platform", "%q is not a platform connected through OAuth", string(p))
	}
	if pr, ok := r.providers[p]; ok {
		return pr, nil
	}
	e := *ErrNotConfigured
	e.Platform = string(p)
	return nil, &e
}

// defaultScopes are what POSSE asks each platform for: enough to publish,
// to identify the account and to read the posts' engagement back (the
// adapters' MetricsScopes), and offline access where it exists. LinkedIn's
// read permission (r_member_social) is granted to select developers only,
// so it is not asked for by default: add it with Config.Scopes once the app
// has it.
var defaultScopes = map[platform.Name][]string{
	platform.X:         {"tweet.read", "tweet.write", "users.read", "media.write", "offline.access"},
	platform.LinkedIn:  {"openid", "profile", "w_member_social"},
	platform.Facebook:  {"pages_show_list", "pages_manage_posts", "pages_read_engagement", "read_insights"},
	platform.Instagram: {"instagram_business_basic", "instagram_business_content_publish", "instagram_business_manage_insights"},
	platform.Threads:   {"threads_basic", "threads_content_publish", "threads_manage_insights"},
	platform.TikTok:    {"user.info.basic", "video.publish", "video.list"},
}

// defaultEndpoints are the production endpoints of platform notes §1–§6.
func defaultEndpoints(p platform.Name, graph string) Endpoints {
	switch p {
	case platform.X:
		return Endpoints{
			AuthURL:     "https://x.com/i/oauth2/authorize",
			TokenURL:    "https://api.x.com/2/oauth2/token",
			IdentityURL: "https://api.x.com/2/users/me",
		}
	case platform.LinkedIn:
		return Endpoints{
			AuthURL:     "https://www.linkedin.com/oauth/v2/authorization",
			TokenURL:    "https://www.linkedin.com/oauth/v2/accessToken",
			IdentityURL: "https://api.linkedin.com/v2/userinfo",
		}
	case platform.Facebook:
		return Endpoints{
			AuthURL:      "https://www.facebook.com/" + graph + "/dialog/oauth",
			TokenURL:     "https://graph.facebook.com/" + graph + "/oauth/access_token",
			LongLivedURL: "https://graph.facebook.com/" + graph + "/oauth/access_token",
			IdentityURL:  "https://graph.facebook.com/" + graph + "/me",
			PagesURL:     "https://graph.facebook.com/" + graph + "/me/accounts",
		}
	case platform.Instagram:
		return Endpoints{
			AuthURL:      "https://www.instagram.com/oauth/authorize",
			TokenURL:     "https://api.instagram.com/oauth/access_token",
			LongLivedURL: "https://graph.instagram.com/access_token",
			RefreshURL:   "https://graph.instagram.com/refresh_access_token",
			IdentityURL:  "https://graph.instagram.com/" + graph + "/me",
		}
	case platform.Threads:
		return Endpoints{
			AuthURL:      "https://threads.com/oauth/authorize",
			TokenURL:     "https://graph.threads.net/oauth/access_token",
			LongLivedURL: "https://graph.threads.net/access_token",
			RefreshURL:   "https://graph.threads.net/refresh_access_token",
			IdentityURL:  "https://graph.threads.net/" + DefaultThreadsVersion + "/me",
		}
	case platform.TikTok:
		return Endpoints{
			AuthURL:     "https://www.tiktok.com/v2/auth/authorize/",
			TokenURL:    "https://open.tiktokapis.com/v2/oauth/token/",
			IdentityURL: "https://open.tiktokapis.com/v2/user/info/",
		}
	}
	return Endpoints{}
}

// under moves every endpoint to base + its path (and query).
func (e Endpoints) under(base string) Endpoints {
	move := func(raw string) string {
		if raw == "" {
			return ""
		}
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		out := base + u.EscapedPath()
		if u.RawQuery != "" {
			out += "?" + u.RawQuery
		}
		return out
	}
	return Endpoints{
		AuthURL: move(e.AuthURL), TokenURL: move(e.TokenURL), LongLivedURL: move(e.LongLivedURL),
		RefreshURL: move(e.RefreshURL), IdentityURL: move(e.IdentityURL), PagesURL: move(e.PagesURL),
	}
}

// override replaces the fields o sets.
func (e Endpoints) override(o Endpoints) Endpoints {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	return Endpoints{
		AuthURL: pick(e.AuthURL, o.AuthURL), TokenURL: pick(e.TokenURL, o.TokenURL),
		LongLivedURL: pick(e.LongLivedURL, o.LongLivedURL), RefreshURL: pick(e.RefreshURL, o.RefreshURL),
		IdentityURL: pick(e.IdentityURL, o.IdentityURL), PagesURL: pick(e.PagesURL, o.PagesURL),
	}
}

// Token is what a platform granted. Zero times mean "does not expire" (a
// Facebook Page token) or "not said".
type Token struct {
	AccessToken   string
	RefreshToken  string
	Expiry        time.Time
	RefreshExpiry time.Time
	Scopes        []string
	// IssuedAt is when the access token was issued: Instagram and Threads
	// extend a long-lived token only once it is 24 hours old.
	IssuedAt time.Time
	// UserID is the account id when the token response names it (TikTok
	// open_id).
	UserID string
}

// Grant is the result of a code exchange.
type Grant struct {
	Token Token
	// Identity is set when the exchange itself identified the account —
	// the chosen Facebook Page — and zero otherwise.
	Identity platform.Identity
	// PageID is the chosen Facebook Page.
	PageID string
}

// Provider is one platform's OAuth flow. It is safe for concurrent use.
type Provider struct {
	name   platform.Name
	client Client
	ep     Endpoints
	scopes []string
	hc     *http.Client
	now    func() time.Time
}

// Name is the provider's platform.
func (p *Provider) Name() platform.Name { return p.name }

// Endpoints returns the provider's endpoints.
func (p *Provider) Endpoints() Endpoints { return p.ep }

// PKCE reports whether the platform's web flow uses PKCE (X requires it).
func (p *Provider) PKCE() bool { return p.name == platform.X }

// AuthRequest is what AuthURL needs.
type AuthRequest struct {
	State       string
	RedirectURI string
	// Verifier is the PKCE code verifier; its S256 challenge is sent. It is
	// required when PKCE() is true and ignored otherwise.
	Verifier string
}

// AuthURL returns the URL of the platform's authorize page.
func (p *Provider) AuthURL(r AuthRequest) (string, error) {
	if r.State == "" || r.RedirectURI == "" {
		return "", errors.New("oauth: authorize URL needs a state and a redirect URI")
	}
	if p.PKCE() && r.Verifier == "" {
		return "", fmt.Errorf("oauth: %s requires PKCE, but no verifier was given", p.name)
	}
	cfg := p.oauth2Config(r.RedirectURI)
	var opts []oauth2AuthOption
	if p.PKCE() {
		opts = append(opts, s256Challenge(r.Verifier))
	}
	if p.commaScopes() {
		cfg.Scopes = nil
		opts = append(opts, setParam("scope", strings.Join(p.scopes, ",")))
	}
	raw := cfg.AuthCodeURL(r.State, opts...)
	if p.name == platform.TikTok {
		// TikTok names the client "client_key" and knows no client_id.
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("oauth: build tiktok authorize URL: %w", err)
		}
		q := u.Query()
		q.Del("client_id")
		q.Set("client_key", p.client.ID)
		u.RawQuery = q.Encode()
		raw = u.String()
	}
	return raw, nil
}

// commaScopes reports whether the platform joins scopes with commas.
func (p *Provider) commaScopes() bool {
	switch p.name {
	case platform.Facebook, platform.Instagram, platform.Threads, platform.TikTok:
		return true
	}
	return false
}

// CleanCode strips what a platform appends to a code in the redirect:
// Instagram and Threads add "#_" (which a browser normally drops as a
// fragment, but not every client does).
func CleanCode(code string) string {
	return strings.TrimSuffix(strings.TrimSpace(code), "#_")
}

// ExchangeRequest is what Exchange needs.
type ExchangeRequest struct {
	Code        string
	RedirectURI string // exactly the one sent to AuthURL
	Verifier    string // PKCE verifier (X)
	// PageID picks the Facebook Page to connect; empty means the first one.
	PageID string
}

// Exchange trades an authorization code for tokens, right away (X codes
// live 30 seconds), and completes the platform's flow: Meta's long-lived
// exchange, Facebook's Page choice.
func (p *Provider) Exchange(ctx context.Context, r ExchangeRequest) (Grant, error) {
	code := CleanCode(r.Code)
	if code == "" {
		return Grant{}, apperr.Invalid("code", "is required")
	}
	if p.PKCE() && r.Verifier == "" {
		return Grant{}, fmt.Errorf("oauth: exchange %s code: PKCE verifier missing", p.name)
	}
	switch p.name {
	case platform.Facebook:
		return p.exchangeFacebook(ctx, code, r.RedirectURI, r.PageID)
	case platform.Instagram, platform.Threads:
		short, err := p.exchangeCode(ctx, code, r.RedirectURI, "")
		if err != nil {
			return Grant{}, err
		}
		long, err := p.longLived(ctx, short)
		if err != nil {
			return Grant{}, err
		}
		return Grant{Token: long}, nil
	}
	t, err := p.exchangeCode(ctx, code, r.RedirectURI, r.Verifier)
	if err != nil {
		return Grant{}, err
	}
	return Grant{Token: t}, nil
}

// CanRefresh reports whether t can be renewed without the user: by its
// refresh token (X, TikTok, LinkedIn partners) or, for Instagram and
// Threads, by extending the long-lived token once it is 24 hours old and
// before it expires.
func (p *Provider) CanRefresh(t Token) bool {
	switch p.name {
	case platform.Instagram, platform.Threads:
		now := p.now()
		return t.AccessToken != "" && (t.Expiry.IsZero() || now.Before(t.Expiry)) &&
			(t.IssuedAt.IsZero() || !now.Before(t.IssuedAt.Add(24*time.Hour)))
	case platform.Facebook:
		return false
	}
	return t.RefreshToken != ""
}

// Refresh renews t. The result always carries a refresh token where t had
// one: a platform that answers without one keeps the old one. A refresh
// token the platform refuses is KindReconnect ("oauth.invalid_grant").
func (p *Provider) Refresh(ctx context.Context, t Token) (Token, error) {
	if !p.CanRefresh(t) {
		return Token{}, apperr.Newf(apperr.KindConflict, "oauth.not_refreshable", "the %s token cannot be refreshed without the user", p.name)
	}
	var (
		nt  Token
		err error
	)
	switch p.name {
	case platform.Instagram:
		nt, err = p.metaTokenGET(ctx, p.ep.RefreshURL, url.Values{"grant_type": {"ig_refresh_token"}, "access_token": {t.AccessToken}}, "refresh token")
	case platform.Threads:
		nt, err = p.metaTokenGET(ctx, p.ep.RefreshURL, url.Values{"grant_type": {"th_refresh_token"}, "access_token": {t.AccessToken}}, "refresh token")
	case platform.TikTok:
		nt, err = p.tiktokRefresh(ctx, t.RefreshToken)
	default:
		nt, err = p.refreshGrant(ctx, t.RefreshToken)
	}
	if err != nil {
		return Token{}, err
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = t.RefreshToken
		if nt.RefreshExpiry.IsZero() {
			nt.RefreshExpiry = t.RefreshExpiry
		}
	}
	if len(nt.Scopes) == 0 {
		nt.Scopes = t.Scopes
	}
	if nt.UserID == "" {
		nt.UserID = t.UserID
	}
	return nt, nil
}
