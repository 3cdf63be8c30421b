// Package graph is the Meta Graph API plumbing the Facebook Pages and
// Instagram adapters share: requests that carry the token in a header,
// Meta's error object (Threads reads it too) and its classification into
// the apperr taxonomy (throttling timed from X-Business-Use-Case-Usage).
// Sending, transport errors and redaction come from platformhttp.
//
// Meta answers HTTP 400 for almost every failure, rate limits included, so
// errors are classified on the body's code and error_subcode, never on the
// status alone.
package graph

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
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

// Do sends c and decodes a 2xx JSON answer into out (when out is not nil).
// Every failure is an *apperr.Error.
func (cl *Client) Do(ctx context.Context, c Call, out any) error {
	rq := platformhttp.Request{Method: c.Method, URL: strings.TrimRight(cl.BaseURL, "/") + c.Path, Token: c.Token, Final: c.Final}
	if c.Method == http.MethodGet {
		if len(c.Params) > 0 {
			rq.URL += "?" + c.Params.Encode()
		}
	} else {
		rq.Body, rq.ContentType = []byte(c.Params.Encode()), "application/x-www-form-urlencoded"
	}
	api := platformhttp.Client{Errors: cl.errors(), HC: cl.HC, Classify: cl.Classify}
	_, err := api.Call(ctx, rq, out)
	return err
}

// errors builds this client's platform errors.
func (cl *Client) errors() platformhttp.Errors { return platformhttp.Errors{Platform: cl.Platform} }

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
			e.Kind, e.Code = platformhttp.AmbiguousIf(final, apperr.KindTransient), cl.Platform+".server_error"
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
		e.Kind, e.Code = platformhttp.AmbiguousIf(final, apperr.KindTransient), cl.Platform+".server_error"
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

// regainWait reads the longest estimated_time_to_regain_access (minutes)
// from X-Business-Use-Case-Usage, falling back to ThrottleWait.
func (cl *Client) regainWait(h http.Header) time.Duration {
	if d, ok := platformhttp.RegainWait(h); ok {
		return d
	}
	return cl.ThrottleWait
}

// Unexpected is the error for a 2xx answer of a shape the adapter cannot
// read: ambiguous after the publishing write (it probably happened),
// permanent otherwise.
func (cl *Client) Unexpected(status int, body []byte, final bool, cause error) *apperr.Error {
	return cl.errors().Unexpected(status, body, final, cause)
}

// err fills the platform fields of e.
func (cl *Client) err(e *apperr.Error, status int, body []byte) *apperr.Error {
	return cl.errors().Annotate(e, status, body)
}

// TransportError classifies a failed exchange: a connection that was never
// made is transient; any other failure of the publishing write is ambiguous,
// since the platform may have acted on it. The URL is dropped from the
// cause so that no query parameter can reach a log.
func TransportError(platformName string, err error, final bool) *apperr.Error {
	return platformhttp.Errors{Platform: platformName}.Transport(err, final)
}

// Redact returns body with token-looking values removed, cut to about 2 KB.
func Redact(body []byte) string { return platformhttp.Redact(body) }
