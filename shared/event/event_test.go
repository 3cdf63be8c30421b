package event_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
)

func TestIDIsDeterministicAndSafe(t *testing.T) {
	t.Parallel()
	a := event.DeliveryEventID("dlv_a", 1, event.DeliverySent)
	if b := event.DeliveryEventID("dlv_a", 1, event.DeliverySent); a != b {
		t.Errorf("same cause: got %s and %s, want one id", a, b)
	}
	for _, other := range []string{
		event.DeliveryEventID("dlv_a", 2, event.DeliverySent),
		event.DeliveryEventID("dlv_a", 1, event.DeliveryFailed),
		event.DeliveryEventID("dlv_b", 1, event.DeliverySent),
		event.ID("delivery", "dlv_a1", "", "delivery.sent"),
	} {
		if other == a {
			t.Errorf("another cause got the same id %s", a)
		}
	}
	if !event.ValidID(a) || strings.Contains(a, ".") {
		t.Errorf("id %q: want a valid id without '.' (Standard Webhooks' webhook-id)", a)
	}
	for _, bad := range []string{"", "evt_", "dlv_abc", "evt_ABC", "evt_a.b", "evt_" + strings.Repeat("a", 70)} {
		if event.ValidID(bad) {
			t.Errorf("ValidID(%q): got true, want false", bad)
		}
	}
}

func TestBodyIsTheEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 2, 9, 30, 0, 123, time.FixedZone("CET", 3600))
	e, err := event.New("site_a", event.DeliverySent, at, event.DeliveryData{DeliveryID: "dlv_1", PostID: "42", Revision: "3",
		TargetID: "tgt_1", Platform: "x", State: "sent", Attempts: 1, PlatformPostID: "99", URL: "https://x.com/me/status/99"}, "delivery", "dlv_1", "1", "delivery.sent")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(e.Body(), &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != e.ID || got["type"] != "delivery.sent" || got["siteId"] != "site_a" || got["createdAt"] != "2026-11-02T08:30:00.000000123Z" {
		t.Errorf("body: got %v", got)
	}
	data, _ := got["data"].(map[string]any)
	for k, want := range map[string]any{"deliveryId": "dlv_1", "postId": "42", "revision": "3", "targetId": "tgt_1", "platform": "x",
		"platformPostId": "99", "url": "https://x.com/me/status/99"} {
		if data[k] != want {
			t.Errorf("data.%s: got %v, want %v", k, data[k], want)
		}
	}
	if _, ok := data["error"]; ok {
		t.Errorf("data of delivery.sent has an error: %v", data)
	}
	it := e.Item(true)
	if it["GSI2PK"] == nil || it["expires_at"] == nil || it["PK"] == nil {
		t.Errorf("pending item lacks GSI2PK, expires_at or PK: %v", it)
	}
	if it := e.Item(false); it["GSI2PK"] != nil {
		t.Errorf("an item not pending has GSI2PK")
	}
}

func TestDecodeMessage(t *testing.T) {
	t.Parallel()
	id := event.ID("x")
	good := event.EventMessage("site_a", id)
	if m, err := event.DecodeMessage(good.Encode()); err != nil || m != good {
		t.Errorf("round trip: got %+v, %v; want %+v", m, err, good)
	}
	att := event.Message{V: 1, Type: event.MessageAttempt, SiteID: "site_a", EventID: id, WebhookID: "wh_1", AttemptID: "wha_1"}
	if m, err := event.DecodeMessage(att.Encode()); err != nil || m != att {
		t.Errorf("attempt round trip: got %+v, %v", m, err)
	}
	for name, body := range map[string]string{
		"not json":       "hello",
		"version":        `{"v":2,"type":"event","siteId":"s","eventId":"` + id + `"}`,
		"no site":        `{"v":1,"type":"event","eventId":"` + id + `"}`,
		"bad event id":   `{"v":1,"type":"event","siteId":"s","eventId":"dlv_1"}`,
		"attempt no ids": `{"v":1,"type":"attempt","siteId":"s","eventId":"` + id + `"}`,
		"unknown type":   `{"v":1,"type":"delivery","siteId":"s","eventId":"` + id + `"}`,
		"unknown field":  `{"v":1,"type":"event","siteId":"s","eventId":"` + id + `","x":1}`,
	} {
		if _, err := event.DecodeMessage(body); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("%s: got %v, want invalid", name, err)
		}
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	if event.Ping.Valid() || !event.DeliverySent.Valid() || event.Type("delivery.sent.x").Valid() {
		t.Error("Valid: ping is not subscribable, delivery.sent is, unknown types are not")
	}
	if len(event.TypeNames()) != len(event.Types) {
		t.Error("TypeNames does not name every type")
	}
}
