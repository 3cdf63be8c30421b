package platformhttp

import (
	"regexp"
	"unicode/utf8"
)

// redactions replace secrets in response bodies: token-like JSON string
// fields (closed or cut off by a size cap), query parameters,
// authorization schemes and bare JWTs.
var redactions = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)("[a-z_]*(?:token|jwt|secret|password|code_verifier|code|upload_?url)"\s*:\s*")(?:[^"\\]|\\.)*\\?("?)`), `${1}[redacted]${2}`},
	{regexp.MustCompile(`(?i)((?:access_token|refresh_token|client_secret|fb_exchange_token|token|code)=)[^&\s"']+`), `${1}[redacted]`},
	{regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]+`), `${1}[redacted]`},
	{regexp.MustCompile(`(?i)(oauth\s+)[A-Za-z0-9\-._~+/=]{8,}`), `${1}[redacted]`},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`), `[redacted]`},
}

// redactLimit is about how much of a body Redact keeps.
const redactLimit = 2048

// Redact returns body with token-looking values removed, cut to about
// 2 KB on a character boundary, for apperr.Error.Redacted.
func Redact(body []byte) string {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
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

// Clip shortens a platform's message for an error text.
func Clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
