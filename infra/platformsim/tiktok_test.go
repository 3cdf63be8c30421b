package platformsim_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
)

func TestTikTokOAuth(t *testing.T) {
	t.Parallel()
	sim := simtest.Start(t, simtest.Options{Clients: map[string]platformsim.Client{"tiktok": {ID: "tt-key", Secret: "tt-secret"}}})
	c := sim.NoRedirectClient()
	base := sim.URL + "/tiktok/v2"
	redirect := "https://posse.example/cb/tiktok"

	authorize := func(t *testing.T) url.Values {
		t.Helper()
		q := url.Values{"client_key": {"tt-key"}, "scope": {"user.info.basic,video.publish"}, "response_type": {"code"}, "redirect_uri": {redirect}, "state": {"z"}}
		resp, err := c.Get(base + "/auth/authorize/?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: got %d, want 302", resp.StatusCode)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query()
	}
	token := func(form url.Values) (int, map[string]any) {
		resp, err := c.PostForm(base+"/oauth/token/", form)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, decodeJSON(t, resp)
	}
	codeForm := func(code, secret string) url.Values {
		return url.Values{"client_key": {"tt-key"}, "client_secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}, "redirect_uri": {redirect}}
	}
	refreshForm := func(rt string) url.Values {
		return url.Values{"client_key": {"tt-key"}, "client_secret": {"tt-secret"}, "grant_type": {"refresh_token"}, "refresh_token": {rt}}
	}

	q := authorize(t)
	if q.Get("state") != "z" || q.Get("code") == "" || q.Get("scopes") == "" {
		t.Fatalf("authorize: got %v, want code, scopes and state", q)
	}
	if st, m := token(codeForm(q.Get("code"), "wrong")); st != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("bad secret: got %d %v, want 401 invalid_client", st, m)
	}
	q = authorize(t)
	st, m := token(codeForm(q.Get("code"), "tt-secret"))
	if st != http.StatusOK || m["access_token"] == nil || m["open_id"] == nil || m["expires_in"] != float64(7200) || m["refresh_expires_in"] != float64(15552000) {
		t.Fatalf("token: got %d %v, want tokens with 2 h / 180 d lifetimes", st, m)
	}
	access, rt1 := m["access_token"].(string), m["refresh_token"].(string)
	if st, m := token(codeForm(q.Get("code"), "tt-secret")); st != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("code reuse: got %d %v, want invalid_grant", st, m)
	}

	st, m = token(refreshForm(rt1))
	if st != http.StatusOK || m["refresh_token"] == rt1 {
		t.Fatalf("refresh: got %d %v, want a rotated refresh token", st, m)
	}
	access2 := m["access_token"].(string)
	if st, m := token(refreshForm(rt1)); st != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("old refresh token: got %d %v, want invalid_grant", st, m)
	}
	if n := sim.Calls("tiktok", "token_refresh"); n != 1 {
		t.Errorf("token_refresh: got %d, want 1", n)
	}
	info := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/user/info/?fields=open_id,display_name", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if info(access) != http.StatusUnauthorized || info(access2) != http.StatusOK {
		t.Errorf("user/info: old token %d, new token %d, want 401 and 200", info(access), info(access2))
	}
	resp, err := c.PostForm(base+"/oauth/revoke/", url.Values{"client_key": {"tt-key"}, "client_secret": {"tt-secret"}, "token": {access2}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := info(access2); resp.StatusCode != http.StatusOK || st != http.StatusUnauthorized {
		t.Errorf("revoke: got %d then user/info %d, want 200 then 401", resp.StatusCode, st)
	}

	sim.AddFault(platformsim.Fault{Platform: "tiktok", Kind: platformsim.FaultAccessDenied})
	if q := authorize(t); q.Get("error") != "access_denied" {
		t.Errorf("access denied: got %v, want error=access_denied", q)
	}
	sim.AddFault(platformsim.Fault{Platform: "tiktok", Kind: platformsim.FaultInvalidGrant})
	if st, m := token(codeForm(authorize(t).Get("code"), "tt-secret")); m["error"] != "invalid_grant" {
		t.Errorf("invalid_grant fault: got %d %v, want invalid_grant", st, m)
	}
}

func TestTikTokFileUploadRules(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t)
	sim.AddAccount(platformsim.Account{Platform: "tiktok", ID: "-000x", Handle: "cr", AccessToken: "act.x"})
	post := func(path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, sim.URL+"/tiktok/v2/post/publish/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer act.x")
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, decodeJSON(t, resp)
	}
	code := func(m map[string]any) string {
		e, _ := m["error"].(map[string]any)
		s, _ := e["code"].(string)
		return s
	}
	const mb = 1 << 20
	init := func(size, chunk, count int) (int, map[string]any) {
		return post("video/init/", `{"post_info":{"title":"t","privacy_level":"SELF_ONLY"},"source_info":{"source":"FILE_UPLOAD","video_size":`+
			strconv.Itoa(size)+`,"chunk_size":`+strconv.Itoa(chunk)+`,"total_chunk_count":`+strconv.Itoa(count)+`}}`)
	}
	for _, tc := range []struct {
		name               string
		size, chunk, count int
		want               string
	}{
		{"small file in one chunk", 4 * mb, 4 * mb, 1, "ok"},
		{"small file split", 4 * mb, 2 * mb, 2, "invalid_params"},
		{"chunk under 5 MB", 20 * mb, 4 * mb, 5, "invalid_params"},
		{"count rounds down", 25 * mb, 10 * mb, 2, "ok"},
		{"count rounded up", 25 * mb, 10 * mb, 3, "invalid_params"},
		{"chunk over 64 MB", 200 * mb, 100 * mb, 2, "invalid_params"},
	} {
		if st, m := init(tc.size, tc.chunk, tc.count); code(m) != tc.want {
			t.Errorf("%s: got %d %v, want %s", tc.name, st, m, tc.want)
		}
	}
	if st, m := post("video/init/", `{"post_info":{"title":"t"},"source_info":{"source":"PULL_FROM_URL","video_url":"`+sim.URL+`/_sim/media/v.mp4"}}`); code(m) != "invalid_params" {
		t.Errorf("missing privacy_level: got %d %v, want invalid_params", st, m)
	}

	_, m := init(4096, 4096, 1)
	data, _ := m["data"].(map[string]any)
	upload, _ := data["upload_url"].(string)
	put := func(rng string, n int) int {
		req, _ := http.NewRequest(http.MethodPut, upload, strings.NewReader(strings.Repeat("x", n)))
		req.Header.Set("Content-Type", "video/mp4")
		req.Header.Set("Content-Range", rng)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := put("bytes 1-4095/4096", 4095); st != http.StatusBadRequest {
		t.Errorf("wrong range: got %d, want 400", st)
	}
	if st := put("bytes 0-4095/4096", 4096); st != http.StatusCreated {
		t.Errorf("whole file: got %d, want 201", st)
	}
	if n := len(sim.Posts("tiktok")); n != 1 {
		t.Errorf("recorded posts: got %d, want 1", n)
	}
}
