package platformsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWebhookReceiverVerifiesAndInjectsFaults(t *testing.T) {
	t.Parallel()
	// The Standard Webhooks test vector, at its own time.
	now := time.Unix(1614265330, 0).Add(time.Minute)
	s := New(Options{Now: func() time.Time { return now }})
	post := func(path, body string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, bytes.NewReader([]byte(body)))
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := post("/_sim/webhook-secrets", `{"name":"cms","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`, nil); w.Code != 204 {
		t.Fatalf("secret: got %d", w.Code)
	}
	if w := post("/_sim/webhook-faults", `{"name":"cms","status":500,"times":2}`, nil); w.Code != 204 {
		t.Fatalf("fault: got %d", w.Code)
	}
	good := map[string]string{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
		"webhook-signature": "v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
	body := `{"test": 2432232314}`
	var codes []int
	for range 3 {
		codes = append(codes, post("/_sim/webhooks/cms", body, good).Code)
	}
	bad := map[string]string{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
		"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
	post("/_sim/webhooks/cms", body+" ", bad) // the body was changed
	old := map[string]string{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614264000",
		"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
	post("/_sim/webhooks/cms", body, old) // outside the tolerance
	if codes[0] != 500 || codes[1] != 500 || codes[2] != 204 {
		t.Errorf("answers: got %v, want [500 500 204]", codes)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/_sim/webhooks/cms", nil))
	var out struct{ Requests []WebhookRequest }
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Requests) != 5 {
		t.Fatalf("requests: got %d, want 5", len(out.Requests))
	}
	for i, want := range []bool{true, true, true, false, false} {
		r := out.Requests[i]
		if r.Verified != want {
			t.Errorf("request %d: verified %v, want %v", i, r.Verified, want)
		}
		if want && (r.VerifiedSignatures != 1 || r.ID != "msg_p5jXN8AQM9LWM0D4loKWxJek" || r.Body != body) {
			t.Errorf("request %d: got %+v", i, r)
		}
	}
	if w := post("/_sim/webhook-faults", `{"name":"gone","status":410}`, nil); w.Code != 204 {
		t.Fatal(w.Code)
	}
	if c := post("/_sim/webhooks/gone", "{}", nil).Code; c != 410 {
		t.Errorf("410 fault: got %d", c)
	}
	for _, b := range []string{`{}`, `{"name":"x","secret":"plain"}`} {
		if c := post("/_sim/webhook-secrets", b, nil).Code; c != 400 {
			t.Errorf("secret %s: got %d, want 400", b, c)
		}
	}
	if c := post("/_sim/webhook-faults", `{"name":"x","status":42}`, nil).Code; c != http.StatusBadRequest {
		t.Errorf("fault with a bad status: got %d, want 400", c)
	}
}
