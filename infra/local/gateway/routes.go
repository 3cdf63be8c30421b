package gateway

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// route is a parsed route key: METHOD /path/{param}/{proxy+}.
type route struct {
	method   string // upper case, or ANY
	path     string // as declared; "$default" for the default route
	segments []segment
	target   Invoker
	name     string
}

type segmentKind int

const (
	literal segmentKind = iota
	param
	greedy
)

type segment struct {
	kind  segmentKind
	value string // literal text or variable name
}

// key is the route key as API Gateway writes it ("GET /items/{id}").
func (r *route) key() string {
	if r.path == "$default" {
		return "$default"
	}
	return r.method + " " + r.path
}

func parseRoute(method, path string) (*route, error) {
	r := &route{method: strings.ToUpper(method), path: path}
	if r.method == "" {
		r.method = "ANY"
	}
	if path == "$default" {
		return r, nil
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("route path %q must start with /", path)
	}
	if path == "/" {
		return r, nil
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}"):
			if i != len(parts)-1 {
				return nil, fmt.Errorf("route path %q: a greedy variable must be last", path)
			}
			r.segments = append(r.segments, segment{greedy, p[1 : len(p)-2]})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			r.segments = append(r.segments, segment{param, p[1 : len(p)-1]})
		case p == "":
			return nil, fmt.Errorf("route path %q has an empty segment", path)
		default:
			r.segments = append(r.segments, segment{literal, p})
		}
	}
	return r, nil
}

// match returns the path parameters when the route matches path (the path
// below the stage, raw, starting with /).
func (r *route) match(path string) (map[string]string, bool) {
	if r.path == "$default" {
		return nil, true
	}
	rest := strings.TrimPrefix(path, "/")
	if len(r.segments) == 0 {
		return nil, rest == ""
	}
	params := map[string]string{}
	for i, s := range r.segments {
		if s.kind == greedy {
			if rest == "" {
				return nil, false
			}
			params[s.value] = unescape(rest)
			return params, true
		}
		part, tail, more := strings.Cut(rest, "/")
		if part == "" {
			return nil, false
		}
		switch s.kind {
		case literal:
			if part != s.value {
				return nil, false
			}
		case param:
			params[s.value] = unescape(part)
		}
		last := i == len(r.segments)-1
		if last {
			return params, !more
		}
		if !more {
			return nil, false
		}
		rest = tail
	}
	return nil, false
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// rank orders candidate routes as API Gateway does: literal segments beat
// variables, which beat a greedy variable; a route for the request's method
// beats ANY; $default comes last.
func sortRoutes(routes []*route) {
	sort.SliceStable(routes, func(i, j int) bool { return more(routes[i], routes[j]) })
}

// more reports whether a is more specific than b.
func more(a, b *route) bool {
	if (a.path == "$default") != (b.path == "$default") {
		return b.path == "$default"
	}
	n := len(a.segments)
	if len(b.segments) < n {
		n = len(b.segments)
	}
	for i := 0; i < n; i++ {
		if a.segments[i].kind != b.segments[i].kind {
			return a.segments[i].kind < b.segments[i].kind
		}
	}
	if len(a.segments) != len(b.segments) {
		// Of two routes agreeing so far, the longer literal/param chain is
		// more specific unless it ends in a greedy variable.
		return len(a.segments) > len(b.segments)
	}
	if (a.method == "ANY") != (b.method == "ANY") {
		return b.method == "ANY"
	}
	return a.key() < b.key()
}
