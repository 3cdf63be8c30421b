package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/logging"
)

// CodeInvalidGrant is the apperr code of a refused authorization code or a
// dead refresh token: the account must be connected again.
const CodeInvalidGrant = "oauth.invalid_grant"

// tokenError classifies a failure of an x/oauth2 token call.
func (p *Provider) tokenError(err error, what string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		var header http.Header
		if re.Response != nil {
			status, header = re.Response.StatusCode, re.Response.Header
		}
		return p.httpError(response{status: status, header: header, body: re.Body}, re.ErrorCode, 0, what)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		e := p.errorf(apperr.KindTransient, "oauth.unavailable", "%s did not answer (%s)", p.name, what)
		e.Err = fmt.Errorf("%s %s: %w", p.name, what, stripURL(err))
		return e
	}
	// x/oauth2 could not parse a 2xx answer, or it had no access_token.
	e := p.errorf(apperr.KindPermanent, "oauth.bad_response", "%s answered %s with an unexpected response", p.name, what)
	e.Err = fmt.Errorf("%s %s: %w", p.name, what, stripURL(err))
	return e
}

// httpError classifies a platform's answer to a token or identity call.
// oauthCode is the RFC 6749 "error" field when known; metaCode the Graph
// error code when known.
func (p *Provider) httpError(resp response, oauthCode string, metaCode int, what string) *apperr.Error {
	if oauthCode == "" {
		oauthCode = oauthErrorCode(resp.body)
	}
	kind, code := apperr.KindPermanent, "oauth.rejected"
	switch {
	case resp.status == http.StatusTooManyRequests || metaThrottle[metaCode] || oauthCode == "rate_limit_exceeded":
		kind, code = apperr.KindRateLimited, "oauth.rate_limited"
	case resp.status >= 500 || metaCode == 1 || metaCode == 2:
		kind, code = apperr.KindTransient, "oauth.unavailable"
	case oauthCode == "invalid_grant", metaCode == 190,
		// X answers a spent refresh token or a refused code with invalid_request.
		p.name == "x" && oauthCode == "invalid_request" && resp.status == http.StatusBadRequest,
		oauthCode == "access_token_invalid", oauthCode == "invalid_token":
		kind, code = apperr.KindReconnect, CodeInvalidGrant
	case oauthCode == "invalid_client", oauthCode == "unauthorized_client", resp.status == http.StatusUnauthorized && what != identifyWhat:
		kind, code = apperr.KindPermanent, "oauth.invalid_client"
	case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden:
		kind, code = apperr.KindReconnect, CodeInvalidGrant
	case resp.status >= 200 && resp.status < 300:
		kind, code = apperr.KindPermanent, "oauth.bad_response"
	}
	e := p.errorf(kind, code, "%s refused to %s (HTTP %d)", p.name, what, resp.status)
	if kind == apperr.KindReconnect {
		e.Message = fmt.Sprintf("%s refused to %s: the account must be connected again", p.name, what)
	}
	e.HTTPStatus = resp.status
	e.PlatformCode = oauthCode
	if metaCode != 0 {
		e.PlatformCode = strconv.Itoa(metaCode)
	}
	e.Redacted = Redact(resp.body)
	if kind == apperr.KindRateLimited {
		e.RetryAfter = retryAfter(resp.header)
	}
	return e
}

// identifyWhat names the identity call, where 401 means a bad token rather
// than a bad client.
const identifyWhat = "identify the account"

// metaThrottle are Graph error codes that mean "slow down".
var metaThrottle = map[int]bool{4: true, 17: true, 32: true, 341: true, 613: true, 80001: true, 80002: true}

// graphError classifies a Graph API answer: {"error": {"code", ...}}, or the
// Instagram token endpoint's flat {"error_type", "code", "error_message"}.
func (p *Provider) graphError(resp response, what string) *apperr.Error {
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	metaCode := 0
	transient := false
	oauthCode := ""
	if json.Unmarshal(resp.body, &body) == nil && len(body.Error) > 0 {
		var ge struct {
			Code        int  `json:"code"`
			IsTransient bool `json:"is_transient"`
		}
		if json.Unmarshal(body.Error, &ge) == nil {
			metaCode, transient = ge.Code, ge.IsTransient
		} else {
			_ = json.Unmarshal(body.Error, &oauthCode)
		}
	}
	if transient && metaCode == 0 {
		metaCode = 2
	}
	if metaCode == 0 && oauthCode == "" && resp.status == http.StatusBadRequest && what != identifyWhat {
		// The Instagram token endpoint's flat error shape: a refused code.
		oauthCode = "invalid_grant"
	}
	return p.httpError(resp, oauthCode, metaCode, what)
}

// oauthErrorCode reads the "error" field of an RFC 6749 error answer, or
// TikTok's {"error": {"code": ...}} envelope.
func oauthErrorCode(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) == nil {
		return s
	}
	var obj struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(e.Error, &obj) == nil && obj.Code != "ok" {
		return obj.Code
	}
	return ""
}

// retryAfter reads Retry-After (seconds), else X's x-rate-limit-reset
// (epoch seconds), else one minute.
func retryAfter(h http.Header) time.Duration {
	if h != nil {
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
			return time.Duration(s) * time.Second
		}
		if s, err := strconv.ParseInt(h.Get("x-rate-limit-reset"), 10, 64); err == nil {
			if d := time.Until(time.Unix(s, 0)); d > 0 {
				return d
			}
		}
	}
	return time.Minute
}

// secretField matches JSON string fields whose values are credentials.
var secretField = regexp.MustCompile(`("(?:[A-Za-z_]*token|[A-Za-z_]*secret|code|code_verifier|password|[A-Za-z_]*jwt)"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// maxRedacted bounds the redacted copy of a response.
const maxRedacted = 2048

// Redact returns a copy of a platform answer fit for logs: token, secret
// and code values replaced, bearer strings and JWTs removed, at most 2 KB.
func Redact(body []byte) string {
	s := secretField.ReplaceAllString(string(body), `$1"`+logging.Redacted+`"`)
	s = logging.RedactString(s)
	if len(s) > maxRedacted {
		s = s[:maxRedacted] + "…"
	}
	return s
}
