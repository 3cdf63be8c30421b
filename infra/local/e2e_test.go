package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
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
// check that no secret of the run reached any log line or table item.
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

	c := apiClient{t: t, api: api, key: key, simURL: simURL}
	call := c.call

	if code, body := call("GET", "/health", nil); code != 200 {
		t.Fatalf("GET /v1/health: got %d %s, want 200", code, body)
	}
	if code, body := call("GET", "/site", nil); code != 200 || !strings.Contains(string(body), l.info["Site id"]) {
		t.Fatalf("GET /v1/site with the printed key: got %d %s", code, body)
	}

	// OAuth: authorize, follow the simulator's consent to the callback, which
	// redirects to the site with the new connection's id.
	for _, p := range []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok"} {
		resp := c.connectOAuth(p, "")
		if connectionID(resp) == "" {
			t.Fatalf("connect %s: callback answered %d Location %q, want a redirect with connectionId", p, resp.StatusCode, resp.Header.Get("Location"))
		}
		// The same callback again is a replay.
		replay, err := stopAtCallback.Get(resp.Request.URL.String())
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
	c.seedSimAccount(map[string]string{"platform": "bluesky", "accountId": "did:plc:e2etestaccount", "handle": "e2e.bsky.social", "password": appPassword})
	c.seedSimAccount(map[string]string{"platform": "mastodon", "accountId": "109", "handle": "e2e", "accessToken": mastoToken})
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

	// Every credential of the run (the simulators', the sealed ones and
	// their data keys), in no table item and no log line.
	scanLogs := atRest(t, l, state, append(secrets, key)...)
	l.stop(t)
	stopped = true
	scanLogs()
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
