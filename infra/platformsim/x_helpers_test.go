package platformsim_test

// Helpers for the X, LinkedIn, Facebook and Instagram simulator tests,
// prefixed xlfi so they cannot collide with other platforms' test helpers.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
)

// xlfiStart is where the simulator's clock stands in these tests.
var xlfiStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// xlfiEnv is a simulator behind a test server, with a manual clock.
type xlfiEnv struct {
	sim   *platformsim.Server
	url   string
	clock *platformsim.ManualClock
}

func xlfiNew(t *testing.T, clients map[string]platformsim.Client) *xlfiEnv {
	t.Helper()
	clock := platformsim.NewManualClock(xlfiStart)
	sim := platformsim.New(platformsim.Options{Now: clock.Now, Clients: clients})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetPublicURL(srv.URL)
	return &xlfiEnv{sim: sim, url: srv.URL, clock: clock}
}

// xlfiNoRedirect does not follow redirects, so tests can read them.
var xlfiNoRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize opens an authorize page and returns the query of the redirect
// it answers with.
func (e *xlfiEnv) authorize(t *testing.T, path string, q url.Values) url.Values {
	t.Helper()
	resp, err := xlfiNoRedirect.Get(e.url + path + "?" + q.Encode())
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: got HTTP %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("authorize: bad Location %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

// call sends a request and decodes the JSON answer (nil when not JSON).
func (e *xlfiEnv) call(t *testing.T, method, path string, form url.Values, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		req.Header[k] = vs
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

// xlfiBearer is an Authorization header.
func xlfiBearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// xlfiS256 is the PKCE S256 challenge of verifier.
func xlfiS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// xlfiStr reads a string field of a decoded answer.
func xlfiStr(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// xlfiGraphCode reads the code of a Graph error answer.
func xlfiGraphCode(m map[string]any) (code, subcode float64) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(float64)
	subcode, _ = e["error_subcode"].(float64)
	return code, subcode
}
