package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
)

// TestLocalStackEndToEnd runs `make dev`'s command on the real template.yaml
// and drives it over HTTP as a CMS would: health, the printed key, OAuth
// connect for every OAuth platform through the real api bootstrap under the
// RIE and the simulator, manual Bluesky and Mastodon connections, and a
// check that no secret of the run reached any log.
func TestLocalStackEndToEnd(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "1",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", state)
	stopped := false
	defer func() {
		if !stopped {
			l.stop(t)
		}
	}()
	api, key, simURL := l.info["API URL"], l.info["Site API key"], l.info["Simulator"]
	if !strings.HasPrefix(key, "posse_sk_") {
		t.Fatalf("printed site key %q; stderr:\n%s", key, l.stderr.String())
	}
	secrets := []string{key, l.info["Admin key"]}

	call := func(method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, api+path, rd)
		req.Header.Set("Authorization", "Bearer "+key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	if code, body := call("GET", "/health", nil); code != 200 {
		t.Fatalf("GET /v1/health: got %d %s, want 200", code, body)
	}
	if code, body := call("GET", "/site", nil); code != 200 || !strings.Contains(string(body), l.info["Site id"]) {
		t.Fatalf("GET /v1/site with the printed key: got %d %s", code, body)
	}

	// OAuth: authorize, then follow the simulator's consent redirect to the
	// callback, and stop at the callback's redirect to the site.
	noSiteHop := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.Contains(via[len(via)-1].URL.Path, "/oauth/") && strings.HasSuffix(via[len(via)-1].URL.Path, "/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	for _, p := range []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok"} {
		code, body := call("POST", "/connections/"+p+"/authorize", map[string]string{})
		var auth struct{ AuthURL, State string }
		_ = json.Unmarshal(body, &auth)
		if code != 200 || auth.AuthURL == "" {
			t.Fatalf("authorize %s: got %d %s, want 200 with an authUrl", p, code, body)
		}
		if !strings.HasPrefix(auth.AuthURL, simURL) {
			t.Fatalf("authorize %s: authUrl %s does not point at the simulator %s", p, auth.AuthURL, simURL)
		}
		resp, err := noSiteHop.Get(auth.AuthURL)
		if err != nil {
			t.Fatalf("connect %s: %v", p, err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("connectionId") == "" {
			t.Fatalf("connect %s: callback answered %d Location %q, want a redirect with connectionId", p, resp.StatusCode, resp.Header.Get("Location"))
		}
		// The same callback again is a replay.
		replay, err := noSiteHop.Get(resp.Request.URL.String())
		if err != nil {
			t.Fatal(err)
		}
		replay.Body.Close()
		if replay.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed %s callback: got %d, want 400", p, replay.StatusCode)
		}
		secrets = append(secrets, resp.Request.URL.Query().Get("code"))
	}

	// Manual connections: accounts the simulator knows.
	appPassword, mastoToken := randomSecret(t), randomSecret(t)
	secrets = append(secrets, appPassword, mastoToken)
	for _, a := range []map[string]string{
		{"platform": "bluesky", "accountId": "did:plc:e2etestaccount", "handle": "e2e.bsky.social", "password": appPassword},
		{"platform": "mastodon", "accountId": "109", "handle": "e2e", "accessToken": mastoToken},
	} {
		b, _ := json.Marshal(a)
		resp, err := http.Post(simURL+"/_sim/accounts", "application/json", bytes.NewReader(b))
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("seed simulator account: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	if code, body := call("POST", "/connections", map[string]string{"platform": "bluesky", "handle": "e2e.bsky.social", "appPassword": appPassword}); code != 201 {
		t.Fatalf("connect bluesky: got %d %s, want 201", code, body)
	}
	if code, body := call("POST", "/connections", map[string]string{"platform": "bluesky", "handle": "e2e.bsky.social", "appPassword": "wrong-" + appPassword}); code != 422 {
		t.Fatalf("connect bluesky with a wrong password: got %d %s, want 422", code, body)
	}
	if code, body := call("POST", "/connections", map[string]string{"platform": "mastodon", "instanceUrl": simURL + "/mastodon", "accessToken": mastoToken}); code != 201 {
		t.Fatalf("connect mastodon: got %d %s, want 201", code, body)
	}

	code, body := call("GET", "/connections", nil)
	var list struct {
		Items []struct {
			Platform string `json:"platform"`
			Status   string `json:"status"`
		} `json:"items"`
	}
	_ = json.Unmarshal(body, &list)
	if code != 200 || len(list.Items) != 8 {
		t.Fatalf("GET /v1/connections: got %d with %d items (%s), want 8", code, len(list.Items), body)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(body), s) {
			t.Fatalf("the connection list shows a secret")
		}
	}

	l.stop(t)
	stopped = true
	logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
	if len(logs) == 0 {
		t.Fatal("no function logs were written")
	}
	logs = append(logs, "")
	for _, f := range logs {
		var text []byte
		if f == "" {
			text = []byte(l.stderr.String())
			f = "the runner's stderr"
		} else {
			text, _ = os.ReadFile(f)
		}
		for _, s := range secrets[1:] { // the site key itself is printed on stdout by design
			if s != "" && bytes.Contains(text, []byte(s)) {
				t.Errorf("%s contains one of the run's secrets", f)
			}
		}
		if bytes.Contains(text, []byte(key)) {
			t.Errorf("%s contains the site API key", f)
		}
	}
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(errors.New("no randomness"))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
