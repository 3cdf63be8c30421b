package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
)

// apiClient drives the local stack's API as a CMS would, with one key.
type apiClient struct {
	t      *testing.T
	api    string // http://127.0.0.1:<port>/v1
	key    string
	simURL string
}

// call sends a JSON request and returns the status and body.
func (c apiClient) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// must calls and fails the test unless the status is want; it decodes the
// answer into out when out is not nil.
func (c apiClient) must(want int, method, path string, body, out any) {
	c.t.Helper()
	code, b := c.call(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: got %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// stopAtCallback follows the simulator's consent redirect to POSSE's
// callback and stops at the callback's own redirect to the site.
var stopAtCallback = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	last := via[len(via)-1].URL.Path
	if strings.Contains(last, "/oauth/") && strings.HasSuffix(last, "/callback") {
		return http.ErrUseLastResponse
	}
	return nil
}}

// connectOAuth runs the whole OAuth connect flow for platform p, approving
// as simulated person user ("" for the default one), and returns the
// callback's answer (a redirect to the site with connectionId).
func (c apiClient) connectOAuth(p, user string) *http.Response {
	c.t.Helper()
	var auth struct{ AuthURL, State string }
	c.must(200, "POST", "/connections/"+p+"/authorize", map[string]string{}, &auth)
	if !strings.HasPrefix(auth.AuthURL, c.simURL) {
		c.t.Fatalf("authorize %s: authUrl %s does not point at the simulator %s", p, auth.AuthURL, c.simURL)
	}
	u := auth.AuthURL
	if user != "" {
		u += "&" + platformsim.SimUserParam + "=" + url.QueryEscape(user)
	}
	resp, err := stopAtCallback.Get(u)
	if err != nil {
		c.t.Fatalf("connect %s: %v", p, err)
	}
	resp.Body.Close()
	return resp
}

// connectionID is the connectionId a callback redirected with, or "".
func connectionID(resp *http.Response) string {
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		return ""
	}
	return loc.Query().Get("connectionId")
}

// seedSimAccount tells the simulator about an account (manual platforms).
func (c apiClient) seedSimAccount(a map[string]string) {
	c.t.Helper()
	b, _ := json.Marshal(a)
	resp, err := http.Post(c.simURL+"/_sim/accounts", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		c.t.Fatalf("seed simulator account: %v %v", resp, err)
	}
	resp.Body.Close()
}

// simJSON GETs a simulator control endpoint into out.
func simJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
}

// simFault injects a simulator fault.
func simFault(t *testing.T, simURL string, f map[string]any) {
	t.Helper()
	b, _ := json.Marshal(f)
	resp, err := http.Post(simURL+"/_sim/faults", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("inject fault %v: %v %v", f, resp, err)
	}
	resp.Body.Close()
}
