package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// startAPI deploys template.yaml into moto and runs the api function's real
// bootstrap under the RIE with the environment the template gives it.
func startAPI(t *testing.T) (*lambdaenv.Pool, string) {
	t.Helper()
	srv := mototest.Server(t)
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	adminKey := "posse_admin_" + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(adminKey))
	st := lambdaenvtest.Deploy(t, moto.Config(srv.Endpoint()), map[string]string{"AdminKeySha256": hex.EncodeToString(sum[:])})
	fn := lambdaenvtest.Function(t, st, "ApiFunction")
	pool := lambdaenvtest.Start(t, lambdaenv.Config{
		Name:      fn.Name,
		Bootstrap: lambdaenvtest.Build(t, "ApiFunction"),
		Instances: 1,
		Timeout:   fn.Timeout,
		MemoryMB:  fn.MemoryMB,
		Env:       append(fn.EnvironmentList(), moto.Env(srv.Endpoint())...),
	})
	return pool, adminKey
}

type response struct {
	events.APIGatewayV2HTTPResponse
	problem struct {
		Code   string `json:"code"`
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
}

func invoke(t *testing.T, pool *lambdaenv.Pool, payload []byte) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := pool.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var r response
	if err := json.Unmarshal(out, &r.APIGatewayV2HTTPResponse); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	if strings.HasPrefix(r.Headers["Content-Type"], "application/problem+json") {
		_ = json.Unmarshal([]byte(r.Body), &r.problem)
	}
	return r
}

// event returns testdata/<name>.json with the admin key filled in.
func event(t *testing.T, name, adminKey string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), "ADMIN_KEY", adminKey))
}

// request builds an API Gateway v2 event from health.json's shape.
func request(t *testing.T, method, path, key, body string) []byte {
	t.Helper()
	var e events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(event(t, "health", ""), &e); err != nil {
		t.Fatal(err)
	}
	e.RawPath, e.RequestContext.HTTP.Method, e.RequestContext.HTTP.Path = path, method, path
	e.PathParameters = map[string]string{"proxy": strings.TrimPrefix(path, "/v1/")}
	if key != "" {
		e.Headers["authorization"] = "Bearer " + key
	}
	if body != "" {
		e.Body = body
		e.Headers["content-type"] = "application/json"
	}
	b, _ := json.Marshal(e)
	return b
}

func TestBootstrapUnderRIE(t *testing.T) {
	pool, adminKey := startAPI(t)

	fixtures := []struct {
		file       string
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"health", 200, "", ""},
		{"unknown-route", 404, "route_not_found", ""},
		{"wrong-method", 405, "method_not_allowed", ""},
		{"site-no-key", 401, "missing_key", ""},
		{"create-site-malformed", 400, "invalid_request", "body"},
	}
	for _, f := range fixtures {
		t.Run(f.file, func(t *testing.T) {
			r := invoke(t, pool, event(t, f.file, adminKey))
			if r.StatusCode != f.wantStatus {
				t.Fatalf("status: got %d, want %d (body %s)", r.StatusCode, f.wantStatus, r.Body)
			}
			if r.problem.Code != f.wantCode {
				t.Errorf("problem code: got %q, want %q", r.problem.Code, f.wantCode)
			}
			if f.wantField != "" && (len(r.problem.Errors) == 0 || r.problem.Errors[0].Field != f.wantField) {
				t.Errorf("problem errors: got %+v, want the field %q named", r.problem.Errors, f.wantField)
			}
		})
	}

	t.Run("health reports the table and queue", func(t *testing.T) {
		r := invoke(t, pool, event(t, "health", adminKey))
		var h struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}
		_ = json.Unmarshal([]byte(r.Body), &h)
		if h.Status != "ok" || h.Checks["table"] != "ok" || h.Checks["dispatchQueue"] != "ok" {
			t.Fatalf("health: got %s, want ok for table and dispatchQueue", r.Body)
		}
	})

	t.Run("admin creates a site and a key that authenticates", func(t *testing.T) {
		r := invoke(t, pool, request(t, "POST", "/v1/sites", adminKey, `{"name":"Demo","timezone":"Europe/Berlin","returnUrl":"https://demo.example/back"}`))
		if r.StatusCode != 201 {
			t.Fatalf("create site: got %d %s, want 201", r.StatusCode, r.Body)
		}
		var st struct{ ID string }
		_ = json.Unmarshal([]byte(r.Body), &st)
		r = invoke(t, pool, request(t, "POST", "/v1/sites/"+st.ID+"/keys", adminKey, `{"name":"cms"}`))
		var k struct{ Key string }
		_ = json.Unmarshal([]byte(r.Body), &k)
		if r.StatusCode != 201 || k.Key == "" {
			t.Fatalf("issue key: got %d %s, want 201 with a key", r.StatusCode, r.Body)
		}
		r = invoke(t, pool, request(t, "GET", "/v1/site", k.Key, ""))
		if r.StatusCode != 200 || !strings.Contains(r.Body, st.ID) {
			t.Fatalf("GET /v1/site with the new key: got %d %s, want 200 naming %s", r.StatusCode, r.Body, st.ID)
		}
		r = invoke(t, pool, request(t, "GET", "/v1/sites", k.Key, ""))
		if r.StatusCode != 403 {
			t.Fatalf("site key on an admin route: got %d, want 403", r.StatusCode)
		}
	})

	if d, ok := pool.InitDuration(); ok {
		t.Logf("api bootstrap init duration under the RIE: %v", d)
	}
}
