package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
)

// fakeFunction records the events it gets and answers with reply.
type fakeFunction struct {
	name  string
	mu    sync.Mutex
	got   []events.APIGatewayV2HTTPRequest
	reply func(ev events.APIGatewayV2HTTPRequest) ([]byte, error)
}

func (f *fakeFunction) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.got = append(f.got, ev)
	f.mu.Unlock()
	if f.reply == nil {
		b, _ := json.Marshal(map[string]any{"statusCode": 200, "body": f.name})
		return b, nil
	}
	return f.reply(ev)
}

func (f *fakeFunction) last(t *testing.T) events.APIGatewayV2HTTPRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		t.Fatalf("%s was not invoked", f.name)
	}
	return f.got[len(f.got)-1]
}

// invokerFunc adapts a function to Invoker.
type invokerFunc func(ctx context.Context, payload []byte) ([]byte, error)

func (f invokerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	g, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

func TestRouting(t *testing.T) {
	t.Parallel()
	fns := map[string]*fakeFunction{}
	fn := func(name string) *fakeFunction {
		f := &fakeFunction{name: name}
		fns[name] = f
		return f
	}
	srv := newServer(t, Options{APIs: []API{{
		ID: "api1", Stage: "v1",
		Routes: []Route{
			{Method: "ANY", Path: "/{proxy+}", Function: fn("proxy")},
			{Method: "GET", Path: "/items/{id}", Function: fn("getItem")},
			{Method: "ANY", Path: "/items/{id}", Function: fn("anyItem")},
			{Method: "GET", Path: "/items/special", Function: fn("special")},
			{Method: "POST", Path: "/items/{id}/tags/{tag}", Function: fn("tag")},
			{Method: "GET", Path: "/files/{proxy+}", Function: fn("files")},
			{Method: "GET", Path: "/", Function: fn("root")},
		},
	}, {
		ID: "api2", Stage: "$default",
		Routes: []Route{{Method: "GET", Path: "/ping", Function: fn("ping")}},
	}}})
	tests := []struct {
		method, path string
		want         string // function name, or "404"
		params       map[string]string
		routeKey     string
	}{
		{"GET", "/v1/items/42", "getItem", map[string]string{"id": "42"}, "GET /items/{id}"},
		{"DELETE", "/v1/items/42", "anyItem", map[string]string{"id": "42"}, "ANY /items/{id}"},
		{"GET", "/v1/items/special", "special", nil, "GET /items/special"},
		{"POST", "/v1/items/7/tags/a%20b", "tag", map[string]string{"id": "7", "tag": "a b"}, "POST /items/{id}/tags/{tag}"},
		{"GET", "/v1/files/a/b/c.txt", "files", map[string]string{"proxy": "a/b/c.txt"}, "GET /files/{proxy+}"},
		{"POST", "/v1/files/a", "proxy", map[string]string{"proxy": "files/a"}, "ANY /{proxy+}"},
		{"GET", "/v1/health", "proxy", map[string]string{"proxy": "health"}, "ANY /{proxy+}"},
		{"GET", "/v1/items/42/more", "proxy", map[string]string{"proxy": "items/42/more"}, "ANY /{proxy+}"},
		{"GET", "/v1", "root", nil, "GET /"},
		{"GET", "/ping", "ping", nil, "GET /ping"},
		{"POST", "/ping", "404", nil, ""},
		{"GET", "/v2/items/42", "404", nil, ""},
		{"GET", "/v1x/items", "404", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.want == "404" {
				if resp.StatusCode != 404 || string(body) != `{"message":"Not Found"}` {
					t.Errorf("got %d %s, want 404 {\"message\":\"Not Found\"}", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 200 || string(body) != tt.want {
				t.Fatalf("got %d %q, want 200 from %s", resp.StatusCode, body, tt.want)
			}
			ev := fns[tt.want].last(t)
			if ev.RouteKey != tt.routeKey || ev.RequestContext.RouteKey != tt.routeKey {
				t.Errorf("routeKey: got %q, want %q", ev.RouteKey, tt.routeKey)
			}
			if !reflect.DeepEqual(ev.PathParameters, tt.params) {
				t.Errorf("pathParameters: got %v, want %v", ev.PathParameters, tt.params)
			}
		})
	}
}

func TestEvent(t *testing.T) {
	t.Parallel()
	f := &fakeFunction{name: "echo"}
	now := time.Date(2026, 3, 12, 19, 3, 58, 0, time.UTC)
	srv := newServer(t, Options{Now: func() time.Time { return now }, APIs: []API{{
		ID: "abc123", Stage: "v1", Routes: []Route{{Method: "ANY", Path: "/{proxy+}", Function: f}},
	}}})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/sites/s%2F1/keys?a=1&a=2&b=x%20y&flag", strings.NewReader(`{"name":"k"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "test-agent")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Add("Cookie", "c1=v1; c2=v2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ev := f.last(t)
	if ev.Version != "2.0" || ev.RouteKey != "ANY /{proxy+}" {
		t.Errorf("version/routeKey: got %q %q", ev.Version, ev.RouteKey)
	}
	if ev.RawPath != "/v1/sites/s%2F1/keys" {
		t.Errorf("rawPath: got %q, want the stage prefix and the raw escapes", ev.RawPath)
	}
	if ev.RawQueryString != "a=1&a=2&b=x%20y&flag" {
		t.Errorf("rawQueryString: got %q", ev.RawQueryString)
	}
	if want := map[string]string{"a": "1,2", "b": "x y", "flag": ""}; !reflect.DeepEqual(ev.QueryStringParameters, want) {
		t.Errorf("queryStringParameters: got %v, want %v", ev.QueryStringParameters, want)
	}
	if want := map[string]string{"proxy": "sites/s/1/keys"}; !reflect.DeepEqual(ev.PathParameters, want) {
		t.Errorf("pathParameters: got %v, want %v", ev.PathParameters, want)
	}
	if want := []string{"c1=v1", "c2=v2"}; !reflect.DeepEqual(ev.Cookies, want) {
		t.Errorf("cookies: got %v, want %v", ev.Cookies, want)
	}
	h := ev.Headers
	for k, want := range map[string]string{
		"x-multi": "one,two", "authorization": "Bearer k", "content-type": "application/json",
		"user-agent": "test-agent", "content-length": "12", "x-forwarded-proto": "http",
		"x-forwarded-for": "127.0.0.1", "host": strings.TrimPrefix(srv.URL, "http://"),
	} {
		if h[k] != want {
			t.Errorf("header %s: got %q, want %q", k, h[k], want)
		}
	}
	if _, ok := h["cookie"]; ok {
		t.Errorf("cookie header kept; API Gateway moves it to cookies")
	}
	if !strings.HasPrefix(h["x-amzn-trace-id"], "Root=1-") || h["x-forwarded-port"] == "" {
		t.Errorf("trace/port headers: got %q %q", h["x-amzn-trace-id"], h["x-forwarded-port"])
	}
	rc := ev.RequestContext
	if rc.AccountID != "123456789012" || rc.APIID != "abc123" || rc.Stage != "v1" || rc.DomainName != "127.0.0.1" || rc.DomainPrefix != "abc123" {
		t.Errorf("requestContext: got %+v", rc)
	}
	if rc.Time != "12/Mar/2026:19:03:58 +0000" || rc.TimeEpoch != now.UnixMilli() || len(rc.RequestID) != 16 {
		t.Errorf("time/requestId: got %q %d %q", rc.Time, rc.TimeEpoch, rc.RequestID)
	}
	if got := resp.Header.Get("Apigw-Requestid"); got != rc.RequestID {
		t.Errorf("apigw-requestid header %q, event says %q", got, rc.RequestID)
	}
	want := events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/v1/sites/s/1/keys", Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "test-agent"}
	if rc.HTTP != want {
		t.Errorf("http: got %+v, want %+v", rc.HTTP, want)
	}
	if ev.Body != `{"name":"k"}` || ev.IsBase64Encoded {
		t.Errorf("body: got %q base64=%v, want the JSON as text", ev.Body, ev.IsBase64Encoded)
	}
}

func TestBodyEncoding(t *testing.T) {
	t.Parallel()
	f := &fakeFunction{name: "echo"}
	srv := newServer(t, Options{APIs: []API{{ID: "a", Stage: "$default", Routes: []Route{{Method: "POST", Path: "/x", Function: f}}}}})
	tests := []struct {
		contentType string
		body        []byte
		base64      bool
	}{
		{"application/json; charset=utf-8", []byte(`{"a":1}`), false},
		{"text/plain", []byte("hello"), false},
		{"application/problem+json", []byte(`{}`), false},
		{"application/octet-stream", []byte{0, 1, 2, 255}, true},
		{"image/png", []byte("PNG"), true},
		{"application/x-www-form-urlencoded", []byte("a=1"), true},
		{"", []byte("no type"), true},
		{"text/plain", []byte{0xff, 0xfe}, true},
	}
	for _, tt := range tests {
		resp, err := http.Post(srv.URL+"/x", tt.contentType, bytes.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ev := f.last(t)
		got := []byte(ev.Body)
		if ev.IsBase64Encoded {
			got, _ = base64.StdEncoding.DecodeString(ev.Body)
		}
		if ev.IsBase64Encoded != tt.base64 || !bytes.Equal(got, tt.body) {
			t.Errorf("%q: got base64=%v body %q, want base64=%v body %q", tt.contentType, ev.IsBase64Encoded, got, tt.base64, tt.body)
		}
	}
}

func TestResponses(t *testing.T) {
	t.Parallel()
	reply := func(out string, err error) *fakeFunction {
		return &fakeFunction{name: "f", reply: func(events.APIGatewayV2HTTPRequest) ([]byte, error) { return []byte(out), err }}
	}
	slow := invokerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
			return []byte(`{}`), nil
		}
	})
	tests := []struct {
		name        string
		fn          Invoker
		wantStatus  int
		wantBody    string
		wantHeaders map[string][]string
	}{
		{"structured", reply(`{"statusCode":201,"headers":{"Content-Type":"text/plain","X-One":"1"},"multiValueHeaders":{"X-Multi":["a","b"]},"cookies":["c1=v1; Path=/","c2=v2"],"body":"made"}`, nil),
			201, "made", map[string][]string{"Content-Type": {"text/plain"}, "X-One": {"1"}, "X-Multi": {"a", "b"}, "Set-Cookie": {"c1=v1; Path=/", "c2=v2"}}},
		{"base64 body", reply(`{"statusCode":200,"headers":{"content-type":"application/octet-stream"},"body":"AAEC/w==","isBase64Encoded":true}`, nil),
			200, "\x00\x01\x02\xff", map[string][]string{"Content-Type": {"application/octet-stream"}}},
		{"inferred", reply(`{"hello":"world"}`, nil), 200, `{"hello":"world"}`, map[string][]string{"Content-Type": {"application/json"}}},
		{"inferred string", reply(`"hi"`, nil), 200, `"hi"`, nil},
		{"no content type", reply(`{"statusCode":204}`, nil), 204, "", map[string][]string{"Content-Type": nil}},
		{"not json", reply(`hello`, nil), 500, `{"message":"Internal Server Error"}`, nil},
		{"bad status", reply(`{"statusCode":42}`, nil), 500, `{"message":"Internal Server Error"}`, nil},
		{"null status", reply(`{"statusCode":null}`, nil), 500, `{"message":"Internal Server Error"}`, nil},
		{"bad base64", reply(`{"statusCode":200,"body":"%%%","isBase64Encoded":true}`, nil), 500, `{"message":"Internal Server Error"}`, nil},
		{"function error", reply(``, &lambdaenv.FunctionError{Function: "f", Type: "errorString", Message: "boom"}), 500, `{"message":"Internal Server Error"}`, nil},
		{"function timeout", reply(``, lambdaenv.ErrTimeout), 500, `{"message":"Internal Server Error"}`, nil},
		{"too large for lambda", reply(``, lambdaenv.ErrPayloadTooLarge), 413, `{"message":"Request Entity Too Large"}`, nil},
		{"integration timeout", slow, 503, `{"message":"Service Unavailable"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, Options{IntegrationTimeout: 100 * time.Millisecond, APIs: []API{{ID: "a", Stage: "v1", Routes: []Route{{Method: "ANY", Path: "/{proxy+}", Function: tt.fn}}}}})
			resp, err := http.Get(srv.URL + "/v1/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || string(body) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			for k, want := range tt.wantHeaders {
				if got := resp.Header.Values(k); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("header %s: got %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := &fakeFunction{name: "f"}
	srv := newServer(t, Options{APIs: []API{{ID: "a", Stage: "v1", Routes: []Route{{Method: "POST", Path: "/up", Function: f}}}}})
	resp, err := http.Post(srv.URL+"/v1/up", "application/octet-stream", bytes.NewReader(make([]byte, MaxBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || string(body) != `{"message":"Request Entity Too Large"}` {
		t.Errorf("got %d %s, want 413", resp.StatusCode, body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != 0 {
		t.Errorf("function invoked for a body over the limit")
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	f := &fakeFunction{}
	for name, apis := range map[string][]API{
		"same stage":      {{ID: "a", Stage: "v1"}, {ID: "b", Stage: "v1"}},
		"duplicate route": {{ID: "a", Routes: []Route{{Method: "GET", Path: "/x", Function: f}, {Method: "get", Path: "/x", Function: f}}}},
		"greedy not last": {{ID: "a", Routes: []Route{{Method: "GET", Path: "/{p+}/x", Function: f}}}},
		"relative path":   {{ID: "a", Routes: []Route{{Method: "GET", Path: "x", Function: f}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(Options{APIs: apis}); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
	if _, err := New(Options{APIs: []API{{ID: "a", Routes: []Route{{Method: "GET", Path: "/x", Function: f}}}}}); err != nil {
		t.Errorf("valid routes: %v", err)
	}
}
