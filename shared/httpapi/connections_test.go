package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/connection/connectiontest"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/site"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// ---------------------------------------------------------------- unit

// fakeConns is a connectionService that records what it was asked.
type fakeConns struct {
	mu       sync.Mutex
	calls    []string
	authReq  connection.AuthorizeRequest
	manual   connection.ManualRequest
	callback url.Values
	err      error
	target   string
}

func (f *fakeConns) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeConns) Authorize(_ context.Context, r connection.AuthorizeRequest) (connection.Authorization, error) {
	f.authReq = r
	if err := f.record("authorize " + r.SiteID); err != nil {
		return connection.Authorization{}, err
	}
	return connection.Authorization{AuthURL: "https://x.example/auth", State: "st", ExpiresAt: time.Unix(1_800_000_000, 0).UTC()}, nil
}

func (f *fakeConns) Callback(_ context.Context, p platform.Name, q url.Values) (string, error) {
	f.callback = q
	if err := f.record("callback " + string(p)); err != nil {
		return "", err
	}
	return f.target, nil
}

func (f *fakeConns) Connect(_ context.Context, siteID string, m connection.ManualRequest) (connection.Connection, error) {
	f.manual = m
	if err := f.record("connect " + siteID); err != nil {
		return connection.Connection{}, err
	}
	return connection.Connection{ID: "conn_abc", Platform: m.Platform, Status: connection.StatusActive}, nil
}

func (f *fakeConns) List(_ context.Context, siteID string, limit int, cursor string) ([]connection.Connection, string, error) {
	return nil, "", f.record("list " + siteID + " " + cursor)
}

func (f *fakeConns) Get(_ context.Context, siteID, id string) (connection.Connection, error) {
	if err := f.record("get " + siteID + " " + id); err != nil {
		return connection.Connection{}, err
	}
	return connection.Connection{ID: id}, nil
}

func (f *fakeConns) Delete(_ context.Context, siteID, id string) error {
	return f.record("delete " + siteID + " " + id)
}

func (f *fakeConns) RequestValidation(_ context.Context, siteID, id string) (connection.Connection, error) {
	if err := f.record("validate " + siteID + " " + id); err != nil {
		return connection.Connection{}, err
	}
	now := time.Now()
	return connection.Connection{ID: id, ValidationRequestedAt: &now}, nil
}

func newConnFixture(t *testing.T, fc *fakeConns) fixture {
	t.Helper()
	f := newFixture(t)
	f.srv = New(Deps{Sites: f.sites, Connections: fc, MaxBodyBytes: 1 << 20})
	return f
}

func TestConnectionRoutesUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		path       string
		key        bool
		body       string
		err        error
		wantStatus int
		wantCall   string
		wantCode   string
	}{
		{"authorize", "POST", "/v1/connections/x/authorize", true, "", nil, 200, "authorize SITE", ""},
		{"authorize with page", "POST", "/v1/connections/facebook/authorize", true, `{"pageId":"123"}`, nil, 200, "authorize SITE", ""},
		{"authorize unknown field", "POST", "/v1/connections/facebook/authorize", true, `{"page":"123"}`, nil, 400, "", "invalid_request"},
		{"authorize unknown platform", "POST", "/v1/connections/myspace/authorize", true, "", nil, 404, "", "unknown_platform"},
		{"authorize without key", "POST", "/v1/connections/x/authorize", false, "", nil, 401, "", "missing_key"},
		{"authorize not configured", "POST", "/v1/connections/x/authorize", true, "", oauth.ErrNotConfigured, 422, "authorize SITE", "platform_not_configured"},
		{"callback unknown platform", "GET", "/v1/oauth/myspace/callback?state=a", false, "", nil, 404, "", "unknown_platform"},
		{"callback invalid state", "GET", "/v1/oauth/x/callback?state=a&code=b", false, "", connection.ErrInvalidState, 400, "callback x", "invalid_state"},
		{"manual", "POST", "/v1/connections", true, `{"platform":"bluesky","handle":"a.bsky.social","appPassword":"p"}`, nil, 201, "connect SITE", ""},
		{"manual bad json", "POST", "/v1/connections", true, `{"platform":`, nil, 400, "", "invalid_request"},
		{"list", "GET", "/v1/connections?cursor=c", true, "", nil, 200, "list SITE c", ""},
		{"list bad limit", "GET", "/v1/connections?limit=0", true, "", nil, 400, "", "invalid_request"},
		{"get", "GET", "/v1/connections/conn_abc", true, "", nil, 200, "get SITE conn_abc", ""},
		{"get other site's", "GET", "/v1/connections/conn_abc", true, "", apperr.NotFound("connection"), 404, "get SITE conn_abc", "not_found"},
		{"delete", "DELETE", "/v1/connections/conn_abc", true, "", nil, 204, "delete SITE conn_abc", ""},
		{"validate", "POST", "/v1/connections/conn_abc/validate", true, "", nil, 202, "validate SITE conn_abc", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeConns{err: tt.err}
			f := newConnFixture(t, fc)
			key := ""
			if tt.key {
				key = f.siteKey
			}
			w := f.do(tt.method, tt.path, key, tt.body)
			if w.Code != tt.wantStatus {
				t.Fatalf("%s %s: got %d %s, want %d", tt.method, tt.path, w.Code, w.Body, tt.wantStatus)
			}
			want := strings.ReplaceAll(tt.wantCall, "SITE", f.siteID)
			if want != "" && (len(fc.calls) != 1 || fc.calls[0] != want) {
				t.Errorf("service calls: got %v, want [%s]", fc.calls, want)
			}
			if want == "" && len(fc.calls) != 0 {
				t.Errorf("service calls: got %v, want none", fc.calls)
			}
			if tt.wantCode != "" {
				var p problemBody
				_ = json.Unmarshal(w.Body.Bytes(), &p)
				if p.Code != tt.wantCode || w.Header().Get("Content-Type") != "application/problem+json" {
					t.Errorf("problem code: got %q (%s), want %q", p.Code, w.Header().Get("Content-Type"), tt.wantCode)
				}
			}
		})
	}
}

func TestAuthorizePassesPageAndRequestBase(t *testing.T) {
	t.Parallel()
	fc := &fakeConns{}
	f := newConnFixture(t, fc)
	w := f.do("POST", "/v1/connections/facebook/authorize", f.siteKey, `{"pageId":" 42 "}`, "X-Forwarded-Proto", "https")
	if w.Code != 200 {
		t.Fatalf("authorize: got %d %s", w.Code, w.Body)
	}
	var a connection.Authorization
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.AuthURL == "" || a.State == "" || a.ExpiresAt.IsZero() {
		t.Fatalf("authorize body: got %s, want authUrl, state and expiresAt", w.Body)
	}
	if fc.authReq.PageID != "42" || fc.authReq.Platform != platform.Facebook || fc.authReq.RequestBase != "https://example.com" {
		t.Errorf("AuthorizeRequest: got %+v, want page 42, facebook, https://example.com", fc.authReq)
	}
}

func TestCallbackRedirects(t *testing.T) {
	t.Parallel()
	fc := &fakeConns{target: "https://blog.example/back?connectionId=conn_abc"}
	f := newConnFixture(t, fc)
	w := f.do("GET", "/v1/oauth/linkedin/callback?state=s&code=c", "", "")
	if w.Code != http.StatusFound || w.Header().Get("Location") != fc.target {
		t.Fatalf("callback: got %d to %q, want 302 to %q", w.Code, w.Header().Get("Location"), fc.target)
	}
	if w.Header().Get("Referrer-Policy") != "no-referrer" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("callback headers: got Referrer-Policy %q, Cache-Control %q", w.Header().Get("Referrer-Policy"), w.Header().Get("Cache-Control"))
	}
	if fc.callback.Get("code") != "c" {
		t.Errorf("callback query: got %v, want the platform's query", fc.callback)
	}
}

func TestConnectionRoutesWithoutService(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if w := f.do("GET", "/v1/connections", f.siteKey, ""); w.Code != http.StatusInternalServerError {
		t.Fatalf("list without a connection service: got %d, want 500", w.Code)
	}
}

// ---------------------------------------------------------- integration

// api is the real API over the connection stack, on a loopback listener
// whose URL is the public URL of redirect URIs.
type api struct {
	e       *connectiontest.Env
	url     string
	siteKey string
	hc      *http.Client // does not follow redirects
}

func newAPI(t *testing.T, opts connectiontest.Options) *api {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	opts.PublicURL = base
	e := connectiontest.New(t, opts)
	srv := httptest.NewUnstartedServer(New(Deps{Sites: e.Sites, Connections: e.Service, Logger: e.Log, Now: e.Clock.Now}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	_, key, err := e.Sites.IssueKey(e.Ctx, e.Site.ID, "cms")
	if err != nil {
		t.Fatalf("issue key: %v", err)
	}
	e.Remember(key)
	return &api{e: e, url: base, siteKey: key, hc: &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// call makes a request with key and returns the status, body and header.
func (a *api) call(t *testing.T, method, path, key, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	target := path
	if !strings.HasPrefix(path, "http") {
		target = a.url + path
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// authorize starts p's flow through the API and returns the callback URL
// the platform sends the browser to.
func (a *api) authorize(t *testing.T, p platform.Name, body string) (connection.Authorization, string) {
	t.Helper()
	status, b, _ := a.call(t, "POST", "/v1/connections/"+string(p)+"/authorize", a.siteKey, body)
	if status != http.StatusOK {
		t.Fatalf("authorize %s: got %d %s, want 200", p, status, b)
	}
	var az connection.Authorization
	if err := json.Unmarshal([]byte(b), &az); err != nil {
		t.Fatalf("authorize body: %v", err)
	}
	a.e.Remember(az.State)
	status, _, h := a.call(t, "GET", az.AuthURL, "", "")
	if status != http.StatusFound {
		t.Fatalf("platform authorize page: got %d, want 302", status)
	}
	cb := h.Get("Location")
	if !strings.HasPrefix(cb, a.url+"/v1/oauth/"+string(p)+"/callback?") {
		t.Fatalf("the platform redirected to %q, want our callback", cb)
	}
	u, _ := url.Parse(cb)
	a.e.Remember(u.Query().Get("code"))
	return az, cb
}

// callback follows the platform's redirect to our callback and returns
// where the API sent the browser (status 302) or the problem.
func (a *api) callback(t *testing.T, cb string) (int, url.Values, string) {
	t.Helper()
	status, b, h := a.call(t, "GET", cb, "", "")
	if status != http.StatusFound {
		return status, nil, b
	}
	loc := h.Get("Location")
	if !strings.HasPrefix(loc, "https://cms.example.test/posse/return?") {
		t.Fatalf("callback redirected to %q, want the site's return URL", loc)
	}
	u, _ := url.Parse(loc)
	if u.Query().Get("tab") != "social" {
		t.Errorf("the return URL lost its own query: %q", loc)
	}
	return status, u.Query(), ""
}

func problemCode(t *testing.T, body string) string {
	t.Helper()
	var p problemBody
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	return p.Code
}

// TestOAuthConnectEndToEnd connects each OAuth platform through the HTTP
// API and the simulator: authorize, the platform's authorize page, the
// callback, the stored and sealed connection, the listing without secrets,
// and the replayed callback refused.
func TestOAuthConnectEndToEnd(t *testing.T) {
	t.Parallel()
	for _, p := range oauth.Platforms {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			a := newAPI(t, connectiontest.Options{})
			az, cb := a.authorize(t, p, "")
			if d := az.ExpiresAt.Sub(a.e.Clock.Now()); d < 9*time.Minute || d > 10*time.Minute {
				t.Errorf("expiresAt: %v ahead, want 10 minutes", d)
			}
			status, q, body := a.callback(t, cb)
			if status != http.StatusFound || q.Get("connectionId") == "" || q.Get("error") != "" {
				t.Fatalf("callback: got %d %v %s, want a redirect with connectionId", status, q, body)
			}
			id := q.Get("connectionId")
			creds := a.e.RememberCredentials(a.e.Site.ID, id)
			if creds.AccessToken == "" {
				t.Fatal("the sealed credentials hold no access token")
			}
			item := a.e.Item(a.e.Site.ID, id)
			if _, ok := item["sealed_credentials"]; !ok {
				t.Fatal("the item has no sealed_credentials")
			}
			if _, ok := item["expires_at"]; ok {
				t.Fatal("the connection item has expires_at (the TTL attribute): DynamoDB would delete it")
			}
			raw, _ := json.Marshal(item)
			for _, s := range []string{creds.AccessToken, creds.RefreshToken} {
				if s != "" && strings.Contains(string(raw), s) {
					t.Fatal("a token is stored in the clear")
				}
			}

			status, list, _ := a.call(t, "GET", "/v1/connections", a.siteKey, "")
			if status != 200 || !strings.Contains(list, id) {
				t.Fatalf("list: got %d %s, want the connection", status, list)
			}
			status, one, _ := a.call(t, "GET", "/v1/connections/"+id, a.siteKey, "")
			if status != 200 {
				t.Fatalf("get: got %d %s", status, one)
			}
			var c connection.Connection
			_ = json.Unmarshal([]byte(one), &c)
			if c.Platform != p || c.Status != connection.StatusActive || c.AccountID == "" || c.Handle == "" || c.TokenVersion != 1 {
				t.Errorf("connection: got %+v, want active %s with account and handle", c, p)
			}
			for _, body := range []string{list, one} {
				for _, s := range append(a.e.Secrets(), "sealed", "ciphertext", "encrypted_key", "access_token", "refresh") {
					if s != "" && strings.Contains(body, s) {
						t.Errorf("an API answer holds %q", s[:min(len(s), 16)])
					}
				}
			}

			status, _, body = a.callback(t, cb) // the browser's back button, or an attacker
			if status != http.StatusBadRequest || problemCode(t, body) != "invalid_state" {
				t.Errorf("replayed callback: got %d %s, want 400 invalid_state", status, body)
			}
			a.e.AssertLogsClean()
		})
	}
}

func TestCallbackStateProblems(t *testing.T) {
	t.Parallel()
	a := newAPI(t, connectiontest.Options{})

	t.Run("expired", func(t *testing.T) {
		_, cb := a.authorize(t, platform.LinkedIn, "")
		a.e.Clock.Advance(11 * time.Minute) // DynamoDB's TTL has not swept it yet
		status, q, body := a.callback(t, cb)
		if status != http.StatusFound || q.Get("error") != connection.CallbackExpiredState || q.Get("connectionId") != "" {
			t.Fatalf("expired state: got %d %v %s, want a redirect with error=expired_state", status, q, body)
		}
		status, _, body = a.callback(t, cb)
		if status != http.StatusBadRequest || problemCode(t, body) != "invalid_state" {
			t.Errorf("expired state again: got %d %s, want 400 invalid_state", status, body)
		}
	})
	t.Run("issued for another platform", func(t *testing.T) {
		_, cb := a.authorize(t, platform.LinkedIn, "")
		foreign := strings.Replace(cb, "/v1/oauth/linkedin/", "/v1/oauth/x/", 1)
		status, q, _ := a.callback(t, foreign)
		if status != http.StatusFound || q.Get("error") != connection.CallbackInvalidState {
			t.Fatalf("state on another platform's callback: got %d %v, want error=invalid_state", status, q)
		}
		status, _, body := a.callback(t, cb)
		if status != http.StatusBadRequest || problemCode(t, body) != "invalid_state" {
			t.Errorf("the state after its misuse: got %d %s, want 400 (consumed)", status, body)
		}
	})
	t.Run("unknown, missing and malformed", func(t *testing.T) {
		for _, q := range []string{"state=" + strings.Repeat("A", 43) + "&code=c", "code=c", "state=%00%01&code=c", ""} {
			status, body, _ := a.call(t, "GET", "/v1/oauth/x/callback?"+q, "", "")
			if status != http.StatusBadRequest || problemCode(t, body) != "invalid_state" {
				t.Errorf("callback ?%s: got %d %s, want 400 invalid_state", q, status, body)
			}
		}
	})
	t.Run("access denied", func(t *testing.T) {
		for _, p := range []platform.Name{platform.X, platform.LinkedIn, platform.TikTok} {
			a.e.Sim.AddFault(platformsim.Fault{Platform: string(p), Kind: platformsim.FaultAccessDenied})
			_, cb := a.authorize(t, p, "")
			status, q, _ := a.callback(t, cb)
			if status != http.StatusFound || q.Get("error") != "access_denied" || q.Get("connectionId") != "" {
				t.Errorf("%s denied: got %d %v, want a redirect with error=access_denied", p, status, q)
			}
		}
	})
	t.Run("code refused", func(t *testing.T) {
		a.e.Sim.AddFault(platformsim.Fault{Platform: "x", Kind: platformsim.FaultInvalidGrant})
		_, cb := a.authorize(t, platform.X, "")
		status, q, _ := a.callback(t, cb)
		if status != http.StatusFound || q.Get("error") != connection.CallbackExchangeFailed {
			t.Errorf("refused code: got %d %v, want error=exchange_failed", status, q)
		}
	})
	a.e.AssertLogsClean()
}

func TestPlatformNotConfigured(t *testing.T) {
	t.Parallel()
	a := newAPI(t, connectiontest.Options{Unconfigured: []platform.Name{platform.TikTok}})
	status, body, _ := a.call(t, "POST", "/v1/connections/tiktok/authorize", a.siteKey, "")
	if status != http.StatusUnprocessableEntity || problemCode(t, body) != "platform_not_configured" {
		t.Errorf("unconfigured platform: got %d %s, want 422 platform_not_configured", status, body)
	}
	status, body, _ = a.call(t, "POST", "/v1/connections/bluesky/authorize", a.siteKey, "")
	if status != http.StatusUnprocessableEntity {
		t.Errorf("authorize bluesky: got %d %s, want 422 (manual platform)", status, body)
	}
	status, body, _ = a.call(t, "POST", "/v1/connections/facebook/authorize", a.siteKey, `{"pageId":"abc"}`)
	if status != http.StatusBadRequest {
		t.Errorf("authorize with a bad pageId: got %d %s, want 400", status, body)
	}
}

func TestManualConnections(t *testing.T) {
	t.Parallel()
	a := newAPI(t, connectiontest.Options{})
	e := a.e

	t.Run("bluesky", func(t *testing.T) {
		body := `{"platform":"bluesky","handle":"` + e.BlueskyHandle + `","appPassword":"` + e.BlueskyPassword + `"}`
		status, b, h := a.call(t, "POST", "/v1/connections", a.siteKey, body)
		if status != http.StatusCreated {
			t.Fatalf("connect bluesky: got %d %s, want 201", status, b)
		}
		var c connection.Connection
		_ = json.Unmarshal([]byte(b), &c)
		if c.AccountID != e.BlueskyDID || c.Handle != e.BlueskyHandle || h.Get("Location") != "/v1/connections/"+c.ID {
			t.Errorf("bluesky connection: got %+v at %q, want the DID and handle", c, h.Get("Location"))
		}
		creds := e.RememberCredentials(e.Site.ID, c.ID)
		if creds.RefreshToken == "" || creds.DID != e.BlueskyDID || creds.PDS == "" || creds.Expiry.IsZero() {
			t.Errorf("bluesky credentials: want the refresh JWT, DID, PDS and expiry kept")
		}
		if strings.Contains(b, e.BlueskyPassword) || strings.Contains(b, creds.AccessToken) {
			t.Error("the answer holds the app password or a token")
		}

		bad := `{"platform":"bluesky","handle":"` + e.BlueskyHandle + `","appPassword":"` + e.NewSecret("wrong") + `"}`
		status, b, _ = a.call(t, "POST", "/v1/connections", a.siteKey, bad)
		if status != http.StatusUnprocessableEntity || problemCode(t, b) != "bluesky.bad_credentials" {
			t.Errorf("wrong app password: got %d %s, want 422 bluesky.bad_credentials", status, b)
		}
		if n := e.Sim.Calls("bluesky", "create_session"); n != 2 {
			t.Errorf("createSession calls: got %d, want 2 (one per connect attempt)", n)
		}
		// Using the connection never logs in again.
		if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, c.ID); err != nil {
			t.Errorf("Ensure: %v", err)
		}
		if n := e.Sim.Calls("bluesky", "create_session"); n != 2 {
			t.Errorf("createSession calls after use: got %d, want still 2", n)
		}
		status, b, _ = a.call(t, "POST", "/v1/connections", a.siteKey, `{"platform":"bluesky","handle":""}`)
		if status != http.StatusBadRequest || !strings.Contains(b, "appPassword") {
			t.Errorf("missing fields: got %d %s, want 400 naming handle and appPassword", status, b)
		}
	})

	t.Run("mastodon", func(t *testing.T) {
		body := `{"platform":"mastodon","instanceUrl":"` + e.MastodonURL + `","accessToken":"` + e.MastodonToken + `"}`
		status, b, _ := a.call(t, "POST", "/v1/connections", a.siteKey, body)
		if status != http.StatusCreated {
			t.Fatalf("connect mastodon: got %d %s, want 201", status, b)
		}
		var c connection.Connection
		_ = json.Unmarshal([]byte(b), &c)
		if c.AccountID != e.MastodonID || c.InstanceURL != e.MastodonURL || strings.Contains(b, e.MastodonToken) {
			t.Errorf("mastodon connection: got %+v, want the account at the instance, without the token", c)
		}

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		body = `{"platform":"mastodon","instanceUrl":"http://` + closed + `","accessToken":"` + e.NewSecret("tok") + `"}`
		status, b, _ = a.call(t, "POST", "/v1/connections", a.siteKey, body)
		if status != http.StatusUnprocessableEntity || problemCode(t, b) != "mastodon.instance_unreachable" || !strings.Contains(b, closed) {
			t.Errorf("unreachable instance: got %d %s, want 422 naming %s", status, b, closed)
		}
		body = `{"platform":"mastodon","instanceUrl":"` + e.MastodonURL + `","accessToken":"` + e.NewSecret("tok") + `"}`
		status, b, _ = a.call(t, "POST", "/v1/connections", a.siteKey, body)
		if status != http.StatusUnprocessableEntity || problemCode(t, b) != "mastodon.token_rejected" {
			t.Errorf("wrong token: got %d %s, want 422 mastodon.token_rejected", status, b)
		}
	})

	t.Run("oauth platform", func(t *testing.T) {
		status, b, _ := a.call(t, "POST", "/v1/connections", a.siteKey, `{"platform":"x"}`)
		if status != http.StatusUnprocessableEntity {
			t.Errorf("manual x: got %d %s, want 422", status, b)
		}
		status, b, _ = a.call(t, "POST", "/v1/connections", a.siteKey, `{"platform":"myspace"}`)
		if status != http.StatusBadRequest {
			t.Errorf("manual myspace: got %d %s, want 400", status, b)
		}
	})
	e.AssertLogsClean()
}

func TestConnectionsAreSiteScoped(t *testing.T) {
	t.Parallel()
	a := newAPI(t, connectiontest.Options{})
	e := a.e
	_, cb := a.authorize(t, platform.Threads, "")
	_, q, _ := a.callback(t, cb)
	id := q.Get("connectionId")
	e.RememberCredentials(e.Site.ID, id)

	other, err := e.Sites.Create(e.Ctx, site.NewSite{Name: "Other", Timezone: "UTC", ReturnURL: "https://other.example.test/back"})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := e.Sites.IssueKey(e.Ctx, other.ID, "cms")
	if err != nil {
		t.Fatal(err)
	}
	e.Remember(otherKey)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/connections/" + id}, {"DELETE", "/v1/connections/" + id}, {"POST", "/v1/connections/" + id + "/validate"},
		{"GET", "/v1/connections/conn_" + strings.Repeat("z", 26)}, {"GET", "/v1/connections/not-an-id"},
	} {
		status, body, _ := a.call(t, c.method, c.path, otherKey, "")
		if status != http.StatusNotFound {
			t.Errorf("%s %s with another site's key: got %d %s, want 404", c.method, c.path, status, body)
		}
	}
	status, list, _ := a.call(t, "GET", "/v1/connections", otherKey, "")
	if status != 200 || strings.Contains(list, id) {
		t.Errorf("the other site's list: got %d %s, want it without the connection", status, list)
	}
	// A cursor of this site's listing does not page through another's.
	status, _, _ = a.call(t, "GET", "/v1/connections?cursor="+url.QueryEscape("WyJTSVRFI3NpdGVfYSIsIkNPTk4jeCJd"), otherKey, "")
	if status != http.StatusBadRequest {
		t.Errorf("a foreign cursor: got %d, want 400", status)
	}

	status, body, _ := a.call(t, "POST", "/v1/connections/"+id+"/validate", a.siteKey, "")
	if status != http.StatusAccepted || !strings.Contains(body, "validationRequestedAt") {
		t.Errorf("validate: got %d %s, want 202 with validationRequestedAt", status, body)
	}
	if _, err := e.Refresher.Run(e.Ctx); err != nil {
		t.Fatalf("refresh Run: %v", err)
	}
	_, body, _ = a.call(t, "GET", "/v1/connections/"+id, a.siteKey, "")
	var c connection.Connection
	_ = json.Unmarshal([]byte(body), &c)
	if c.ValidatedAt == nil || c.ValidationRequestedAt != nil || c.Status != connection.StatusActive {
		t.Errorf("after the refresh pass: got %+v, want validated and active", c)
	}

	status, _, _ = a.call(t, "DELETE", "/v1/connections/"+id, a.siteKey, "")
	if status != http.StatusNoContent {
		t.Fatalf("delete: got %d, want 204", status)
	}
	if item := e.Item(e.Site.ID, id); item != nil {
		t.Fatalf("after delete the item (and its sealed credentials) still exists: %v", item)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if status, _, _ := a.call(t, m, "/v1/connections/"+id, a.siteKey, ""); status != http.StatusNotFound {
			t.Errorf("%s after delete: got %d, want 404", m, status)
		}
	}
	if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, id); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("Ensure after delete: got %v, want not_found", err)
	}
	e.AssertLogsClean()
}
