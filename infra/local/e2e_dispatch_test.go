package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// site is one site of the dispatch test: its client and a target per platform.
type e2eSite struct {
	id      string
	c       apiClient
	targets map[string]string // platform → target id
}

// delivery is the part of a delivery the test reads.
type e2eDelivery struct {
	ID       string `json:"id"`
	SiteID   string `json:"siteId"`
	PostID   string `json:"postId"`
	TargetID string `json:"targetId"`
	Platform string `json:"platform"`
	State    string `json:"state"`
	History  []struct {
		Outcome string `json:"outcome"`
	} `json:"history"`
}

// simPost is a post the simulator recorded.
type simPost struct {
	Platform  string `json:"platform"`
	ID        string `json:"id"`
	AccountID string `json:"accountId"`
	Text      string `json:"text"`
}

// TestDispatchInvariants proves the delivery ledger's promises through the
// whole local stack — the real template in moto, the api and dispatch
// bootstraps under the RIE, the simulator — counting posts in the simulator:
// a message delivered twice posts once; a post created behind a dropped
// connection is reconciled or marked unknown, never posted twice; a 429 is
// deferred past its reset without burning receives; a poison message reaches
// the DLQ while its batch is sent; a console-style redrive re-posts nothing
// and publishes what was waiting; 500 deliveries over 8 platforms and 3 sites
// are all sent, with analytics equal and no site seeing another's deliveries.
func TestDispatchInvariants(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	if d := os.Getenv("POSSE_E2E_STATE"); d != "" {
		state = d // keep the logs to read after a failure
	}
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	// A 3 s visibility timeout lets a poison message reach the DLQ (5
	// receives) in seconds instead of half an hour.
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "2",
		"-param", "DispatchVisibilityTimeout=3", "-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt),
		"-sim-port", strconv.Itoa(sim), "-state-dir", state)
	defer l.stop(t)
	api, simURL, motoURL := l.info["API URL"], l.info["Simulator"], l.info["Moto endpoint"]
	admin := apiClient{t: t, api: api, key: l.info["Admin key"], simURL: simURL}
	ctx := context.Background()
	awsCfg := moto.Config(motoURL)
	queues := sqs.NewFromConfig(awsCfg)
	dispatchQ, dlq := queueURLOf(ctx, t, queues, "posse-local-dispatch"), queueURLOf(ctx, t, queues, "posse-local-dispatch-dlq")

	// Three sites, each with one connected account and one target per platform.
	sites := []*e2eSite{{id: l.info["Site id"], c: apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}}}
	for i := 2; i <= 3; i++ {
		var st struct{ ID string }
		admin.must(201, "POST", "/sites", map[string]string{"name": fmt.Sprintf("Site %d", i), "timezone": "UTC", "returnUrl": api + "/health"}, &st)
		var k struct{ Key string }
		admin.must(201, "POST", "/sites/"+st.ID+"/keys", map[string]string{"name": "e2e"}, &k)
		sites = append(sites, &e2eSite{id: st.ID, c: apiClient{t: t, api: api, key: k.Key, simURL: simURL}})
	}
	for n, s := range sites {
		connectEveryPlatform(t, s, n+1, simURL, func(p, cid string) map[string]any {
			body := map[string]any{"connectionId": cid, "name": p, "defaults": map[string]any{"hashtags": []string{"posse"}}}
			if p == "tiktok" {
				body["defaults"] = map[string]any{"options": map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE"}}
			}
			return body
		})
	}

	media := []map[string]string{{"url": simURL + "/_sim/media/cover.jpg", "kind": "image", "altText": "cover"}}
	dispatch := func(s *e2eSite, postID string, platforms ...string) []e2eDelivery {
		t.Helper()
		ids := make([]string, 0, len(platforms))
		for _, p := range platforms {
			ids = append(ids, s.targets[p])
		}
		var out struct{ Deliveries []e2eDelivery }
		s.c.must(202, "POST", "/dispatch", map[string]any{
			"post": map[string]any{"postId": postID, "revision": "1", "title": "Post " + postID, "excerpt": "An excerpt of " + postID,
				"url": "https://blog.example/" + postID, "body": "Body.", "media": media},
			"targetIds": ids,
		}, &out)
		if len(out.Deliveries) != len(platforms) {
			t.Fatalf("dispatch %s: got %d deliveries, want %d", postID, len(out.Deliveries), len(platforms))
		}
		return out.Deliveries
	}
	get := func(s *e2eSite, id string) e2eDelivery {
		t.Helper()
		var d e2eDelivery
		s.c.must(200, "GET", "/deliveries/"+url.PathEscape(id), nil, &d)
		return d
	}
	settled := map[string]bool{"sent": true, "failed": true, "unknown": true, "dead": true, "cancelled": true}
	waitSettled := func(s *e2eSite, ds []e2eDelivery, within time.Duration) []e2eDelivery {
		t.Helper()
		deadline := time.Now().Add(within)
		out := make([]e2eDelivery, len(ds))
		for i, d := range ds {
			for {
				out[i] = get(s, d.ID)
				if settled[out[i].State] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("delivery %s (%s) still %s after %v", d.ID, d.Platform, out[i].State, within)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		return out
	}
	posts := func(platform string) []simPost {
		t.Helper()
		var out struct{ Posts []simPost }
		simJSON(t, simURL+"/_sim/posts?platform="+platform, &out)
		return out.Posts
	}
	postsWith := func(marker string) int {
		n := 0
		for _, p := range posts("") {
			if strings.Contains(p.Text, marker) {
				n++
			}
		}
		return n
	}
	queueDrained := func(within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			out, err := queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &dispatchQ,
				AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
			if err != nil {
				t.Fatal(err)
			}
			if out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" &&
				out.Attributes["ApproximateNumberOfMessagesDelayed"] == "0" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("dispatch queue not drained after %v: %v", within, out.Attributes)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	site1 := sites[0]

	t.Run("every message delivered twice posts once", func(t *testing.T) {
		ds := dispatch(site1, "twice", "x", "linkedin", "facebook", "instagram", "threads", "tiktok", "bluesky", "mastodon")
		for _, d := range ds { // the same message again, as SQS at-least-once delivery may
			body := ledger.DeliveryMessage(site1.id, d.ID).Encode()
			if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dispatchQ, MessageBody: &body}); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range waitSettled(site1, ds, 90*time.Second) {
			if d.State != "sent" {
				t.Errorf("%s: got %s, want sent", d.Platform, d.State)
			}
		}
		queueDrained(30 * time.Second)
		if n := postsWith("Post twice"); n != len(ds) {
			t.Fatalf("posts of the twice-delivered post: got %d, want %d (one per delivery)", n, len(ds))
		}
	})

	t.Run("post created then connection dropped is reconciled or unknown, never posted twice", func(t *testing.T) {
		for _, p := range []string{"mastodon", "bluesky", "x"} {
			simFault(t, simURL, map[string]any{"platform": p, "kind": "timeout_after_create"})
		}
		ds := waitSettled(site1, dispatch(site1, "dropped", "mastodon", "bluesky", "x"), 90*time.Second)
		for _, d := range ds {
			want := map[string]string{"mastodon": "sent", "bluesky": "sent", "x": "unknown"}[d.Platform]
			if d.State != want {
				t.Errorf("%s after timeout-after-create: got %s, want %s", d.Platform, d.State, want)
			}
		}
		queueDrained(30 * time.Second)
		if n := postsWith("Post dropped"); n != 3 {
			t.Fatalf("posts after timeout-after-create: got %d, want 3 (one per platform)", n)
		}
	})

	t.Run("429 is deferred past its reset without burning receives", func(t *testing.T) {
		simFault(t, simURL, map[string]any{"platform": "mastodon", "kind": "rate_limit", "resetSeconds": 2})
		start := time.Now()
		d := waitSettled(site1, dispatch(site1, "limited", "mastodon"), 60*time.Second)[0]
		if d.State != "sent" {
			t.Fatalf("rate-limited delivery: got %s, want sent", d.State)
		}
		var outcomes []string
		for _, h := range d.History {
			outcomes = append(outcomes, h.Outcome)
		}
		if len(outcomes) != 2 || outcomes[0] != "deferred" || outcomes[1] != "sent" {
			t.Fatalf("history: got %v, want [deferred sent]", outcomes)
		}
		if time.Since(start) < 2*time.Second {
			t.Fatalf("sent %v after dispatch, before the 2 s reset", time.Since(start))
		}
		if n := postsWith("Post limited"); n != 1 {
			t.Fatalf("posts: got %d, want 1", n)
		}
	})

	t.Run("poison message reaches the DLQ and its batch is sent", func(t *testing.T) {
		poison := "this is not a POSSE message"
		entries := []sqstypes.SendMessageBatchRequestEntry{{Id: aws.String("poison"), MessageBody: &poison}}
		ds := dispatch(site1, "neighbours", "linkedin", "threads")
		for i, d := range ds { // the neighbours again, in the poison message's batch
			body := ledger.DeliveryMessage(site1.id, d.ID).Encode()
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: &body})
		}
		if _, err := queues.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &dispatchQ, Entries: entries}); err != nil {
			t.Fatal(err)
		}
		for _, d := range waitSettled(site1, ds, 60*time.Second) {
			if d.State != "sent" {
				t.Errorf("neighbour %s: got %s, want sent", d.Platform, d.State)
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlq, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Messages) == 1 && aws.ToString(out.Messages[0].Body) == poison {
				if _, err := queues.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &dlq, ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
					t.Fatal(err)
				}
				break
			}
			if len(out.Messages) > 0 {
				t.Fatalf("DLQ holds %d messages, want only the poison one", len(out.Messages))
			}
			if time.Now().After(deadline) {
				t.Fatal("the poison message did not reach the DLQ within 60 s")
			}
		}
		if n := postsWith("Post neighbours"); n != 2 {
			t.Fatalf("posts of the poison message's neighbours: got %d, want 2", n)
		}
	})

	t.Run("console-style redrive re-posts nothing and publishes what was waiting", func(t *testing.T) {
		sent := waitSettled(site1, dispatch(site1, "redrive-sent", "x", "mastodon"), 60*time.Second)
		// Deliveries whose messages were dead-lettered before they could be
		// processed (a dispatcher crashing on every receive leaves exactly
		// this): queued in the ledger, their messages in the DLQ.
		store := ledger.NewStore(dynamodb.NewFromConfig(awsCfg), "posse-local", time.Now)
		var waiting []e2eDelivery
		for _, p := range []string{"bluesky", "linkedin"} {
			out, _, err := store.CreateAll(ctx, []ledger.NewDelivery{{SiteID: site1.id, PostID: "redrive-waiting", Revision: "1",
				TargetID: site1.targets[p], ConnectionID: targetConnection(t, site1, p), Platform: platform.Name(p),
				Text: "Post redrive-waiting on " + p, Link: "https://blog.example/redrive-waiting"}})
			if err != nil {
				t.Fatal(err)
			}
			waiting = append(waiting, e2eDelivery{ID: out[0].ID, Platform: p})
		}
		for _, d := range append(append([]e2eDelivery{}, sent...), waiting...) {
			body := ledger.DeliveryMessage(site1.id, d.ID).Encode()
			if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dlq, MessageBody: &body}); err != nil {
				t.Fatal(err)
			}
		}
		// What the console's "redrive to source" does: move every message back.
		moved := 0
		for moved < len(sent)+len(waiting) {
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
		for _, d := range waitSettled(site1, waiting, 60*time.Second) {
			if d.State != "sent" {
				t.Errorf("redriven waiting %s: got %s, want sent", d.Platform, d.State)
			}
		}
		queueDrained(30 * time.Second)
		if n := postsWith("Post redrive-sent"); n != len(sent) {
			t.Fatalf("posts of already-sent deliveries after redrive: got %d, want %d (none again)", n, len(sent))
		}
		if n := postsWith("Post redrive-waiting"); n != len(waiting) {
			t.Fatalf("posts of redriven waiting deliveries: got %d, want %d (once each)", n, len(waiting))
		}
	})

	t.Run("500 deliveries over 8 platforms and 3 sites", func(t *testing.T) {
		platforms := []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok", "bluesky", "mastodon"}
		const postsPerSite = 21 // 3 sites x 21 posts x 8 targets = 504 deliveries
		today := time.Now().UTC().Format("2006-01-02")
		var before [3]int
		for i, s := range sites {
			before[i] = sentToday(t, s, today)
		}
		all := make([][]e2eDelivery, len(sites))
		for i, s := range sites {
			for n := range postsPerSite {
				all[i] = append(all[i], dispatch(s, fmt.Sprintf("bulk-s%d-%02d", i+1, n), platforms...)...)
			}
		}
		total := 0
		for i, s := range sites {
			for _, d := range waitSettled(s, all[i], 5*time.Minute) {
				if d.State != "sent" {
					t.Errorf("site %d %s %s: got %s, want sent", i+1, d.PostID, d.Platform, d.State)
				}
				if d.SiteID != s.id {
					t.Errorf("site %d sees delivery %s of site %s", i+1, d.ID, d.SiteID)
				}
				total++
			}
		}
		if total < 500 {
			t.Fatalf("deliveries: got %d, want at least 500", total)
		}
		queueDrained(60 * time.Second)
		if n := postsWith("Post bulk-"); n != total {
			t.Fatalf("simulator posts: got %d, want %d (one per delivery)", n, total)
		}
		for i, s := range sites {
			if got := sentToday(t, s, today) - before[i]; got != len(all[i]) {
				t.Errorf("site %d analytics: sent grew by %d, want %d", i+1, got, len(all[i]))
			}
			// No site can read another's deliveries.
			other := all[(i+1)%len(sites)][0]
			if code, _ := s.c.call("GET", "/deliveries/"+url.PathEscape(other.ID), nil); code != 404 {
				t.Errorf("site %d reading another site's delivery: got %d, want 404", i+1, code)
			}
			var list struct {
				Items []e2eDelivery `json:"items"`
			}
			s.c.must(200, "GET", "/deliveries?limit=100", nil, &list)
			for _, d := range list.Items {
				if d.SiteID != s.id {
					t.Errorf("site %d lists delivery %s of site %s", i+1, d.ID, d.SiteID)
				}
			}
		}
	})
}

// sentToday is the site's analytics count of sent deliveries for day.
func sentToday(t *testing.T, s *e2eSite, day string) int {
	t.Helper()
	var rep struct {
		Summary struct {
			Sent int `json:"sent"`
		} `json:"summary"`
	}
	s.c.must(200, "GET", "/analytics?from="+day+"&to="+day, nil, &rep)
	return rep.Summary.Sent
}

// targetConnection reads a target's connection id.
func targetConnection(t *testing.T, s *e2eSite, p string) string {
	t.Helper()
	var tg struct {
		ConnectionID string `json:"connectionId"`
	}
	s.c.must(200, "GET", "/targets/"+s.targets[p], nil, &tg)
	return tg.ConnectionID
}
