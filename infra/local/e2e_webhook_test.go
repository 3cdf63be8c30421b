package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/ledger"
)

// simHook is a request the simulator's webhook receiver recorded.
type simHook struct {
	WebhookID          string `json:"webhookId"`
	WebhookTimestamp   string `json:"webhookTimestamp"`
	WebhookSignature   string `json:"webhookSignature"`
	Body               string `json:"body"`
	Status             int    `json:"status"`
	Verified           bool   `json:"verified"`
	VerifiedSignatures int    `json:"verifiedSignatures"`
}

// hookEvent is the part of an event body the test reads.
type hookEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	SiteID    string `json:"siteId"`
	CreatedAt string `json:"createdAt"`
	Data      struct {
		DeliveryID     string `json:"deliveryId"`
		PostID         string `json:"postId"`
		Platform       string `json:"platform"`
		PlatformPostID string `json:"platformPostId"`
		URL            string `json:"url"`
		WebhookID      string `json:"webhookId"`
	} `json:"data"`
}

func (h simHook) event(t *testing.T) hookEvent {
	t.Helper()
	var e hookEvent
	if err := json.Unmarshal([]byte(h.Body), &e); err != nil {
		t.Fatalf("webhook body %q: %v", h.Body, err)
	}
	return e
}

// standardWebhookSignatures counts the signatures in a webhook-signature
// header that a Standard Webhooks receiver accepts for secret: written here
// from the specification, apart from POSSE's signer. HMAC-SHA256 keyed with
// the base64-decoded part of the secret after "whsec_", over
// "<webhook-id>.<webhook-timestamp>.<body>", each entry "v1,<base64>",
// space separated; the timestamp within five minutes.
func standardWebhookSignatures(secret string, h simHook, now time.Time) int {
	ts, err := strconv.ParseInt(h.WebhookTimestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return 0
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return 0
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.WebhookID + "." + h.WebhookTimestamp + "." + h.Body))
	want := mac.Sum(nil)
	n := 0
	for _, part := range strings.Split(h.WebhookSignature, " ") {
		version, sig, ok := strings.Cut(part, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if ok && version == "v1" && err == nil && hmac.Equal(got, want) {
			n++
		}
	}
	return n
}

// simPostJSON posts a simulator control request and wants 204.
func simPostJSON(t *testing.T, u string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s %s: got %d, want 204", u, b, resp.StatusCode)
	}
}

// TestWebhookEndToEnd runs the local stack (the real template, the api,
// dispatch and webhook bootstraps under the RIE, the simulator as the
// CMS's webhook endpoint) and checks, with a Standard Webhooks verifier
// written in this test: exactly one delivery.sent per delivery arrives,
// signed; every dispatch message sent again and a DLQ redrive bring no
// second one; an endpoint answering 500 three times gets the event on the
// fourth try; after a rotation both signatures are present and each
// verifies; a replay brings the same event id again; a ping goes to the
// endpoint; another site gets 404; no secret reaches a log.
func TestWebhookEndToEnd(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	if d := os.Getenv("POSSE_E2E_STATE"); d != "" {
		state = d
	}
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "2",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", state,
		"-fn-env", "POSSE_WEBHOOK_RETRY_SCHEDULE=1s,1s,1s")
	stopped := false
	defer func() {
		if !stopped {
			l.stop(t)
		}
	}()
	api, simURL := l.info["API URL"], l.info["Simulator"]
	ctx := context.Background()
	queues := sqs.NewFromConfig(moto.Config(l.info["Moto endpoint"]))
	dispatchQ, dlq := queueURLOf(ctx, t, queues, "posse-local-dispatch"), queueURLOf(ctx, t, queues, "posse-local-dispatch-dlq")
	webhookQ := queueURLOf(ctx, t, queues, "posse-local-webhook")

	site := &e2eSite{id: l.info["Site id"], c: apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}}
	connectEveryPlatform(t, site, 1, simURL, func(p, cid string) map[string]any {
		body := map[string]any{"connectionId": cid, "name": p}
		if p == "tiktok" {
			body["defaults"] = map[string]any{"options": map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE"}}
		}
		return body
	})

	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	site.c.must(201, "POST", "/webhooks", map[string]any{"url": simURL + "/_sim/webhooks/cms",
		"eventTypes": []string{"delivery.sent", "delivery.failed", "delivery.dead", "delivery.unknown"}, "description": "e2e"}, &hook)
	if !strings.HasPrefix(hook.Secret, "whsec_") {
		t.Fatalf("webhook secret: got %q, want whsec_...", hook.Secret)
	}
	simPostJSON(t, simURL+"/_sim/webhook-secrets", map[string]string{"name": "cms", "secret": hook.Secret})
	secrets := []string{hook.Secret}

	received := func() []simHook {
		t.Helper()
		var out struct{ Requests []simHook }
		simJSON(t, simURL+"/_sim/webhooks/cms", &out)
		return out.Requests
	}
	// waitFor polls the receiver until ok holds.
	waitFor := func(what string, within time.Duration, ok func([]simHook) bool) []simHook {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			rs := received()
			if ok(rs) {
				return rs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; the receiver has %d requests", what, within, len(rs))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// sentFor are the successful delivery.sent requests per delivery id.
	sentFor := func(rs []simHook) map[string][]simHook {
		out := map[string][]simHook{}
		for _, r := range rs {
			if e := r.event(t); e.Type == "delivery.sent" && r.Status/100 == 2 {
				out[e.Data.DeliveryID] = append(out[e.Data.DeliveryID], r)
			}
		}
		return out
	}
	dispatch := func(postID string, platforms ...string) []e2eDelivery {
		t.Helper()
		var ids []string
		for _, p := range platforms {
			ids = append(ids, site.targets[p])
		}
		var out struct{ Deliveries []e2eDelivery }
		site.c.must(202, "POST", "/dispatch", map[string]any{"post": map[string]any{"postId": postID, "revision": "1",
			"title": "Post " + postID, "url": "https://blog.example/" + postID}, "targetIds": ids}, &out)
		return out.Deliveries
	}
	drained := func(q string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			out, err := queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q,
				AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
			if err != nil {
				t.Fatal(err)
			}
			if out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" &&
				out.Attributes["ApproximateNumberOfMessagesDelayed"] == "0" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue %s not drained after %v: %v", q, within, out.Attributes)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	checkSigned := func(r simHook, secret string) {
		t.Helper()
		e := r.event(t)
		if !r.Verified || r.WebhookID != e.ID || e.SiteID != site.id || standardWebhookSignatures(secret, r, time.Now()) != 1 {
			t.Errorf("request for %s %s: verified by the simulator %v, webhook-id %q (body id %q), independent check %d; want a valid signature",
				e.Type, e.Data.DeliveryID, r.Verified, r.WebhookID, e.ID, standardWebhookSignatures(secret, r, time.Now()))
		}
	}

	var first []e2eDelivery
	t.Run("one delivery.sent per delivery, signed", func(t *testing.T) {
		first = dispatch("wh-1", "x", "mastodon", "bluesky")
		rs := waitFor("delivery.sent for each delivery", 90*time.Second, func(rs []simHook) bool {
			got := sentFor(rs)
			for _, d := range first {
				if len(got[d.ID]) == 0 {
					return false
				}
			}
			return true
		})
		got := sentFor(rs)
		for _, d := range first {
			if len(got[d.ID]) != 1 {
				t.Errorf("%s: got %d delivery.sent, want 1", d.Platform, len(got[d.ID]))
				continue
			}
			r := got[d.ID][0]
			checkSigned(r, hook.Secret)
			e := r.event(t)
			if e.Data.Platform != d.Platform || e.Data.PostID != "wh-1" || e.Data.PlatformPostID == "" || e.Data.URL == "" {
				t.Errorf("%s: event data %+v, want the published post", d.Platform, e.Data)
			}
		}
	})

	t.Run("messages sent again and redriven bring no second delivery.sent", func(t *testing.T) {
		for _, d := range first {
			body := ledger.DeliveryMessage(site.id, d.ID).Encode()
			for _, q := range []string{dispatchQ, dlq} {
				if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: &body}); err != nil {
					t.Fatal(err)
				}
			}
		}
		moved := 0
		for moved < len(first) { // the console's redrive: every DLQ message back to the source
			out, err := queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlq, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dispatchQ, MessageBody: m.Body}); err != nil {
					t.Fatal(err)
				}
				if _, err := queues.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &dlq, ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatal(err)
				}
				moved++
			}
		}
		drained(dispatchQ, 60*time.Second)
		time.Sleep(2 * time.Second)
		drained(webhookQ, 60*time.Second)
		got := sentFor(received())
		for _, d := range first {
			if len(got[d.ID]) != 1 {
				t.Errorf("%s after redelivery and redrive: got %d delivery.sent, want still 1", d.Platform, len(got[d.ID]))
			}
		}
	})

	t.Run("an endpoint answering 500 three times gets the event on the fourth try", func(t *testing.T) {
		simPostJSON(t, simURL+"/_sim/webhook-faults", map[string]any{"name": "cms", "status": 500, "times": 3})
		d := dispatch("wh-retry", "mastodon")[0]
		rs := waitFor("the retried delivery.sent", 90*time.Second, func(rs []simHook) bool { return len(sentFor(rs)[d.ID]) > 0 })
		var tries []simHook
		for _, r := range rs {
			if e := r.event(t); e.Data.DeliveryID == d.ID && e.Type == "delivery.sent" {
				tries = append(tries, r)
			}
		}
		if len(tries) != 4 || tries[0].Status != 500 || tries[1].Status != 500 || tries[2].Status != 500 || tries[3].Status/100 != 2 {
			var st []int
			for _, r := range tries {
				st = append(st, r.Status)
			}
			t.Fatalf("tries of the event: got statuses %v, want [500 500 500 2xx]", st)
		}
		for _, r := range tries {
			if r.WebhookID != tries[0].WebhookID {
				t.Errorf("webhook-id changed between tries: %s, %s", r.WebhookID, tries[0].WebhookID)
			}
			checkSigned(r, hook.Secret)
		}
		var page struct {
			Items []struct {
				EventID string `json:"eventId"`
				State   string `json:"state"`
				Tries   int    `json:"tries"`
				History []struct {
					StatusCode int   `json:"statusCode"`
					LatencyMs  int64 `json:"latencyMs"`
				} `json:"history"`
			} `json:"items"`
		}
		site.c.must(200, "GET", "/webhooks/"+hook.ID+"/attempts", nil, &page)
		found := false
		for _, a := range page.Items {
			if a.EventID == tries[0].WebhookID {
				found = true
				if a.State != "succeeded" || a.Tries != 4 || len(a.History) != 4 || a.History[0].StatusCode != 500 || a.History[3].StatusCode/100 != 2 {
					t.Errorf("attempt: got %+v, want succeeded after 4 tries", a)
				}
			}
		}
		if !found {
			t.Errorf("GET /webhooks/%s/attempts does not list the attempt", hook.ID)
		}
	})

	t.Run("after a rotation both signatures are present and each verifies", func(t *testing.T) {
		var rot struct {
			Secret                  string `json:"secret"`
			PreviousSecretExpiresAt string `json:"previousSecretExpiresAt"`
		}
		site.c.must(200, "POST", "/webhooks/"+hook.ID+"/rotate-secret", map[string]any{}, &rot)
		if rot.Secret == "" || rot.Secret == hook.Secret || rot.PreviousSecretExpiresAt == "" {
			t.Fatalf("rotate: got %+v, want a new secret and an overlap", rot)
		}
		secrets = append(secrets, rot.Secret)
		simPostJSON(t, simURL+"/_sim/webhook-secrets", map[string]string{"name": "cms", "secret": rot.Secret})
		d := dispatch("wh-rotated", "linkedin")[0]
		rs := waitFor("delivery.sent after the rotation", 90*time.Second, func(rs []simHook) bool { return len(sentFor(rs)[d.ID]) > 0 })
		r := sentFor(rs)[d.ID][0]
		if n := len(strings.Fields(r.WebhookSignature)); n != 2 || r.VerifiedSignatures != 2 {
			t.Errorf("signature header %q: %d entries, %d verified by the simulator; want 2 and 2", r.WebhookSignature, n, r.VerifiedSignatures)
		}
		if standardWebhookSignatures(hook.Secret, r, time.Now()) != 1 || standardWebhookSignatures(rot.Secret, r, time.Now()) != 1 {
			t.Errorf("independent check: old secret %d, new secret %d signatures; want one each",
				standardWebhookSignatures(hook.Secret, r, time.Now()), standardWebhookSignatures(rot.Secret, r, time.Now()))
		}
	})

	t.Run("replay brings the same event again", func(t *testing.T) {
		orig := sentFor(received())[first[0].ID][0]
		var q struct{ EventID, Replay string }
		site.c.must(202, "POST", "/webhook-events/"+url.PathEscape(orig.WebhookID)+"/replay", nil, &q)
		rs := waitFor("the replayed event", 60*time.Second, func(rs []simHook) bool { return len(sentFor(rs)[first[0].ID]) == 2 })
		again := sentFor(rs)[first[0].ID][1]
		if q.EventID != orig.WebhookID || again.WebhookID != orig.WebhookID || again.Body != orig.Body || !again.Verified {
			t.Errorf("replay: answer %+v, arrived %s (verified %v); want the same event id and body", q, again.WebhookID, again.Verified)
		}
	})

	t.Run("a ping goes to the endpoint", func(t *testing.T) {
		var q struct{ EventID string }
		site.c.must(202, "POST", "/webhooks/"+hook.ID+"/test", nil, &q)
		waitFor("the ping", 60*time.Second, func(rs []simHook) bool {
			for _, r := range rs {
				if e := r.event(t); e.Type == "ping" && e.ID == q.EventID && r.Verified && e.Data.WebhookID == hook.ID {
					return true
				}
			}
			return false
		})
	})

	t.Run("another site's webhook and events are 404", func(t *testing.T) {
		admin := apiClient{t: t, api: api, key: l.info["Admin key"], simURL: simURL}
		var st struct{ ID string }
		admin.must(201, "POST", "/sites", map[string]string{"name": "Other", "timezone": "UTC", "returnUrl": api + "/health"}, &st)
		var k struct{ Key string }
		admin.must(201, "POST", "/sites/"+st.ID+"/keys", map[string]string{"name": "e2e"}, &k)
		other := apiClient{t: t, api: api, key: k.Key, simURL: simURL}
		eventID := sentFor(received())[first[0].ID][0].WebhookID
		for _, c := range []struct{ method, path string }{
			{"GET", "/webhooks/" + hook.ID}, {"PATCH", "/webhooks/" + hook.ID}, {"DELETE", "/webhooks/" + hook.ID},
			{"POST", "/webhooks/" + hook.ID + "/rotate-secret"}, {"POST", "/webhooks/" + hook.ID + "/test"},
			{"GET", "/webhooks/" + hook.ID + "/attempts"}, {"POST", "/webhook-events/" + eventID + "/replay"},
		} {
			var body any
			if c.method == "PATCH" {
				body = map[string]any{"enabled": false}
			}
			if code, b := other.call(c.method, c.path, body); code != 404 {
				t.Errorf("other site %s %s: got %d %s, want 404", c.method, c.path, code, b)
			}
		}
		var list struct{ Items []any }
		other.must(200, "GET", "/webhooks", nil, &list)
		if len(list.Items) != 0 {
			t.Errorf("other site lists %d webhooks, want none", len(list.Items))
		}
		var mine struct{ Enabled bool }
		site.c.must(200, "GET", "/webhooks/"+hook.ID, nil, &mine)
		if !mine.Enabled {
			t.Error("the webhook was changed by another site's calls")
		}
	})

	l.stop(t)
	stopped = true
	logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
	for _, f := range append(logs, "") {
		text := []byte(l.stderr.String())
		if f != "" {
			text, _ = os.ReadFile(f)
		}
		for _, s := range secrets {
			if bytes.Contains(text, []byte(s)) || bytes.Contains(text, []byte(strings.TrimPrefix(s, "whsec_"))) {
				t.Errorf("%q holds a webhook secret", f)
			}
		}
	}
}
