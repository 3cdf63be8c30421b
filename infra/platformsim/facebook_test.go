package platformsim_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
)

const fbRedirect = "https://cms.example/oauth/facebook/callback"

// fbCode runs the Login dialog and returns a fresh code.
func (e *env) fbCode(t *testing.T) string {
	t.Helper()
	q := e.authorize(t, "/facebook/v26.0/dialog/oauth", url.Values{
		"client_id": {"fb-app"}, "redirect_uri": {fbRedirect}, "state": {"st"},
		"scope": {"pages_show_list,pages_manage_posts,pages_read_engagement"},
	})
	if q.Get("code") == "" || q.Get("state") != "st" {
		t.Fatalf("dialog: got %v, want a code and the state", q)
	}
	return q.Get("code")
}

func TestFacebookLoginToPageToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]platformsim.Client{"facebook": {ID: "fb-app", Secret: "fb-secret"}})
	exchange := url.Values{"client_id": {"fb-app"}, "client_secret": {"fb-secret"}, "redirect_uri": {fbRedirect}, "code": {e.fbCode(t)}}
	status, short, _ := e.call(t, http.MethodGet, "/facebook/v26.0/oauth/access_token?"+exchange.Encode(), nil, nil)
	if status != http.StatusOK || short["expires_in"] != float64(7200) {
		t.Fatalf("code exchange: got %d %v, want a short-lived user token", status, short)
	}
	if status, body, _ := e.call(t, http.MethodGet, "/facebook/v26.0/oauth/access_token?"+exchange.Encode(), nil, nil); status != http.StatusBadRequest {
		t.Fatalf("reused code: got %d %v, want 400", status, body)
	} else if code, sub := graphCode(body); code != 100 || sub != 36009 {
		t.Fatalf("reused code: got code %v/%v, want 100/36009", code, sub)
	}

	long := url.Values{"grant_type": {"fb_exchange_token"}, "client_id": {"fb-app"}, "client_secret": {"fb-secret"}, "fb_exchange_token": {str(short, "access_token")}}
	status, ll, _ := e.call(t, http.MethodGet, "/facebook/v26.0/oauth/access_token?"+long.Encode(), nil, nil)
	if status != http.StatusOK || ll["expires_in"] != float64(5183944) {
		t.Fatalf("fb_exchange_token: got %d %v, want a 60-day token", status, ll)
	}
	if n := e.sim.Calls("facebook", "token_exchange"); n != 1 {
		t.Fatalf("got %d token_exchange calls, want 1", n)
	}

	user := bearerHeader(str(ll, "access_token"))
	status, accounts, _ := e.call(t, http.MethodGet, "/facebook/v26.0/me/accounts", nil, user)
	data, _ := accounts["data"].([]any)
	if status != http.StatusOK || len(data) != 1 {
		t.Fatalf("me/accounts: got %d %v, want one Page", status, accounts)
	}
	page, _ := data[0].(map[string]any)
	pageID, pageToken := str(page, "id"), str(page, "access_token")

	if status, body, _ := e.call(t, http.MethodPost, "/facebook/v26.0/"+pageID+"/feed", url.Values{"message": {"as the user"}}, user); status != http.StatusBadRequest {
		t.Fatalf("posting with the user token: got %d %v, want 400", status, body)
	} else if code, _ := graphCode(body); code != 200 {
		t.Fatalf("posting with the user token: got code %v, want 200", code)
	}
	status, me, h := e.call(t, http.MethodGet, "/facebook/v26.0/me?fields=id,name", nil, bearerHeader(pageToken))
	if status != http.StatusOK || str(me, "id") != pageID || h.Get("X-Business-Use-Case-Usage") == "" {
		t.Fatalf("me with the Page token: got %d %v, want the Page and a usage header", status, me)
	}
	form := url.Values{"message": {"hello"}, "access_token": {pageToken}} // the token may also come as a parameter
	if status, body, _ := e.call(t, http.MethodPost, "/facebook/v26.0/"+pageID+"/feed", form, nil); status != http.StatusOK || str(body, "id") == "" {
		t.Fatalf("posting with the Page token: got %d %v, want an id", status, body)
	}
}

func TestFacebookOAuthRejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]platformsim.Client{"facebook": {ID: "fb-app", Secret: "fb-secret"}})
	bad := url.Values{"client_id": {"fb-app"}, "client_secret": {"wrong"}, "redirect_uri": {fbRedirect}, "code": {e.fbCode(t)}}
	if status, body, _ := e.call(t, http.MethodGet, "/facebook/v26.0/oauth/access_token?"+bad.Encode(), nil, nil); status != http.StatusBadRequest {
		t.Errorf("wrong secret: got %d %v, want 400", status, body)
	} else if code, _ := graphCode(body); code != 1 {
		t.Errorf("wrong secret: got code %v, want 1", code)
	}
	e.sim.AddFault(platformsim.Fault{Platform: "facebook", Kind: platformsim.FaultInvalidGrant})
	ok := url.Values{"client_id": {"fb-app"}, "client_secret": {"fb-secret"}, "redirect_uri": {fbRedirect}, "code": {e.fbCode(t)}}
	if status, _, _ := e.call(t, http.MethodGet, "/facebook/v26.0/oauth/access_token?"+ok.Encode(), nil, nil); status != http.StatusBadRequest {
		t.Errorf("invalid_grant fault: got %d, want 400", status)
	}
	e.sim.AddFault(platformsim.Fault{Platform: "facebook", Kind: platformsim.FaultAccessDenied})
	q := e.authorize(t, "/facebook/v26.0/dialog/oauth", url.Values{"client_id": {"fb-app"}, "redirect_uri": {fbRedirect}, "state": {"s"}})
	if q.Get("error") != "access_denied" || q.Get("error_reason") != "user_denied" || q.Get("state") != "s" {
		t.Errorf("denied: got %v, want error=access_denied, error_reason=user_denied", q)
	}
}
