package secretscan

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanFindsSecretsAndTheirEncodings(t *testing.T) {
	t.Parallel()
	s := NewSet()
	s.Add("token", "tok_abc/def+ghi=123", "short")
	s.Add("password", `pass"word\with-quotes`)
	if s.Len() != 2 {
		t.Fatalf("Len: got %d, want 2 (values under %d bytes are ignored)", s.Len(), MinLength)
	}
	quoted, _ := json.Marshal(`pass"word\with-quotes`)
	for _, tc := range []struct {
		name, text string
		want       string
	}{
		{"raw", "level=INFO msg=x token=tok_abc/def+ghi=123 end", "token"},
		{"query escaped", "GET /x?access_token=" + url.QueryEscape("tok_abc/def+ghi=123"), "token"},
		{"in JSON", `{"password":` + string(quoted) + `}`, "password"},
		{"at the very end", "tok_abc/def+ghi=123", "token"},
		{"none", "level=INFO msg=dispatch token=[REDACTED] short", ""},
		{"a prefix only", "tok_abc/def+ghi=12", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, found := ScanText("text", tc.text, s)
			if n != 1 {
				t.Errorf("lines: got %d, want 1", n)
			}
			switch {
			case tc.want == "" && len(found) > 0:
				t.Errorf("got %v, want no finding", found)
			case tc.want != "" && (len(found) == 0 || found[0].Kind != tc.want):
				t.Errorf("got %v, want a %s finding", found, tc.want)
			}
			for _, f := range found {
				if strings.Contains(f.String(), "tok_abc") || strings.Contains(f.String(), "with-quotes") {
					t.Errorf("a finding shows the secret: %q", f)
				}
			}
		})
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	_ = os.WriteFile(a, []byte("one\ntwo\n"), 0o600)
	_ = os.WriteFile(b, []byte("x\ny token tok_abc/def+ghi=123\nz"), 0o600)
	lines, found, err := ScanFiles([]string{a, b}, s)
	if err != nil || lines != 5 || len(found) != 1 || found[0].Where != b+" line 2" {
		t.Errorf("ScanFiles: got %d lines, %v, %v; want 5 lines and one finding at %s line 2", lines, found, err, b)
	}
	if got := Summary(found); got != "token 1" {
		t.Errorf("Summary: got %q", got)
	}
}

func TestPlaintextStrings(t *testing.T) {
	t.Parallel()
	got := plaintextStrings([]byte(`{"access_token":"a-token-value","refresh_token":"r-token-value","scopes":["tweet.write"],"user_id":"123456789012","nested":{"client_secret":"cs-value"}}`))
	want := map[string]bool{"a-token-value": true, "r-token-value": true, "cs-value": true}
	if len(got) != len(want) {
		t.Fatalf("got %d strings, want %d (only the secret fields)", len(got), len(want))
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("a field that is not secret was taken: %q", g)
		}
	}
	if got := plaintextStrings([]byte("whsec_rawsecretvalue")); len(got) != 1 || got[0] != "whsec_rawsecretvalue" {
		t.Errorf("raw plaintext: got %q, want it whole", got)
	}
}
