package esm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/esm"
	"github.com/posse-dev/posse/infra/local/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func msgs(ids ...string) []types.Message {
	out := make([]types.Message, len(ids))
	for i, id := range ids {
		out[i] = types.Message{MessageId: aws.String(id), ReceiptHandle: aws.String("rh-" + id), Body: aws.String("body-" + id)}
	}
	return out
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	batch := msgs("a", "b", "c")
	tests := []struct {
		name   string
		out    string
		err    error
		report bool
		keep   []bool
		failed bool // whole batch failed by the response
	}{
		{"error keeps all", ``, errors.New("boom"), true, []bool{true, true, true}, false},
		{"error keeps all without reporting", ``, errors.New("boom"), false, []bool{true, true, true}, false},
		{"no reporting deletes all", `{"batchItemFailures":[{"itemIdentifier":"a"}]}`, nil, false, []bool{false, false, false}, false},
		{"empty response", ``, nil, true, []bool{false, false, false}, false},
		{"null response", `null`, nil, true, []bool{false, false, false}, false},
		{"empty object", `{}`, nil, true, []bool{false, false, false}, false},
		{"null list", `{"batchItemFailures":null}`, nil, true, []bool{false, false, false}, false},
		{"empty list", `{"batchItemFailures":[]}`, nil, true, []bool{false, false, false}, false},
		{"partial", `{"batchItemFailures":[{"itemIdentifier":"b"}]}`, nil, true, []bool{false, true, false}, false},
		{"two failures", `{"batchItemFailures":[{"itemIdentifier":"c"},{"itemIdentifier":"a"}]}`, nil, true, []bool{true, false, true}, false},
		{"unknown id fails all", `{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"zzz"}]}`, nil, true, []bool{true, true, true}, true},
		{"empty id fails all", `{"batchItemFailures":[{"itemIdentifier":""}]}`, nil, true, []bool{true, true, true}, true},
		{"null id fails all", `{"batchItemFailures":[{"itemIdentifier":null}]}`, nil, true, []bool{true, true, true}, true},
		{"misnamed key fails all", `{"batchItemFailures":[{"itemId":"a"}]}`, nil, true, []bool{true, true, true}, true},
		{"invalid json fails all", `{"batchItemFailures":`, nil, true, []bool{true, true, true}, true},
		{"not an object fails all", `"ok"`, nil, true, []bool{true, true, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keep, reason := esm.Outcome(batch, []byte(tt.out), tt.err, tt.report)
			if !reflect.DeepEqual(keep, tt.keep) || (reason != "") != tt.failed {
				t.Errorf("got keep %v reason %q, want keep %v failed %v", keep, reason, tt.keep, tt.failed)
			}
		})
	}
}

func TestEventShape(t *testing.T) {
	t.Parallel()
	m := types.Message{
		MessageId: aws.String("id-1"), ReceiptHandle: aws.String("rh"), Body: aws.String("hello"),
		MD5OfBody: aws.String("5d41402abc4b2a76b9719d911017c592"), MD5OfMessageAttributes: aws.String("abc"),
		Attributes: map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1520621625029", "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1520621634884"},
		MessageAttributes: map[string]types.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("dispatch")},
			"blob": {DataType: aws.String("Binary"), BinaryValue: []byte{1, 2}},
		},
	}
	b, err := json.Marshal(esm.Event([]types.Message{m}, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	rec := got["Records"].([]any)[0].(map[string]any)
	want := map[string]any{
		"messageId": "id-1", "receiptHandle": "rh", "body": "hello", "md5OfBody": "5d41402abc4b2a76b9719d911017c592",
		"md5OfMessageAttributes": "abc", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
		"attributes": map[string]any{"ApproximateReceiveCount": "1", "SentTimestamp": "1520621625029", "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1520621634884"},
		"messageAttributes": map[string]any{
			"kind": map[string]any{"stringValue": "dispatch", "stringListValues": []any{}, "binaryListValues": []any{}, "dataType": "String"},
			"blob": map[string]any{"binaryValue": "AQI=", "stringListValues": []any{}, "binaryListValues": []any{}, "dataType": "Binary"},
		},
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record:\n got %v\nwant %v", rec, want)
	}
}

// recorder is a fake function: it records each batch's bodies and fails
// the records whose body contains "fail".
type recorder struct {
	mu      sync.Mutex
	batches [][]string
	counts  map[string][]string // body → ApproximateReceiveCount per delivery
}

func (r *recorder) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	var resp events.SQSEventResponse
	var bodies []string
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range ev.Records {
		bodies = append(bodies, rec.Body)
		r.counts[rec.Body] = append(r.counts[rec.Body], rec.Attributes["ApproximateReceiveCount"])
		if strings.Contains(rec.Body, "fail") {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	sort.Strings(bodies)
	r.batches = append(r.batches, bodies)
	return json.Marshal(resp)
}

func (r *recorder) deliveries(body string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.counts[body]...)
}

// TestPollerAgainstMoto runs a mapping on a queue with a DLQ
// (maxReceiveCount 2, visibility timeout 2 s): records sent within the
// batching window share a batch, successes are deleted, a reported failure comes back
// after the visibility timeout and moto's redrive moves it to the DLQ after
// its second receive.
func TestPollerAgainstMoto(t *testing.T) {
	t.Parallel()
	cfg := mototest.Config(t)
	client := sqs.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("esm-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	dlqARN := queueARN(t, client, *dlq.QueueUrl)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("esm-work"), Attributes: map[string]string{
		"VisibilityTimeout": "2",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":2}`, dlqARN),
	}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(body)}); err != nil {
			t.Error(err)
		}
	}
	send("ok-1")
	rec := &recorder{counts: map[string][]string{}}
	p, err := esm.New(client, esm.Mapping{
		Name: "test", QueueURL: *q.QueueUrl, QueueARN: queueARN(t, client, *q.QueueUrl), BatchSize: 5,
		MaximumBatchingWindow: time.Second, ReportBatchItemFailures: true, Concurrency: 1, WaitTime: time.Second, Function: rec,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	// Records sent within the batching window join the first batch.
	time.Sleep(300 * time.Millisecond)
	send("fail-1")
	send("ok-2")

	// The failed message reaches the DLQ.
	var dead []string
	for len(dead) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("fail-1 never reached the DLQ; deliveries %v", rec.deliveries("fail-1"))
		}
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: dlq.QueueUrl, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			dead = append(dead, *m.Body)
		}
	}
	if !reflect.DeepEqual(dead, []string{"fail-1"}) {
		t.Errorf("DLQ: got %v, want [fail-1]", dead)
	}
	if got := rec.deliveries("fail-1"); !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("fail-1 receive counts: got %v, want [1 2] (maxReceiveCount 2)", got)
	}
	for _, body := range []string{"ok-1", "ok-2"} {
		if got := rec.deliveries(body); !reflect.DeepEqual(got, []string{"1"}) {
			t.Errorf("%s deliveries: got %v, want exactly one", body, got)
		}
	}
	rec.mu.Lock()
	first := rec.batches[0]
	rec.mu.Unlock()
	if !reflect.DeepEqual(first, []string{"fail-1", "ok-1", "ok-2"}) {
		t.Errorf("first batch: got %v, want all three records (batching window)", first)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Attributes["ApproximateNumberOfMessages"] != "0" || attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("work queue not empty: %v visible, %v in flight", attrs.Attributes["ApproximateNumberOfMessages"], attrs.Attributes["ApproximateNumberOfMessagesNotVisible"])
	}
}

func queueARN(t *testing.T, c *sqs.Client, url string) string {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	f := &recorder{}
	for name, m := range map[string]esm.Mapping{
		"no queue":    {QueueARN: "arn:aws:sqs:us-east-1:1:q", Function: f},
		"bad arn":     {QueueURL: "u", QueueARN: "arn:aws:sns:us-east-1:1:t", Function: f},
		"no function": {QueueURL: "u", QueueARN: "arn:aws:sqs:us-east-1:1:q"},
	} {
		if _, err := esm.New(nil, m, nil); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}
