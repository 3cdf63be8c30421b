package devstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/posse-dev/posse/infra/platformsim"
)

// Client calls the local stack's API with one key, as a CMS would, and the
// simulator's control endpoints.
type Client struct {
	API    string // http://127.0.0.1:<port>/v1
	Key    string
	SimURL string
}

// Call sends a JSON request (body nil for none) and returns the status and
// the answer's body.
func (c Client) Call(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.API+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Must calls and returns an error unless the status is want; it decodes
// the answer into out when out is not nil.
func (c Client) Must(want int, method, path string, body, out any) error {
	code, b, err := c.Call(method, path, body)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("%s %s: got %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %s: %w", method, path, b, err)
		}
	}
	return nil
}

// StopAtCallback follows the simulator's consent redirect to POSSE's
// callback and stops at the callback's own redirect to the site.
var StopAtCallback = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	last := via[len(via)-1].URL.Path
	if strings.Contains(last, "/oauth/") && strings.HasSuffix(last, "/callback") {
		return http.ErrUseLastResponse
	}
	return nil
}}

// ConnectOAuth runs the whole OAuth connect flow for platform p, approving
// as simulated person user ("" for the default one), and returns the
// callback's answer (a redirect to the site with connectionId).
func (c Client) ConnectOAuth(p, user string) (*http.Response, error) {
	var auth struct{ AuthURL string }
	if err := c.Must(200, "POST", "/connections/"+p+"/authorize", map[string]string{}, &auth); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(auth.AuthURL, c.SimURL) {
		return nil, fmt.Errorf("authorize %s: authUrl %s does not point at the simulator %s", p, auth.AuthURL, c.SimURL)
	}
	u := auth.AuthURL
	if user != "" {
		u += "&" + platformsim.SimUserParam + "=" + url.QueryEscape(user)
	}
	resp, err := StopAtCallback.Get(u)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", p, err)
	}
	resp.Body.Close()
	return resp, nil
}

// ConnectionID is the connectionId a callback redirected with, or "".
func ConnectionID(resp *http.Response) string {
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		return ""
	}
	return loc.Query().Get("connectionId")
}

// SeedSimAccount tells the simulator about an account (manual platforms).
func (c Client) SeedSimAccount(a map[string]string) error {
	b, _ := json.Marshal(a)
	resp, err := http.Post(c.SimURL+"/_sim/accounts", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("seed simulator account: HTTP %d", resp.StatusCode)
	}
	return nil
}

// RaiseSimMastodonLimits lifts the simulated instance's per-account
// statuses and media limits (300 per 3 h, 30 per 30 min) to n each, for a
// benchmark that posts faster than a real account may.
func (c Client) RaiseSimMastodonLimits(n int) error {
	b, _ := json.Marshal(map[string]int{"statuses": n, "media": n})
	req, err := http.NewRequest(http.MethodPut, c.SimURL+"/_sim/mastodon/limits", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("raise simulator Mastodon limits: HTTP %d", resp.StatusCode)
	}
	return nil
}
