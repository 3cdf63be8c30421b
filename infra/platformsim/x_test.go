package platformsim_test

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
)

const (
	xVerifier = "verifier-0123456789-0123456789-0123456789-abcdef"
	xRedirect = "https://cms.example/oauth/x/callback"
)

// xCode runs the authorize page and returns a fresh code.
func (e *env) xCode(t *testing.T) string {
	t.Helper()
	q := e.authorize(t, "/x/i/oauth2/authorize", url.Values{
		"response_type": {"code"}, "client_id": {"x-client"}, "redirect_uri": {xRedirect},
		"scope": {"tweet.read tweet.write users.read media.write offline.access"}, "state": {"st-1"},
		"code_challenge": {s256(xVerifier)}, "code_challenge_method": {"S256"},
	})
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("authorize: got redirect query %v, want state st-1 and a code", q)
	}
	return q.Get("code")
}

// xToken posts to the token endpoint with Basic client authentication
// (empty secret: a public client sending client_id in the form).
func (e *env) xToken(t *testing.T, form url.Values, secret string) (int, map[string]any) {
	t.Helper()
	h := http.Header{}
	if secret != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("x-client:"+secret)))
	} else {
		form.Set("client_id", "x-client")
	}
	status, body, _ := e.call(t, http.MethodPost, "/x/2/oauth2/token", form, h)
	return status, body
}

func xExchange(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {xRedirect}, "code_verifier": {xVerifier}}
}

func TestXOAuthCodeExchange(t *testing.T) {
	t.Parallel()
	clients := map[string]platformsim.Client{"x": {ID: "x-client", Secret: "x-secret"}}
	cases := []struct {
		name       string
		prepare    func(e *env, form url.Values)
		secret     string
		wantStatus int
		wantError  string
	}{
		{"confidential client", nil, "x-secret", http.StatusOK, ""},
		{"public client", nil, "", http.StatusOK, ""},
		{"wrong client secret", nil, "nope", http.StatusUnauthorized, "unauthorized_client"},
		{"wrong verifier", func(_ *env, f url.Values) { f.Set("code_verifier", "something-else") }, "x-secret", http.StatusBadRequest, "invalid_request"},
		{"other redirect_uri", func(_ *env, f url.Values) { f.Set("redirect_uri", "https://evil.example/cb") }, "x-secret", http.StatusBadRequest, "invalid_request"},
		{"code older than 30 s", func(e *env, _ url.Values) { e.clock.Advance(31 * time.Second) }, "x-secret", http.StatusBadRequest, "invalid_request"},
		{"invalid_grant fault", func(e *env, _ url.Values) {
			e.sim.AddFault(platformsim.Fault{Platform: "x", Kind: platformsim.FaultInvalidGrant})
		}, "x-secret", http.StatusBadRequest, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, clients)
			form := xExchange(e.xCode(t))
			if tc.prepare != nil {
				tc.prepare(e, form)
			}
			status, body := e.xToken(t, form, tc.secret)
			if status != tc.wantStatus || str(body, "error") != tc.wantError {
				t.Fatalf("got %d %v, want %d %q", status, body, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus != http.StatusOK {
				return
			}
			if body["expires_in"] != float64(7200) || str(body, "refresh_token") == "" {
				t.Fatalf("got %v, want a 2-hour token and a refresh token (offline.access)", body)
			}
			status, me, _ := e.call(t, http.MethodGet, "/x/2/users/me", nil, bearerHeader(str(body, "access_token")))
			data, _ := me["data"].(map[string]any)
			if status != http.StatusOK || str(data, "id") == "" || str(data, "username") == "" {
				t.Fatalf("users/me: got %d %v, want the account", status, me)
			}
			// Codes are single use.
			if status, body := e.xToken(t, xExchange(form.Get("code")), tc.secret); status != http.StatusBadRequest {
				t.Fatalf("reused code: got %d %v, want 400", status, body)
			}
		})
	}
}

func TestXOAuthRefreshRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]platformsim.Client{"x": {ID: "x-client", Secret: "x-secret"}})
	_, first := e.xToken(t, xExchange(e.xCode(t)), "x-secret")
	refresh := func(rt string) (int, map[string]any) {
		return e.xToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "x-secret")
	}
	status, second := refresh(str(first, "refresh_token"))
	if status != http.StatusOK || str(second, "refresh_token") == str(first, "refresh_token") {
		t.Fatalf("refresh: got %d %v, want a new pair", status, second)
	}
	if status, body := refresh(str(first, "refresh_token")); status != http.StatusBadRequest || str(body, "error") != "invalid_request" {
		t.Fatalf("old refresh token: got %d %v, want 400 invalid_request", status, body)
	}
	if status, _, _ := e.call(t, http.MethodGet, "/x/2/users/me", nil, bearerHeader(str(first, "access_token"))); status != http.StatusUnauthorized {
		t.Fatalf("old access token: got %d, want 401", status)
	}
	if status, _ := refresh(str(second, "refresh_token")); status != http.StatusOK {
		t.Fatalf("current refresh token: got %d, want 200", status)
	}
	if n := e.sim.Calls("x", "token_refresh"); n != 3 {
		t.Fatalf("got %d token_refresh calls, want 3", n)
	}
}

func TestXAuthorizeAndRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	q := url.Values{"response_type": {"code"}, "client_id": {"x-client"}, "redirect_uri": {xRedirect}, "scope": {"tweet.read"}, "state": {"s"}}
	resp, err := noRedirect.Get(e.sim.URL + "/x/i/oauth2/authorize?" + q.Encode())
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("authorize without PKCE: got %v %v, want 400", resp, err)
	}
	resp.Body.Close()

	e.sim.AddFault(platformsim.Fault{Platform: "x", Kind: platformsim.FaultAccessDenied})
	q.Set("code_challenge", "abc")
	q.Set("code_challenge_method", "plain")
	if got := e.authorize(t, "/x/i/oauth2/authorize", q); got.Get("error") != "access_denied" || got.Get("state") != "s" {
		t.Fatalf("denied: got %v, want error=access_denied with the state", got)
	}

	_, tok := e.xToken(t, url.Values{"grant_type": {"authorization_code"}, "code": {e.authorize(t, "/x/i/oauth2/authorize", q).Get("code")},
		"redirect_uri": {xRedirect}, "code_verifier": {"abc"}}, "")
	access := str(tok, "access_token")
	if access == "" {
		t.Fatalf("plain PKCE exchange: got %v, want a token", tok)
	}
	if status, _, _ := e.call(t, http.MethodPost, "/x/2/oauth2/revoke", url.Values{"token": {access}, "client_id": {"x-client"}}, nil); status != http.StatusOK {
		t.Fatalf("revoke: got %d, want 200", status)
	}
	if status, _, _ := e.call(t, http.MethodGet, "/x/2/users/me", nil, bearerHeader(access)); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: got %d, want 401", status)
	}
}

func TestXPostRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.sim.AddAccount(platformsim.Account{Platform: "x", ID: "42", Handle: "h", AccessToken: "tok"})
	post := func(body string) int {
		h := bearerHeader("tok")
		h.Set("Content-Type", "application/json")
		req, _ := http.NewRequest(http.MethodPost, e.sim.URL+"/x/2/tweets", strings.NewReader(body))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name, body string
		want       int
	}{
		{"ok", `{"text":"hello"}`, http.StatusCreated},
		{"duplicate text", `{"text":"hello"}`, http.StatusForbidden},
		{"unknown property", `{"text":"other","title":"x"}`, http.StatusBadRequest},
		{"neither text nor media", `{}`, http.StatusBadRequest},
		{"too long", `{"text":"` + strings.Repeat("a", 281) + `"}`, http.StatusBadRequest},
		{"unknown media id", `{"media":{"media_ids":["1"]}}`, http.StatusBadRequest},
	}
	for _, tc := range cases { // in order: the duplicate depends on the first post
		if got := post(tc.body); got != tc.want {
			t.Errorf("%s: got HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	if n := len(e.sim.Posts("x")); n != 1 {
		t.Errorf("got %d recorded posts, want 1", n)
	}
}

// TestXCreateAnswerAsRecorded checks the create answer against the recorded
// real exchanges: 201 with Location, the data object with
// edit_history_tweet_ids, gzip-encoded when the client accepts gzip and
// plain when it does not.
func TestXCreateAnswerAsRecorded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, acceptEncoding, wantEncoding string
	}{
		{"gzip accepted", "gzip, deflate", "gzip"},
		{"gzip refused", "gzip;q=0, identity", ""},
		{"no Accept-Encoding", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.sim.AddAccount(platformsim.Account{Platform: "x", ID: "42", Handle: "h", AccessToken: "tok"})
			req, _ := http.NewRequest(http.MethodPost, e.sim.URL+"/x/2/tweets", strings.NewReader(`{"text":"hello"}`))
			req.Header = bearerHeader("tok")
			req.Header.Set("Content-Type", "application/json")
			if tc.acceptEncoding != "" {
				// Set by hand, so the transport hands the body over as sent.
				req.Header.Set("Accept-Encoding", tc.acceptEncoding)
			} else {
				req.Header["Accept-Encoding"] = nil
			}
			resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
			if err != nil {
				t.Fatalf("post: %v", err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != tc.wantEncoding {
				t.Fatalf("got Content-Encoding %q, want %q", got, tc.wantEncoding)
			}
			var body io.Reader = resp.Body
			if tc.wantEncoding == "gzip" {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatalf("gzip body: %v", err)
				}
				body = zr
			}
			var out struct {
				Data struct {
					ID                  string   `json:"id"`
					Text                string   `json:"text"`
					EditHistoryTweetIDs []string `json:"edit_history_tweet_ids"`
				} `json:"data"`
			}
			if err := json.NewDecoder(body).Decode(&out); err != nil {
				t.Fatalf("decode: %v", err)
			}
			id := out.Data.ID
			if resp.StatusCode != http.StatusCreated || id == "" || out.Data.Text != "hello" ||
				len(out.Data.EditHistoryTweetIDs) != 1 || out.Data.EditHistoryTweetIDs[0] != id {
				t.Fatalf("got %d %+v, want 201 with the id, the text and edit_history_tweet_ids [id]", resp.StatusCode, out.Data)
			}
			if got, want := resp.Header.Get("Location"), e.sim.URL+"/x/2/tweets/"+id; got != want {
				t.Errorf("got Location %q, want %q", got, want)
			}
		})
	}
}
