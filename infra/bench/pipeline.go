package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/devstack"
	"github.com/posse-dev/posse/infra/local/moto"
)

// pipeline measures the dispatch pipeline and scheduling through the whole
// local stack (real template, api + dispatch bootstraps under the RIE,
// the simulator), each against a floor measured on the same moto:
//
//   - POST /v1/dispatch latency (p50/p99) vs the bare SDK calls it makes;
//   - AWS calls per single-target dispatch and per delivery, by caller,
//     service and API, counted at moto, with DynamoDB request units, and
//     the cost of 1,000 deliveries at list prices (see costPer1000);
//   - deliveries per second end to end vs a bare receive+delete loop, and
//     each delivery's latency (created to sent) p50/p99 vs one message
//     sent, received and deleted;
//   - KMS calls per 1,000 deliveries (moto counts them);
//   - peak RSS of the dispatch bootstraps;
//   - schedule fire lateness p50/p99 over 200 schedules (goal p99 <= 1 s);
//   - webhooks: event latency, calls per delivery, attempts per second
//     (see webhooks).
func pipeline(ctx context.Context, root, tmp string) ([]result, error) {
	st, c, err := launchStack(root, filepath.Join(tmp, "stack"))
	if err != nil {
		return nil, err
	}
	defer st.Stop()
	motoURL := st.Info["Moto endpoint"]

	targets, err := benchTargets(c)
	if err != nil {
		return nil, err
	}
	var out []result

	prices, err := loadPrices()
	if err != nil {
		return nil, err
	}

	// POST /v1/dispatch latency, one target per call, sequential; the AWS
	// calls of those dispatches and their deliveries, counted at moto, and
	// what they cost.
	const calls = 100
	win, err := startWindow(motoURL, st.Info["Logs"])
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	var ids []string
	for i := range calls {
		start := time.Now()
		var resp struct {
			Deliveries []struct{ ID string } `json:"deliveries"`
		}
		if err := c.Must(202, "POST", "/dispatch", dispatchBody(c.SimURL, fmt.Sprintf("lat-%03d", i), []string{targets["mastodon"]}), &resp); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
		for _, d := range resp.Deliveries {
			ids = append(ids, d.ID)
		}
	}
	// The api's share is taken now: the polls below read the deliveries
	// through the api too, and are not part of a dispatch.
	apiUsed, err := win.collect()
	if err != nil {
		return nil, err
	}
	floor, err := bareDispatchCalls(ctx, motoURL, calls)
	if err != nil {
		return nil, err
	}
	out = append(out,
		withFloor(result{Name: "POST /v1/dispatch p50", Value: ms(pct(lat, 50)), Unit: "ms", Note: "floor = the same DynamoDB + SQS calls made directly"}, ms(pct(floor, 50))),
		withFloor(result{Name: "POST /v1/dispatch p99", Value: ms(pct(lat, 99)), Unit: "ms"}, ms(pct(floor, 99))))
	if err := waitSent(c, ids, 3*time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the last outcomes' trailing calls and REPORT lines
	used, err := win.collect()
	if err != nil {
		return nil, err
	}
	used = used.withCaller(apiUsed, "ApiFunction")
	out = append(out, callResults(used, "per single-target dispatch (api)", calls, "goal <= 4", "ApiFunction")...)
	out = append(out, callResults(used, "per delivery (dispatch function)", len(ids), "goal <= 4", "DispatchFunction")...)
	out = append(out, callResults(used, "per delivery (SQS pollers)", len(ids), "", moto.CallerEventSourceMapping)...)
	out = append(out, callResults(used, "per delivery (webhook function, its events)", len(ids), "", "WebhookFunction")...)
	cost, err := costPer1000(used, prices, len(ids), calls, "ApiFunction", "DispatchFunction", "WebhookFunction",
		moto.CallerEventSourceMapping, moto.CallerScheduler)
	if err != nil {
		return nil, err
	}
	out = append(out, cost...)

	// End-to-end throughput and KMS economy: 200 deliveries over 8 platforms.
	before, err := moto.Calls(motoURL)
	if err != nil {
		return out, err
	}
	all := make([]string, 0, len(targets))
	for _, id := range targets {
		all = append(all, id)
	}
	ids = ids[:0]
	start := time.Now()
	for i := range 25 {
		var resp struct {
			Deliveries []struct{ ID string } `json:"deliveries"`
		}
		if err := c.Must(202, "POST", "/dispatch", dispatchBody(c.SimURL, fmt.Sprintf("tput-%02d", i), all), &resp); err != nil {
			return out, err
		}
		for _, d := range resp.Deliveries {
			ids = append(ids, d.ID)
		}
	}
	if err := waitSent(c, ids, 5*time.Minute); err != nil {
		return out, err
	}
	// The rate is taken from the deliveries' own sentAt, not from when
	// the poll above saw the last one: the poll reads deliveries one by
	// one through the gateway, and timing it measured the poll.
	e2e, lastSent, err := deliveryLatencies(c, ids)
	if err != nil {
		return out, err
	}
	rate := float64(len(ids)) / lastSent.Sub(start).Seconds()
	after, err := moto.Calls(motoURL)
	if err != nil {
		return out, err
	}
	kms := 0
	for k, v := range after {
		if strings.HasPrefix(k, "TrentService.") {
			kms += v - before[k]
		}
	}
	bare, err := bareReceiveDelete(ctx, motoURL, len(ids))
	if err != nil {
		return out, err
	}
	bareLat, err := bareQueueLatency(ctx, motoURL, 50)
	if err != nil {
		return out, err
	}
	out = append(out,
		withFloor(result{Name: "deliveries per second end to end", Value: rate, Unit: "/s", Note: fmt.Sprintf("%d deliveries, 8 platforms; floor = bare receive+delete loop", len(ids))}, bare),
		withFloor(result{Name: "delivery latency p50 (created to sent)", Value: ms(pct(e2e, 50)), Unit: "ms",
			Note: "under the 200-delivery burst; floor = one message sent, received and deleted"}, ms(pct(bareLat, 50))),
		withFloor(result{Name: "delivery latency p99 (created to sent)", Value: ms(pct(e2e, 99)), Unit: "ms"}, ms(pct(bareLat, 99))),
		result{Name: "KMS calls per 1,000 deliveries", Value: float64(kms) * 1000 / float64(len(ids)), Unit: "calls", Note: "warm data-key cache"})
	if rss, err := peakRSS("DispatchFunction"); err == nil {
		out = append(out, result{Name: "peak RSS of a dispatch bootstrap", Value: rss, Unit: "MiB", Note: "VmHWM"})
	}

	// Fire lateness: 200 schedules due over the next 30-50 s.
	fired, publish, err := fireLateness(c, targets["mastodon"], 200)
	if err != nil {
		return out, err
	}
	out = append(out,
		result{Name: "schedule fire lateness p50", Value: ms(pct(fired, 50)), Unit: "ms", Note: "due time to the fire (firedAt), 200 schedules"},
		result{Name: "schedule fire lateness p99", Value: ms(pct(fired, 99)), Unit: "ms", Note: "goal <= 1000 ms"},
		result{Name: "scheduled publish lateness p50", Value: ms(pct(publish, 50)), Unit: "ms", Note: "due time to the publish attempt"},
		result{Name: "scheduled publish lateness p99", Value: ms(pct(publish, 99)), Unit: "ms"})

	wh, err := webhooks(c, targets, motoURL)
	if err != nil {
		return out, err
	}
	out = append(out, wh...)
	return out, nil
}

// launchStack builds and starts the local stack (`make dev`'s runner)
// with two instances per function, its state and logs under dir.
func launchStack(root, dir string) (*devstack.Stack, devstack.Client, error) {
	bin, err := devstack.Build(root, filepath.Dir(dir))
	if err != nil {
		return nil, devstack.Client{}, err
	}
	ports := make([]string, 3)
	for i := range ports {
		p, err := moto.FreePort()
		if err != nil {
			return nil, devstack.Client{}, err
		}
		ports[i] = strconv.Itoa(p)
	}
	st, err := devstack.Launch(3*time.Minute, bin, "-instances", "2", "-gateway-port", ports[0], "-moto-port", ports[1],
		"-sim-port", ports[2], "-state-dir", dir)
	if err != nil {
		return nil, devstack.Client{}, err
	}
	return st, devstack.Client{API: st.Info["API URL"], Key: st.Info["Site API key"], SimURL: st.Info["Simulator"]}, nil
}

// benchTargets connects one account per platform and makes a target each.
func benchTargets(c devstack.Client) (map[string]string, error) {
	conns := map[string]string{}
	for _, p := range []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok"} {
		resp, err := c.ConnectOAuth(p, "bench")
		if err != nil {
			return nil, err
		}
		if conns[p] = devstack.ConnectionID(resp); conns[p] == "" {
			return nil, fmt.Errorf("connect %s: no connection id", p)
		}
	}
	if err := c.SeedSimAccount(map[string]string{"platform": "bluesky", "accountId": "did:plc:bench", "handle": "bench.bsky.social", "password": "bench-app-password"}); err != nil {
		return nil, err
	}
	var conn struct{ ID string }
	if err := c.Must(201, "POST", "/connections", map[string]string{"platform": "bluesky", "handle": "bench.bsky.social", "appPassword": "bench-app-password"}, &conn); err != nil {
		return nil, err
	}
	conns["bluesky"] = conn.ID
	if err := c.SeedSimAccount(map[string]string{"platform": "mastodon", "accountId": "7", "handle": "bench", "accessToken": "bench-mastodon-token"}); err != nil {
		return nil, err
	}
	// The bench posts hundreds of statuses with an image in minutes: more
	// than a real account's 30 uploads per 30 min and 300 statuses per 3 h.
	if err := c.RaiseSimMastodonLimits(100000); err != nil {
		return nil, err
	}
	if err := c.Must(201, "POST", "/connections", map[string]string{"platform": "mastodon", "instanceUrl": c.SimURL + "/mastodon", "accessToken": "bench-mastodon-token"}, &conn); err != nil {
		return nil, err
	}
	conns["mastodon"] = conn.ID
	targets := map[string]string{}
	for p, id := range conns {
		body := map[string]any{"connectionId": id, "name": p}
		if p == "tiktok" {
			body["defaults"] = map[string]any{"options": map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE"}}
		}
		var tg struct{ ID string }
		if err := c.Must(201, "POST", "/targets", body, &tg); err != nil {
			return nil, err
		}
		targets[p] = tg.ID
	}
	return targets, nil
}

func dispatchBody(simURL, postID string, targetIDs []string) map[string]any {
	return map[string]any{
		"post": map[string]any{"postId": postID, "revision": "1", "title": "Bench " + postID, "excerpt": "A benchmark post.",
			"url": "https://blog.example/" + postID, "media": []map[string]string{{"url": simURL + "/_sim/media/b.jpg", "kind": "image"}}},
		"targetIds": targetIDs,
	}
}

// waitSent polls until every delivery is sent.
func waitSent(c devstack.Client, ids []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			var d struct{ State string }
			if err := getJSON(c, "/deliveries/"+url.PathEscape(id), &d); err != nil {
				return err
			}
			if d.State == "sent" {
				break
			}
			if d.State == "failed" || d.State == "dead" || d.State == "unknown" {
				return fmt.Errorf("delivery %s ended %s", id, d.State)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("delivery %s still %s after %v", id, d.State, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// bareDispatchCalls times, n times, the AWS calls one single-target
// dispatch makes on a warm api instance, made directly: the target and
// connection reads, the transaction of its writes, one send.
func bareDispatchCalls(ctx context.Context, endpoint string, n int) ([]time.Duration, error) {
	cfg := moto.Config(endpoint)
	db, q := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	table := aws.String("posse-local")
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bench-floor-dispatch")})
	if err != nil {
		return nil, err
	}
	key := func(pk, sk string) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{"PK": &ddbtypes.AttributeValueMemberS{Value: pk}, "SK": &ddbtypes.AttributeValueMemberS{Value: sk}}
	}
	var out []time.Duration
	for i := range n {
		start := time.Now()
		// What a warm api instance needs (the key is cached): the
		// targets, then their connections, each one BatchGetItem; the
		// snapshot, the delivery, the Idempotency-Key answer and the audit
		// entry in one conditional transaction; one SendMessageBatch.
		for _, k := range []map[string]ddbtypes.AttributeValue{key("SITE#bench", "TARGET#t"), key("SITE#bench", "CONN#c")} {
			if _, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]ddbtypes.KeysAndAttributes{
				*table: {Keys: []map[string]ddbtypes.AttributeValue{k}, ConsistentRead: aws.Bool(true)}}}); err != nil {
				return nil, err
			}
		}
		var puts []ddbtypes.TransactWriteItem
		for _, sk := range []string{"POST#p#", "DLV#", "IDEM#", "AUDIT#"} {
			item := key("SITE#bench", sk+strconv.Itoa(i))
			item["body"] = &ddbtypes.AttributeValueMemberS{Value: strings.Repeat("x", 400)}
			puts = append(puts, ddbtypes.TransactWriteItem{Put: &ddbtypes.Put{TableName: table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}})
		}
		if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: puts}); err != nil {
			return nil, err
		}
		if _, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qu.QueueUrl, Entries: []sqstypes.SendMessageBatchRequestEntry{{Id: aws.String("1"), MessageBody: aws.String(`{"v":1}`)}}}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// deliveryLatencies is, per delivery, the time from its creation (the
// dispatch call) to its sent outcome, as the ledger recorded them.
func deliveryLatencies(c devstack.Client, ids []string) ([]time.Duration, time.Time, error) {
	out := make([]time.Duration, 0, len(ids))
	var last time.Time
	for _, id := range ids {
		var d struct {
			CreatedAt time.Time  `json:"createdAt"`
			SentAt    *time.Time `json:"sentAt"`
		}
		if err := getJSON(c, "/deliveries/"+url.PathEscape(id), &d); err != nil {
			return nil, time.Time{}, err
		}
		if d.SentAt == nil {
			return nil, time.Time{}, fmt.Errorf("delivery %s is sent but shows no sentAt", id)
		}
		out = append(out, d.SentAt.Sub(d.CreatedAt))
		if d.SentAt.After(last) {
			last = *d.SentAt
		}
	}
	return out, last, nil
}

// bareQueueLatency is the floor for a delivery's latency: n times, one
// message sent, long-polled and deleted, sequentially, on moto.
func bareQueueLatency(ctx context.Context, endpoint string, n int) ([]time.Duration, error) {
	q := sqs.NewFromConfig(moto.Config(endpoint))
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bench-floor-latency")})
	if err != nil {
		return nil, err
	}
	var out []time.Duration
	for range n {
		start := time.Now()
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qu.QueueUrl, MessageBody: aws.String(`{"v":1}`)}); err != nil {
			return nil, err
		}
		r, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qu.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5})
		if err != nil {
			return nil, err
		}
		if len(r.Messages) != 1 {
			return nil, fmt.Errorf("bare latency loop: received %d messages, want 1", len(r.Messages))
		}
		if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: qu.QueueUrl, ReceiptHandle: r.Messages[0].ReceiptHandle}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// bareReceiveDelete is the floor for end-to-end throughput: n messages
// received in batches of 10 and deleted, on moto, per second.
func bareReceiveDelete(ctx context.Context, endpoint string, n int) (float64, error) {
	q := sqs.NewFromConfig(moto.Config(endpoint))
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bench-floor-loop")})
	if err != nil {
		return 0, err
	}
	for i := 0; i < n; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < i+10 && j < n; j++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(`{"v":1}`)})
		}
		if _, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qu.QueueUrl, Entries: entries}); err != nil {
			return 0, err
		}
	}
	start, got := time.Now(), 0
	for got < n && time.Since(start) < time.Minute {
		r, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qu.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return 0, err
		}
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range r.Messages {
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			if _, err := q.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: qu.QueueUrl, Entries: del}); err != nil {
				return 0, err
			}
		}
		got += len(r.Messages)
	}
	return float64(got) / time.Since(start).Seconds(), nil
}

// fireLateness creates n schedules due 30-50 s ahead (one target each) and
// returns, per schedule, how late it fired (firedAt, when the dispatcher
// expanded it) and how late its delivery's first publish attempt started.
func fireLateness(c devstack.Client, targetID string, n int) (fired, publish []time.Duration, err error) {
	type sched struct {
		id  string
		due time.Time
		dlv []string
	}
	// Created by four callers at once, so that all exist well before the
	// first is due even when each creation takes a few hundred ms on a
	// loaded machine (created one by one they could miss their due time,
	// and the lateness measured the creation).
	base := time.Now().Add(30 * time.Second).Truncate(time.Second)
	all := make([]sched, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				due := base.Add(time.Duration(i%20) * time.Second)
				var resp struct {
					ID          string   `json:"id"`
					DeliveryIDs []string `json:"deliveryIds"`
				}
				body := dispatchBody(c.SimURL, fmt.Sprintf("sched-%03d", i), []string{targetID})
				body["scheduledFor"] = due.UTC().Format(time.RFC3339)
				err := c.Must(201, "POST", "/schedules", body, &resp)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				all[i] = sched{id: resp.ID, due: due, dlv: resp.DeliveryIDs}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, nil, first
	}
	if late := time.Since(base); late > 0 {
		return nil, nil, fmt.Errorf("creating %d schedules took until %v past the first one's due time", n, late)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for _, s := range all {
		for _, id := range s.dlv {
			for {
				var d struct {
					History []struct {
						StartedAt time.Time `json:"startedAt"`
					}
				}
				if err := getJSON(c, "/deliveries/"+url.PathEscape(id), &d); err != nil {
					return nil, nil, err
				}
				if len(d.History) > 0 {
					publish = append(publish, d.History[0].StartedAt.Sub(s.due))
					break
				}
				if time.Now().After(deadline) {
					return nil, nil, fmt.Errorf("scheduled delivery %s not attempted by %v", id, deadline)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		var sc struct {
			FiredAt *time.Time `json:"firedAt"`
		}
		if err := getJSON(c, "/schedules/"+url.PathEscape(s.id), &sc); err != nil {
			return nil, nil, err
		}
		if sc.FiredAt == nil {
			return nil, nil, fmt.Errorf("schedule %s published but shows no firedAt", s.id)
		}
		fired = append(fired, sc.FiredAt.Sub(s.due))
	}
	return fired, publish, nil
}

// getJSON reads path into out, retrying while the local gateway answers
// 503 (every execution environment of the api busy: on a loaded machine
// a poll can find them all taken, as API Gateway answers when Lambda
// throttles), up to 10 times.
func getJSON(c devstack.Client, path string, out any) error {
	var err error
	for range 10 {
		code, b, cerr := c.Call("GET", path, nil)
		if cerr != nil {
			return cerr
		}
		if code == http.StatusServiceUnavailable {
			err = fmt.Errorf("GET %s: got 503 %s", path, b)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET %s: got %d %s, want 200", path, code, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("GET %s: decode %s: %w", path, b, err)
		}
		return nil
	}
	return err
}

// pct is the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

// peakRSS is the largest VmHWM, in MiB, among running bootstraps of the
// function logicalID (the runner builds them under .local/run/<id>/).
func peakRSS(logicalID string) (float64, error) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	best := 0.0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), logicalID) || !strings.Contains(string(b), "bootstrap") || strings.Contains(string(b), "aws-lambda-rie") {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				if kb/1024 > best {
					best = kb / 1024
				}
			}
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no %s bootstrap found", logicalID)
	}
	return best, nil
}
