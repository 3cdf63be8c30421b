package bluesky

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// Session is an app-password session. Refresh JWTs rotate: after Refresh,
// only the returned RefreshJwt works, so persist it before using AccessJwt.
type Session struct {
	DID        string `json:"did"`
	Handle     string `json:"handle"`
	AccessJwt  string `json:"accessJwt"`
	RefreshJwt string `json:"refreshJwt"`
	// PDS is the account's PDS from its DID document, when the server
	// sends one; store it as Account.BaseURL.
	PDS string `json:"pds,omitempty"`
}

// Login starts a session with com.atproto.server.createSession on the
// configured BaseURL. identifier is a handle or DID; appPassword an app
// password. A wrong identifier or password is an invalid error with code
// "bluesky.bad_credentials". createSession is heavily rate limited (a
// recorded answer gives RateLimit-Policy: 10;w=86400, ten a day per
// account): only connecting an account logs in; publishing and refreshing
// use the session's JWTs, and a dead refresh JWT marks the connection
// broken rather than logging in again.
func (a *Adapter) Login(ctx context.Context, identifier, appPassword string) (Session, error) {
	body, err := json.Marshal(map[string]string{"identifier": identifier, "password": appPassword})
	if err != nil {
		return Session{}, errs.Wrap(err, apperr.KindPermanent, "bluesky.encode", "could not encode the login")
	}
	const what = "create session"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: a.cfg.BaseURL + "/xrpc/com.atproto.server.createSession",
		Body: body, ContentType: "application/json", What: what})
	if err != nil {
		return Session{}, err
	}
	if resp.Status != http.StatusOK {
		if name, _ := xrpcError(resp.Body); resp.Status == http.StatusUnauthorized || name == "AuthenticationRequired" {
			e := apperr.New(apperr.KindInvalid, "bluesky.bad_credentials", "the handle or app password is wrong")
			e.Problems = []apperr.Problem{{Field: "appPassword", Message: "handle or app password is wrong"}}
			e.PlatformCode = platformhttp.OrStatus(name, resp.Status)
			return Session{}, errs.Annotate(e, resp.Status, resp.Body)
		}
		return Session{}, a.apiError(resp, what, false)
	}
	return decodeSession(resp, what)
}

// Refresh rotates the session on the configured BaseURL with
// com.atproto.server.refreshSession. The old refresh JWT stops working. A
// refresh JWT that is expired, revoked or unknown is a reconnect error.
func (a *Adapter) Refresh(ctx context.Context, refreshJwt string) (Session, error) {
	return a.RefreshAt(ctx, a.cfg.BaseURL, refreshJwt)
}

// RefreshAt is Refresh against a specific PDS (an account's BaseURL).
func (a *Adapter) RefreshAt(ctx context.Context, pdsURL, refreshJwt string) (Session, error) {
	const what = "refresh session"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: strings.TrimRight(pdsURL, "/") + "/xrpc/com.atproto.server.refreshSession",
		Token: refreshJwt, What: what})
	if err != nil {
		return Session{}, err
	}
	if resp.Status != http.StatusOK {
		e := a.apiError(resp, what, false)
		if e.Kind == apperr.KindPermanent && resp.Status < 500 {
			// Any other rejection of a refresh token also means the
			// session is gone.
			e.Kind, e.Code = apperr.KindReconnect, "bluesky.refresh_rejected"
		}
		return Session{}, e
	}
	return decodeSession(resp, what)
}

func decodeSession(resp platformhttp.Response, what string) (Session, error) {
	var in struct {
		Session
		DIDDoc struct {
			Service []struct {
				ID              string `json:"id"`
				Type            string `json:"type"`
				ServiceEndpoint string `json:"serviceEndpoint"`
			} `json:"service"`
		} `json:"didDoc"`
	}
	if err := json.Unmarshal(resp.Body, &in); err != nil || in.DID == "" || in.AccessJwt == "" || in.RefreshJwt == "" {
		if err == nil {
			err = errors.New("missing did or tokens")
		}
		return Session{}, errs.Shape(resp, false, what, err)
	}
	s := in.Session
	for _, svc := range in.DIDDoc.Service {
		if svc.ID == "#atproto_pds" || svc.Type == "AtprotoPersonalDataServer" {
			s.PDS = strings.TrimRight(svc.ServiceEndpoint, "/")
		}
	}
	return s, nil
}

// WhoAmI implements platform.Identifier with com.atproto.server.getSession.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	const what = "get session"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.base(acct) + "/xrpc/com.atproto.server.getSession",
		Token: acct.AccessToken, What: what})
	if err != nil {
		return platform.Identity{}, err
	}
	if resp.Status != http.StatusOK {
		return platform.Identity{}, a.apiError(resp, what, false)
	}
	var me struct {
		DID    string `json:"did"`
		Handle string `json:"handle"`
	}
	if err := json.Unmarshal(resp.Body, &me); err != nil || me.DID == "" {
		if err == nil {
			err = errors.New("no did")
		}
		return platform.Identity{}, errs.Shape(resp, false, what, err)
	}
	return platform.Identity{ID: me.DID, Handle: me.Handle}, nil
}
