package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

type oauth2AuthOption = oauth2.AuthCodeOption

func s256Challenge(verifier string) oauth2.AuthCodeOption {
	return oauth2.S256ChallengeOption(verifier)
}

func setParam(k, v string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam(k, v) }

// S256Challenge returns the PKCE S256 code challenge of verifier.
func S256Challenge(verifier string) string { return oauth2.S256ChallengeFromVerifier(verifier) }

// oauth2Config is the x/oauth2 view of the provider for one redirect URI.
func (p *Provider) oauth2Config(redirectURI string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if p.name == platform.X {
		// X confidential clients authenticate with HTTP Basic.
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID:     p.client.ID,
		ClientSecret: p.client.Secret,
		Endpoint:     oauth2.Endpoint{AuthURL: p.ep.AuthURL, TokenURL: p.ep.TokenURL, AuthStyle: style},
		RedirectURL:  redirectURI,
		Scopes:       p.scopes,
	}
}

// clientCtx makes x/oauth2 use the provider's HTTP client.
func (p *Provider) clientCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.hc)
}

// exchangeCode runs the authorization_code grant through x/oauth2.
func (p *Provider) exchangeCode(ctx context.Context, code, redirectURI, verifier string) (Token, error) {
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	if p.name == platform.TikTok {
		opts = append(opts, oauth2.SetAuthURLParam("client_key", p.client.ID))
	}
	issued := p.now()
	t, err := p.oauth2Config(redirectURI).Exchange(p.clientCtx(ctx), code, opts...)
	if err != nil {
		return Token{}, p.tokenError(err, "exchange the authorization code")
	}
	return p.fromOAuth2(t, issued), nil
}

// refreshGrant runs the refresh_token grant through x/oauth2 (X, LinkedIn).
// x/oauth2 keeps the presented refresh token when the answer has none.
func (p *Provider) refreshGrant(ctx context.Context, refreshToken string) (Token, error) {
	issued := p.now()
	t, err := p.oauth2Config("").TokenSource(p.clientCtx(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return Token{}, p.tokenError(err, "refresh the token")
	}
	return p.fromOAuth2(t, issued), nil
}

// fromOAuth2 converts an x/oauth2 token, computing expiries with the
// provider's clock from the moment the request was sent.
func (p *Provider) fromOAuth2(t *oauth2.Token, issued time.Time) Token {
	out := Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, IssuedAt: issued.UTC()}
	if t.ExpiresIn > 0 {
		out.Expiry = issued.Add(time.Duration(t.ExpiresIn) * time.Second).UTC()
	}
	if s, ok := t.Extra("scope").(string); ok {
		out.Scopes = splitScopes(s)
	}
	if n := number(t.Extra("refresh_expires_in")); n > 0 {
		out.RefreshExpiry = issued.Add(time.Duration(n) * time.Second).UTC()
	}
	if n := number(t.Extra("refresh_token_expires_in")); n > 0 {
		out.RefreshExpiry = issued.Add(time.Duration(n) * time.Second).UTC()
	}
	if s, ok := t.Extra("open_id").(string); ok {
		out.UserID = s
	}
	return out
}

func number(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func splitScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

// tokenResponse is the RFC 6749 token answer, as TikTok and Meta send it.
type tokenResponse struct {
	AccessToken      string      `json:"access_token"`
	RefreshToken     string      `json:"refresh_token"`
	ExpiresIn        json.Number `json:"expires_in"`
	RefreshExpiresIn json.Number `json:"refresh_expires_in"`
	Scope            string      `json:"scope"`
	OpenID           string      `json:"open_id"`
	Error            string      `json:"error"`
}

func (r tokenResponse) token(issued time.Time) Token {
	t := Token{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, Scopes: splitScopes(r.Scope), UserID: r.OpenID, IssuedAt: issued.UTC()}
	if n, _ := r.ExpiresIn.Int64(); n > 0 {
		t.Expiry = issued.Add(time.Duration(n) * time.Second).UTC()
	}
	if n, _ := r.RefreshExpiresIn.Int64(); n > 0 {
		t.RefreshExpiry = issued.Add(time.Duration(n) * time.Second).UTC()
	}
	return t
}

// tiktokRefresh runs TikTok's refresh_token grant, which names the client
// client_key (x/oauth2 cannot add a parameter to a refresh).
func (p *Provider) tiktokRefresh(ctx context.Context, refreshToken string) (Token, error) {
	form := url.Values{
		"client_key":    {p.client.ID},
		"client_secret": {p.client.Secret},
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	}
	issued := p.now()
	resp, err := p.call(ctx, http.MethodPost, p.ep.TokenURL, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded", "", "refresh the token")
	if err != nil {
		return Token{}, err
	}
	var tr tokenResponse
	if jerr := json.Unmarshal(resp.body, &tr); jerr != nil || resp.status != http.StatusOK || tr.Error != "" || tr.AccessToken == "" {
		return Token{}, p.httpError(resp, tr.Error, 0, "refresh the token")
	}
	return tr.token(issued), nil
}

// metaTokenGET calls one of Meta's token GETs (long-lived exchange, refresh).
func (p *Provider) metaTokenGET(ctx context.Context, endpoint string, q url.Values, what string) (Token, error) {
	issued := p.now()
	resp, err := p.call(ctx, http.MethodGet, withQuery(endpoint, q), nil, "", "", what)
	if err != nil {
		return Token{}, err
	}
	var tr tokenResponse
	if jerr := json.Unmarshal(resp.body, &tr); jerr != nil || resp.status != http.StatusOK || tr.AccessToken == "" {
		return Token{}, p.graphError(resp, what)
	}
	return tr.token(issued), nil
}

// longLived swaps an Instagram or Threads short-lived token for a 60-day one.
func (p *Provider) longLived(ctx context.Context, short Token) (Token, error) {
	grant := "ig_exchange_token"
	if p.name == platform.Threads {
		grant = "th_exchange_token"
	}
	t, err := p.metaTokenGET(ctx, p.ep.LongLivedURL, url.Values{
		"grant_type": {grant}, "client_secret": {p.client.Secret}, "access_token": {short.AccessToken},
	}, "exchange for a long-lived token")
	if err != nil {
		return Token{}, err
	}
	if len(t.Scopes) == 0 {
		t.Scopes = short.Scopes
	}
	t.UserID = short.UserID
	return t, nil
}

// exchangeFacebook runs Facebook Login: the code for a short-lived user
// token (GET), that for a long-lived one, then the Page: its Page token,
// which has no expiry when it comes from a long-lived user token.
func (p *Provider) exchangeFacebook(ctx context.Context, code, redirectURI, pageID string) (Grant, error) {
	short, err := p.metaTokenGET(ctx, p.ep.TokenURL, url.Values{
		"client_id": {p.client.ID}, "client_secret": {p.client.Secret}, "redirect_uri": {redirectURI}, "code": {code},
	}, "exchange the authorization code")
	if err != nil {
		return Grant{}, err
	}
	long, err := p.metaTokenGET(ctx, p.ep.LongLivedURL, url.Values{
		"grant_type": {"fb_exchange_token"}, "client_id": {p.client.ID}, "client_secret": {p.client.Secret}, "fb_exchange_token": {short.AccessToken},
	}, "exchange for a long-lived token")
	if err != nil {
		return Grant{}, err
	}
	page, err := p.pickPage(ctx, long.AccessToken, pageID)
	if err != nil {
		return Grant{}, err
	}
	return Grant{
		Token:    Token{AccessToken: page.AccessToken, Scopes: long.Scopes, IssuedAt: long.IssuedAt},
		Identity: platform.Identity{ID: page.ID, Handle: page.Name, Name: page.Name},
		PageID:   page.ID,
	}, nil
}

// fbPage is one entry of /me/accounts.
type fbPage struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	AccessToken string `json:"access_token"`
}

// maxPagePages bounds how many pages of /me/accounts are read.
const maxPagePages = 10

// pickPage returns the Page with id want, or the first Page when want is "".
func (p *Provider) pickPage(ctx context.Context, userToken, want string) (fbPage, error) {
	next := withQuery(p.ep.PagesURL, url.Values{"fields": {"id,name,access_token"}, "access_token": {userToken}})
	for i := 0; i < maxPagePages && next != ""; i++ {
		resp, err := p.call(ctx, http.MethodGet, next, nil, "", "", "list the user's Pages")
		if err != nil {
			return fbPage{}, err
		}
		var body struct {
			Data   []fbPage `json:"data"`
			Paging struct {
				Next string `json:"next"`
			} `json:"paging"`
		}
		if jerr := json.Unmarshal(resp.body, &body); jerr != nil || resp.status != http.StatusOK {
			return fbPage{}, p.graphError(resp, "list the user's Pages")
		}
		for _, pg := range body.Data {
			if pg.ID != "" && pg.AccessToken != "" && (want == "" || pg.ID == want) {
				return pg, nil
			}
		}
		next = body.Paging.Next
	}
	if want != "" {
		return fbPage{}, p.errorf(apperr.KindUnprocessable, "oauth.page_not_found", "the Facebook user does not manage the Page %s (or did not grant it to this app)", want)
	}
	return fbPage{}, p.errorf(apperr.KindUnprocessable, "oauth.no_page", "the Facebook user manages no Page this app was granted")
}

// errorf is a typed error carrying the platform.
func (p *Provider) errorf(kind apperr.Kind, code, format string, args ...any) *apperr.Error {
	e := apperr.Newf(kind, code, format, args...)
	e.Platform = string(p.name)
	return e
}

// response is a platform answer read in full (bounded).
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxBody bounds what is read of a platform answer.
const maxBody = 1 << 20

// call makes one request. A transport failure is transient: for a token
// call the platform may have rotated the refresh token, in which case the
// next refresh answers invalid_grant and the connection is marked broken.
func (p *Provider) call(ctx context.Context, method, rawURL string, body io.Reader, contentType, bearer, what string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return response{}, fmt.Errorf("oauth: %s %s: build request: %w", p.name, what, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		e := p.errorf(apperr.KindTransient, "oauth.unavailable", "%s did not answer (%s)", p.name, what)
		e.Err = fmt.Errorf("%s %s: %w", p.name, what, stripURL(err))
		return response{}, e
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		e := p.errorf(apperr.KindTransient, "oauth.unavailable", "%s answer could not be read (%s)", p.name, what)
		e.Err = fmt.Errorf("%s %s: read: %w", p.name, what, err)
		return response{}, e
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// stripURL drops the request URL from a transport error: Meta calls carry
// tokens and secrets in the query.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func withQuery(endpoint string, q url.Values) string {
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	return endpoint + sep + q.Encode()
}
