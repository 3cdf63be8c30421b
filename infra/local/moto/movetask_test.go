package moto_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/posse-dev/posse/infra/local/mototest"
)

// queue is a queue a move task test made.
type queue struct{ url, arn string }

// moveFixture makes the queues of one test; names are unique per test.
type moveFixture struct {
	t      *testing.T
	sqs    *sqs.Client
	prefix string
}

func newMoveFixture(t *testing.T) *moveFixture {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &moveFixture{t: t, sqs: sqs.NewFromConfig(mototest.Config(t)), prefix: "mt-" + hex.EncodeToString(b)}
}

func (f *moveFixture) create(name string, attrs map[string]string) queue {
	f.t.Helper()
	ctx := context.Background()
	out, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(f.prefix + "-" + name), Attributes: attrs})
	if err != nil {
		f.t.Fatalf("create queue %s: %v", name, err)
	}
	got, err := f.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		f.t.Fatal(err)
	}
	return queue{url: aws.ToString(out.QueueUrl), arn: got.Attributes[string(types.QueueAttributeNameQueueArn)]}
}

// arn is the ARN the queue called name will have (for a RedriveAllowPolicy
// written before its source exists, as CloudFormation does).
func (f *moveFixture) arn(dlq queue, name string) string {
	return dlq.arn[:strings.LastIndex(dlq.arn, ":")+1] + f.prefix + "-" + name
}

// pair makes a dead-letter queue (name-dlq) with allow as its
// RedriveAllowPolicy (nil: none) and a source queue (name-source) whose
// RedrivePolicy targets it.
func (f *moveFixture) pair(name string, allow func(sourceARN string) map[string]any) (source, dlq queue) {
	f.t.Helper()
	var dlqAttrs map[string]string
	dlq = f.create(name+"-dlq", nil)
	if allow != nil {
		b, _ := json.Marshal(allow(f.arn(dlq, name+"-source")))
		dlqAttrs = map[string]string{"RedriveAllowPolicy": string(b)}
		if _, err := f.sqs.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: &dlq.url, Attributes: dlqAttrs}); err != nil {
			f.t.Fatal(err)
		}
	}
	attrs := map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":5}`, dlq.arn)}
	return f.create(name+"-source", attrs), dlq
}

func byQueue(sourceARN string) map[string]any {
	return map[string]any{"redrivePermission": "byQueue", "sourceQueueArns": []string{sourceARN}}
}

// put sends n messages to q, each with two message attributes.
func (f *moveFixture) put(q queue, n int, tag string) {
	f.t.Helper()
	for start := 0; start < n; start += 10 {
		in := &sqs.SendMessageBatchInput{QueueUrl: &q.url}
		for i := start; i < min(start+10, n); i++ {
			in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf("%s-%02d", tag, i)),
				MessageAttributes: map[string]types.MessageAttributeValue{
					"kind":    {DataType: aws.String("String"), StringValue: aws.String("delivery")},
					"attempt": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(i))},
				},
			})
		}
		out, err := f.sqs.SendMessageBatch(context.Background(), in)
		if err != nil || len(out.Failed) > 0 {
			f.t.Fatalf("put messages: %v %+v", err, out)
		}
	}
}

// drain receives and deletes every message of q and returns them by body.
func (f *moveFixture) drain(q queue) map[string]types.Message {
	f.t.Helper()
	got := map[string]types.Message{}
	for {
		out, err := f.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &q.url, MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}})
		if err != nil {
			f.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)] = m
			if _, err := f.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

// depth is a queue's visible plus in-flight messages.
func (f *moveFixture) depth(q queue) int {
	f.t.Helper()
	out, err := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		f.t.Fatal(err)
	}
	v, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	nv, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return v + nv
}

// latest is the newest move task of source.
func (f *moveFixture) latest(source string) types.ListMessageMoveTasksResultEntry {
	f.t.Helper()
	out, err := f.sqs.ListMessageMoveTasks(context.Background(), &sqs.ListMessageMoveTasksInput{SourceArn: &source})
	if err != nil {
		f.t.Fatalf("list move tasks: %v", err)
	}
	if len(out.Results) != 1 {
		f.t.Fatalf("list move tasks: got %d results, want 1 (MaxResults defaults to 1)", len(out.Results))
	}
	return out.Results[0]
}

// waitStatus polls until source's newest task has status, within d.
func (f *moveFixture) waitStatus(source, status string, d time.Duration) types.ListMessageMoveTasksResultEntry {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for {
		e := f.latest(source)
		if aws.ToString(e.Status) == status {
			return e
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("move task of %s: still %s after %v, want %s (%+v)", source, aws.ToString(e.Status), d, status, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiCode is the AWS error code of err ("" when err is not an API error).
func apiCode(err error) (code, message string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

// TestMessageMoveTask drives serve.py's StartMessageMoveTask,
// ListMessageMoveTasks and CancelMessageMoveTask through the Go SDK, the
// calls the SQS console's DLQ redrive makes.
func TestMessageMoveTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("to source: every message back with its attributes, DLQ empty", func(t *testing.T) {
		t.Parallel()
		f := newMoveFixture(t)
		source, dlq := f.pair("p", byQueue)
		const n = 25
		f.put(dlq, n, "back")
		before := time.Now().Add(-time.Second).UnixMilli()
		out, err := f.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		if aws.ToString(out.TaskHandle) == "" {
			t.Fatal("start: no TaskHandle")
		}
		e := f.waitStatus(dlq.arn, "COMPLETED", 10*time.Second)
		if e.ApproximateNumberOfMessagesMoved != n || aws.ToInt64(e.ApproximateNumberOfMessagesToMove) != n || aws.ToString(e.SourceArn) != dlq.arn {
			t.Errorf("completed task: got moved %d of %d from %s, want %d of %d from %s",
				e.ApproximateNumberOfMessagesMoved, aws.ToInt64(e.ApproximateNumberOfMessagesToMove), aws.ToString(e.SourceArn), n, n, dlq.arn)
		}
		if e.DestinationArn != nil || e.MaxNumberOfMessagesPerSecond != nil || e.TaskHandle != nil || e.FailureReason != nil {
			t.Errorf("completed task: got DestinationArn %v, rate %v, TaskHandle %v, FailureReason %v; want all absent",
				e.DestinationArn, e.MaxNumberOfMessagesPerSecond, e.TaskHandle, e.FailureReason)
		}
		if e.StartedTimestamp < before || e.StartedTimestamp > time.Now().UnixMilli() {
			t.Errorf("StartedTimestamp: got %d, want epoch millis of the start (after %d)", e.StartedTimestamp, before)
		}
		got := f.drain(source)
		if len(got) != n {
			t.Fatalf("source queue: got %d messages, want %d", len(got), n)
		}
		for i := range n {
			m, ok := got[fmt.Sprintf("back-%02d", i)]
			if !ok {
				t.Fatalf("message back-%02d missing from the source queue", i)
			}
			if a := m.MessageAttributes["attempt"]; aws.ToString(a.StringValue) != strconv.Itoa(i) || aws.ToString(a.DataType) != "Number" ||
				aws.ToString(m.MessageAttributes["kind"].StringValue) != "delivery" {
				t.Errorf("back-%02d attributes: got %+v, want kind=delivery attempt=%d", i, m.MessageAttributes, i)
			}
		}
		if d := f.depth(dlq); d != 0 {
			t.Errorf("DLQ after the move: got %d messages, want 0", d)
		}
	})

	t.Run("each dead letter goes back to the queue it came from", func(t *testing.T) {
		t.Parallel()
		f := newMoveFixture(t)
		dlq := f.create("dlq", nil) // no RedriveAllowPolicy: allowAll
		// VisibilityTimeout 0: the second receive sees the message again and
		// moto moves it to the DLQ (maxReceiveCount 1).
		attrs := map[string]string{"VisibilityTimeout": "0", "RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1}`, dlq.arn)}
		a, b := f.create("a", attrs), f.create("b", attrs)
		for _, q := range []queue{a, b} {
			f.put(q, 2, q.arn[strings.LastIndex(q.arn, "-")+1:])
			for range 3 {
				if _, err := f.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &q.url, MaxNumberOfMessages: 10}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if d := f.depth(dlq); d != 4 {
			t.Fatalf("DLQ before the move: got %d messages, want 4", d)
		}
		if _, err := f.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn}); err != nil {
			t.Fatalf("start: %v", err)
		}
		f.waitStatus(dlq.arn, "COMPLETED", 10*time.Second)
		for _, c := range []struct {
			q    queue
			want string
		}{{a, "a-00 a-01"}, {b, "b-00 b-01"}} {
			var bodies []string
			for body := range f.drain(c.q) {
				bodies = append(bodies, body)
			}
			sort.Strings(bodies)
			if strings.Join(bodies, " ") != c.want {
				t.Errorf("%s after the move: got %v, want %s", c.q.arn, bodies, c.want)
			}
		}
	})

	t.Run("explicit DestinationArn", func(t *testing.T) {
		t.Parallel()
		f := newMoveFixture(t)
		source, dlq := f.pair("p", byQueue)
		other := f.create("other", nil)
		f.put(dlq, 3, "elsewhere")
		if _, err := f.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn, DestinationArn: &other.arn}); err != nil {
			t.Fatalf("start: %v", err)
		}
		e := f.waitStatus(dlq.arn, "COMPLETED", 10*time.Second)
		if aws.ToString(e.DestinationArn) != other.arn || e.ApproximateNumberOfMessagesMoved != 3 {
			t.Errorf("task: got destination %v moved %d, want %s and 3", e.DestinationArn, e.ApproximateNumberOfMessagesMoved, other.arn)
		}
		if got := f.drain(other); len(got) != 3 {
			t.Errorf("destination: got %d messages, want 3", len(got))
		}
		if d := f.depth(source); d != 0 {
			t.Errorf("source queue: got %d messages, want 0 (they went to the destination)", d)
		}
	})

	t.Run("refused starts", func(t *testing.T) {
		t.Parallel()
		f := newMoveFixture(t)
		source, dlq := f.pair("p", byQueue)
		_, denied := f.pair("denied", func(string) map[string]any { return map[string]any{"redrivePermission": "denyAll"} })
		// A byQueue policy that names another queue: its source may not use it.
		_, notListed := f.pair("unlisted", func(string) map[string]any { return byQueue(source.arn) })
		missing := dlq.arn + "-missing"
		for _, c := range []struct {
			name        string
			in          sqs.StartMessageMoveTaskInput
			code, words string
		}{
			{"source that is no queue's DLQ", sqs.StartMessageMoveTaskInput{SourceArn: &source.arn}, "InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue."},
			{"DLQ whose RedriveAllowPolicy is denyAll", sqs.StartMessageMoveTaskInput{SourceArn: &denied.arn}, "InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue."},
			{"DLQ whose byQueue list omits its source", sqs.StartMessageMoveTaskInput{SourceArn: &notListed.arn}, "InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue."},
			{"source that does not exist", sqs.StartMessageMoveTaskInput{SourceArn: &missing}, "ResourceNotFoundException", "SourceArn parameter doesn't exist"},
			{"destination that does not exist", sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn, DestinationArn: &missing}, "ResourceNotFoundException", "DestinationArn parameter doesn't exist"},
			{"rate 0", sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn, MaxNumberOfMessagesPerSecond: aws.Int32(0)}, "InvalidParameterValue", "MaxNumberOfMessagesPerSecond"},
			{"rate 501", sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn, MaxNumberOfMessagesPerSecond: aws.Int32(501)}, "InvalidParameterValue", "MaxNumberOfMessagesPerSecond"},
		} {
			_, err := f.sqs.StartMessageMoveTask(ctx, &c.in)
			if code, msg := apiCode(err); code != c.code || !strings.Contains(msg, c.words) {
				t.Errorf("%s: got %v, want %s saying %q", c.name, err, c.code, c.words)
			}
			if c.code == "ResourceNotFoundException" {
				var nf *types.ResourceNotFoundException
				if !errors.As(err, &nf) {
					t.Errorf("%s: got %T, want *types.ResourceNotFoundException", c.name, err)
				}
			}
		}
		out, err := f.sqs.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlq.arn, MaxResults: aws.Int32(10)})
		if err != nil || len(out.Results) != 0 {
			t.Errorf("tasks after refused starts: got %v %v, want none", out, err)
		}
	})

	t.Run("a second start while one runs is refused; cancel stops a slow task", func(t *testing.T) {
		t.Parallel()
		f := newMoveFixture(t)
		source, dlq := f.pair("p", byQueue)
		const n = 20
		f.put(dlq, n, "slow")
		start, err := f.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn, MaxNumberOfMessagesPerSecond: aws.Int32(1)})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		_, err = f.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn})
		if code, msg := apiCode(err); code != "InvalidParameterValue" || !strings.Contains(msg, "There is already a task running") {
			t.Errorf("second start: got %v, want InvalidParameterValue: There is already a task running...", err)
		}
		running := f.latest(dlq.arn)
		if aws.ToString(running.Status) != "RUNNING" || aws.ToString(running.TaskHandle) != aws.ToString(start.TaskHandle) ||
			aws.ToInt32(running.MaxNumberOfMessagesPerSecond) != 1 || aws.ToInt64(running.ApproximateNumberOfMessagesToMove) != n {
			t.Errorf("running task: got %+v, want RUNNING with its handle, rate 1, %d to move", running, n)
		}
		// Let the first message go (it leaves at once, the next a second later).
		deadline := time.Now().Add(5 * time.Second)
		for f.latest(dlq.arn).ApproximateNumberOfMessagesMoved < 1 {
			if time.Now().After(deadline) {
				t.Fatal("no message moved within 5 s at 1 a second")
			}
			time.Sleep(20 * time.Millisecond)
		}
		c, err := f.sqs.CancelMessageMoveTask(ctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: start.TaskHandle})
		if err != nil {
			t.Fatalf("cancel: %v", err)
		}
		e := f.waitStatus(dlq.arn, "CANCELLED", 5*time.Second)
		moved := int(e.ApproximateNumberOfMessagesMoved)
		if moved < 1 || moved >= n || c.ApproximateNumberOfMessagesMoved > e.ApproximateNumberOfMessagesMoved || e.TaskHandle != nil {
			t.Errorf("cancelled task: got moved %d (cancel answered %d), handle %v; want 1..%d, no handle", moved, c.ApproximateNumberOfMessagesMoved, e.TaskHandle, n-1)
		}
		if got := f.drain(source); len(got) != moved {
			t.Errorf("source queue: got %d messages, want the %d moved", len(got), moved)
		}
		if d := f.depth(dlq); d != n-moved {
			t.Errorf("DLQ after cancel: got %d messages, want %d (none lost, none hidden)", d, n-moved)
		}
		_, err = f.sqs.CancelMessageMoveTask(ctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: start.TaskHandle})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("cancel of a cancelled task: got %v, want ResourceNotFoundException", err)
		}
		_, err = f.sqs.CancelMessageMoveTask(ctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: aws.String("foobared")})
		if code, _ := apiCode(err); code != "InvalidParameterValue" {
			t.Errorf("cancel with a malformed handle: got %v, want InvalidParameterValue", err)
		}
		// A new task may start now; the list is newest first.
		if _, err := f.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlq.arn}); err != nil {
			t.Fatalf("start after cancel: %v", err)
		}
		f.waitStatus(dlq.arn, "COMPLETED", 10*time.Second)
		out, err := f.sqs.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlq.arn, MaxResults: aws.Int32(10)})
		if err != nil || len(out.Results) != 2 || aws.ToString(out.Results[0].Status) != "COMPLETED" || aws.ToString(out.Results[1].Status) != "CANCELLED" {
			t.Errorf("list: got %+v %v, want [COMPLETED CANCELLED]", out, err)
		}
		if d := f.depth(dlq); d != 0 {
			t.Errorf("DLQ after the second task: got %d messages, want 0", d)
		}
		_, err = f.sqs.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlq.arn, MaxResults: aws.Int32(11)})
		if code, _ := apiCode(err); code != "InvalidParameterValue" {
			t.Errorf("list with MaxResults 11: got %v, want InvalidParameterValue", err)
		}
	})

	t.Run("query protocol", func(t *testing.T) {
		t.Parallel()
		f := newMoveFixture(t)
		_, dlq := f.pair("q", nil)
		form := url.Values{"Action": {"StartMessageMoveTask"}, "Version": {"2012-11-05"}, "SourceArn": {dlq.arn}}
		if code, body := queryCall(t, form); code != 200 || !strings.Contains(body, "<StartMessageMoveTaskResult><TaskHandle>") {
			t.Fatalf("query start: got %d %s", code, body)
		}
		f.waitStatus(dlq.arn, "COMPLETED", 10*time.Second)
		form = url.Values{"Action": {"ListMessageMoveTasks"}, "Version": {"2012-11-05"}, "SourceArn": {dlq.arn}}
		if code, body := queryCall(t, form); code != 200 || !strings.Contains(body, "<ListMessageMoveTasksResult><ListMessageMoveTasksResultEntry><Status>COMPLETED</Status>") {
			t.Errorf("query list: got %d %s", code, body)
		}
		form = url.Values{"Action": {"CancelMessageMoveTask"}, "Version": {"2012-11-05"}, "TaskHandle": {"foobared"}}
		if code, body := queryCall(t, form); code != 400 || !strings.Contains(body, "<Code>InvalidParameterValue</Code>") {
			t.Errorf("query cancel: got %d %s", code, body)
		}
	})
}

// queryCall POSTs an SQS query-protocol request to moto.
func queryCall(t *testing.T, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", mototest.Server(t).Endpoint()+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=none")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
