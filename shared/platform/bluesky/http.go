package bluesky

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
)

// maxBody caps how much of a response the adapter reads.
const maxBody = 4 << 20

// defaultHTTPClient is the client used when New gets nil: bounded dials,
// TLS handshakes and waits for response headers; no overall timeout, so
// large uploads are bounded by the caller's context instead.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}

// request is one API call.
type request struct {
	method, url string
	token       string
	body        []byte
	contentType string
	header      map[string]string
	final       bool // the write that publishes: failures after sending are ambiguous
	what        string
}

// response is an API answer that arrived.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends rq. Transport failures come back classified; any HTTP answer is
// returned for the caller to classify.
func (a *Adapter) do(ctx context.Context, rq request) (response, error) {
	if err := ctx.Err(); err != nil {
		return response{}, platformErr(apperr.Wrap(err, apperr.KindTransient, "bluesky.cancelled", rq.what+": cancelled before sending"), 0, nil)
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
	if err != nil {
		return response{}, platformErr(apperr.Wrap(err, apperr.KindPermanent, "bluesky.bad_url", rq.what+": the URL is not valid"), 0, nil)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return response{}, transportErr(err, rq.final, rq.what)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return response{}, transportErr(err, rq.final, rq.what)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// transportErr classifies a failure to get an answer: transient when the
// request cannot have reached the server (or was not the final write),
// ambiguous otherwise.
func transportErr(err error, final bool, what string) *apperr.Error {
	kind := apperr.KindTransient
	if final && !notSent(err) {
		kind = apperr.KindAmbiguous
	}
	return platformErr(apperr.Wrap(err, kind, "bluesky.network", what+": no answer from the server"), 0, nil)
}

// notSent reports whether err happened before the request left: a failed
// dial or name lookup.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// platformErr fills the platform fields of e.
func platformErr(e *apperr.Error, status int, body []byte) *apperr.Error {
	e.Platform = "bluesky"
	e.HTTPStatus = status
	if status != 0 && e.PlatformCode == "" {
		e.PlatformCode = strconv.Itoa(status)
	}
	if body != nil {
		e.Redacted = redact(body)
	}
	return e
}

var (
	redactJSON   = regexp.MustCompile(`(?i)("[a-z_]*(?:token|jwt|secret|password|code_verifier|code)"\s*:\s*")(?:[^"\\]|\\.)*(")`)
	redactQuery  = regexp.MustCompile(`(?i)((?:access_token|refresh_token|client_secret|token|code)=)[^&\s"']+`)
	redactBearer = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]+`)
	redactJWT    = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`)
)

// redact returns body with token-looking values removed, cut to ~2 KB.
func redact(body []byte) string {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	s := string(body)
	s = redactJSON.ReplaceAllString(s, `${1}[redacted]${2}`)
	s = redactQuery.ReplaceAllString(s, `${1}[redacted]`)
	s = redactBearer.ReplaceAllString(s, `${1}[redacted]`)
	s = redactJWT.ReplaceAllString(s, `[redacted]`)
	if len(s) > 2048 {
		cut := 2048
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// clip shortens a platform message for an error text.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// shapeErr is the error for a success answer whose body is not what the
// API documents.
func shapeErr(resp response, final bool, what string, cause error) *apperr.Error {
	kind := apperr.KindPermanent
	if final {
		kind = apperr.KindAmbiguous
	}
	return platformErr(apperr.Wrap(fmt.Errorf("decode %s: %w", what, cause), kind, "bluesky.unexpected_response",
		what+": unexpected response from the server"), resp.status, resp.body)
}
