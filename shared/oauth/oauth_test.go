package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// testClock is a settable clock shared by the simulator and the provider.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func random(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// simEnv is a simulator with one registered client for platform p.
type simEnv struct {
	sim    *platformsim.Server
	url    string
	clk    *testClock
	client Client
	reg    *Registry
}

func newSimEnv(t *testing.T, p platform.Name) simEnv {
	t.Helper()
	clk := newClock()
	c := Client{ID: "id-" + random(t, 8), Secret: "secret-" + random(t, 16)}
	sim := platformsim.New(platformsim.Options{Now: clk.Now, Clients: map[string]platformsim.Client{string(p): {ID: c.ID, Secret: c.Secret}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetPublicURL(srv.URL)
	reg := New(Config{Clients: map[platform.Name]Client{p: c}, BaseURL: srv.URL, Now: clk.Now})
	return simEnv{sim: sim, url: srv.URL, clk: clk, client: c, reg: reg}
}

// authorize opens the authorize URL like a browser whose user approves, and
// returns the query the platform redirected back with.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: got HTTP %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("authorize Location: %v", err)
	}
	return loc.Query()
}

func TestFlowAgainstSimulator(t *testing.T) {
	t.Parallel()
	for _, p := range Platforms {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			env := newSimEnv(t, p)
			ctx := context.Background()
			prov, err := env.reg.Provider(p)
			if err != nil {
				t.Fatalf("Provider: %v", err)
			}
			state := random(t, 32)
			redirect := "https://api.example.test/v1/oauth/" + string(p) + "/callback"
			verifier := random(t, 32)
			authURL, err := prov.AuthURL(AuthRequest{State: state, RedirectURI: redirect, Verifier: verifier})
			if err != nil {
				t.Fatalf("AuthURL: %v", err)
			}
			q := authorize(t, authURL)
			if q.Get("state") != state || q.Get("code") == "" {
				t.Fatalf("redirect query: got state match %v and code %q, want the state back and a code", q.Get("state") == state, q.Get("code"))
			}
			grant, err := prov.Exchange(ctx, ExchangeRequest{Code: q.Get("code"), RedirectURI: redirect, Verifier: verifier})
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if grant.Token.AccessToken == "" {
				t.Fatal("Exchange: got no access token")
			}
			id := grant.Identity
			if id.ID == "" {
				if id, err = prov.Identify(ctx, grant.Token); err != nil {
					t.Fatalf("Identify: %v", err)
				}
			}
			if id.ID == "" || id.Handle == "" {
				t.Fatalf("identity: got %+v, want an id and a handle", id)
			}
			switch p {
			case platform.X, platform.TikTok:
				if grant.Token.RefreshToken == "" || grant.Token.Expiry.IsZero() {
					t.Fatalf("token: got refresh %v, expiry %v; want a rotating refresh token and an expiry", grant.Token.RefreshToken != "", grant.Token.Expiry)
				}
				next, err := prov.Refresh(ctx, grant.Token)
				if err != nil {
					t.Fatalf("Refresh: %v", err)
				}
				if next.RefreshToken == "" || next.RefreshToken == grant.Token.RefreshToken || next.AccessToken == grant.Token.AccessToken {
					t.Fatal("Refresh: want a new access and refresh token")
				}
				if n := env.sim.Calls(string(p), "token_refresh"); n != 1 {
					t.Errorf("token_refresh calls: got %d, want 1", n)
				}
				_, err = prov.Refresh(ctx, grant.Token)
				if !apperr.Is(err, apperr.KindReconnect) {
					t.Fatalf("Refresh with the rotated-out token: got %v, want a reconnect error", err)
				}
				if strings.Contains(err.Error(), grant.Token.RefreshToken) {
					t.Error("the refresh error names the refresh token")
				}
			case platform.Instagram, platform.Threads:
				if grant.Token.Expiry.Sub(env.clk.Now()) < 50*24*time.Hour {
					t.Fatalf("token expiry: got %v, want a long-lived (60-day) token", grant.Token.Expiry)
				}
				if prov.CanRefresh(grant.Token) {
					t.Fatal("CanRefresh on a fresh long-lived token: got true, want false (24 h minimum age)")
				}
				env.clk.Advance(25 * time.Hour)
				if !prov.CanRefresh(grant.Token) {
					t.Fatal("CanRefresh after 25 h: got false, want true")
				}
				next, err := prov.Refresh(ctx, grant.Token)
				if err != nil {
					t.Fatalf("Refresh: %v", err)
				}
				if next.AccessToken == grant.Token.AccessToken || !next.Expiry.After(grant.Token.Expiry) {
					t.Fatal("Refresh: want a new token with a later expiry")
				}
			case platform.Facebook:
				if grant.PageID == "" || grant.PageID != id.ID || !grant.Token.Expiry.IsZero() {
					t.Fatalf("grant: got page %q, identity %q, expiry %v; want the Page and a non-expiring Page token", grant.PageID, id.ID, grant.Token.Expiry)
				}
				if prov.CanRefresh(grant.Token) {
					t.Fatal("CanRefresh on a Page token: got true, want false")
				}
				again, err := prov.Identify(ctx, grant.Token)
				if err != nil || again.ID != grant.PageID {
					t.Fatalf("Identify with the Page token: got %+v, %v; want the Page", again, err)
				}
			case platform.LinkedIn:
				if !strings.HasPrefix(id.ID, "urn:li:person:") || grant.Token.RefreshToken != "" {
					t.Fatalf("linkedin: got id %q and a refresh token %v; want a person URN and none", id.ID, grant.Token.RefreshToken != "")
				}
				if prov.CanRefresh(grant.Token) {
					t.Fatal("CanRefresh without a refresh token: got true, want false")
				}
			}
		})
	}
}

func TestExchangeRefusedCode(t *testing.T) {
	t.Parallel()
	for _, p := range Platforms {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			env := newSimEnv(t, p)
			prov, _ := env.reg.Provider(p)
			_, err := prov.Exchange(context.Background(), ExchangeRequest{Code: "not-a-code", RedirectURI: "https://api.example.test/cb", Verifier: random(t, 32)})
			e, ok := apperr.As(err)
			if !ok || e.Platform != string(p) || (e.Kind != apperr.KindReconnect && e.Kind != apperr.KindPermanent) {
				t.Fatalf("Exchange of an unknown code: got %v, want a typed reconnect or permanent error for %s", err, p)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	reg := New(Config{Clients: map[platform.Name]Client{platform.X: {ID: "a", Secret: "b"}, platform.TikTok: {ID: "a"}}})
	if _, err := reg.Provider(platform.X); err != nil {
		t.Errorf("Provider(x): got %v, want the provider", err)
	}
	for _, tc := range []struct {
		p    platform.Name
		kind apperr.Kind
	}{
		{platform.TikTok, apperr.KindUnprocessable},   // no secret
		{platform.LinkedIn, apperr.KindUnprocessable}, // no client
		{platform.Bluesky, apperr.KindNotFound},       // not an OAuth platform
		{"myspace", apperr.KindNotFound},
	} {
		if _, err := reg.Provider(tc.p); apperr.KindOf(err) != tc.kind {
			t.Errorf("Provider(%s): got %v, want kind %s", tc.p, err, tc.kind)
		}
	}
}

func TestEndpointsUnderSimulator(t *testing.T) {
	t.Parallel()
	reg := New(Config{Clients: map[platform.Name]Client{
		platform.Facebook: {ID: "a", Secret: "b"}, platform.TikTok: {ID: "a", Secret: "b"}, platform.Instagram: {ID: "a", Secret: "b"},
	}, BaseURL: "http://127.0.0.1:4700/"})
	tests := []struct {
		p    platform.Name
		got  func(Endpoints) string
		want string
	}{
		{platform.Facebook, func(e Endpoints) string { return e.AuthURL }, "http://127.0.0.1:4700/facebook/v26.0/dialog/oauth"},
		{platform.Facebook, func(e Endpoints) string { return e.PagesURL }, "http://127.0.0.1:4700/facebook/v26.0/me/accounts"},
		{platform.TikTok, func(e Endpoints) string { return e.TokenURL }, "http://127.0.0.1:4700/tiktok/v2/oauth/token/"},
		{platform.Instagram, func(e Endpoints) string { return e.RefreshURL }, "http://127.0.0.1:4700/instagram/refresh_access_token"},
	}
	for _, tt := range tests {
		prov, err := reg.Provider(tt.p)
		if err != nil {
			t.Fatalf("Provider(%s): %v", tt.p, err)
		}
		if got := tt.got(prov.Endpoints()); got != tt.want {
			t.Errorf("%s endpoint: got %q, want %q", tt.p, got, tt.want)
		}
	}
	real := New(Config{Clients: map[platform.Name]Client{platform.X: {ID: "a", Secret: "b"}}})
	x, _ := real.Provider(platform.X)
	if got := x.Endpoints().TokenURL; got != "https://api.x.com/2/oauth2/token" {
		t.Errorf("x token URL without a simulator: got %q, want the production URL", got)
	}
}

func TestAuthURLParameters(t *testing.T) {
	t.Parallel()
	clients := map[platform.Name]Client{}
	for _, p := range Platforms {
		clients[p] = Client{ID: "client-" + string(p), Secret: "s"}
	}
	reg := New(Config{Clients: clients})
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	tests := []struct {
		p     platform.Name
		check map[string]string // parameter → value; "" means absent
	}{
		{platform.X, map[string]string{"client_id": "client-x", "code_challenge_method": "S256",
			"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
			"scope":          "tweet.read tweet.write users.read media.write offline.access"}},
		{platform.LinkedIn, map[string]string{"client_id": "client-linkedin", "scope": "openid profile w_member_social", "code_challenge": ""}},
		{platform.Facebook, map[string]string{"scope": "pages_show_list,pages_manage_posts,pages_read_engagement,read_insights"}},
		{platform.Instagram, map[string]string{"scope": "instagram_business_basic,instagram_business_content_publish,instagram_business_manage_insights"}},
		{platform.Threads, map[string]string{"scope": "threads_basic,threads_content_publish,threads_manage_insights"}},
		{platform.TikTok, map[string]string{"client_key": "client-tiktok", "client_id": "", "scope": "user.info.basic,video.publish,video.list"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.p), func(t *testing.T) {
			t.Parallel()
			prov, _ := reg.Provider(tt.p)
			raw, err := prov.AuthURL(AuthRequest{State: "st", RedirectURI: "https://api.example.test/cb", Verifier: verifier})
			if err != nil {
				t.Fatalf("AuthURL: %v", err)
			}
			u, _ := url.Parse(raw)
			q := u.Query()
			if q.Get("state") != "st" || q.Get("redirect_uri") != "https://api.example.test/cb" || q.Get("response_type") != "code" {
				t.Errorf("AuthURL %s: missing state, redirect_uri or response_type", raw)
			}
			for k, want := range tt.check {
				if got := q.Get(k); got != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
		})
	}
	x, _ := reg.Provider(platform.X)
	if _, err := x.AuthURL(AuthRequest{State: "st", RedirectURI: "https://a.test/cb"}); err == nil {
		t.Error("X AuthURL without a verifier: got nil error, want PKCE required")
	}
}

func TestCleanCode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"abc#_": "abc", "abc": "abc", " abc#_ ": "abc", "a#_b": "a#_b"} {
		if got := CleanCode(in); got != want {
			t.Errorf("CleanCode(%q): got %q, want %q", in, got, want)
		}
	}
}

// canned answers every request with status, headers and body.
func canned(t *testing.T, status int, header map[string]string, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRefreshErrorClassification(t *testing.T) {
	t.Parallel()
	const rt = "rt-SECRET-value"
	tests := []struct {
		name      string
		p         platform.Name
		status    int
		header    map[string]string
		body      string
		kind      apperr.Kind
		code      string
		retryWait time.Duration
	}{
		{"x spent refresh token", platform.X, 400, nil, `{"error":"invalid_request","error_description":"Value passed for the token was invalid."}`, apperr.KindReconnect, CodeInvalidGrant, 0},
		{"tiktok invalid_grant", platform.TikTok, 400, nil, `{"error":"invalid_grant","error_description":"Refresh token is invalid or expired.","log_id":"x"}`, apperr.KindReconnect, CodeInvalidGrant, 0},
		{"linkedin invalid_grant", platform.LinkedIn, 400, nil, `{"error":"invalid_grant"}`, apperr.KindReconnect, CodeInvalidGrant, 0},
		{"rate limited", platform.X, 429, map[string]string{"Retry-After": "7"}, `{"error":"rate_limited"}`, apperr.KindRateLimited, "oauth.rate_limited", 7 * time.Second},
		{"server down", platform.TikTok, 503, nil, `oops`, apperr.KindTransient, "oauth.unavailable", 0},
		{"bad client", platform.LinkedIn, 401, nil, `{"error":"invalid_client"}`, apperr.KindPermanent, "oauth.invalid_client", 0},
		{"instagram dead token", platform.Instagram, 400, nil, `{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}`, apperr.KindReconnect, CodeInvalidGrant, 0},
		{"threads throttled", platform.Threads, 400, nil, `{"error":{"message":"slow down","code":4}}`, apperr.KindRateLimited, "oauth.rate_limited", time.Minute},
		{"garbage 200", platform.TikTok, 200, nil, `<html>hello</html>`, apperr.KindPermanent, "oauth.bad_response", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := canned(t, tt.status, tt.header, tt.body)
			clk := newClock()
			reg := New(Config{
				Clients:   map[platform.Name]Client{tt.p: {ID: "id", Secret: "client-SECRET"}},
				Endpoints: map[platform.Name]Endpoints{tt.p: {TokenURL: base + "/token", RefreshURL: base + "/refresh"}},
				Now:       clk.Now,
			})
			prov, _ := reg.Provider(tt.p)
			tok := Token{AccessToken: "at-SECRET-value", RefreshToken: rt, Expiry: clk.Now().Add(time.Hour), IssuedAt: clk.Now().Add(-48 * time.Hour)}
			_, err := prov.Refresh(context.Background(), tok)
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("Refresh: got %v, want a typed error", err)
			}
			if e.Kind != tt.kind || e.Code != tt.code || e.Platform != string(tt.p) {
				t.Errorf("Refresh: got %s/%s/%s, want %s/%s/%s", e.Kind, e.Code, e.Platform, tt.kind, tt.code, tt.p)
			}
			if tt.retryWait != 0 && e.RetryAfter != tt.retryWait {
				t.Errorf("RetryAfter: got %v, want %v", e.RetryAfter, tt.retryWait)
			}
			for _, s := range []string{rt, "at-SECRET-value", "client-SECRET"} {
				if strings.Contains(err.Error(), s) || strings.Contains(e.Redacted, s) {
					t.Errorf("the error or its redacted body holds a secret %q", s)
				}
			}
		})
	}
}

func TestTransportFailureIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, p := range []platform.Name{platform.X, platform.TikTok, platform.Threads} {
		reg := New(Config{
			Clients:   map[platform.Name]Client{p: {ID: "id", Secret: "client-SECRET"}},
			Endpoints: map[platform.Name]Endpoints{p: {TokenURL: "http://" + addr + "/token", RefreshURL: "http://" + addr + "/refresh?x=1"}},
		})
		prov, _ := reg.Provider(p)
		_, err := prov.Refresh(context.Background(), Token{AccessToken: "at-SECRET", RefreshToken: "rt-SECRET"})
		if !apperr.Is(err, apperr.KindTransient) {
			t.Errorf("%s refresh against a closed port: got %v, want transient", p, err)
		}
		if err != nil && (strings.Contains(err.Error(), "at-SECRET") || strings.Contains(err.Error(), "client-SECRET")) {
			t.Errorf("%s: the error names a secret: %v", p, err)
		}
	}
}

func TestFacebookPageChoice(t *testing.T) {
	t.Parallel()
	env := newSimEnv(t, platform.Facebook)
	prov, _ := env.reg.Provider(platform.Facebook)
	redirect := "https://api.example.test/cb"
	run := func(pageID string) (Grant, error) {
		raw, _ := prov.AuthURL(AuthRequest{State: random(t, 32), RedirectURI: redirect})
		q := authorize(t, raw)
		return prov.Exchange(context.Background(), ExchangeRequest{Code: q.Get("code"), RedirectURI: redirect, PageID: pageID})
	}
	first, err := run("")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	again, err := run(first.PageID)
	if err != nil || again.PageID != first.PageID {
		t.Fatalf("Exchange with pageId %s: got %q, %v; want that Page", first.PageID, again.PageID, err)
	}
	_, err = run("999999999999")
	if e, ok := apperr.As(err); !ok || e.Code != "oauth.page_not_found" {
		t.Fatalf("Exchange with a Page the user does not manage: got %v, want oauth.page_not_found", err)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	body := `{"access_token":"AAA","refresh_token":"BBB","code":"CCC","client_secret":"DDD","open_id":"ok","note":"Bearer EEE"}`
	got := Redact([]byte(body))
	for _, s := range []string{"AAA", "BBB", "CCC", "DDD", "EEE"} {
		if strings.Contains(got, s) {
			t.Errorf("Redact kept %q: %s", s, got)
		}
	}
	if !strings.Contains(got, `"open_id":"ok"`) {
		t.Errorf("Redact dropped a harmless field: %s", got)
	}
	if long := Redact([]byte(strings.Repeat("a", 5000))); len(long) > maxRedacted+8 {
		t.Errorf("Redact length: got %d, want at most ~%d", len(long), maxRedacted)
	}
}

func TestNotRefreshable(t *testing.T) {
	t.Parallel()
	reg := New(Config{Clients: map[platform.Name]Client{platform.Facebook: {ID: "a", Secret: "b"}, platform.LinkedIn: {ID: "a", Secret: "b"}}})
	for _, p := range []platform.Name{platform.Facebook, platform.LinkedIn} {
		prov, _ := reg.Provider(p)
		_, err := prov.Refresh(context.Background(), Token{AccessToken: "x"})
		if e, ok := apperr.As(err); !ok || e.Code != "oauth.not_refreshable" {
			t.Errorf("%s Refresh without a refresh path: got %v, want oauth.not_refreshable", p, err)
		}
	}
}

// TestRefreshKeepsTheRefreshToken: a refresh answer without a refresh
// token keeps the one that was used.
func TestRefreshKeepsTheRefreshToken(t *testing.T) {
	t.Parallel()
	for _, p := range []platform.Name{platform.X, platform.TikTok, platform.LinkedIn} {
		base := canned(t, 200, nil, `{"access_token":"new-at","token_type":"bearer","expires_in":7200}`)
		reg := New(Config{
			Clients:   map[platform.Name]Client{p: {ID: "id", Secret: "s"}},
			Endpoints: map[platform.Name]Endpoints{p: {TokenURL: base + "/token"}},
		})
		prov, _ := reg.Provider(p)
		got, err := prov.Refresh(context.Background(), Token{AccessToken: "old-at", RefreshToken: "keep-me", Scopes: []string{"a"}})
		if err != nil {
			t.Fatalf("%s Refresh: %v", p, err)
		}
		if got.AccessToken != "new-at" || got.RefreshToken != "keep-me" || got.Expiry.IsZero() || len(got.Scopes) != 1 {
			t.Errorf("%s Refresh: got access %q refresh %q expiry %v scopes %v; want the new access token and the old refresh token kept", p, got.AccessToken, got.RefreshToken, got.Expiry, got.Scopes)
		}
	}
}
