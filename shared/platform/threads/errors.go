package threads

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

// LinkLimitCode is the Threads error for more than 5 links in a post.
const LinkLimitCode = "THREADS_API__LINK_LIMIT_EXCEEDED"

// graphError is Meta's error object.
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title"`
	UserMsg     string `json:"error_user_msg"`
}

func parseGraphError(body []byte) (graphError, bool) {
	var w struct {
		Error *graphError `json:"error"`
	}
	if json.Unmarshal(body, &w) != nil || w.Error == nil {
		return graphError{}, false
	}
	return *w.Error, true
}

// apiError classifies a Graph error per the platform notes (§10): Meta
// answers HTTP 400 for almost everything, so the body's code decides.
// Throttling codes wait for the usage header's regain time; token codes
// reconnect; codes 1/2 and is_transient are transient, except on the final
// write (threads_publish), where they are ambiguous.
func (a *Adapter) apiError(resp response, what string, final bool) *apperr.Error {
	g, ok := parseGraphError(resp.body)
	var e *apperr.Error
	all := g.Message + " " + g.Type + " " + g.UserTitle + " " + g.UserMsg
	switch {
	case ok && strings.Contains(all, LinkLimitCode):
		e = apperr.New(apperr.KindPermanent, "threads.link_limit", what+": the post has more than 5 links")
		e.PlatformCode = LinkLimitCode
	case ok && isThrottle(g.Code):
		e = apperr.New(apperr.KindRateLimited, "threads.rate_limited", what+": rate limited ("+g.Message+")")
		e.RetryAfter = a.retryAfter(resp.header)
	case ok && (g.Code == 190 || g.Code == 102 || g.Code == 10 || (g.Code >= 200 && g.Code <= 299)):
		e = apperr.New(apperr.KindReconnect, "threads.token_invalid", what+": the access token is invalid, expired or lacks permission")
	case (ok && (g.Code == 1 || g.Code == 2 || g.IsTransient)) || (!ok && resp.status >= 500) || (ok && resp.status >= 500):
		if final {
			e = apperr.Newf(apperr.KindAmbiguous, "threads.publish_uncertain", "%s: server error; the post may exist (check the container status)", what)
		} else {
			e = apperr.Newf(apperr.KindTransient, "threads.server_error", "%s: server error (HTTP %d)", what, resp.status)
		}
	case ok && g.Code == 506:
		e = apperr.New(apperr.KindPermanent, "threads.duplicate", what+": duplicate post")
	default:
		msg := g.Message
		if !ok {
			msg = "HTTP " + strconv.Itoa(resp.status)
		}
		e = apperr.New(apperr.KindPermanent, "threads.rejected", what+": rejected: "+clip(msg))
	}
	if e.PlatformCode == "" {
		if ok {
			e.PlatformCode = strconv.Itoa(g.Code)
			if g.Subcode != 0 {
				e.PlatformCode += "/" + strconv.Itoa(g.Subcode)
			}
		} else {
			e.PlatformCode = strconv.Itoa(resp.status)
		}
	}
	return platformErr(e, resp.status, resp.body)
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
	if v := h.Get("X-Business-Use-Case-Usage"); v != "" {
		var usage map[string][]struct {
			Regain int `json:"estimated_time_to_regain_access"`
		}
		if json.Unmarshal([]byte(v), &usage) == nil {
			best := 0
			for _, entries := range usage {
				for _, u := range entries {
					best = max(best, u.Regain)
				}
			}
			if best > 0 {
				return time.Duration(best) * time.Minute
			}
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
	}
	return a.cfg.DefaultRetryAfter
}
