package bluesky

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

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
func (a *Adapter) apiError(resp response, what string, final bool) *apperr.Error {
	name, msg := xrpcError(resp.body)
	var e *apperr.Error
	switch {
	case resp.status == http.StatusTooManyRequests || name == "RateLimitExceeded":
		e = apperr.New(apperr.KindRateLimited, "bluesky.rate_limited", what+": rate limited")
		e.RetryAfter = a.retryAfter(resp.header)
	case name == "ExpiredToken":
		e = apperr.New(apperr.KindReconnect, "bluesky.expired_token", what+": the session token has expired; refresh the session")
	case name == "InvalidToken" || resp.status == http.StatusUnauthorized:
		e = apperr.New(apperr.KindReconnect, "bluesky.invalid_token", what+": the session token is not valid")
	case strings.HasPrefix(name, "Account"):
		e = apperr.New(apperr.KindReconnect, "bluesky.account_unavailable", what+": the account is unavailable ("+name+")")
	case resp.status >= 500 && final:
		e = apperr.Newf(apperr.KindAmbiguous, "bluesky.create_uncertain", "%s: the server answered HTTP %d; the record may exist (check it with getRecord)", what, resp.status)
	case resp.status >= 500:
		e = apperr.Newf(apperr.KindTransient, "bluesky.server_error", "%s: the server answered HTTP %d", what, resp.status)
	default:
		e = apperr.Newf(apperr.KindPermanent, "bluesky.rejected", "%s: rejected (%s): %s", what, orStatus(name, resp.status), clip(msg))
	}
	e.PlatformCode = orStatus(name, resp.status)
	return platformErr(e, resp.status, resp.body)
}

func orStatus(name string, status int) string {
	if name != "" {
		return name
	}
	return strconv.Itoa(status)
}

// retryAfter reads RateLimit-Reset (epoch seconds), then Retry-After, else
// the configured default.
func (a *Adapter) retryAfter(h http.Header) time.Duration {
	if v := h.Get("RateLimit-Reset"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(n, 0).Sub(a.clock.Now()); d > 0 {
				return d.Round(time.Second)
			}
			return time.Second
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
	}
	return a.cfg.DefaultRetryAfter
}
