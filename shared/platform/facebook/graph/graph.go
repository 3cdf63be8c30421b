// Package graph is the Meta Graph API plumbing the Facebook Pages and
// Instagram adapters share: requests that carry the token in a header,
// Meta's error object and its classification into the apperr taxonomy
// (throttling timed from X-Business-Use-Case-Usage), and redaction of
// response bodies before they are kept.
//
// Meta answers HTTP 400 for almost every failure, rate limits included, so
// errors are classified on the body's code and error_subcode, never on the
// status alone.
package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// Client sends Graph API calls for one platform. It holds no per-account
// state and is safe for concurrent use.
type Client struct {
	// Platform names the platform on every error ("facebook", "instagram").
	Platform string
	// BaseURL is the versioned API root, e.g. https://graph.facebook.com/v26.0.
	BaseURL string
	// HC is the adapter's shared HTTP client.
	HC *http.Client
	// Clock is the adapter's clock.
	Clock platform.Clock
	// ThrottleWait is the wait after a throttling error whose usage header
	// gives no estimate.
	ThrottleWait time.Duration
	// QuotaWait is the wait after Instagram's publishing cap (code 9 /
	// subcode 2207042); the rolling window's oldest post is not reported.
	QuotaWait time.Duration
}

// Call is one Graph request.
type Call struct {
	Method string     // GET or POST
	Path   string     // under BaseURL, e.g. "/123/feed"
	Params url.Values // the query of a GET, the form body of a POST
	Token  string     // sent as "Authorization: Bearer", never in the URL
	// Final marks the write that publishes. A failure after it may have
	// been sent is ambiguous, not transient.
	Final bool
}

// maxBody caps how much of a response is read.
const maxBody = 4 << 20

// Do sends c and decodes a 2xx JSON answer into out (when out is not nil).
// Every failure is an *apperr.Error.
func (cl *Client) Do(ctx context.Context, c Call, out any) error {
	u := strings.TrimRight(cl.BaseURL, "/") + c.Path
	var body io.Reader
	if c.Method == http.MethodGet {
		if len(c.Params) > 0 {
			u += "?" + c.Params.Encode()
		}
	} else {
		body = strings.NewReader(c.Params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, u, body)
	if err != nil {
		return cl.err(apperr.Wrap(err, apperr.KindPermanent, cl.Platform+".bad_request", "the request could not be built"), 0, nil)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := cl.HC.Do(req)
	if err != nil {
		return TransportError(cl.Platform, err, c.Final)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return TransportError(cl.Platform, err, c.Final)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return cl.Classify(resp.StatusCode, resp.Header, raw, c.Final)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return cl.Unexpected(resp.StatusCode, raw, c.Final, err)
		}
	}
	return nil
}

// APIError is Meta's error object.
type APIError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode"`
	UserTitle   string `json:"error_user_title"`
	UserMsg     string `json:"error_user_msg"`
	IsTransient bool   `json:"is_transient"`
}

// Instagram subcodes for failures that a new container or a later retry
// can get past (platforms.md §4, §10).
var transientSubcodes = map[int]bool{2207001: true, 2207003: true, 2207032: true, 2207053: true}

// TransientSubcode reports whether an Instagram error subcode is transient.
func TransientSubcode(sub int) bool { return transientSubcodes[sub] }

// throttled reports whether code is one of Meta's throttling codes: app (4),
// user (17), page (32), app limit (341), 613, and the business use case
// range (80000-80014).
func throttled(code int) bool {
	switch code {
	case 4, 17, 32, 341, 613:
		return true
	}
	return code >= 80000 && code <= 80014
}

// Classify turns a non-2xx Graph answer into an *apperr.Error.
func (cl *Client) Classify(status int, h http.Header, body []byte, final bool) *apperr.Error {
	var env struct {
		Error *APIError `json:"error"`
	}
	_ = json.Unmarshal(body, &env)
	ae := env.Error
	if ae == nil {
		e := apperr.Newf(apperr.KindPermanent, cl.Platform+".http_"+strconv.Itoa(status), "%s answered HTTP %d", cl.Platform, status)
		switch {
		case status == http.StatusTooManyRequests:
			e.Kind, e.Code, e.RetryAfter = apperr.KindRateLimited, cl.Platform+".throttled", cl.regainWait(h)
		case status >= 500:
			e.Kind, e.Code = uncertain(final), cl.Platform+".server_error"
		}
		e.Retryable = e.Kind == apperr.KindRateLimited || e.Kind == apperr.KindTransient
		return cl.err(e, status, body)
	}
	e := apperr.New(apperr.KindPermanent, cl.Platform+".rejected", cl.Platform+": "+ae.Message)
	switch {
	case ae.Code == 190 || ae.Code == 102 || ae.Code == 10 || (ae.Code >= 200 && ae.Code <= 299):
		e.Kind, e.Code = apperr.KindReconnect, cl.Platform+".token"
	case ae.Subcode == 2207051:
		e.Code = cl.Platform + ".spam_restricted"
	case ae.Code == 9 || ae.Subcode == 2207042:
		e.Kind, e.Code, e.RetryAfter = apperr.KindRateLimited, cl.Platform+".publishing_limit", cl.QuotaWait
	case throttled(ae.Code):
		e.Kind, e.Code, e.RetryAfter = apperr.KindRateLimited, cl.Platform+".throttled", cl.regainWait(h)
	case ae.Subcode == 2207027 || ae.Subcode == 2207020 || ae.Subcode == 2207008:
		// Not ready, expired or unknown container: nothing was published.
		e.Kind, e.Code = apperr.KindTransient, cl.Platform+".container_not_ready"
	case ae.Code == 1 || ae.Code == 2 || ae.IsTransient || transientSubcodes[ae.Subcode] || status >= 500:
		e.Kind, e.Code = uncertain(final), cl.Platform+".server_error"
	case ae.Code == 506:
		e.Code = cl.Platform + ".duplicate"
	case ae.Code == 368:
		e.Code = cl.Platform + ".policy_block"
	}
	e.Retryable = e.Kind == apperr.KindRateLimited || e.Kind == apperr.KindTransient
	e.PlatformCode = strconv.Itoa(ae.Code)
	if ae.Subcode != 0 {
		e.PlatformCode += "/" + strconv.Itoa(ae.Subcode)
	}
	return cl.err(e, status, body)
}

// uncertain is the kind of a server-side failure: transient before the
// publishing write, ambiguous on it.
func uncertain(final bool) apperr.Kind {
	if final {
		return apperr.KindAmbiguous
	}
	return apperr.KindTransient
}

// regainWait reads the longest estimated_time_to_regain_access (minutes)
// from X-Business-Use-Case-Usage, falling back to ThrottleWait.
func (cl *Client) regainWait(h http.Header) time.Duration {
	var usage map[string][]struct {
		Regain int `json:"estimated_time_to_regain_access"`
	}
	var longest int
	if json.Unmarshal([]byte(h.Get("X-Business-Use-Case-Usage")), &usage) == nil {
		for _, entries := range usage {
			for _, u := range entries {
				longest = max(longest, u.Regain)
			}
		}
	}
	if longest > 0 {
		return time.Duration(longest) * time.Minute
	}
	return cl.ThrottleWait
}

// Unexpected is the error for a 2xx answer of a shape the adapter cannot
// read: ambiguous after the publishing write (it probably happened),
// permanent otherwise.
func (cl *Client) Unexpected(status int, body []byte, final bool, cause error) *apperr.Error {
	kind := apperr.KindPermanent
	if final {
		kind = apperr.KindAmbiguous
	}
	e := apperr.Wrap(cause, kind, cl.Platform+".unexpected_response", cl.Platform+" answered in an unexpected shape")
	return cl.err(e, status, body)
}

// err fills the platform fields of e.
func (cl *Client) err(e *apperr.Error, status int, body []byte) *apperr.Error {
	e.Platform, e.HTTPStatus = cl.Platform, status
	if body != nil {
		e.Redacted = Redact(body)
	}
	return e
}

// TransportError classifies a failed exchange: a connection that was never
// made is transient; any other failure of the publishing write is ambiguous,
// since the platform may have acted on it. The URL is dropped from the
// cause so that no query parameter can reach a log.
func TransportError(platformName string, err error, final bool) *apperr.Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	kind, code, msg := apperr.KindTransient, ".network", "the request to %s failed before an answer"
	var op *net.OpError
	if final && !(errors.As(err, &op) && op.Op == "dial") {
		kind, code, msg = apperr.KindAmbiguous, ".no_response", "%s did not answer the publishing request; it may have published"
	}
	e := apperr.Wrap(err, kind, platformName+code, fmt.Sprintf(msg, platformName))
	e.Platform = platformName
	return e
}

// redactions replace secrets in response bodies: token-like JSON fields,
// query parameters and authorization schemes.
var redactions = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)("(?:access_token|refresh_token|id_token|token|client_secret|code|fb_exchange_token|upload_?url)"\s*:\s*)"[^"]*"`), `$1"[redacted]"`},
	{regexp.MustCompile(`(?i)((?:access_token|refresh_token|client_secret|fb_exchange_token|code)=)[^&\s"']+`), `$1[redacted]`},
	{regexp.MustCompile(`(?i)((?:bearer|oauth)\s+)[A-Za-z0-9._~+/=-]{8,}`), `$1[redacted]`},
}

// redactLimit is how much of a body is kept.
const redactLimit = 2048

// Redact returns body with token-looking values removed, cut to about 2 KB.
func Redact(body []byte) string {
	s := string(body)
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, r.with)
	}
	if len(s) > redactLimit {
		cut := redactLimit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
