package platformsim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
)

func TestThreadsOAuth(t *testing.T) {
	t.Parallel()
	clk := simtest.NewStoppedClock(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	sim := simtest.Start(t, simtest.Options{Now: clk.Now, Clients: map[string]platformsim.Client{"threads": {ID: "th-app", Secret: "th-secret"}}})
	c := sim.NoRedirectClient()
	base := sim.URL + "/threads"
	redirect := "https://posse.example/cb/threads"

	authorize := func(t *testing.T) *url.URL {
		t.Helper()
		q := url.Values{"client_id": {"th-app"}, "redirect_uri": {redirect}, "scope": {"threads_basic,threads_content_publish"}, "response_type": {"code"}, "state": {"s1"}}
		resp, err := c.Get(base + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: got %d, want 302", resp.StatusCode)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc
	}
	exchange := func(code, secret string) (int, map[string]any) {
		resp, err := c.PostForm(base+"/oauth/access_token", url.Values{"client_id": {"th-app"}, "client_secret": {secret},
			"grant_type": {"authorization_code"}, "redirect_uri": {redirect}, "code": {code}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, decodeJSON(t, resp)
	}
	get := func(path string, q url.Values) (int, map[string]any) {
		resp, err := c.Get(base + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, decodeJSON(t, resp)
	}

	loc := authorize(t)
	if loc.Fragment != "_" || loc.Query().Get("state") != "s1" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: got %s, want code, state and the #_ fragment", loc)
	}
	code := loc.Query().Get("code")
	if st, m := exchange(code+"#_", "th-secret"); st != http.StatusBadRequest {
		t.Errorf("code with #_: got %d %v, want 400", st, m)
	}
	code = authorize(t).Query().Get("code")
	if st, m := exchange(code, "wrong"); st != http.StatusBadRequest || m["error"] == nil {
		t.Errorf("bad secret: got %d %v, want 400 error", st, m)
	}
	st, m := exchange(code, "th-secret")
	short, _ := m["access_token"].(string)
	if st != http.StatusOK || short == "" || m["user_id"] == nil {
		t.Fatalf("exchange: got %d %v, want a token and user_id", st, m)
	}
	if st, _ := exchange(code, "th-secret"); st != http.StatusBadRequest {
		t.Errorf("code reuse: got %d, want 400", st)
	}

	st, m = get("/access_token", url.Values{"grant_type": {"th_exchange_token"}, "client_secret": {"th-secret"}, "access_token": {short}})
	long, _ := m["access_token"].(string)
	if st != http.StatusOK || long == "" || m["expires_in"] != float64(5183944) {
		t.Fatalf("long-lived exchange: got %d %v, want a 60-day token", st, m)
	}
	if st, _ := get("/refresh_access_token", url.Values{"grant_type": {"th_refresh_token"}, "access_token": {long}}); st != http.StatusBadRequest {
		t.Errorf("refresh of a fresh token: got %d, want 400 (must be 24 h old)", st)
	}
	clk.Advance(25 * time.Hour)
	st, m = get("/refresh_access_token", url.Values{"grant_type": {"th_refresh_token"}, "access_token": {long}})
	renewed, _ := m["access_token"].(string)
	if st != http.StatusOK || renewed == "" || renewed == long {
		t.Fatalf("refresh: got %d %v, want a new token", st, m)
	}
	if n := sim.Calls("threads", "token_refresh"); n != 1 {
		t.Errorf("token_refresh: got %d, want 1", n)
	}
	if st, m := get("/v1.0/me", url.Values{"access_token": {long}}); st != http.StatusBadRequest {
		t.Errorf("old token after refresh: got %d %v, want 400 code 190", st, m)
	}
	if st, m := get("/v1.0/me", url.Values{"access_token": {renewed}, "fields": {"id,username"}}); st != http.StatusOK || m["username"] == nil {
		t.Errorf("me: got %d %v, want the account", st, m)
	}

	sim.AddFault(platformsim.Fault{Platform: "threads", Kind: platformsim.FaultAccessDenied})
	if q := authorize(t).Query(); q.Get("error") != "access_denied" {
		t.Errorf("access denied: got %v, want error=access_denied", q)
	}
	sim.AddFault(platformsim.Fault{Platform: "threads", Kind: platformsim.FaultInvalidGrant})
	if st, _ := exchange(authorize(t).Query().Get("code"), "th-secret"); st != http.StatusBadRequest {
		t.Errorf("invalid_grant fault: got %d, want 400", st)
	}
	resp, err := c.Get(base + "/oauth/authorize?" + url.Values{"client_id": {"other"}, "redirect_uri": {redirect}, "response_type": {"code"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Errorf("unknown client: got %d, want 400 without a code", resp.StatusCode)
	}
}
