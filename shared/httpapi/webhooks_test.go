package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/webhook"
	"github.com/posse-dev/posse/shared/webhook/webhooktest"
)

// whFixture is the API with a real webhook.Service over in-memory stand-ins,
// and a second site to prove scoping.
type whFixture struct {
	*pubFixture
	hooks  *webhooktest.Store
	events *webhooktest.Events
	queue  *webhooktest.Queue
}

func newWebhookFixture(t *testing.T, rules webhook.Rules) *whFixture {
	t.Helper()
	f := &whFixture{pubFixture: newPubFixture(t), hooks: webhooktest.NewStore(), events: webhooktest.NewEvents(), queue: &webhooktest.Queue{}}
	svc, err := webhook.NewService(webhook.ServiceConfig{Store: f.hooks, Events: f.events, Sealer: webhooktest.Sealer{}, Queue: f.queue,
		Rules: rules, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = New(Deps{Sites: f.sites, AdminKeySHA256: hash(adminKey), MaxBodyBytes: 1 << 20, Now: func() time.Time { return f.now },
		Idempotency: f.idem, Audit: f.audit, Webhooks: svc})
	return f
}

func secretCtx(siteID, id string) vault.Context {
	return vault.Context{Site: siteID, Connection: id, Purpose: vault.PurposeWebhookSecret}
}

type whAnswer struct {
	ID                      string   `json:"id"`
	URL                     string   `json:"url"`
	EventTypes              []string `json:"eventTypes"`
	Description             string   `json:"description"`
	Enabled                 bool     `json:"enabled"`
	DisabledReason          string   `json:"disabledReason"`
	Secret                  *string  `json:"secret"`
	PreviousSecretExpiresAt *string  `json:"previousSecretExpiresAt"`
}

func (f *whFixture) create(t *testing.T, key, body string) whAnswer {
	t.Helper()
	w := f.do("POST", "/v1/webhooks", key, body)
	if w.Code != 201 {
		t.Fatalf("create %s: got %d %s, want 201", body, w.Code, w.Body)
	}
	var a whAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWebhookCreateAnswersTheSecretOnce(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{})
	w := f.do("POST", "/v1/webhooks", f.siteKey, `{"url":"https://cms.example/posse-hook","description":"WordPress"}`)
	if w.Code != 201 || !strings.HasPrefix(w.Header().Get("Location"), "/v1/webhooks/wh_") {
		t.Fatalf("create: got %d %s (Location %q)", w.Code, w.Body, w.Header().Get("Location"))
	}
	var a whAnswer
	_ = json.Unmarshal(w.Body.Bytes(), &a)
	if a.Secret == nil || !strings.HasPrefix(*a.Secret, "whsec_") {
		t.Fatalf("create: secret %v, want whsec_...", a.Secret)
	}
	key, err := webhook.DecodeSecret(*a.Secret)
	if err != nil || len(key) < 24 {
		t.Errorf("secret: %d bytes, %v; want at least 24 random bytes", len(key), err)
	}
	if len(a.EventTypes) != len(event.Types) || !a.Enabled || a.Description != "WordPress" {
		t.Errorf("create: got %+v, want every event type, enabled", a)
	}
	for _, path := range []string{"/v1/webhooks/" + a.ID, "/v1/webhooks"} {
		w := f.do("GET", path, f.siteKey, "")
		if w.Code != 200 || strings.Contains(w.Body.String(), *a.Secret) || strings.Contains(w.Body.String(), `"secret"`) {
			t.Errorf("GET %s: got %d %s, want 200 without the secret", path, w.Code, w.Body)
		}
	}
	// The sealed secret is the one answered, under the endpoint's context.
	e, _ := f.hooks.Get(context.Background(), f.siteID, a.ID)
	plain, err := webhooktest.Sealer{}.Open(context.Background(), secretCtx(f.siteID, a.ID), e.Secret)
	if err != nil || string(plain) != *a.Secret || e.Secret.Context["purpose"] != "webhook_secret" || e.Secret.Context["site"] != f.siteID {
		t.Errorf("sealed secret: got %q (%v) context %v", plain, err, e.Secret.Context)
	}
}

func TestWebhookIdempotentReplayNeverShowsTheSecret(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{})
	body := `{"url":"https://cms.example/hook"}`
	first := f.do("POST", "/v1/webhooks", f.siteKey, body, "Idempotency-Key", "hook-1")
	again := f.do("POST", "/v1/webhooks", f.siteKey, body, "Idempotency-Key", "hook-1")
	var a, b whAnswer
	_ = json.Unmarshal(first.Body.Bytes(), &a)
	_ = json.Unmarshal(again.Body.Bytes(), &b)
	if first.Code != 201 || a.Secret == nil || again.Code != 201 || again.Header().Get(ReplayedHeader) != "true" {
		t.Fatalf("create and replay: got %d and %d (replayed %q)", first.Code, again.Code, again.Header().Get(ReplayedHeader))
	}
	if b.ID != a.ID || b.Secret != nil || strings.Contains(again.Body.String(), *a.Secret) {
		t.Errorf("replay: got %s, want the same webhook with secret null", again.Body)
	}
	for _, k := range f.idem.keys {
		if strings.Contains(string(k.resp.Body), *a.Secret) {
			t.Error("the idempotency store holds the secret in the clear")
		}
	}
	if f.hooks.Count(f.siteID) != 1 {
		t.Errorf("endpoints: got %d, want 1", f.hooks.Count(f.siteID))
	}
}

func TestWebhookBadInputNamesTheFieldAndWritesNothing(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{})
	for _, tc := range []struct {
		body, field, detail string
	}{
		{`{}`, "url", "required"},
		{`{"url":"/relative/hook"}`, "url", "absolute"},
		{`{"url":"ftp://cms.example/hook"}`, "url", "http(s)"},
		{`{"url":"http://cms.example/hook"}`, "url", "https"},
		{`{"url":"https://user:pw@cms.example/hook"}`, "url", "credentials"},
		{`{"url":"https://127.0.0.1/hook"}`, "url", "public"},
		{`{"url":"https://169.254.169.254/latest/meta-data"}`, "url", "public"},
		{`{"url":"https://[::1]/hook"}`, "url", "public"},
		{`{"url":"https://localhost/hook"}`, "url", "public"},
		{`{"url":"https://cms.example/hook#frag"}`, "url", "fragment"},
		{`{"url":"https://cms.example/h","eventTypes":["delivery.sent","post.deleted"]}`, "eventTypes", "delivery.sent, delivery.failed"},
		{`{"url":"https://cms.example/h","eventTypes":[]}`, "eventTypes", "at least one"},
		{`{"url":"https://cms.example/h","eventTypes":["ping"]}`, "eventTypes", "unknown"},
		{`{"url":"https://cms.example/h","description":"` + strings.Repeat("x", 501) + `"}`, "description", "500"},
		{`{"url":"https://cms.example/h","secret":"mine"}`, "secret", "not a known field"},
		{`{"url":42}`, "url", "string"},
	} {
		w := f.do("POST", "/v1/webhooks", f.siteKey, tc.body)
		p := problemOf(t, w.Body.String())
		if w.Code != 400 || !hasField(p, tc.field) || !strings.Contains(w.Body.String(), tc.detail) {
			t.Errorf("%s: got %d %s, want 400 naming %s (%q)", tc.body, w.Code, w.Body, tc.field, tc.detail)
		}
	}
	if n := f.hooks.Writes; n != 0 {
		t.Errorf("writes after bad input: got %d, want none", n)
	}
}

func TestWebhookLocalStackAllowsHTTPToLoopback(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{AllowInsecure: true})
	f.create(t, f.siteKey, `{"url":"http://127.0.0.1:4700/_sim/webhooks/cms"}`)
	if w := f.do("POST", "/v1/webhooks", f.siteKey, `{"url":"http://a:b@127.0.0.1/x"}`); w.Code != 400 {
		t.Errorf("credentials on the local stack: got %d, want 400", w.Code)
	}
}

func TestWebhookLimitPerSite(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{})
	for i := range webhook.MaxEndpoints {
		f.create(t, f.siteKey, fmt.Sprintf(`{"url":"https://cms.example/h%d"}`, i))
	}
	w := f.do("POST", "/v1/webhooks", f.siteKey, `{"url":"https://cms.example/eleven"}`)
	if p := problemOf(t, w.Body.String()); w.Code != 422 || p.Code != "too_many_webhooks" {
		t.Errorf("11th webhook: got %d %s, want 422 too_many_webhooks", w.Code, w.Body)
	}
	// The other site has its own ten.
	f.create(t, f.otherKey, `{"url":"https://other.example/h"}`)
}

func TestWebhookRoutesAreScopedToTheSite(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{})
	mine := f.create(t, f.siteKey, `{"url":"https://cms.example/hook"}`)
	ev, _ := event.New(f.siteID, event.DeliverySent, f.now, event.DeliveryData{DeliveryID: "dlv_1"}, "x")
	_ = f.events.Put(context.Background(), ev)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/webhooks/" + mine.ID, ""},
		{"PATCH", "/v1/webhooks/" + mine.ID, `{"enabled":false}`},
		{"DELETE", "/v1/webhooks/" + mine.ID, ""},
		{"POST", "/v1/webhooks/" + mine.ID + "/rotate-secret", ""},
		{"POST", "/v1/webhooks/" + mine.ID + "/test", ""},
		{"GET", "/v1/webhooks/" + mine.ID + "/attempts", ""},
		{"POST", "/v1/webhook-events/" + ev.ID + "/replay", ""},
		{"GET", "/v1/webhooks/wh_nosuchwebhook", ""},
		{"POST", "/v1/webhook-events/not-an-event/replay", ""},
	} {
		if w := f.do(tc.method, tc.path, f.otherKey, tc.body); w.Code != 404 {
			t.Errorf("another site's %s %s: got %d %s, want 404", tc.method, tc.path, w.Code, w.Body)
		}
	}
	var list struct{ Items []whAnswer }
	w := f.do("GET", "/v1/webhooks", f.otherKey, "")
	_ = json.Unmarshal(w.Body.Bytes(), &list)
	if w.Code != 200 || len(list.Items) != 0 {
		t.Errorf("another site's list: got %d %s, want none", w.Code, w.Body)
	}
	if e, err := f.hooks.Get(context.Background(), f.siteID, mine.ID); err != nil || !e.Enabled {
		t.Errorf("after another site's calls: %+v %v, want the webhook untouched", e, err)
	}
	if len(f.queue.Messages()) != 0 {
		t.Errorf("another site queued %v", f.queue.Messages())
	}
}

func TestWebhookUpdateRotateTestReplay(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, webhook.Rules{})
	a := f.create(t, f.siteKey, `{"url":"https://cms.example/hook","eventTypes":["delivery.sent"]}`)

	w := f.do("PATCH", "/v1/webhooks/"+a.ID, f.siteKey, `{"eventTypes":["delivery.failed","delivery.sent","delivery.sent"],"enabled":false}`)
	var up whAnswer
	_ = json.Unmarshal(w.Body.Bytes(), &up)
	if w.Code != 200 || strings.Join(up.EventTypes, ",") != "delivery.sent,delivery.failed" || up.Enabled || up.URL != a.URL {
		t.Errorf("patch: got %d %s", w.Code, w.Body)
	}
	if w := f.do("PATCH", "/v1/webhooks/"+a.ID, f.siteKey, `{"url":"http://cms.example/x"}`); w.Code != 400 || !hasField(problemOf(t, w.Body.String()), "url") {
		t.Errorf("patch with http: got %d %s, want 400 naming url", w.Code, w.Body)
	}

	w = f.do("POST", "/v1/webhooks/"+a.ID+"/rotate-secret", f.siteKey, `{"overlapSeconds":3600}`)
	var rot whAnswer
	_ = json.Unmarshal(w.Body.Bytes(), &rot)
	if w.Code != 200 || rot.Secret == nil || *rot.Secret == *a.Secret || rot.PreviousSecretExpiresAt == nil ||
		*rot.PreviousSecretExpiresAt != f.now.Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("rotate: got %d %s, want a new secret and the old one until an hour from now", w.Code, w.Body)
	}
	e, _ := f.hooks.Get(context.Background(), f.siteID, a.ID)
	prev, _ := webhooktest.Sealer{}.Open(context.Background(), secretCtx(f.siteID, a.ID), *e.PreviousSecret)
	if string(prev) != *a.Secret {
		t.Error("the previous secret kept is not the one created")
	}
	for _, body := range []string{`{"overlapSeconds":-1}`, `{"overlapSeconds":604801}`, `{"overlap":"1h"}`} {
		if w := f.do("POST", "/v1/webhooks/"+a.ID+"/rotate-secret", f.siteKey, body); w.Code != 400 {
			t.Errorf("rotate %s: got %d %s, want 400", body, w.Code, w.Body)
		}
	}

	w = f.do("POST", "/v1/webhooks/"+a.ID+"/test", f.siteKey, "")
	var q webhook.Queued
	_ = json.Unmarshal(w.Body.Bytes(), &q)
	msgs := f.queue.Messages()
	if w.Code != 202 || q.EventType != event.Ping || len(msgs) != 1 || msgs[0].EventID != q.EventID || msgs[0].Type != event.MessageEvent {
		t.Fatalf("test: got %d %s, messages %v", w.Code, w.Body, msgs)
	}
	ping, err := f.events.Get(context.Background(), f.siteID, q.EventID)
	if err != nil || !strings.Contains(string(ping.Data), a.ID) {
		t.Errorf("ping event: got %+v, %v; want one naming the webhook", ping, err)
	}

	w = f.do("POST", "/v1/webhook-events/"+q.EventID+"/replay", f.siteKey, "")
	var rq webhook.Queued
	_ = json.Unmarshal(w.Body.Bytes(), &rq)
	msgs = f.queue.Messages()
	if w.Code != 202 || rq.EventID != q.EventID || rq.Replay == "" || len(msgs) != 2 || msgs[1].Replay != rq.Replay {
		t.Errorf("replay: got %d %s, messages %v", w.Code, w.Body, msgs)
	}
	f.queue.Err = errors.New("sqs down")
	if w := f.do("POST", "/v1/webhook-events/"+q.EventID+"/replay", f.siteKey, ""); w.Code != 503 {
		t.Errorf("replay with the queue down: got %d, want 503", w.Code)
	}

	f.hooks.AddAttempt(webhook.Attempt{ID: "wha_1", SiteID: f.siteID, WebhookID: a.ID, EventID: q.EventID, State: webhook.AttemptRetrying,
		Tries: 1, StatusCode: 500, LatencyMS: 12, ErrorKind: "http_status", History: []webhook.Try{{N: 1, StatusCode: 500}}})
	w = f.do("GET", "/v1/webhooks/"+a.ID+"/attempts?limit=10", f.siteKey, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"statusCode":500`) || !strings.Contains(w.Body.String(), `"nextCursor":""`) {
		t.Errorf("attempts: got %d %s", w.Code, w.Body)
	}
	if w := f.do("GET", "/v1/webhooks/"+a.ID+"/attempts?limit=0", f.siteKey, ""); w.Code != 400 {
		t.Errorf("attempts?limit=0: got %d, want 400", w.Code)
	}

	if w := f.do("DELETE", "/v1/webhooks/"+a.ID, f.siteKey, ""); w.Code != 204 {
		t.Errorf("delete: got %d", w.Code)
	}
	if w := f.do("GET", "/v1/webhooks/"+a.ID, f.siteKey, ""); w.Code != 404 {
		t.Errorf("get after delete: got %d, want 404", w.Code)
	}
	actions := map[string]bool{}
	for _, e := range f.audit.all() {
		actions[e.Action] = true
	}
	for _, want := range []string{"webhook.create", "webhook.update", "webhook.rotate_secret", "webhook.test", "event.replay", "webhook.delete"} {
		if !actions[want] {
			t.Errorf("audit log lacks %s (has %v)", want, actions)
		}
	}
}
