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
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
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
	Body []byte
	// Stream, when not nil, is sent instead of Body as it is read, with
	// Content-Length Length: a chunk of media uploaded without holding it.
	// It is read once, so the request cannot be retried by the transport.
	Stream      io.Reader
	Length      int64
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
	if rq.Stream != nil {
		body = rq.Stream
	}
	req, err := http.NewRequestWithContext(ctx, rq.Method, rq.URL, body)
	if err != nil {
		return Response{}, &BuildError{Err: err}
	}
	if rq.Stream != nil {
		req.ContentLength = rq.Length
		if rq.Length == 0 {
			req.Body = http.NoBody
		}
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

// MultipartFile is a multipart/form-data body of fields (name, value
// pairs, in order) then one file part named field, whose n bytes are read
// from r as the body is sent: its length is known before any of it is.
func MultipartFile(fields [][2]string, field, filename, contentType string, r io.Reader, n int64) (body io.Reader, length int64, formType string, err error) {
	var head bytes.Buffer
	w := multipart.NewWriter(&head)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			return nil, 0, "", fmt.Errorf("encode field %s: %w", f[0], err)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, filename))
	h.Set("Content-Type", contentType)
	if _, err := w.CreatePart(h); err != nil {
		return nil, 0, "", fmt.Errorf("encode file part: %w", err)
	}
	prefix := bytes.Clone(head.Bytes())
	head.Reset()
	if err := w.Close(); err != nil {
		return nil, 0, "", fmt.Errorf("encode multipart end: %w", err)
	}
	suffix := head.Bytes()
	length = int64(len(prefix)) + n + int64(len(suffix))
	return io.MultiReader(bytes.NewReader(prefix), io.LimitReader(r, n), bytes.NewReader(suffix)), length, w.FormDataContentType(), nil
}
