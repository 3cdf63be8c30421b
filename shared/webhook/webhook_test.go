package webhook

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/event"
)

// The Standard Webhooks test vector, as its reference libraries publish it.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	key, err := DecodeSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(vectorID, vectorTS, []byte(vectorBody), key); got != vectorSig {
		t.Errorf("Sign: got %q, want %q", got, vectorSig)
	}
	// During a rotation: one v1 signature per key, space separated, the
	// current key first.
	other, _ := NewSecret(rand.Reader)
	k2, _ := DecodeSecret(other)
	got := strings.Split(Sign(vectorID, vectorTS, []byte(vectorBody), key, k2), " ")
	if len(got) != 2 || got[0] != vectorSig || !strings.HasPrefix(got[1], "v1,") || got[1] == got[0] {
		t.Errorf("two keys: got %v, want [%s v1,<other>]", got, vectorSig)
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	a, err := NewSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret(rand.Reader)
	ka, err := DecodeSecret(a)
	if err != nil || len(ka) != 32 || a == b || !strings.HasPrefix(a, "whsec_") {
		t.Errorf("NewSecret: %q (%d bytes, %v); want whsec_ and 32 fresh random bytes", a, len(ka), err)
	}
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ=", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if _, err := DecodeSecret(bad); err == nil {
			t.Errorf("DecodeSecret(%q): got nil, want an error", bad)
		}
	}
	if _, err := NewSecret(bytes.NewReader(nil)); err == nil {
		t.Error("NewSecret without randomness: got nil, want an error")
	}
}

func TestURLRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url   string
		local bool
		ok    bool
	}{
		{"https://cms.example/hook", false, true},
		{"https://cms.example:8443/hook?key=1", false, true},
		{"https://93.184.215.14/hook", false, true},
		{"http://cms.example/hook", false, false},
		{"http://cms.example/hook", true, true},
		{"http://127.0.0.1:4700/_sim/webhooks/a", true, true},
		{"https://127.0.0.1/hook", false, false},
		{"https://10.0.0.1/hook", false, false},
		{"https://[fd00::1]/hook", false, false},
		{"https://100.64.0.1/hook", false, false},
		{"https://169.254.169.254/", false, false},
		{"https://localhost/hook", false, false},
		{"https://metadata.google.internal/", false, false},
		{"https://intranet/hook", false, false},
		{"https://u:p@cms.example/hook", false, false},
		{"https://u@cms.example/hook", true, false},
		{"cms.example/hook", false, false},
		{"//cms.example/hook", false, false},
		{"mailto:a@b.example", false, false},
		{"https:///hook", false, false},
		{"https://cms.example/hook#x", false, false},
		{"https://cms.example:99999/hook", false, false},
		{"https://" + strings.Repeat("a", 2048) + ".example/", false, false},
	} {
		msg := Rules{AllowInsecure: tc.local}.checkURL(tc.url)
		if (msg == "") != tc.ok {
			t.Errorf("checkURL(%q, local=%v): got %q, want ok=%v", tc.url, tc.local, msg, tc.ok)
		}
	}
}

func TestInputApply(t *testing.T) {
	t.Parallel()
	u := "https://cms.example/hook"
	var e Endpoint
	if ps := (Input{URL: &u}).apply(&e, true, Rules{}); len(ps) != 0 || len(e.EventTypes) != len(event.Types) {
		t.Errorf("create with url only: %v, types %v; want every type", ps, e.EventTypes)
	}
	types := []string{"delivery.dead", "delivery.sent", "delivery.dead"}
	if ps := (Input{EventTypes: &types}).apply(&e, false, Rules{}); len(ps) != 0 || len(e.EventTypes) != 2 || e.EventTypes[0] != event.DeliverySent {
		t.Errorf("types: %v %v; want [delivery.sent delivery.dead]", ps, e.EventTypes)
	}
	if ps := (Input{}).apply(&Endpoint{}, true, Rules{}); len(ps) != 1 || ps[0].Field != "url" {
		t.Errorf("create without url: got %v", ps)
	}
	on := true
	e.Enabled, e.DisabledReason = false, "gone"
	(Input{Enabled: &on}).apply(&e, false, Rules{})
	if !e.Enabled || e.DisabledReason != "" {
		t.Errorf("enable: got %+v, want enabled with the reason cleared", e)
	}
}

func TestAttemptID(t *testing.T) {
	t.Parallel()
	a := AttemptID("evt_a", "wh_a", "")
	if a != AttemptID("evt_a", "wh_a", "") || a == AttemptID("evt_a", "wh_b", "") || a == AttemptID("evt_a", "wh_a", "r1") {
		t.Error("AttemptID: the same fan-out must make the same ids, another endpoint or replay another")
	}
	if !validID(a, AttemptIDPrefix) {
		t.Errorf("AttemptID %q is not a valid attempt id", a)
	}
}
