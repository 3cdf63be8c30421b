package platformsim_test

// Helpers shared by the simulator's tests.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
)

// simStart is where the simulator's clock stands in env tests.
var simStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// env is a simulator behind a test server, with a manual clock.
type env struct {
	sim   *simtest.Sim
	clock *platformsim.ManualClock
}

func newEnv(t *testing.T, clients map[string]platformsim.Client) *env {
	t.Helper()
	clock := platformsim.NewManualClock(simStart)
	return &env{sim: simtest.Start(t, simtest.Options{Now: clock.Now, Clients: clients}), clock: clock}
}

// startSim starts a simulator on the wall clock and returns it with a
// client that does not follow redirects.
func startSim(t *testing.T) (*simtest.Sim, *http.Client) {
	t.Helper()
	sim := simtest.Start(t, simtest.Options{})
	return sim, sim.NoRedirectClient()
}

// decodeJSON decodes resp's JSON body into a map and closes it.
func decodeJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// noRedirect does not follow redirects, so tests can read them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize opens an authorize page and returns the query of the redirect
// it answers with.
func (e *env) authorize(t *testing.T, path string, q url.Values) url.Values {
	t.Helper()
	resp, err := noRedirect.Get(e.sim.URL + path + "?" + q.Encode())
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
func (e *env) call(t *testing.T, method, path string, form url.Values, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.sim.URL+path, body)
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

// bearerHeader is an Authorization header.
func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// s256 is the PKCE S256 challenge of verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// str reads a string field of a decoded answer.
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// graphCode reads the code of a Graph error answer.
func graphCode(m map[string]any) (code, subcode float64) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(float64)
	subcode, _ = e["error_subcode"].(float64)
	return code, subcode
}
