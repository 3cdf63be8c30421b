package bluesky

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// errs builds this adapter's errors.
var errs = platformhttp.Errors{Platform: "bluesky", StatusCode: true}

// xrpcError reads the XRPC error body {"error": "Name", "message": "..."}.
func xrpcError(body []byte) (name, msg string) {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error, e.Message
}

// apiError classifies a non-200 XRPC answer per the platform notes (§10).
// A dead or expired access token (including the legacy session's HTTP 400
// ExpiredToken) is reconnect: the caller refreshes the session and retries,
// or asks the user to reconnect when the refresh fails. A 5xx on the final
// write (createRecord with our rkey) is ambiguous: the reference PDS also
// answers 500 when the rkey already exists.
func (a *Adapter) apiError(resp platformhttp.Response, what string, final bool) *apperr.Error {
	name, msg := xrpcError(resp.Body)
	var e *apperr.Error
	switch {
	case resp.Status == http.StatusTooManyRequests || name == "RateLimitExceeded":
		e = apperr.New(apperr.KindRateLimited, "bluesky.rate_limited", what+": rate limited")
		e.RetryAfter = a.retryAfter(resp.Header)
	case name == "ExpiredToken":
		e = apperr.New(apperr.KindReconnect, "bluesky.expired_token", what+": the session token has expired; refresh the session")
	case name == "InvalidToken" || resp.Status == http.StatusUnauthorized:
		e = apperr.New(apperr.KindReconnect, "bluesky.invalid_token", what+": the session token is not valid")
	case strings.HasPrefix(name, "Account"):
		e = apperr.New(apperr.KindReconnect, "bluesky.account_unavailable", what+": the account is unavailable ("+name+")")
	case resp.Status >= 500 && final:
		e = apperr.Newf(apperr.KindAmbiguous, "bluesky.create_uncertain", "%s: the server answered HTTP %d; the record may exist (check it with getRecord)", what, resp.Status)
	case resp.Status >= 500:
		e = apperr.Newf(apperr.KindTransient, "bluesky.server_error", "%s: the server answered HTTP %d", what, resp.Status)
	default:
		e = apperr.Newf(apperr.KindPermanent, "bluesky.rejected", "%s: rejected (%s): %s", what, platformhttp.OrStatus(name, resp.Status), platformhttp.Clip(msg))
	}
	e.PlatformCode = platformhttp.OrStatus(name, resp.Status)
	return errs.Annotate(e, resp.Status, resp.Body)
}

// retryAfter reads RateLimit-Reset (epoch seconds), then Retry-After, else
// the configured default.
func (a *Adapter) retryAfter(h http.Header) time.Duration {
	reset, ok := platformhttp.EpochReset(h, "RateLimit-Reset")
	return platformhttp.RateLimitWait(h, reset, ok, a.clock.Now(), a.cfg.DefaultRetryAfter)
}
