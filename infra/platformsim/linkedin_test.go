package platformsim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
)

const liRedirect = "https://cms.example/oauth/linkedin/callback"

// liCode runs LinkedIn's authorize page and returns a fresh code.
func (e *env) liCode(t *testing.T) string {
	t.Helper()
	q := e.authorize(t, "/linkedin/oauth/v2/authorization", url.Values{
		"response_type": {"code"}, "client_id": {"li-client"}, "redirect_uri": {liRedirect},
		"scope": {"openid profile w_member_social"}, "state": {"st"},
	})
	if q.Get("code") == "" || q.Get("state") != "st" {
		t.Fatalf("authorize: got %v, want a code and the state", q)
	}
	return q.Get("code")
}

func (e *env) liToken(t *testing.T, form url.Values, secret string) (int, map[string]any) {
	t.Helper()
	form.Set("client_id", "li-client")
	form.Set("client_secret", secret)
	status, body, _ := e.call(t, http.MethodPost, "/linkedin/oauth/v2/accessToken", form, nil)
	return status, body
}

func TestLinkedInOAuth(t *testing.T) {
	t.Parallel()
	clients := map[string]platformsim.Client{"linkedin": {ID: "li-client", Secret: "li-secret"}}
	exchange := func(code string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {liRedirect}}
	}
	t.Run("code exchange and userinfo", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, clients)
		status, tok := e.liToken(t, exchange(e.liCode(t)), "li-secret")
		if status != http.StatusOK || tok["expires_in"] != float64(5184000) || tok["refresh_token"] != nil {
			t.Fatalf("got %d %v, want a 60-day token and no refresh token (not a partner app)", status, tok)
		}
		status, me, _ := e.call(t, http.MethodGet, "/linkedin/v2/userinfo", nil, bearerHeader(str(tok, "access_token")))
		if status != http.StatusOK || str(me, "sub") == "" || str(me, "name") == "" {
			t.Fatalf("userinfo: got %d %v, want sub and name", status, me)
		}
	})
	t.Run("rejections", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, clients)
		if status, body := e.liToken(t, exchange(e.liCode(t)), "wrong"); status != http.StatusUnauthorized || str(body, "error") != "invalid_client" {
			t.Errorf("wrong secret: got %d %v, want 401 invalid_client", status, body)
		}
		code := e.liCode(t)
		e.clock.Advance(31 * time.Minute)
		if status, _ := e.liToken(t, exchange(code), "li-secret"); status != http.StatusBadRequest {
			t.Errorf("code older than 30 min: got %d, want 400", status)
		}
		if status, body := e.liToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "li-secret"); status != http.StatusBadRequest || str(body, "error") != "invalid_grant" {
			t.Errorf("refresh without partner access: got %d %v, want 400 invalid_grant", status, body)
		}
		e.sim.AddFault(platformsim.Fault{Platform: "linkedin", Kind: platformsim.FaultAccessDenied})
		q := e.authorize(t, "/linkedin/oauth/v2/authorization", url.Values{"response_type": {"code"}, "client_id": {"li-client"},
			"redirect_uri": {liRedirect}, "scope": {"openid"}, "state": {"s"}})
		if q.Get("error") != "user_cancelled_authorize" || q.Get("state") != "s" {
			t.Errorf("denied: got %v, want error=user_cancelled_authorize", q)
		}
	})
	t.Run("partner refresh keeps the refresh token", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, clients)
		e.sim.SetLinkedInRefreshTokens(true)
		_, tok := e.liToken(t, exchange(e.liCode(t)), "li-secret")
		rt := str(tok, "refresh_token")
		if rt == "" || tok["refresh_token_expires_in"] != float64(365*24*3600) {
			t.Fatalf("got %v, want a 365-day refresh token", tok)
		}
		e.clock.Advance(24 * time.Hour)
		for i := 0; i < 2; i++ {
			status, got := e.liToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "li-secret")
			if status != http.StatusOK || str(got, "refresh_token") != rt || got["refresh_token_expires_in"] != float64(364*24*3600) {
				t.Fatalf("refresh %d: got %d %v, want the same refresh token, a day closer to expiry", i, status, got)
			}
		}
		if n := e.sim.Calls("linkedin", "token_refresh"); n != 2 {
			t.Fatalf("got %d token_refresh calls, want 2", n)
		}
	})
}

func TestLinkedInRESTChecks(t *testing.T) {
	t.Parallel()
	const author = "urn:li:person:p1"
	body := `{"author":"` + author + `","commentary":"%s","visibility":"PUBLIC","distribution":{"feedDistribution":"MAIN_FEED"},"lifecycleState":"PUBLISHED"}`
	cases := []struct {
		name       string
		version    string
		restli     string
		commentary string
		wantStatus int
		wantCode   string
		wantText   string
	}{
		{"no version", "", "2.0.0", "hi", http.StatusUpgradeRequired, "VERSION_MISSING", ""},
		{"sunset version", "202410", "2.0.0", "hi", http.StatusUpgradeRequired, "NONEXISTENT_VERSION", ""},
		{"future version", "202701", "2.0.0", "hi", http.StatusUpgradeRequired, "NONEXISTENT_VERSION", ""},
		{"no Rest.li header", "202607", "", "hi", http.StatusBadRequest, "ILLEGAL_ARGUMENT", ""},
		{"escaped text", "202611", "2.0.0", `Hello \\(world\\) #posse`, http.StatusCreated, "", "Hello (world) #posse"},
		{"unescaped parenthesis truncates", "202607", "2.0.0", "Hello (world) and more", http.StatusCreated, "", "Hello "},
		{"mention and hashtag template", "202607", "2.0.0", `Hi @[Ada](urn:li:person:ada) {hashtag|\\#|posse}`, http.StatusCreated, "", "Hi Ada #posse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.sim.AddAccount(platformsim.Account{Platform: "linkedin", ID: author, AccessToken: "tok"})
			req, _ := http.NewRequest(http.MethodPost, e.sim.URL+"/linkedin/rest/posts", strings.NewReader(strings.Replace(body, "%s", tc.commentary, 1)))
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("Content-Type", "application/json")
			if tc.version != "" {
				req.Header.Set("LinkedIn-Version", tc.version)
			}
			if tc.restli != "" {
				req.Header.Set("X-Restli-Protocol-Version", tc.restli)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("got HTTP %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus != http.StatusCreated {
				var got struct{ Code string }
				_ = json.NewDecoder(resp.Body).Decode(&got)
				if got.Code != tc.wantCode {
					t.Fatalf("got code %q, want %q", got.Code, tc.wantCode)
				}
				return
			}
			posts := e.sim.Posts("linkedin")
			if len(posts) != 1 || posts[0].Text != tc.wantText || resp.Header.Get("x-restli-id") != posts[0].ID {
				t.Fatalf("got posts %+v and x-restli-id %q, want one post rendered %q", posts, resp.Header.Get("x-restli-id"), tc.wantText)
			}
		})
	}
}
