package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/site"
)

// fakeSites is an in-memory siteStore for handler tests.
type fakeSites struct {
	mu    sync.Mutex
	sites map[string]site.Site
	keys  map[string]site.Key // by secret
	n     int
}

func newFakeSites() *fakeSites {
	return &fakeSites{sites: map[string]site.Site{}, keys: map[string]site.Key{}}
}

func (f *fakeSites) Create(_ context.Context, n site.NewSite) (site.Site, error) {
	if ps := n.Validate(); len(ps) > 0 {
		return site.Site{}, apperr.InvalidProblems(ps)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	s := site.Site{ID: "site_" + string(rune('a'+f.n)), Name: n.Name, Timezone: n.Timezone, ReturnURL: n.ReturnURL}
	f.sites[s.ID] = s
	return s, nil
}

func (f *fakeSites) Get(_ context.Context, id string) (site.Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sites[id]
	if !ok {
		return site.Site{}, apperr.NotFound("site")
	}
	return s, nil
}

func (f *fakeSites) List(context.Context, int, string) ([]site.Site, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []site.Site
	for _, s := range f.sites {
		out = append(out, s)
	}
	return out, "", nil
}

func (f *fakeSites) IssueKey(ctx context.Context, siteID, name string) (site.Key, string, error) {
	if _, err := f.Get(ctx, siteID); err != nil {
		return site.Key{}, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	secret := site.KeyPrefix + "secret" + string(rune('a'+f.n))
	k := site.Key{ID: "key_" + string(rune('a'+f.n)), SiteID: siteID, Name: name}
	f.keys[secret] = k
	return k, secret, nil
}

func (f *fakeSites) Keys(_ context.Context, siteID string) ([]site.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []site.Key
	for _, k := range f.keys {
		if k.SiteID == siteID {
			out = append(out, k)
		}
	}
	return out, nil
}

func (f *fakeSites) RevokeKey(_ context.Context, siteID, keyID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s, k := range f.keys {
		if k.ID == keyID && k.SiteID == siteID {
			now := time.Now()
			k.RevokedAt = &now
			f.keys[s] = k
			return nil
		}
	}
	return apperr.NotFound("key")
}

func (f *fakeSites) Authenticate(_ context.Context, presented string) (site.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[presented]
	if !ok || k.RevokedAt != nil {
		return site.Key{}, site.ErrUnknownKey
	}
	return k, nil
}

type fakeHealth map[string]error

func (h fakeHealth) Check(context.Context) map[string]error { return h }

const adminKey = AdminKeyPrefix + "test-admin-key"

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

type fixture struct {
	srv     *Server
	sites   *fakeSites
	siteID  string
	siteKey string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	fs := newFakeSites()
	srv := New(Deps{Sites: fs, Health: fakeHealth{"table": nil}, AdminKeySHA256: hash(adminKey), MaxBodyBytes: 1 << 20, Version: "test"})
	st, err := fs.Create(context.Background(), site.NewSite{Name: "Blog", Timezone: "Europe/Berlin", ReturnURL: "https://blog.example/back"})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := fs.IssueKey(context.Background(), st.ID, "cms")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{srv: srv, sites: fs, siteID: st.ID, siteKey: secret}
}

func (f fixture) do(method, path, key, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

type problemBody struct {
	Type   string           `json:"type"`
	Status int              `json:"status"`
	Code   string           `json:"code"`
	Detail string           `json:"detail"`
	Errors []apperr.Problem `json:"errors"`
}

func TestBadInputAnswersProblems(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		body       string
		hdr        []string
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"unknown route", "GET", "/v1/nope", f.siteKey, "", nil, 404, "route_not_found", ""},
		{"outside /v1", "GET", "/health", "", "", nil, 404, "route_not_found", ""},
		{"wrong method", "PUT", "/v1/health", "", "", nil, 405, "method_not_allowed", ""},
		{"missing key", "GET", "/v1/site", "", "", nil, 401, "missing_key", ""},
		{"not bearer", "GET", "/v1/site", "", "", []string{"Authorization", "Basic abc"}, 401, "invalid_authorization", ""},
		{"unknown key", "GET", "/v1/site", site.KeyPrefix + "unknown", "", nil, 401, "invalid_key", ""},
		{"wrong admin key", "GET", "/v1/sites", AdminKeyPrefix + "wrong", "", nil, 401, "invalid_key", ""},
		{"site key on admin route", "GET", "/v1/sites", f.siteKey, "", nil, 403, "admin_only", ""},
		{"admin key on site route", "GET", "/v1/site", adminKey, "", nil, 403, "admin_key_not_site_key", ""},
		{"malformed json", "POST", "/v1/sites", adminKey, `{"name":`, nil, 400, "invalid_request", "body"},
		{"not json", "POST", "/v1/sites", adminKey, `name=x`, nil, 400, "invalid_request", "body"},
		{"unknown field", "POST", "/v1/sites", adminKey, `{"name":"a","timezone":"UTC","returnUrl":"https://a.example","colour":"red"}`, nil, 400, "invalid_request", "colour"},
		{"wrong type", "POST", "/v1/sites", adminKey, `{"name":42}`, nil, 400, "invalid_request", "name"},
		{"two values", "POST", "/v1/sites", adminKey, `{} {}`, nil, 400, "invalid_request", "body"},
		{"empty body", "POST", "/v1/sites", adminKey, ``, nil, 400, "invalid_request", "body"},
		{"bad time zone", "POST", "/v1/sites", adminKey, `{"name":"a","timezone":"Mars/Olympus","returnUrl":"https://a.example"}`, nil, 400, "invalid_request", "timezone"},
		{"bad return url", "POST", "/v1/sites", adminKey, `{"name":"a","timezone":"UTC","returnUrl":"ftp://a"}`, nil, 400, "invalid_request", "returnUrl"},
		{"missing name", "POST", "/v1/sites", adminKey, `{"timezone":"UTC","returnUrl":"https://a.example"}`, nil, 400, "invalid_request", "name"},
		{"wrong content type", "POST", "/v1/sites", adminKey, `{}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", ""},
		{"body over 1 MiB", "POST", "/v1/sites", adminKey, big, nil, 413, "body_too_large", ""},
		{"unknown site", "GET", "/v1/sites/site_nope", adminKey, "", nil, 404, "not_found", ""},
		{"key for unknown site", "POST", "/v1/sites/site_nope/keys", adminKey, `{"name":"x"}`, nil, 404, "not_found", ""},
		{"bad limit", "GET", "/v1/sites?limit=0", adminKey, "", nil, 400, "invalid_request", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := f.do(tt.method, tt.path, tt.key, tt.body, tt.hdr...)
			if w.Code != tt.wantStatus {
				t.Fatalf("status: got %d, want %d (body %s)", w.Code, tt.wantStatus, w.Body.String())
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type: got %q, want application/problem+json", ct)
			}
			var p problemBody
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body %q: %v", w.Body.String(), err)
			}
			if p.Status != tt.wantStatus || p.Code != tt.wantCode || p.Type != "urn:posse:problem:"+tt.wantCode {
				t.Errorf("problem: got status %d code %q type %q, want %d %q", p.Status, p.Code, p.Type, tt.wantStatus, tt.wantCode)
			}
			if tt.wantField != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tt.wantField) {
				t.Errorf("problem errors: got %+v, want the first naming %q", p.Errors, tt.wantField)
			}
			if tt.wantStatus == 405 && w.Header().Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
		})
	}
	if n := len(f.sites.sites); n != 1 {
		t.Errorf("sites after rejected requests: got %d, want 1 (nothing half-written)", n)
	}
}

func TestSiteAndKeyLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.do("POST", "/v1/sites", adminKey, `{"name":"News","timezone":"America/New_York","returnUrl":"https://news.example/posse"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("create site: got %d %s, want 201", w.Code, w.Body.String())
	}
	var st site.Site
	_ = json.Unmarshal(w.Body.Bytes(), &st)
	if st.ID == "" || st.Timezone != "America/New_York" || w.Header().Get("Location") != "/v1/sites/"+st.ID {
		t.Fatalf("create site: got %+v (Location %q)", st, w.Header().Get("Location"))
	}
	w = f.do("POST", "/v1/sites/"+st.ID+"/keys", adminKey, `{"name":"wordpress"}`)
	var issued struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &issued)
	if w.Code != http.StatusCreated || !strings.HasPrefix(issued.Key, site.KeyPrefix) {
		t.Fatalf("issue key: got %d %s, want 201 with a posse_sk_ key", w.Code, w.Body.String())
	}
	w = f.do("GET", "/v1/site", issued.Key, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), st.ID) {
		t.Fatalf("own site with new key: got %d %s, want 200 naming %s", w.Code, w.Body.String(), st.ID)
	}
	w = f.do("GET", "/v1/sites/"+st.ID+"/keys", adminKey, "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), issued.Key) {
		t.Fatalf("list keys: got %d %s; must be 200 and never show the key", w.Code, w.Body.String())
	}
	if w = f.do("DELETE", "/v1/sites/"+st.ID+"/keys/"+issued.ID, adminKey, ""); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: got %d, want 204", w.Code)
	}
	if w = f.do("GET", "/v1/site", issued.Key, ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("revoked key: got %d, want 401", w.Code)
	}
	if w = f.do("GET", "/v1/site", f.siteKey, ""); w.Code != http.StatusOK || strings.Contains(w.Body.String(), st.ID) {
		t.Fatalf("other site's key: got %d %s, want 200 for its own site only", w.Code, w.Body.String())
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	checks := fakeHealth{"table": nil, "dispatchQueue": errors.New("connection refused")}
	srv := New(Deps{Sites: newFakeSites(), Health: checks, Version: "v9", Now: func() time.Time { return now }, HealthCacheTTL: time.Minute})
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/v1/health", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("degraded health: got %d, want 503", w.Code)
	}
	var body struct {
		Status  string            `json:"status"`
		Version string            `json:"version"`
		Checks  map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if body.Status != "degraded" || body.Version != "v9" || body.Checks["dispatchQueue"] != "unavailable" || body.Checks["table"] != "ok" {
		t.Fatalf("health body: got %+v", body)
	}
	if strings.Contains(w.Body.String(), "connection refused") {
		t.Fatalf("health leaks the internal error: %s", w.Body.String())
	}
	delete(checks, "dispatchQueue")
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/v1/health", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("health within the cache TTL: got %d, want the cached 503", w.Code)
	}
	now = now.Add(2 * time.Minute)
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/v1/health", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("health after the TTL: got %d, want 200", w.Code)
	}
}

func TestInternalErrorsAreNotSent(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/x", nil)
	writeError(w, r, New(Deps{}).d.Logger, errors.New("dynamodb: secret table name exploded"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "exploded") {
		t.Fatalf("internal error: got %d %s, want 500 without the cause", w.Code, w.Body.String())
	}
}
