package platformhttp_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want string
	}{
		{"OAuth token fields", `{"access_token":"a1","refresh_token":"r1","id_token":"i1","token_type":"bearer"}`,
			`{"access_token":"[redacted]","refresh_token":"[redacted]","id_token":"[redacted]","token_type":"bearer"}`},
		{"secrets, codes and passwords", `{"client_secret":"s","code":"c","code_verifier":"v","password":"p","error_code":"e"}`,
			`{"client_secret":"[redacted]","code":"[redacted]","code_verifier":"[redacted]","password":"[redacted]","error_code":"[redacted]"}`},
		{"session JWT fields", `{"accessJwt":"a","refreshJwt":"b"}`, `{"accessJwt":"[redacted]","refreshJwt":"[redacted]"}`},
		{"upload URLs", `{"uploadUrl":"https://up/?sig=1","upload_url":"https://up/2"}`, `{"uploadUrl":"[redacted]","upload_url":"[redacted]"}`},
		{"Meta exchange token", `{"fb_exchange_token": "f"}`, `{"fb_exchange_token": "[redacted]"}`},
		{"escaped quote inside a value", `{"token":"ab\"cd","next":1}`, `{"token":"[redacted]","next":1}`},
		{"value cut off by a size cap", `{"token":"abc`, `{"token":"[redacted]`},
		{"value cut off after a backslash", `{"token":"abc\`, `{"token":"[redacted]`},
		{"non-string fields stay", `{"code":190,"error_subcode":463}`, `{"code":190,"error_subcode":463}`},
		{"query parameters", `next=https://g/x?access_token=A&after=1&code=C&fb_exchange_token=F&token=T`,
			`next=https://g/x?access_token=[redacted]&after=1&code=[redacted]&fb_exchange_token=[redacted]&token=[redacted]`},
		{"bearer, however short", `Authorization: Bearer abc`, `Authorization: Bearer [redacted]`},
		{"OAuth scheme with a token", `Authorization: OAuth EAAB12345678`, `Authorization: OAuth [redacted]`},
		{"OAuth in prose stays", `Invalid OAuth access token`, `Invalid OAuth access token`},
		{"bare JWT", `token eyJhbGciOi.eyJzdWIi.c2ln here`, `token [redacted] here`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := platformhttp.Redact([]byte(tc.body)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRedactCutsOnACharacter(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("é", 3000) // 2 bytes each: byte 2048 starts a character
	got := platformhttp.Redact([]byte("x" + body))
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > 2048+len("…") {
		t.Errorf("got %d bytes (valid UTF-8: %v), want at most 2 KB cut on a character boundary with an ellipsis", len(got), utf8.ValidString(got))
	}
	if got := platformhttp.Redact(nil); got != "" {
		t.Errorf("nil body: got %q, want empty", got)
	}
}
