package threads

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/facebook/graph"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// errs builds this adapter's errors.
var errs = platformhttp.Errors{Platform: "threads", StatusCode: true}

// LinkLimitCode is the Threads error for more than 5 links in a post.
const LinkLimitCode = "THREADS_API__LINK_LIMIT_EXCEEDED"

// parseGraphError reads Meta's error object from body, if body is one.
func parseGraphError(body []byte) (graph.APIError, bool) {
	var w struct {
		Error *graph.APIError `json:"error"`
	}
	if json.Unmarshal(body, &w) != nil || w.Error == nil {
		return graph.APIError{}, false
	}
	return *w.Error, true
}

// apiError classifies a Graph error per the platform notes (§10): Meta
// answers HTTP 400 for almost everything, so the body's code decides.
// Throttling codes wait for the usage header's regain time; token codes
// reconnect; codes 1/2 and is_transient are transient, except on the final
// write (threads_publish), where they are ambiguous.
func (a *Adapter) apiError(resp platformhttp.Response, what string, final bool) *apperr.Error {
	g, ok := parseGraphError(resp.Body)
	var e *apperr.Error
	all := g.Message + " " + g.Type + " " + g.UserTitle + " " + g.UserMsg
	switch {
	case ok && strings.Contains(all, LinkLimitCode):
		e = apperr.New(apperr.KindPermanent, "threads.link_limit", what+": the post has more than 5 links")
		e.PlatformCode = LinkLimitCode
	case ok && isThrottle(g.Code):
		e = apperr.New(apperr.KindRateLimited, "threads.rate_limited", what+": rate limited ("+g.Message+")")
		e.RetryAfter = a.retryAfter(resp.Header)
	case ok && (g.Code == 190 || g.Code == 102 || g.Code == 10 || (g.Code >= 200 && g.Code <= 299)):
		e = apperr.New(apperr.KindReconnect, "threads.token_invalid", what+": the access token is invalid, expired or lacks permission")
	case (ok && (g.Code == 1 || g.Code == 2 || g.IsTransient)) || (!ok && resp.Status >= 500) || (ok && resp.Status >= 500):
		if final {
			e = apperr.Newf(apperr.KindAmbiguous, "threads.publish_uncertain", "%s: server error; the post may exist (check the container status)", what)
		} else {
			e = apperr.Newf(apperr.KindTransient, "threads.server_error", "%s: server error (HTTP %d)", what, resp.Status)
		}
	case ok && g.Code == 506:
		e = apperr.New(apperr.KindPermanent, "threads.duplicate", what+": duplicate post")
	default:
		msg := g.Message
		if !ok {
			msg = "HTTP " + strconv.Itoa(resp.Status)
		}
		e = apperr.New(apperr.KindPermanent, "threads.rejected", what+": rejected: "+platformhttp.Clip(msg))
	}
	if e.PlatformCode == "" {
		if ok {
			e.PlatformCode = strconv.Itoa(g.Code)
			if g.Subcode != 0 {
				e.PlatformCode += "/" + strconv.Itoa(g.Subcode)
			}
		} else {
			e.PlatformCode = strconv.Itoa(resp.Status)
		}
	}
	return errs.Annotate(e, resp.Status, resp.Body)
}

func isThrottle(code int) bool {
	switch code {
	case 4, 17, 32, 341, 613, 80001, 80002:
		return true
	}
	return false
}

// retryAfter reads the longest estimated_time_to_regain_access (minutes)
// from X-Business-Use-Case-Usage, then Retry-After, else the default.
func (a *Adapter) retryAfter(h http.Header) time.Duration {
	if d, ok := platformhttp.RegainWait(h); ok {
		return d
	}
	if d, ok := platformhttp.RetryAfter(h); ok {
		return d
	}
	return a.cfg.DefaultRetryAfter
}
