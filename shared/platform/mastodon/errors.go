package mastodon

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// errs builds this adapter's errors.
var errs = platformhttp.Errors{Platform: "mastodon", Peer: "instance", StatusCode: true}

// apiError classifies a non-success answer per the platform notes (§10):
// 429 waits for X-RateLimit-Reset, 401 reconnects, 5xx is transient (the
// Idempotency-Key makes a retry safe), the rest is permanent.
func (a *Adapter) apiError(resp platformhttp.Response, what string) *apperr.Error {
	msg := errorMessage(resp.Body)
	var e *apperr.Error
	switch {
	case resp.Status == http.StatusTooManyRequests:
		e = apperr.New(apperr.KindRateLimited, "mastodon.rate_limited", what+": rate limited by the instance")
		e.RetryAfter = a.retryAfter(resp.Header)
	case resp.Status == http.StatusUnauthorized:
		e = apperr.New(apperr.KindReconnect, "mastodon.token_invalid", what+": the access token is invalid or revoked")
	case resp.Status == http.StatusForbidden && strings.Contains(strings.ToLower(msg), "scope"):
		e = apperr.New(apperr.KindReconnect, "mastodon.scope_missing", what+": the token lacks a required scope")
	case resp.Status == http.StatusForbidden:
		e = apperr.New(apperr.KindPermanent, "mastodon.forbidden", what+": forbidden by the instance")
	case resp.Status == http.StatusUnprocessableEntity:
		e = apperr.New(apperr.KindPermanent, "mastodon.validation", what+": rejected by the instance: "+platformhttp.Clip(msg))
	case resp.Status >= 500:
		e = apperr.Newf(apperr.KindTransient, "mastodon.server_error", "%s: the instance answered HTTP %d", what, resp.Status)
	default:
		e = apperr.Newf(apperr.KindPermanent, "mastodon.rejected", "%s: the instance answered HTTP %d: %s", what, resp.Status, platformhttp.Clip(msg))
	}
	return errs.Annotate(e, resp.Status, resp.Body)
}

// retryAfter reads X-RateLimit-Reset (ISO-8601), then Retry-After, else the
// configured default.
func (a *Adapter) retryAfter(h http.Header) time.Duration {
	reset, ok := platformhttp.ISOReset(h, "X-RateLimit-Reset")
	return platformhttp.RateLimitWait(h, reset, ok, a.clock.Now(), a.cfg.DefaultRetryAfter)
}

// errorMessage extracts Mastodon's {"error": "..."} message, if any.
func errorMessage(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	if e.Description != "" {
		return e.Error + ": " + e.Description
	}
	return e.Error
}
