package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/httpapi"
)

// isolationDoc is the part of the OpenAPI document the isolation matrix
// reads: every operation, its security and path parameters, whether it
// needs a body, and the statuses it documents.
type isolationDoc struct {
	Security []map[string][]string                 `json:"security"`
	Paths    map[string]map[string]json.RawMessage `json:"paths"`
}

type isolationParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type isolationOp struct {
	method, path string
	security     []map[string][]string
	params       []isolationParam // path parameters, by the key isolationFixtures uses
	bodyRequired bool
	statuses     map[string]bool
}

// key is how isolationFixtures names a path parameter: the component name
// of a $ref parameter (ConnectionId, TargetId, ...: they share the name
// "id"), else the parameter's own name.
func (p isolationParam) key() string {
	if p.Ref != "" {
		return p.Ref[strings.LastIndex(p.Ref, "/")+1:]
	}
	return p.Name
}

// isolationOps lists the document's operations, resolving $ref parameters.
func isolationOps(t *testing.T, raw []byte) []isolationOp {
	t.Helper()
	var doc isolationDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var comps struct {
		Components struct {
			Parameters map[string]isolationParam `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &comps); err != nil {
		t.Fatalf("openapi.json components: %v", err)
	}
	resolve := func(p isolationParam) isolationParam {
		if p.Ref == "" {
			return p
		}
		c, ok := comps.Components.Parameters[p.key()]
		if !ok {
			t.Fatalf("openapi.json: parameter %s is not in components", p.Ref)
		}
		c.Ref = p.Ref
		return c
	}
	var ops []isolationOp
	for path, item := range doc.Paths {
		var shared []isolationParam
		if b, ok := item["parameters"]; ok {
			if err := json.Unmarshal(b, &shared); err != nil {
				t.Fatalf("openapi.json %s parameters: %v", path, err)
			}
		}
		for method, b := range item {
			if method == "parameters" {
				continue
			}
			var o struct {
				Security    *[]map[string][]string     `json:"security"`
				Parameters  []isolationParam           `json:"parameters"`
				RequestBody *struct{ Required bool }   `json:"requestBody"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(b, &o); err != nil {
				t.Fatalf("openapi.json %s %s: %v", method, path, err)
			}
			op := isolationOp{method: strings.ToUpper(method), path: path, security: doc.Security, statuses: map[string]bool{}}
			if o.Security != nil {
				op.security = *o.Security
			}
			for _, p := range append(append([]isolationParam(nil), shared...), o.Parameters...) {
				if p = resolve(p); p.In == "path" {
					op.params = append(op.params, p)
				}
			}
			op.bodyRequired = o.RequestBody != nil && o.RequestBody.Required
			for code := range o.Responses {
				op.statuses[code] = true
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].path != ops[j].path {
			return ops[i].path < ops[j].path
		}
		return ops[i].method < ops[j].method
	})
	return ops
}

// schemes are the security scheme names an operation accepts; none means
// public.
func (o isolationOp) schemes() []string {
	var out []string
	for _, req := range o.security {
		for name := range req {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// isolationFixture says what to put in a path parameter: an id of a
// resource site A owns (idOf), or a value that names no site's resource
// (notAnID, e.g. a platform name).
type isolationFixture struct {
	idOf    string // the key of site A's resource in the ids map
	notAnID string
}

// isolationFixtures maps every path parameter of the document (by
// isolationParam.key) to its fixture. A parameter missing here fails the
// test: a new route with a new kind of id needs a line here, and a resource
// of site A created in TestSiteIsolationMatrix.
var isolationFixtures = map[string]isolationFixture{
	"SiteId":       {idOf: "site"},
	"keyId":        {idOf: "key"},
	"ConnectionId": {idOf: "connection"},
	"TargetId":     {idOf: "target"},
	"DeliveryId":   {idOf: "delivery"},
	"ScheduleId":   {idOf: "schedule"},
	"WebhookId":    {idOf: "webhook"},
	"EventId":      {idOf: "event"},
	"postId":       {idOf: "post"},
	"Platform":     {notAnID: "mastodon"},
}

// isolationBodies are the request bodies sent where the document requires
// one: valid for site A, so that only the site scope can refuse site B.
// An operation that requires a body and is missing here fails the test.
var isolationBodies = map[string]any{
	"PATCH /v1/sites/{siteId}":                  map[string]any{"ai": map[string]any{"monthlyBudgetUsd": 1}},
	"POST /v1/sites/{siteId}/keys":              map[string]any{"name": "isolation"},
	"PATCH /v1/targets/{id}":                    map[string]any{"name": "renamed by another site"},
	"POST /v1/deliveries/{id}/resolve":          map[string]any{"url": "https://blog.example/resolved", "platformPostId": "1"},
	"PATCH /v1/schedules/{id}":                  map[string]any{"customMessage": "changed by another site"},
	"PATCH /v1/webhooks/{id}":                   map[string]any{"enabled": false},
	"POST /v1/connections/{platform}/authorize": map[string]any{},
}

// TestSiteIsolationMatrix is generated from the served OpenAPI document:
// for every operation that takes an id, another site's key gets 404 (not
// 403, not 200) on site A's real resource, and every admin-only operation
// refuses a site key with a documented 401 or 403. A documented path
// parameter with no fixture fails the test, so a new route is covered by
// adding one line, or fails until someone does.
func TestSiteIsolationMatrix(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "1",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", t.TempDir())
	defer l.stop(t)
	api, simURL := l.info["API URL"], l.info["Simulator"]
	a := apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}
	admin := apiClient{t: t, api: api, key: l.info["Admin key"], simURL: simURL}

	// Site B, with its own key.
	var siteB struct{ ID string }
	admin.must(201, "POST", "/sites", map[string]string{"name": "Site B", "timezone": "UTC", "returnUrl": api + "/health"}, &siteB)
	var keyB struct{ Key string }
	admin.must(201, "POST", "/sites/"+siteB.ID+"/keys", map[string]string{"name": "isolation"}, &keyB)
	b := apiClient{t: t, api: api, key: keyB.Key, simURL: simURL}

	ids := seedSiteResources(t, a, admin, l.info["Site id"], simURL)

	raw := getOpenAPI(t, api)
	ops := isolationOps(t, raw)
	var withID, adminOnly int
	for _, op := range ops {
		name := op.method + " " + op.path
		schemes := op.schemes()
		if len(schemes) == 0 {
			continue // public: health, the document, OAuth callbacks
		}
		path, takesID, ok := isolationPath(t, op, ids)
		if !ok {
			continue
		}
		body := isolationBodies[name]
		switch {
		case slices.Equal(schemes, []string{"adminKey"}):
			// The key is checked before the body is read: any body will do.
			adminOnly++
			for who, c := range map[string]apiClient{"site A's key": a, "site B's key": b} {
				code, ct, got := isolationCall(t, c, op.method, path, body)
				if (code != 401 && code != 403) || !op.statuses[strconv.Itoa(code)] {
					t.Errorf("%s with %s: got %d %s, want 401 or 403 as documented", name, who, code, got)
				}
				checkProblem(t, name+" with "+who, code, ct, got)
			}
		case slices.Equal(schemes, []string{"siteKey"}):
			if !takesID {
				continue
			}
			if _, ok := isolationBodies[name]; !ok && op.bodyRequired {
				t.Errorf("%s requires a body and isolationBodies has none: add one valid for site A", name)
				continue
			}
			withID++
			if !op.statuses["404"] {
				t.Errorf("%s takes an id but does not document 404", name)
			}
			code, ct, got := isolationCall(t, b, op.method, path, body)
			if code != 404 {
				t.Errorf("%s on site A's resource with site B's key: got %d %s, want 404", name, code, got)
			}
			checkProblem(t, name+" with site B's key", code, ct, got)
			// The id is real: site A reads it (reads only; writes stay
			// untried so the resources survive for the next operation).
			if op.method == "GET" {
				if code, got := a.call(op.method, path, nil); code != 200 {
					t.Errorf("%s with site A's own key: got %d %s, want 200 (the fixture is not a real id)", name, code, got)
				}
			}
		default:
			t.Errorf("%s: security schemes %v, want siteKey or adminKey: teach the matrix the new scheme", name, schemes)
		}
	}
	// Nothing site B did changed site A's resources.
	for _, p := range []string{"/targets/" + ids["target"], "/webhooks/" + ids["webhook"], "/schedules/" + ids["schedule"],
		"/connections/" + ids["connection"], "/deliveries/" + ids["delivery"]} {
		code, got := a.call("GET", p, nil)
		if code != 200 || strings.Contains(string(got), "another site") {
			t.Errorf("GET %s by site A after site B's calls: got %d %s", p, code, got)
		}
	}
	if withID == 0 || adminOnly == 0 {
		t.Fatalf("matrix covered %d operations with an id and %d admin-only operations; want some of each", withID, adminOnly)
	}
	t.Logf("isolation matrix: %d site operations with an id answered 404 to another site, %d admin-only operations refused site keys (of %d operations)", withID, adminOnly, len(ops))
}

// seedSiteResources creates one resource of each kind a path parameter
// names under the site of c (site id siteID) and returns their ids by
// isolationFixture.idOf: a Mastodon connection, two targets, a post with
// two variants dispatched to them (its first delivery), a schedule two
// days ahead, a webhook and the event of its test ping; and the site's
// first key.
func seedSiteResources(t *testing.T, a, admin apiClient, siteID, simURL string) map[string]string {
	t.Helper()
	ids := map[string]string{"site": siteID}
	var keys struct{ Items []struct{ ID string } }
	admin.must(200, "GET", "/sites/"+ids["site"]+"/keys", nil, &keys)
	if len(keys.Items) == 0 {
		t.Fatalf("site %s has no key to list", siteID)
	}
	ids["key"] = keys.Items[0].ID
	tok := randomSecret(t)
	a.seedSimAccount(map[string]string{"platform": "mastodon", "accountId": "4242", "handle": "isolation", "accessToken": tok})
	var created struct{ ID string }
	a.must(201, "POST", "/connections", map[string]string{"platform": "mastodon", "instanceUrl": simURL + "/mastodon", "accessToken": tok}, &created)
	ids["connection"] = created.ID
	var targets []string
	for _, name := range []string{"isolation", "isolation two"} {
		a.must(201, "POST", "/targets", map[string]any{"connectionId": ids["connection"], "name": name}, &created)
		targets = append(targets, created.ID)
	}
	ids["target"] = targets[0]
	// A post with two variants, so that its variant comparison exists too.
	ids["post"] = "isolation-post"
	var dispatched struct{ Deliveries []struct{ ID string } }
	a.must(202, "POST", "/dispatch", map[string]any{
		"post":      map[string]any{"postId": ids["post"], "revision": "1", "title": "Isolation", "url": "https://blog.example/isolation", "body": "Body."},
		"targetIds": targets,
		"variants":  []map[string]string{{"customMessage": "Variant one"}, {"customMessage": "Variant two"}},
	}, &dispatched)
	if len(dispatched.Deliveries) != 2 {
		t.Fatalf("dispatch: got %d deliveries, want 2", len(dispatched.Deliveries))
	}
	ids["delivery"] = dispatched.Deliveries[0].ID
	a.must(201, "POST", "/schedules", map[string]any{
		"post":         map[string]any{"postId": "isolation-later", "revision": "1", "title": "Later", "url": "https://blog.example/later"},
		"targetIds":    []string{ids["target"]},
		"scheduledFor": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339),
	}, &created)
	ids["schedule"] = created.ID
	a.must(201, "POST", "/webhooks", map[string]any{"url": simURL + "/_sim/webhooks/isolation", "eventTypes": []string{"delivery.sent"}}, &created)
	ids["webhook"] = created.ID
	var ping struct{ EventID string }
	a.must(202, "POST", "/webhooks/"+ids["webhook"]+"/test", nil, &ping)
	ids["event"] = ping.EventID

	return ids
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// isolationPath fills op's path parameters from the fixtures; takesID says
// whether one of them is a resource id. It fails the test for a parameter
// without a fixture.
func isolationPath(t *testing.T, op isolationOp, ids map[string]string) (path string, takesID, ok bool) {
	t.Helper()
	byName := map[string]isolationParam{}
	for _, p := range op.params {
		byName[p.Name] = p
	}
	ok = true
	path = pathParam.ReplaceAllStringFunc(op.path, func(m string) string {
		name := m[1 : len(m)-1]
		p, documented := byName[name]
		if !documented {
			t.Errorf("%s %s: path parameter %s is not documented", op.method, op.path, name)
			ok = false
			return m
		}
		f, known := isolationFixtures[p.key()]
		if !known {
			t.Errorf("%s %s: no isolation fixture for path parameter %s (%s): add it to isolationFixtures and create one under site A", op.method, op.path, name, p.key())
			ok = false
			return m
		}
		if f.notAnID != "" {
			return f.notAnID
		}
		takesID = true
		return ids[f.idOf]
	})
	return strings.TrimPrefix(path, "/v1"), takesID, ok
}

// getOpenAPI fetches the document the stack serves.
func getOpenAPI(t *testing.T, api string) []byte {
	t.Helper()
	code, raw, err := (apiClient{t: t, api: api}).dc().Call("GET", "/openapi.json", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /v1/openapi.json: %d %v", code, err)
	}
	return raw
}

// checkProblem fails unless a refusal is a problem document with a code.
func checkProblem(t *testing.T, name string, code int, contentType string, body []byte) {
	t.Helper()
	if code < 400 {
		return
	}
	if contentType != "application/problem+json" {
		t.Errorf("%s: %d answered as %q, want application/problem+json", name, code, contentType)
	}
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != code || p.Code == "" {
		t.Errorf("%s: %d answer is not a problem document: %s", name, code, body)
	}
}

// isolationCall sends a JSON request with c's key and returns the status,
// the Content-Type and the body.
func isolationCall(t *testing.T, c apiClient, method, path string, body any) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestIsolationFixturesCoverDocument checks, without a stack, that every
// path parameter of the embedded document has an isolation fixture and
// every operation that requires a body and takes an id has one: plain
// `go test` catches a new route before the matrix runs.
func TestIsolationFixturesCoverDocument(t *testing.T) {
	t.Parallel()
	ids := map[string]string{}
	for _, f := range isolationFixtures {
		if f.idOf != "" {
			ids[f.idOf] = "id_of_" + f.idOf
		}
	}
	for _, op := range isolationOps(t, httpapi.OpenAPI()) {
		_, takesID, ok := isolationPath(t, op, ids)
		if ok && takesID && op.bodyRequired && slices.Equal(op.schemes(), []string{"siteKey"}) {
			if _, ok := isolationBodies[op.method+" "+op.path]; !ok {
				t.Errorf("%s %s requires a body and isolationBodies has none", op.method, op.path)
			}
		}
	}
}
