package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
)

// fuzzTimeout bounds the schemathesis run (it takes about a minute and a
// half on two shared cores).
const fuzzTimeout = 6 * time.Minute

// schemathesisBinary finds `st`: $POSSE_SCHEMATHESIS, else .venv/bin/st in
// the first parent folder that has one (make venv installs it from
// infra/local/requirements.txt), else st on PATH.
func schemathesisBinary() (string, error) {
	if p := os.Getenv("POSSE_SCHEMATHESIS"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".venv", "bin", "st")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if p, err := exec.LookPath("st"); err == nil {
		return p, nil
	}
	return "", errors.New("schemathesis (st) not found: run `make venv` (it installs infra/local/requirements.txt into .venv) or set POSSE_SCHEMATHESIS")
}

// TestAPIFuzz runs schemathesis, a property-based API tester no one here
// wrote, against the OpenAPI document the local stack serves, on the real
// api bootstrap under the RIE: every operation, with the printed site's key
// (the admin key for admin routes) and real ids of that site's resources,
// a fixed seed and a few dozen examples per operation (see
// testdata/fuzz/schemathesis.toml). It fails on any 5xx and any answer the
// document does not describe: status code, content type, headers, schema.
func TestAPIFuzz(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	st, err := schemathesisBinary()
	if err != nil {
		if mototest.Required() {
			t.Fatalf("schemathesis is required (POSSE_INTEGRATION=1): %v", err)
		}
		t.Skipf("API fuzzing skipped: %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	config, hooks := filepath.Join(dir, "schemathesis.toml"), filepath.Join(dir, "hooks.py")
	bin := command(t)
	lambdaenvtest.RIE(t)
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "1",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", t.TempDir())
	defer l.stop(t)
	api, simURL := l.info["API URL"], l.info["Simulator"]
	a := apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}
	admin := apiClient{t: t, api: api, key: l.info["Admin key"], simURL: simURL}
	ids := seedSiteResources(t, a, admin, l.info["Site id"], simURL)
	// The admin operations work on a site of their own: revoking its keys
	// (GET .../keys links to DELETE .../keys/{keyId}) leaves the key the
	// site operations use alone.
	var adminSite struct{ ID string }
	admin.must(201, "POST", "/sites", map[string]string{"name": "Fuzzed by admin", "timezone": "UTC", "returnUrl": api + "/health"}, &adminSite)
	admin.must(201, "POST", "/sites/"+adminSite.ID+"/keys", map[string]string{"name": "to revoke"}, nil)

	// The base URL is loopback, and testdata/fuzz/hooks.py moves every other
	// host schemathesis puts in a body to 127.0.0.1:9: the run calls nothing
	// off this machine, directly or through the functions.
	origin := strings.TrimSuffix(api, "/v1")
	if !strings.HasPrefix(origin, "http://127.0.0.1:") {
		t.Fatalf("API URL %q is not on 127.0.0.1", api)
	}
	reports := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
	defer cancel()
	args := []string{"--config-file", config, "run", origin + "/v1/openapi.json",
		"--url", origin, "--no-color", "--report", "junit", "--report-dir", reports}
	// Exploring beyond the fixed run: another seed, more examples.
	if v := os.Getenv("POSSE_FUZZ_SEED"); v != "" {
		args = append(args, "--seed", v)
	}
	if v := os.Getenv("POSSE_FUZZ_MAX_EXAMPLES"); v != "" {
		args = append(args, "--max-examples", v)
	}
	cmd := exec.CommandContext(ctx, st, args...)
	cmd.Dir = reports // schemathesis keeps its state (.hypothesis) in the working folder
	cmd.Env = append(os.Environ(),
		"POSSE_FUZZ_SITE_KEY="+l.info["Site API key"], "POSSE_FUZZ_ADMIN_KEY="+l.info["Admin key"],
		"POSSE_FUZZ_SITE_ID="+adminSite.ID, "POSSE_FUZZ_CONNECTION_ID="+ids["connection"],
		"POSSE_FUZZ_TARGET_ID="+ids["target"], "POSSE_FUZZ_DELIVERY_ID="+ids["delivery"],
		"POSSE_FUZZ_SCHEDULE_ID="+ids["schedule"], "POSSE_FUZZ_WEBHOOK_ID="+ids["webhook"],
		"POSSE_FUZZ_EVENT_ID="+ids["event"], "POSSE_FUZZ_POST_ID="+ids["post"],
		"POSSE_FUZZ_HOOKS="+hooks, "NO_COLOR=1", "SCHEMATHESIS_TELEMETRY=false", "HOME="+reports)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	text := string(out)
	if ctx.Err() != nil {
		t.Fatalf("schemathesis did not finish within %v:\n%s", fuzzTimeout, tail(text, 200))
	}
	tested, generated := fuzzSummary(text)
	if i := strings.LastIndex(text, " SUMMARY "); i >= 0 {
		t.Logf("schemathesis summary:\n%s", text[i:])
	}
	t.Logf("schemathesis: %s operations tested, %s test cases generated, in %v", tested, generated, took.Round(time.Second))
	if err != nil {
		t.Fatalf("schemathesis found problems (exit %v):\n%s", err, tail(text, 400))
	}
	if tested == "" || tested == "0" {
		t.Fatalf("schemathesis tested no operation:\n%s", tail(text, 100))
	}
	// The site key still works: the run tested the site operations with it
	// to the end.
	if code, body := a.call("GET", "/site", nil); code != 200 {
		t.Errorf("GET /v1/site with the key schemathesis used: got %d %s, want 200", code, body)
	}
	// hooks.py worked: every webhook endpoint the run left is on loopback.
	var hooksLeft struct{ Items []struct{ URL string } }
	a.must(200, "GET", "/webhooks?limit=100", nil, &hooksLeft)
	for _, h := range hooksLeft.Items {
		if u, err := url.Parse(h.URL); err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
			t.Errorf("webhook endpoint %q left by the run is not on loopback", h.URL)
		}
	}
	t.Logf("%d webhook endpoints left by the run, checked to be on loopback", len(hooksLeft.Items))
}

var (
	fuzzTested    = regexp.MustCompile(`(?m)^\s*Tested: (\d+)`)
	fuzzGenerated = regexp.MustCompile(`(?m)^\s*(\d+) generated`)
)

// fuzzSummary reads the operations tested and the test cases generated
// from schemathesis's summary.
func fuzzSummary(out string) (tested, generated string) {
	if m := fuzzTested.FindStringSubmatch(out); m != nil {
		tested = m[1]
	}
	if m := fuzzGenerated.FindStringSubmatch(out); m != nil {
		generated = m[1]
	}
	return tested, generated
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
