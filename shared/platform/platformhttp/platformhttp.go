// Package platformhttp is the HTTP plumbing the platform adapters share:
// sending one API call and reading its size-capped answer, turning a
// failure to get an answer into a transient or ambiguous *apperr.Error
// (ambiguous once the publishing write may have left), filling the platform
// fields of errors with a redacted copy of the body, and reading the
// rate-limit reset headers platforms send.
//
// What an answer means stays in each adapter: this package never decides
// that a status or an error body is a rate limit, a dead token or a
// duplicate.
package platformhttp

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// MaxBody is how much of an answer Client reads unless told otherwise.
const MaxBody = 4 << 20

// DefaultClient is a client with bounded dials, TLS handshakes and waits
// for response headers, and no overall timeout, so that large uploads are
// bounded by the caller's context instead.
func DefaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}

// Request is one API call.
type Request struct {
	Method, URL string
	// Token is sent as "Authorization: Bearer" when it is not empty.
	Token string
	// Body is sent as is; nil sends none.
	Body        []byte
	ContentType string
	// Header holds further headers, set last.
	Header map[string]string
	// Final marks the write that publishes: a failure after it may have
	// been sent is ambiguous, not transient.
	Final bool
	// What names the call in error messages ("create record").
	What string
}

// Response is an answer that arrived, whatever its status.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK reports whether the status is 2xx.
func (r Response) OK() bool { return r.Status >= 200 && r.Status <= 299 }

// BuildError is Send's error for a request that could not be built (a bad
// URL or method); it was never sent.
type BuildError struct{ Err error }

// Error implements error.
func (e *BuildError) Error() string { return "build request: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *BuildError) Unwrap() error { return e.Err }

// Send sends rq with hc and reads at most limit bytes of the answer; a
// longer answer is cut short. It sets Authorization (when rq.Token is set),
// Content-Type (when rq.ContentType is), Accept: application/json, then
// rq.Header. A request that cannot be built fails with a *BuildError; any
// other error means no complete answer arrived (see NotSent).
func Send(ctx context.Context, hc *http.Client, rq Request, limit int64) (Response, error) {
	var body io.Reader
	if rq.Body != nil {
		body = bytes.NewReader(rq.Body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.Method, rq.URL, body)
	if err != nil {
		return Response{}, &BuildError{Err: err}
	}
	if rq.Token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.Token)
	}
	if rq.ContentType != "" {
		req.Header.Set("Content-Type", rq.ContentType)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range rq.Header {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}
