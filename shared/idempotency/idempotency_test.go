package idempotency

import (
	"strings"
	"testing"
)

func TestCheckKey(t *testing.T) {
	t.Parallel()
	for key, ok := range map[string]bool{
		"order-42": true, "a": true, strings.Repeat("k", MaxKeyLength): true,
		"": false, "has space": false, "tab\t": false, "é": false, strings.Repeat("k", MaxKeyLength+1): false,
	} {
		if got := CheckKey(key) == ""; got != ok {
			t.Errorf("CheckKey(%q): got ok=%v, want %v (%s)", key, got, ok, CheckKey(key))
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := Fingerprint("POST", "/v1/dispatch", []byte(`{"a":1}`))
	for name, other := range map[string]string{
		"method": Fingerprint("PATCH", "/v1/dispatch", []byte(`{"a":1}`)),
		"path":   Fingerprint("POST", "/v1/targets", []byte(`{"a":1}`)),
		"body":   Fingerprint("POST", "/v1/dispatch", []byte(`{"a":2}`)),
		"seam":   Fingerprint("POST", "/v1/dispatch\n", []byte(`{"a":1}`)[0:0]),
	} {
		if other == base {
			t.Errorf("a request differing by %s has the same fingerprint", name)
		}
	}
	if again := Fingerprint("POST", "/v1/dispatch", []byte(`{"a":1}`)); again != base {
		t.Errorf("not deterministic")
	}
}
