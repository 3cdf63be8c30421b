package platformsim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
)

func TestMastodonOAuth(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t)
	base := sim.URL + "/mastodon"
	redirect := "https://posse.example/callback"

	resp, err := c.PostForm(base+"/api/v1/apps", url.Values{"client_name": {"posse"}, "redirect_uris": {redirect}, "scopes": {"write:statuses write:media profile"}})
	if err != nil {
		t.Fatal(err)
	}
	app := decodeJSON(t, resp)
	clientID, secret := app["client_id"].(string), app["client_secret"].(string)
	if clientID == "" || secret == "" {
		t.Fatalf("app: got %v, want client_id and client_secret", app)
	}

	authorize := func(t *testing.T) url.Values {
		t.Helper()
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "scope": {"write:statuses"}, "state": {"st8"}}
		resp, err := c.Get(base + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: got status %d, want 302", resp.StatusCode)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("state") != "st8" {
			t.Fatalf("authorize: got Location %s, want %s with state", loc, redirect)
		}
		return loc.Query()
	}
	exchange := func(code, id, sec string) *http.Response {
		resp, err := c.PostForm(base+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"client_id": {id}, "client_secret": {sec}, "redirect_uri": {redirect}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	code := authorize(t).Get("code")
	resp = exchange(code, clientID, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: got status %d, want 200", resp.StatusCode)
	}
	tok := decodeJSON(t, resp)
	access, _ := tok["access_token"].(string)
	if access == "" || tok["token_type"] != "Bearer" {
		t.Fatalf("token: got %v, want a Bearer access_token", tok)
	}

	verify := func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/accounts/verify_credentials", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := verify(); st != http.StatusOK {
		t.Errorf("verify_credentials: got %d, want 200", st)
	}

	t.Run("code is single use", func(t *testing.T) {
		resp := exchange(code, clientID, secret)
		if m := decodeJSON(t, resp); resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("reuse: got %d %v, want 400 invalid_grant", resp.StatusCode, m)
		}
	})
	t.Run("invalid client", func(t *testing.T) {
		resp := exchange(authorize(t).Get("code"), clientID, "wrong")
		if m := decodeJSON(t, resp); resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("bad secret: got %d %v, want 401 invalid_client", resp.StatusCode, m)
		}
	})
	t.Run("invalid_grant fault", func(t *testing.T) {
		sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultInvalidGrant})
		resp := exchange(authorize(t).Get("code"), clientID, secret)
		if m := decodeJSON(t, resp); m["error"] != "invalid_grant" {
			t.Errorf("fault: got %v, want invalid_grant", m)
		}
	})
	t.Run("access denied", func(t *testing.T) {
		sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultAccessDenied})
		if q := authorize(t); q.Get("error") != "access_denied" || q.Get("code") != "" {
			t.Errorf("denied: got %v, want error=access_denied and no code", q)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		resp, err := c.PostForm(base+"/oauth/revoke", url.Values{"client_id": {clientID}, "client_secret": {secret}, "token": {access}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("revoke: got %d, want 200", resp.StatusCode)
		}
		if st := verify(); st != http.StatusUnauthorized {
			t.Errorf("verify after revoke: got %d, want 401", st)
		}
	})
}

func TestMastodonStatusRules(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t)
	sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "7", Handle: "bob", AccessToken: "tk"})
	post := func(body, key string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, sim.URL+"/mastodon/api/v1/statuses", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tk")
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, decodeJSON(t, resp)
	}
	st, m := post(`{"status":"`+strings.Repeat("a", 501)+`"}`, "")
	if st != http.StatusUnprocessableEntity || !strings.Contains(m["error"].(string), "character limit") {
		t.Errorf("over limit: got %d %v, want 422 character limit", st, m)
	}
	st1, m1 := post(`{"status":"one"}`, "k1")
	st2, m2 := post(`{"status":"different body"}`, "k1")
	if st1 != 200 || st2 != 200 || m1["id"] != m2["id"] {
		t.Errorf("idempotency: got %d/%d ids %v/%v, want the same status twice", st1, st2, m1["id"], m2["id"])
	}
	if n := len(sim.Posts("mastodon")); n != 1 {
		t.Errorf("recorded posts: got %d, want 1", n)
	}
	sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultRateLimit, ResetSeconds: 30})
	req, _ := http.NewRequest(http.MethodPost, sim.URL+"/mastodon/api/v1/statuses", strings.NewReader(`{"status":"x"}`))
	req.Header.Set("Authorization", "Bearer tk")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || !strings.Contains(resp.Header.Get("X-RateLimit-Reset"), "T") {
		t.Errorf("rate limit: got %d reset %q, want 429 with an ISO-8601 reset", resp.StatusCode, resp.Header.Get("X-RateLimit-Reset"))
	}
}
