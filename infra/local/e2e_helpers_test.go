package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/posse-dev/posse/infra/local/devstack"
)

// apiClient is devstack.Client failing the test on errors.
type apiClient struct {
	t      *testing.T
	api    string // http://127.0.0.1:<port>/v1
	key    string
	simURL string
}

func (c apiClient) dc() devstack.Client {
	return devstack.Client{API: c.api, Key: c.key, SimURL: c.simURL}
}

// call sends a JSON request and returns the status and body.
func (c apiClient) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	code, b, err := c.dc().Call(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return code, b
}

// must calls and fails the test unless the status is want; it decodes the
// answer into out when out is not nil.
func (c apiClient) must(want int, method, path string, body, out any) {
	c.t.Helper()
	if err := c.dc().Must(want, method, path, body, out); err != nil {
		c.t.Fatal(err)
	}
}

// stopAtCallback follows redirects up to POSSE's callback.
var stopAtCallback = devstack.StopAtCallback

// connectOAuth runs the OAuth connect flow for platform p as person user.
func (c apiClient) connectOAuth(p, user string) *http.Response {
	c.t.Helper()
	resp, err := c.dc().ConnectOAuth(p, user)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// connectionID is the connectionId a callback redirected with, or "".
func connectionID(resp *http.Response) string { return devstack.ConnectionID(resp) }

// seedSimAccount tells the simulator about an account (manual platforms).
func (c apiClient) seedSimAccount(a map[string]string) {
	c.t.Helper()
	if err := c.dc().SeedSimAccount(a); err != nil {
		c.t.Fatal(err)
	}
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
