package tiktok

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// errs builds this adapter's errors.
var errs = platformhttp.Errors{Platform: "tiktok", StatusCode: true}

// envelope is TikTok's {"data": …, "error": {"code", "message", "log_id"}}.
type envelope struct {
	Data  json.RawMessage `json:"data"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		LogID   string `json:"log_id"`
	} `json:"error"`
}

// apiError classifies an error envelope per the platform notes (§10).
// final marks the write that creates the post (init for pull-from-URL
// posts): a server error there is ambiguous.
func (a *Adapter) apiError(resp platformhttp.Response, what string, final bool) *apperr.Error {
	var env envelope
	_ = json.Unmarshal(resp.Body, &env)
	code, msg := env.Error.Code, env.Error.Message
	var e *apperr.Error
	switch {
	case code == "access_token_invalid":
		e = apperr.New(apperr.KindReconnect, "tiktok.token_invalid", what+": the access token is invalid or expired; refresh it")
	case code == "scope_not_authorized" || code == "scope_permission_missed" || code == "auth_removed":
		e = apperr.New(apperr.KindReconnect, "tiktok.scope_missing", what+": the user has not granted the needed scope ("+code+")")
	case code == "rate_limit_exceeded" || (code == "" && resp.Status == http.StatusTooManyRequests):
		e = apperr.New(apperr.KindRateLimited, "tiktok.rate_limited", what+": rate limited")
		e.RetryAfter = a.retryAfter(resp.Header, a.cfg.RateLimitRetryAfter)
	case code == "spam_risk_too_many_posts":
		e = apperr.New(apperr.KindRateLimited, "tiktok.daily_cap", what+": the creator hit TikTok's daily posting cap")
		e.RetryAfter = a.cfg.DailyCapRetryAfter
	case code == "unaudited_client_can_only_post_to_private_accounts" || code == "reached_active_user_cap" || code == "url_ownership_unverified":
		e = apperr.New(apperr.KindPermanent, "tiktok.client_config", what+": the TikTok app is not set up for this ("+code+"); alert ops")
	case code == "privacy_level_option_mismatch":
		e = apperr.New(apperr.KindPermanent, "tiktok.privacy_level_option_mismatch", what+": privacy_level is not one of the creator's options")
	case code == "internal_error" || resp.Status >= 500:
		if final {
			e = apperr.Newf(apperr.KindAmbiguous, "tiktok.init_uncertain", "%s: server error (HTTP %d); the post may have been created", what, resp.Status)
		} else {
			e = apperr.Newf(apperr.KindTransient, "tiktok.server_error", "%s: server error (HTTP %d)", what, resp.Status)
		}
	case resp.Status == http.StatusUnauthorized:
		e = apperr.New(apperr.KindReconnect, "tiktok.token_invalid", what+": unauthorized")
	default:
		e = apperr.New(apperr.KindPermanent, "tiktok.rejected", what+": rejected ("+platformhttp.OrStatus(code, resp.Status)+"): "+platformhttp.Clip(msg))
	}
	e.PlatformCode = platformhttp.OrStatus(code, resp.Status)
	return errs.Annotate(e, resp.Status, resp.Body)
}

// retryAfter honours a Retry-After header if TikTok ever sends one; none is
// documented, so the default applies.
func (a *Adapter) retryAfter(h http.Header, def time.Duration) time.Duration {
	if d, ok := platformhttp.RetryAfter(h); ok && d > 0 {
		return d
	}
	return def
}

// failReasonErr classifies a FAILED status: the post was not published.
func (a *Adapter) failReasonErr(reason string, resp platformhttp.Response) *apperr.Error {
	var e *apperr.Error
	switch reason {
	case "internal", "video_pull_failed", "photo_pull_failed":
		e = apperr.New(apperr.KindTransient, "tiktok.media_fetch", "TikTok could not download or process the media ("+reason+")")
	case "auth_removed":
		e = apperr.New(apperr.KindReconnect, "tiktok.scope_missing", "the creator removed the app's authorization")
	case "spam_risk_too_many_posts":
		e = apperr.New(apperr.KindRateLimited, "tiktok.daily_cap", "the creator hit TikTok's daily posting cap")
		e.RetryAfter = a.cfg.DailyCapRetryAfter
	default:
		e = apperr.New(apperr.KindPermanent, "tiktok.publish_failed", "TikTok rejected the post ("+reason+")")
	}
	e.PlatformCode = reason
	return errs.Annotate(e, resp.Status, resp.Body)
}
