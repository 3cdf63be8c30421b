// Package gateway is a local stand-in for Amazon API Gateway HTTP APIs: an
// http.Handler that matches requests against the routes of a template's
// HttpApi events (with {param} and {proxy+} path variables and ANY),
// turns each request into the payload format 2.0 event API Gateway sends to
// Lambda, invokes the function and maps its response back to HTTP.
//
// It answers as API Gateway does when things go wrong: 404
// {"message":"Not Found"} without a matching route, 413 for bodies over
// 10 MB, 500 {"message":"Internal Server Error"} when the function fails or
// answers something API Gateway cannot use, 503 {"message":"Service
// Unavailable"} past the 30 s integration timeout.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
)

// Limits API Gateway HTTP APIs enforce.
const (
	// MaxBody is the largest request body (10 MB).
	MaxBody = 10 * 1024 * 1024
	// IntegrationTimeout is the longest API Gateway waits for Lambda.
	IntegrationTimeout = 30 * time.Second
)

// Invoker runs a function synchronously; *lambdaenv.Pool is one.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Route sends one route key to a function.
type Route struct {
	// Method is GET, POST... or ANY.
	Method string
	// Path is the route path ("/items/{id}", "/{proxy+}") or "$default".
	Path string
	// Function handles the route.
	Function Invoker
	// Name names the function in logs.
	Name string
}

// API is one HTTP API: its id, stage and routes.
type API struct {
	// ID is the API id (requestContext.apiId).
	ID string
	// Stage is the stage name; "$default" (or empty) serves at the root,
	// any other stage under /<stage>.
	Stage  string
	Routes []Route
}

// Options configure a Gateway.
type Options struct {
	APIs []API
	// AccountID is requestContext.accountId (default 123456789012).
	AccountID string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// IntegrationTimeout overrides the 30 s wait for a function.
	IntegrationTimeout time.Duration
}

// Gateway is the handler.
type Gateway struct {
	opts Options
	apis []*api
}

type api struct {
	id     string
	stage  string
	routes []*route
}

// New checks the routes and returns a Gateway.
func New(opts Options) (*Gateway, error) {
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IntegrationTimeout <= 0 {
		opts.IntegrationTimeout = IntegrationTimeout
	}
	g := &Gateway{opts: opts}
	stages := map[string]string{}
	for _, a := range opts.APIs {
		stage := a.Stage
		if stage == "" {
			stage = "$default"
		}
		if other, dup := stages[stage]; dup {
			return nil, fmt.Errorf("gateway: APIs %s and %s both serve stage %s on the same port", other, a.ID, stage)
		}
		stages[stage] = a.ID
		ga := &api{id: a.ID, stage: stage}
		keys := map[string]bool{}
		for _, r := range a.Routes {
			pr, err := parseRoute(r.Method, r.Path)
			if err != nil {
				return nil, fmt.Errorf("gateway: API %s: %w", a.ID, err)
			}
			if keys[pr.key()] {
				return nil, fmt.Errorf("gateway: API %s: route %s is declared twice", a.ID, pr.key())
			}
			keys[pr.key()] = true
			pr.target, pr.name = r.Function, r.Name
			ga.routes = append(ga.routes, pr)
		}
		sortRoutes(ga.routes)
		g.apis = append(g.apis, ga)
	}
	return g, nil
}

// RouteKeys lists every API's stage and route keys, for the startup log.
func (g *Gateway) RouteKeys() []string {
	var out []string
	for _, a := range g.apis {
		for _, r := range a.routes {
			out = append(out, a.stage+" "+r.key()+" -> "+r.name)
		}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.opts.Now()
	reqID := newRequestID()
	w.Header().Set("Apigw-Requestid", reqID)
	rawPath := r.URL.EscapedPath()
	a, sub := g.findAPI(rawPath)
	var rt *route
	var params map[string]string
	if a != nil {
		rt, params = a.find(r.Method, sub)
	}
	if rt == nil {
		writeMessage(w, http.StatusNotFound, "Not Found")
		g.opts.Logger.Debug("no route", "method", r.Method, "path", rawPath, "request_id", reqID)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > MaxBody {
		writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	event, err := g.event(r, a, rt, params, body, reqID, start)
	if err != nil {
		g.opts.Logger.Error("build event", "route", rt.key(), "request_id", reqID, "error", err)
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.opts.IntegrationTimeout)
	defer cancel()
	out, err := rt.target.Invoke(ctx, event)
	status := 0
	switch {
	case err == nil:
		status, err = writeResponse(w, out)
		if err != nil {
			g.opts.Logger.Error("function response is not usable", "route", rt.key(), "function", rt.name, "request_id", reqID, "error", err)
			writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
			status = http.StatusInternalServerError
		}
	case errors.Is(err, lambdaenv.ErrPayloadTooLarge):
		status = http.StatusRequestEntityTooLarge
		writeMessage(w, status, "Request Entity Too Large")
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		g.opts.Logger.Error("integration timeout", "route", rt.key(), "function", rt.name, "request_id", reqID)
		status = http.StatusServiceUnavailable
		writeMessage(w, status, "Service Unavailable")
	default:
		g.opts.Logger.Error("function failed", "route", rt.key(), "function", rt.name, "request_id", reqID, "error", err)
		status = http.StatusInternalServerError
		writeMessage(w, status, "Internal Server Error")
	}
	g.opts.Logger.Debug("request", "method", r.Method, "path", rawPath, "route", rt.key(), "status", status,
		"duration_ms", g.opts.Now().Sub(start).Milliseconds(), "request_id", reqID)
}

// findAPI picks the API whose stage prefixes the path (named stages first)
// and returns the path below the stage.
func (g *Gateway) findAPI(path string) (*api, string) {
	var def *api
	for _, a := range g.apis {
		if a.stage == "$default" {
			def = a
			continue
		}
		prefix := "/" + a.stage
		if path == prefix {
			return a, "/"
		}
		if strings.HasPrefix(path, prefix+"/") {
			return a, path[len(prefix):]
		}
	}
	if def != nil {
		return def, path
	}
	return nil, ""
}

// find returns the most specific route for method and path.
func (a *api) find(method, path string) (*route, map[string]string) {
	for _, r := range a.routes {
		if r.method != "ANY" && r.method != method {
			continue
		}
		if params, ok := r.match(path); ok {
			return r, params
		}
	}
	return nil, nil
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, msg)
}

// newRequestID is shaped like API Gateway's request ids ("JKJaXmPLvHcESHA=").
func newRequestID() string {
	b := make([]byte, 11)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// traceID is an X-Ray trace header value.
func traceID(now time.Time) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return fmt.Sprintf("Root=1-%08x-%s", now.Unix(), hex.EncodeToString(b))
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func localPort(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		return port
	}
	return strconv.Itoa(80)
}
