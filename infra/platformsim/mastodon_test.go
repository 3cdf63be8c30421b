package platformsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

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

// mastoCall sends method path to the simulated instance as account token
// tok, with a JSON body when body is not empty.
func (e *env) mastoCall(t *testing.T, method, path, tok, body string, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.sim.URL+"/mastodon"+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

// mastoUpload uploads a file of type ct as tok.
func (e *env) mastoUpload(t *testing.T, tok, name, ct string) (int, map[string]any, http.Header) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", ct)
	fw, _ := mw.CreatePart(h)
	_, _ = fw.Write([]byte("\x00\x00\x00\x18ftypmp42 and then some bytes"))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.sim.URL+"/mastodon/api/v2/media", &buf)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

// TestMastodonStatusEntity checks the statuses answer is the whole Status
// entity of the API docs, with its Account, and that a status without a
// visibility takes the account's default (verify_credentials'
// source.privacy).
func TestMastodonStatusEntity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "7", Handle: "bob", AccessToken: "tk", Privacy: "unlisted"})

	st, me, _ := e.mastoCall(t, http.MethodGet, "/api/v1/accounts/verify_credentials", "tk", "", nil)
	source, _ := me["source"].(map[string]any)
	if st != http.StatusOK || source["privacy"] != "unlisted" {
		t.Fatalf("verify_credentials: got %d source %v, want 200 with source.privacy unlisted", st, source)
	}

	st, js, _ := e.mastoCall(t, http.MethodPost, "/api/v1/statuses", "tk", `{"status":"Read https://blog.example/p/1 #IndieWeb\nline two"}`, nil)
	if st != http.StatusOK {
		t.Fatalf("post: got %d %v, want 200", st, js)
	}
	for _, k := range []string{"id", "uri", "url", "created_at", "edited_at", "account", "content", "visibility", "sensitive",
		"spoiler_text", "media_attachments", "application", "mentions", "tags", "emojis", "reblogs_count", "favourites_count",
		"replies_count", "in_reply_to_id", "in_reply_to_account_id", "reblog", "poll", "card", "language",
		"favourited", "reblogged", "muted", "bookmarked", "pinned", "filtered"} {
		if _, ok := js[k]; !ok {
			t.Errorf("status has no %q, want every attribute of the Status entity", k)
		}
	}
	if js["visibility"] != "unlisted" {
		t.Errorf("got visibility %v, want the account's default unlisted", js["visibility"])
	}
	wantContent := `<p>Read <a href="https://blog.example/p/1" target="_blank" rel="nofollow noopener">https://blog.example/p/1</a> #IndieWeb<br />line two</p>`
	if js["content"] != wantContent {
		t.Errorf("got content %q, want %q", js["content"], wantContent)
	}
	if tags, _ := js["tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["name"] != "indieweb" {
		t.Errorf("got tags %v, want [indieweb]", js["tags"])
	}
	acct, _ := js["account"].(map[string]any)
	for _, k := range []string{"id", "username", "acct", "url", "display_name", "note", "avatar", "avatar_static", "header",
		"header_static", "locked", "fields", "emojis", "bot", "group", "discoverable", "created_at", "last_status_at",
		"statuses_count", "followers_count", "following_count"} {
		if _, ok := acct[k]; !ok {
			t.Errorf("status account has no %q, want every attribute of the Account entity", k)
		}
	}
	if _, ok := acct["source"]; ok {
		t.Errorf("status account has source, want it only in verify_credentials")
	}
	if acct["statuses_count"] != float64(1) {
		t.Errorf("got statuses_count %v, want 1", acct["statuses_count"])
	}

	_, js, _ = e.mastoCall(t, http.MethodPost, "/api/v1/statuses", "tk", `{"status":"public one","visibility":"public"}`, nil)
	if js["visibility"] != "public" {
		t.Errorf("got visibility %v, want the given public", js["visibility"])
	}
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "8", Handle: "ann", AccessToken: "tk8"})
	if _, js, _ = e.mastoCall(t, http.MethodPost, "/api/v1/statuses", "tk8", `{"status":"default"}`, nil); js["visibility"] != "public" {
		t.Errorf("account without a privacy: got visibility %v, want public", js["visibility"])
	}
}

// TestMastodonStatusesWindow checks the statuses family as Mastodon's
// RateLimiter runs it: a fixed window aligned on the epoch, headers
// counting down on every created status, X-RateLimit-Reset at the
// window's end with the request's fraction of a second, 429 past the
// limit, replays and rejected statuses not counted, and a fresh window at
// the boundary.
func TestMastodonStatusesWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.clock.Advance(-(1*time.Hour + 39*time.Minute + 59*time.Second) + 290597*time.Microsecond) // 10:20:01.290597
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "7", Handle: "bob", AccessToken: "tk"})
	post := func(body, key string) (int, http.Header) {
		t.Helper()
		h := http.Header{}
		if key != "" {
			h.Set("Idempotency-Key", key)
		}
		st, _, hdr := e.mastoCall(t, http.MethodPost, "/api/v1/statuses", "tk", body, h)
		return st, hdr
	}
	st, h := post(`{"status":"first"}`, "")
	if st != http.StatusOK || h.Get("X-RateLimit-Limit") != "300" || h.Get("X-RateLimit-Remaining") != "299" ||
		h.Get("X-RateLimit-Reset") != "2026-11-25T12:00:00.290597Z" {
		t.Fatalf("default family: got %d %v, want 200 with limit 300, remaining 299, reset 2026-11-25T12:00:00.290597Z", st, h)
	}

	e.sim.SetMastodonLimits(platformsim.MastodonLimits{Statuses: 3})
	cases := []struct {
		name, body, key string
		wantStatus      int
		wantRemaining   string
	}{
		{"second", `{"status":"second","visibility":"public"}`, "k2", http.StatusOK, "1"},
		{"replay is not a new status", `{"status":"second"}`, "k2", http.StatusOK, "1"},
		{"rejected is not counted", `{"status":""}`, "", http.StatusUnprocessableEntity, "1"},
		{"third", `{"status":"third"}`, "", http.StatusOK, "0"},
		{"past the limit", `{"status":"fourth"}`, "", http.StatusTooManyRequests, "0"},
	}
	for _, tc := range cases {
		st, h := post(tc.body, tc.key)
		if st != tc.wantStatus || (tc.wantRemaining != "" && h.Get("X-RateLimit-Remaining") != tc.wantRemaining) {
			t.Fatalf("%s: got %d remaining %q, want %d remaining %q", tc.name, st, h.Get("X-RateLimit-Remaining"), tc.wantStatus, tc.wantRemaining)
		}
		if tc.wantRemaining != "" && (h.Get("X-RateLimit-Limit") != "3" || h.Get("X-RateLimit-Reset") != "2026-11-25T12:00:00.290597Z") {
			t.Fatalf("%s: got limit %q reset %q, want 3 and the window's end 2026-11-25T12:00:00.290597Z", tc.name, h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Reset"))
		}
	}
	if n := len(e.sim.Posts("mastodon")); n != 3 {
		t.Fatalf("got %d recorded statuses, want 3", n)
	}
	e.clock.Advance(time.Hour + 39*time.Minute + 58*time.Second) // 11:59:59.290597: same window
	if st, _ := post(`{"status":"still limited"}`, ""); st != http.StatusTooManyRequests {
		t.Fatalf("a second before the boundary: got %d, want 429", st)
	}
	e.clock.Advance(time.Second) // 12:00:00.290597: the next window
	if st, h := post(`{"status":"new window"}`, ""); st != http.StatusOK || h.Get("X-RateLimit-Remaining") != "2" ||
		h.Get("X-RateLimit-Reset") != "2026-11-25T15:00:00.290597Z" {
		t.Fatalf("at the boundary: got %d %v, want 200 with remaining 2 and reset 15:00:00.290597", st, h)
	}
}

// TestMastodonMediaThrottle checks Rack::Attack's media throttle: 30
// uploads per 30 minutes per account, the 31st answered 429 with the
// throttle's headers, and uploads allowed again in the next window.
func TestMastodonMediaThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.clock.Advance(10*time.Minute + 500*time.Millisecond) // 12:10:00.5
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "7", Handle: "bob", AccessToken: "tk"})
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "8", Handle: "ann", AccessToken: "tk8"})
	for i := range 30 {
		if st, m, _ := e.mastoUpload(t, "tk", "v.mp4", "video/mp4"); st != http.StatusAccepted {
			t.Fatalf("upload %d: got %d %v, want 202", i+1, st, m)
		}
	}
	st, m, h := e.mastoUpload(t, "tk", "v.mp4", "video/mp4")
	if st != http.StatusTooManyRequests || m["error"] != "Too many requests" || h.Get("X-RateLimit-Limit") != "30" ||
		h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Reset") != "2026-11-25T12:30:00.500000Z" {
		t.Fatalf("upload 31: got %d %v %v, want 429 with limit 30, remaining 0, reset 12:30:00.500000", st, m, h)
	}
	if st, _, _ := e.mastoUpload(t, "tk8", "v.mp4", "video/mp4"); st != http.StatusAccepted {
		t.Fatalf("another account: got %d, want 202 (the throttle is per account)", st)
	}
	e.clock.Advance(20 * time.Minute)
	if st, _, _ := e.mastoUpload(t, "tk", "v.mp4", "video/mp4"); st != http.StatusAccepted {
		t.Fatalf("next window: got %d, want 202", st)
	}
}

// TestMastodonMediaPolls checks processing answers: by default one 206
// before 200; with no polls configured the first read is already 200.
func TestMastodonMediaPolls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		polls int
		want  []int
	}{
		{"default", -1, []int{http.StatusPartialContent, http.StatusOK, http.StatusOK}},
		{"first poll ready", 0, []int{http.StatusOK, http.StatusOK}},
		{"two polls", 2, []int{http.StatusPartialContent, http.StatusPartialContent, http.StatusOK}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "7", Handle: "bob", AccessToken: "tk"})
			if tc.polls >= 0 {
				e.sim.SetMastodonMediaPolls(tc.polls)
			}
			st, m, _ := e.mastoUpload(t, "tk", "v.mp4", "video/mp4")
			if st != http.StatusAccepted || m["url"] != nil {
				t.Fatalf("upload: got %d %v, want 202 with url null", st, m)
			}
			for i, want := range tc.want {
				st, m, _ := e.mastoCall(t, http.MethodGet, "/api/v1/media/"+m["id"].(string), "tk", "", nil)
				if st != want || (st == http.StatusOK) != (m["url"] != nil) {
					t.Fatalf("poll %d: got %d url %v, want %d (with a url when 200)", i+1, st, m["url"], want)
				}
			}
		})
	}
}
