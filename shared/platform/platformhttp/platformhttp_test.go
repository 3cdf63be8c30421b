package platformhttp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// seen is what a test server received.
type seen struct {
	method, path, auth, contentType, accept, extra, body string
	hasAuth                                              bool
}

// echoServer records each request into got and answers status with body.
func echoServer(t *testing.T, status int, body string, got *seen) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, hasAuth := r.Header["Authorization"]
		*got = seen{method: r.Method, path: r.URL.RequestURI(), auth: r.Header.Get("Authorization"), hasAuth: hasAuth,
			contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"), extra: r.Header.Get("X-Extra"), body: string(b)}
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// droppingServer accepts each request and closes the connection without an
// answer: what a client sees when the platform acted and the answer was lost.
func droppingServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// closedURL is the URL of a server that no longer listens: dials fail.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestSend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		rq   platformhttp.Request
		want seen
	}{
		{"GET without token or body", platformhttp.Request{Method: http.MethodGet, URL: "/a?b=1"},
			seen{method: "GET", path: "/a?b=1", accept: "application/json"}},
		{"POST with everything", platformhttp.Request{Method: http.MethodPost, URL: "/p", Token: "tok", Body: []byte(`{"x":1}`),
			ContentType: "application/json", Header: map[string]string{"X-Extra": "e", "Accept": "text/plain"}},
			seen{method: "POST", path: "/p", auth: "Bearer tok", hasAuth: true, contentType: "application/json", accept: "text/plain", extra: "e", body: `{"x":1}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got seen
			srv := echoServer(t, http.StatusCreated, "0123456789", &got)
			rq := tc.rq
			rq.URL = srv.URL + rq.URL
			resp, err := platformhttp.Send(context.Background(), srv.Client(), rq, 4)
			if err != nil {
				t.Fatalf("Send: got %v, want nil", err)
			}
			if got != tc.want {
				t.Errorf("server saw %+v, want %+v", got, tc.want)
			}
			if resp.Status != http.StatusCreated || string(resp.Body) != "0123" || resp.Header.Get("X-Answer") != "yes" || !resp.OK() {
				t.Errorf("got %d %q (answer header %q), want 201, the body cut to 4 bytes and the header", resp.Status, resp.Body, resp.Header.Get("X-Answer"))
			}
		})
	}
}

func TestSendBuildError(t *testing.T) {
	t.Parallel()
	_, err := platformhttp.Send(context.Background(), http.DefaultClient, platformhttp.Request{Method: "GET", URL: "http://a b/"}, 10)
	var be *platformhttp.BuildError
	if !errors.As(err, &be) || be.Unwrap() == nil {
		t.Fatalf("got %v, want a *BuildError with its cause", err)
	}
}

func TestResponseOK(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]bool{199: false, 200: true, 204: true, 299: true, 300: false, 404: false} {
		if got := (platformhttp.Response{Status: status}).OK(); got != want {
			t.Errorf("OK for %d: got %v, want %v", status, got, want)
		}
	}
}

// wantErr checks that err is an *apperr.Error of kind with code and
// platform, and returns it.
func wantErr(t *testing.T, err error, kind apperr.Kind, code, platform string) *apperr.Error {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok {
		t.Fatalf("got %v (%T), want *apperr.Error %s/%s", err, err, kind, code)
	}
	if e.Kind != kind || e.Code != code || e.Platform != platform {
		t.Fatalf("got %s/%s on %q (%v), want %s/%s on %q", e.Kind, e.Code, e.Platform, e, kind, code, platform)
	}
	return e
}

func TestClientDo(t *testing.T) {
	t.Parallel()
	var got seen
	answering := echoServer(t, http.StatusTooManyRequests, `{"error":"x"}`, &got)
	dropping := droppingServer(t)
	closed := closedURL(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name     string
		ctx      context.Context
		peer     string
		url      string
		final    bool
		wantKind apperr.Kind
		wantCode string
		wantMsg  string
	}{
		{"cancelled before sending", cancelled, "", answering.URL, true, apperr.KindTransient, "sim.cancelled", "call: cancelled before sending"},
		{"bad URL", context.Background(), "", "http://a b/", false, apperr.KindPermanent, "sim.bad_url", "call: the URL is not valid"},
		{"bad instance URL", context.Background(), "instance", "http://a b/", false, apperr.KindPermanent, "sim.bad_url", "call: the instance URL is not valid"},
		{"dial fails on the final write", context.Background(), "", closed, true, apperr.KindTransient, "sim.network", "call: no answer from the server"},
		{"answer lost on a plain call", context.Background(), "", dropping.URL, false, apperr.KindTransient, "sim.network", "call: no answer from the server"},
		{"answer lost on the final write", context.Background(), "instance", dropping.URL, true, apperr.KindAmbiguous, "sim.network", "call: no answer from the instance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &platformhttp.Client{Errors: platformhttp.Errors{Platform: "sim", Peer: tc.peer, StatusCode: true}, HC: http.DefaultClient}
			_, err := c.Do(tc.ctx, platformhttp.Request{Method: http.MethodPost, URL: tc.url, Final: tc.final, What: "call"})
			e := wantErr(t, err, tc.wantKind, tc.wantCode, "sim")
			if e.Message != tc.wantMsg || e.HTTPStatus != 0 || e.Err == nil {
				t.Errorf("got message %q status %d cause %v, want %q, 0 and a cause", e.Message, e.HTTPStatus, e.Err, tc.wantMsg)
			}
		})
	}
	t.Run("any answer is returned", func(t *testing.T) {
		t.Parallel()
		c := &platformhttp.Client{Errors: platformhttp.Errors{Platform: "sim"}, HC: answering.Client()}
		resp, err := c.Do(context.Background(), platformhttp.Request{Method: http.MethodGet, URL: answering.URL})
		if err != nil || resp.Status != http.StatusTooManyRequests || string(resp.Body) != `{"error":"x"}` {
			t.Errorf("got %d %q %v, want the 429 answer and no error", resp.Status, resp.Body, err)
		}
	})
}

func TestClientCall(t *testing.T) {
	t.Parallel()
	var got seen
	ok := echoServer(t, http.StatusOK, `{"id":"7"}`, &got)
	garbage := echoServer(t, http.StatusOK, `<html>`, &got)
	rejected := echoServer(t, http.StatusForbidden, `{"access_token":"secret-1"}`, &got)
	dropping := droppingServer(t)
	closed := closedURL(t)
	classify := func(status int, h http.Header, body []byte, final bool) *apperr.Error {
		e := apperr.New(apperr.KindPermanent, "sim.rejected", "rejected")
		return platformhttp.Errors{Platform: "sim"}.Annotate(e, status, body)
	}
	c := &platformhttp.Client{Errors: platformhttp.Errors{Platform: "sim", Name: "Sim"}, HC: http.DefaultClient, Classify: classify}

	var out struct{ ID string }
	h, err := c.Call(context.Background(), platformhttp.Request{Method: http.MethodGet, URL: ok.URL}, &out)
	if err != nil || out.ID != "7" || h.Get("X-Answer") != "yes" {
		t.Errorf("decode: got id %q header %q error %v, want 7, yes, nil", out.ID, h.Get("X-Answer"), err)
	}
	if _, err := c.Call(context.Background(), platformhttp.Request{Method: http.MethodGet, URL: garbage.URL}, nil); err != nil {
		t.Errorf("nil out: got %v, want the body left unread", err)
	}

	cases := []struct {
		name     string
		url      string
		final    bool
		wantKind apperr.Kind
		wantCode string
		wantMsg  string
		wantHTTP int
	}{
		{"classified", rejected.URL, false, apperr.KindPermanent, "sim.rejected", "rejected", http.StatusForbidden},
		{"unreadable success", garbage.URL, false, apperr.KindPermanent, "sim.unexpected_response", "Sim answered in an unexpected shape", http.StatusOK},
		{"unreadable success of the final write", garbage.URL, true, apperr.KindAmbiguous, "sim.unexpected_response", "Sim answered in an unexpected shape", http.StatusOK},
		{"bad URL", "http://a b/", false, apperr.KindPermanent, "sim.bad_request", "the request could not be built", 0},
		{"dial fails on the final write", closed, true, apperr.KindTransient, "sim.network", "the request to Sim failed before an answer", 0},
		{"answer lost on a plain call", dropping.URL, false, apperr.KindTransient, "sim.network", "the request to Sim failed before an answer", 0},
		{"answer lost on the final write", dropping.URL + "/?access_token=secret-2", true, apperr.KindAmbiguous, "sim.no_response", "Sim did not answer the publishing request; it may have published", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Call(context.Background(), platformhttp.Request{Method: http.MethodPost, URL: tc.url, Final: tc.final}, &out)
			e := wantErr(t, err, tc.wantKind, tc.wantCode, "sim")
			if e.Message != tc.wantMsg || e.HTTPStatus != tc.wantHTTP || e.PlatformCode != "" {
				t.Errorf("got message %q status %d code %q, want %q, %d and no platform code", e.Message, e.HTTPStatus, e.PlatformCode, tc.wantMsg, tc.wantHTTP)
			}
			if strings.Contains(e.Error(), "secret") || strings.Contains(e.Redacted, "secret") {
				t.Errorf("got %q (redacted %q), want no secret from the URL or body", e.Error(), e.Redacted)
			}
		})
	}
}

func TestErrorsAnnotate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		errs       platformhttp.Errors
		code       string
		status     int
		body       []byte
		wantCode   string
		wantRedact string
	}{
		{"status as code", platformhttp.Errors{Platform: "p", StatusCode: true}, "", 502, []byte(`{"token":"t"}`), "502", `{"token":"[redacted]"}`},
		{"own code kept", platformhttp.Errors{Platform: "p", StatusCode: true}, "E1", 400, nil, "E1", ""},
		{"no status, no code", platformhttp.Errors{Platform: "p", StatusCode: true}, "", 0, nil, "", ""},
		{"status not used as code", platformhttp.Errors{Platform: "p"}, "", 502, []byte("x"), "", "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := apperr.New(apperr.KindTransient, "p.x", "m")
			e.PlatformCode = tc.code
			got := tc.errs.Annotate(e, tc.status, tc.body)
			if got != e || got.Platform != "p" || got.HTTPStatus != tc.status || got.PlatformCode != tc.wantCode || got.Redacted != tc.wantRedact {
				t.Errorf("got %+v, want platform p, status %d, code %q, redacted %q", got, tc.status, tc.wantCode, tc.wantRedact)
			}
		})
	}
}

func TestErrorsShape(t *testing.T) {
	t.Parallel()
	errs := platformhttp.Errors{Platform: "p", Peer: "instance", StatusCode: true}
	resp := platformhttp.Response{Status: 200, Body: []byte("<html>")}
	for _, final := range []bool{false, true} {
		e := errs.Shape(resp, final, "post status", errors.New("no id"))
		want := platformhttp.AmbiguousIf(final, apperr.KindPermanent)
		if e.Kind != want || e.Code != "p.unexpected_response" || e.Message != "post status: unexpected response from the instance" ||
			e.PlatformCode != "200" || e.Redacted != "<html>" || !strings.Contains(e.Err.Error(), "decode post status: no id") {
			t.Errorf("final=%v: got %+v, want %s p.unexpected_response naming the instance, code 200 and the body", final, e, want)
		}
	}
}

func TestErrorsNewWrap(t *testing.T) {
	t.Parallel()
	errs := platformhttp.Errors{Platform: "p", StatusCode: true}
	cause := errors.New("cause")
	for _, e := range []*apperr.Error{
		errs.New(apperr.KindTransient, "p.a", "m"),
		errs.Newf(apperr.KindTransient, "p.a", "%s", "m"),
		errs.Wrap(cause, apperr.KindTransient, "p.a", "m"),
	} {
		if e.Platform != "p" || e.Code != "p.a" || e.Message != "m" || !e.Retryable || e.HTTPStatus != 0 || e.PlatformCode != "" {
			t.Errorf("got %+v, want a retryable p.a on platform p with no status", e)
		}
	}
	if e := errs.Wrap(cause, apperr.KindPermanent, "p.a", "m"); !errors.Is(e, cause) {
		t.Errorf("Wrap: got %v, want it to wrap the cause", e)
	}
}

func TestNotSent(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Err: errors.New("refused")}
	read := &net.OpError{Op: "read", Err: errors.New("reset")}
	dns := &net.DNSError{Err: "no such host", Name: "x.invalid"}
	cases := []struct {
		name        string
		err         error
		wantNotSent bool
	}{
		{"dial", dial, true},
		{"wrapped dial", &wrapped{dial}, true},
		{"name lookup", dns, true},
		{"read", read, false},
		{"EOF", io.ErrUnexpectedEOF, false},
	}
	for _, tc := range cases {
		if got := platformhttp.NotSent(tc.err); got != tc.wantNotSent {
			t.Errorf("%s: NotSent got %v, want %v", tc.name, got, tc.wantNotSent)
		}
		want := apperr.KindTransient
		if !tc.wantNotSent {
			want = apperr.KindAmbiguous
		}
		if got := platformhttp.TransportKind(tc.err, true); got != want {
			t.Errorf("%s: TransportKind on the final write got %s, want %s", tc.name, got, want)
		}
		if got := platformhttp.TransportKind(tc.err, false); got != apperr.KindTransient {
			t.Errorf("%s: TransportKind before the final write got %s, want transient", tc.name, got)
		}
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "wrapped: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestSmallHelpers(t *testing.T) {
	t.Parallel()
	if got := platformhttp.OrStatus("Code", 400); got != "Code" {
		t.Errorf("OrStatus with a code: got %q, want Code", got)
	}
	if got := platformhttp.OrStatus("", 400); got != "400" {
		t.Errorf("OrStatus without a code: got %q, want 400", got)
	}
	if got := platformhttp.Clip(strings.Repeat("a", 201)); got != strings.Repeat("a", 200)+"…" {
		t.Errorf("Clip: got %d bytes, want 200 and an ellipsis", len(got))
	}
	if got := platformhttp.Clip("short"); got != "short" {
		t.Errorf("Clip: got %q, want it unchanged", got)
	}
	if got := platformhttp.AmbiguousIf(false, apperr.KindPermanent); got != apperr.KindPermanent {
		t.Errorf("AmbiguousIf(false): got %s, want permanent", got)
	}
	if got := platformhttp.AmbiguousIf(true, apperr.KindPermanent); got != apperr.KindAmbiguous {
		t.Errorf("AmbiguousIf(true): got %s, want ambiguous", got)
	}
	if c := platformhttp.DefaultClient(); c.Timeout != 0 || c.Transport == nil {
		t.Errorf("DefaultClient: got timeout %v transport %v, want no overall timeout and a bounded transport", c.Timeout, c.Transport)
	}
}
