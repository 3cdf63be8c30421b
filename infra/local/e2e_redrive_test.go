package main

import (
	"context"
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

// TestConsoleRedriveStartMessageMoveTask redrives the dispatch DLQ of the
// whole local stack the way the SQS console does: StartMessageMoveTask with
// only the DLQ's ARN, through the Go SDK, against the stack's moto. The DLQ
// holds messages of deliveries already sent, of deliveries still waiting
// (queued in the ledger, their messages dead-lettered), of a delivery that
// failed for good, and a poison message. After the move: nothing settled is
// posted again, each waiting delivery is published exactly once, the task
// is COMPLETED, and the poison message returns to the DLQ after its five
// receives. Then the admin route /v1/queue/move-task lists the same task and
// moves the poison message back again.
func TestConsoleRedriveStartMessageMoveTask(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	if d := os.Getenv("POSSE_E2E_STATE"); d != "" {
		state = d // keep the logs to read after a failure
	}
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	// A 3 s visibility timeout brings the poison message back to the DLQ
	// (5 receives) in seconds instead of half an hour.
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "1",
		"-param", "DispatchVisibilityTimeout=3", "-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt),
		"-sim-port", strconv.Itoa(sim), "-state-dir", state)
	defer l.stop(t)
	api, simURL, motoURL := l.info["API URL"], l.info["Simulator"], l.info["Moto endpoint"]
	admin := apiClient{t: t, api: api, key: l.info["Admin key"], simURL: simURL}
	site := &e2eSite{id: l.info["Site id"], c: apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}}
	ctx := context.Background()
	awsCfg := moto.Config(motoURL)
	queues := sqs.NewFromConfig(awsCfg)
	dispatchQ, dlq := queueURLOf(ctx, t, queues, "posse-local-dispatch"), queueURLOf(ctx, t, queues, "posse-local-dispatch-dlq")
	attrs, err := queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &dlq,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	dlqARN := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	connectEveryPlatform(t, site, 1, simURL, func(p, cid string) map[string]any {
		body := map[string]any{"connectionId": cid, "name": p}
		if p == "tiktok" {
			body["defaults"] = map[string]any{"options": map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE"}}
		}
		return body
	})

	dispatch := func(postID string, platforms ...string) []e2eDelivery {
		t.Helper()
		ids := make([]string, 0, len(platforms))
		for _, p := range platforms {
			ids = append(ids, site.targets[p])
		}
		var out struct{ Deliveries []e2eDelivery }
		site.c.must(202, "POST", "/dispatch", map[string]any{
			"post": map[string]any{"postId": postID, "revision": "1", "title": "Post " + postID, "excerpt": "An excerpt of " + postID,
				"url": "https://blog.example/" + postID, "body": "Body."},
			"targetIds": ids,
		}, &out)
		if len(out.Deliveries) != len(platforms) {
			t.Fatalf("dispatch %s: got %d deliveries, want %d", postID, len(out.Deliveries), len(platforms))
		}
		return out.Deliveries
	}
	settledStates := map[string]bool{"sent": true, "failed": true, "unknown": true, "dead": true, "cancelled": true}
	settle := func(ds []e2eDelivery, within time.Duration) []e2eDelivery {
		t.Helper()
		deadline := time.Now().Add(within)
		out := make([]e2eDelivery, len(ds))
		for i, d := range ds {
			for {
				site.c.must(200, "GET", "/deliveries/"+url.PathEscape(d.ID), nil, &out[i])
				if settledStates[out[i].State] {
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
	postsWith := func(marker string) int {
		t.Helper()
		var out struct{ Posts []simPost }
		simJSON(t, simURL+"/_sim/posts", &out)
		n := 0
		for _, p := range out.Posts {
			if strings.Contains(p.Text, marker) {
				n++
			}
		}
		return n
	}
	depth := func(q string) (visible, inFlight int) {
		t.Helper()
		out, err := queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
		f, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
		d, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesDelayed"])
		return v, f + d
	}
	// until polls cond every 100 ms for at most within.
	until := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	drained := func() bool { v, f := depth(dispatchQ); return v == 0 && f == 0 }

	// (a) Deliveries already sent.
	sent := settle(dispatch("mt-sent", "mastodon", "facebook"), 60*time.Second)
	// (c) A delivery that failed for good: the platform rejects it as a duplicate.
	simFault(t, simURL, map[string]any{"platform": "x", "kind": "duplicate"})
	failed := settle(dispatch("mt-failed", "x"), 60*time.Second)
	for _, d := range append(append([]e2eDelivery{}, sent...), failed...) {
		if want := map[string]string{"mt-sent": "sent", "mt-failed": "failed"}[d.PostID]; d.State != want {
			t.Fatalf("%s on %s: got %s, want %s", d.PostID, d.Platform, d.State, want)
		}
	}
	until("dispatch queue drained before the redrive", 30*time.Second, drained)
	// (b) Deliveries waiting: queued in the ledger, their messages
	// dead-lettered before they could be processed (a dispatcher crashing on
	// every receive leaves exactly this).
	store := ledger.NewStore(dynamodb.NewFromConfig(awsCfg), "posse-local", time.Now)
	var waiting []e2eDelivery
	for _, p := range []string{"bluesky", "linkedin"} {
		out, _, err := store.CreateAll(ctx, []ledger.NewDelivery{{SiteID: site.id, PostID: "mt-waiting", Revision: "1",
			TargetID: site.targets[p], ConnectionID: targetConnection(t, site, p), Platform: platform.Name(p),
			Text: "Post mt-waiting on " + p, Link: "https://blog.example/mt-waiting"}})
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, e2eDelivery{ID: out[0].ID, Platform: p})
	}
	poison := "this is not a POSSE message"
	bodies := []string{poison}
	for _, d := range append(append(append([]e2eDelivery{}, sent...), failed...), waiting...) {
		bodies = append(bodies, ledger.DeliveryMessage(site.id, d.ID).Encode())
	}
	for _, b := range bodies {
		if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dlq, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := postsWith("Post mt-sent"); n != len(sent) {
		t.Fatalf("posts of the sent deliveries before the redrive: got %d, want %d", n, len(sent))
	}
	if n := postsWith("Post mt-failed"); n != 0 {
		t.Fatalf("posts of the failed delivery before the redrive: got %d, want 0", n)
	}

	// The console's "Redrive to source queue(s)": only the source ARN.
	start := time.Now()
	task, err := queues.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlqARN})
	if err != nil {
		t.Fatalf("StartMessageMoveTask: %v", err)
	}
	var done sqstypes.ListMessageMoveTasksResultEntry
	until("move task COMPLETED", 10*time.Second, func() bool {
		out, err := queues.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlqARN})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Results) == 1 {
			done = out.Results[0]
		}
		return aws.ToString(done.Status) == "COMPLETED"
	})
	if done.ApproximateNumberOfMessagesMoved != int64(len(bodies)) || aws.ToInt64(done.ApproximateNumberOfMessagesToMove) != int64(len(bodies)) ||
		done.DestinationArn != nil {
		t.Errorf("completed task: got %+v, want %d of %d moved back to source", done, done.ApproximateNumberOfMessagesMoved, len(bodies))
	}
	t.Logf("move task %s completed %v after the start", aws.ToString(task.TaskHandle), time.Since(start).Round(time.Millisecond))

	for _, d := range settle(waiting, 60*time.Second) {
		if d.State != "sent" {
			t.Errorf("redriven waiting %s: got %s, want sent", d.Platform, d.State)
		}
	}
	// The poison message fails every receive; after five (3 s apart) SQS's
	// redrive policy sends it back to the DLQ.
	until("the poison message back in the DLQ", 60*time.Second, func() bool { v, f := depth(dlq); return v+f == 1 })
	until("dispatch queue drained after the redrive", 30*time.Second, drained)
	out, err := queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlq, MaxNumberOfMessages: 10, VisibilityTimeout: 1})
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != poison {
		t.Fatalf("DLQ after the redrive: got %d messages (%v), want only the poison one", len(out.Messages), err)
	}
	if n := postsWith("Post mt-sent"); n != len(sent) {
		t.Errorf("posts of already-sent deliveries after the redrive: got %d, want %d (none again)", n, len(sent))
	}
	if n := postsWith("Post mt-failed"); n != 0 {
		t.Errorf("posts of the failed delivery after the redrive: got %d, want 0", n)
	}
	if n := postsWith("Post mt-waiting"); n != len(waiting) {
		t.Errorf("posts of redriven waiting deliveries: got %d, want %d (once each)", n, len(waiting))
	}
	for _, d := range settle(append(append([]e2eDelivery{}, sent...), failed...), time.Second) {
		if want := map[string]string{"mt-sent": "sent", "mt-failed": "failed"}[d.PostID]; d.State != want {
			t.Errorf("%s on %s after the redrive: got %s, want %s", d.PostID, d.Platform, d.State, want)
		}
	}

	// The admin route sees the console's task, and moves the poison message
	// back once more through the api bootstrap.
	type moveTask struct {
		Status                   string `json:"status"`
		TaskHandle               string `json:"taskHandle"`
		SourceArn                string `json:"sourceArn"`
		ApproximateMessagesMoved int64  `json:"approximateMessagesMoved"`
	}
	var list struct{ Items []moveTask }
	admin.must(200, "GET", "/queue/move-task", nil, &list)
	if len(list.Items) != 1 || list.Items[0].Status != "COMPLETED" || list.Items[0].SourceArn != dlqARN || list.Items[0].ApproximateMessagesMoved != int64(len(bodies)) {
		t.Errorf("GET /v1/queue/move-task: got %+v, want the console's completed task", list.Items)
	}
	if code, body := site.c.call("POST", "/queue/move-task", nil); code != 403 {
		t.Errorf("site key on the admin route: got %d %s, want 403", code, body)
	}
	until("the poison message visible in the DLQ again", 5*time.Second, func() bool { v, _ := depth(dlq); return v == 1 })
	var started struct{ TaskHandle string }
	admin.must(202, "POST", "/queue/move-task", map[string]int{"maxMessagesPerSecond": 10}, &started)
	until("the admin route's task COMPLETED", 10*time.Second, func() bool {
		admin.must(200, "GET", "/queue/move-task", nil, &list)
		return len(list.Items) == 2 && list.Items[0].Status == "COMPLETED"
	})
	if list.Items[0].ApproximateMessagesMoved != 1 || list.Items[1].Status != "COMPLETED" {
		t.Errorf("GET /v1/queue/move-task after the admin start: got %+v, want the new task (1 moved) first", list.Items)
	}
	if v, f := depth(dlq); v+f != 0 {
		t.Errorf("DLQ after the admin route's move: got %d messages, want 0", v+f)
	}
}
