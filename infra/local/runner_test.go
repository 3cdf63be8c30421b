package main

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/local/samtemplate"
)

func TestMain(m *testing.M) {
	code := mototest.Main(m)
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary)) // the command built by main_test.go
	}
	os.Exit(code)
}

// testStack is the runner on the test template, in the test binary's moto.
type testStack struct {
	t   *testing.T
	r   *runner
	sqs *sqs.Client
	env string
}

// startStack deploys testdata/template.yaml as Environment env and starts
// its functions; call serve to start the gateway, pollers and ticker.
func startStack(t *testing.T, env string, adjust func(*runnerConfig)) *testStack {
	t.Helper()
	srv := mototest.Server(t)
	tpl, err := samtemplate.Load(filepath.Join("testdata", "template.yaml"))
	if err != nil {
		t.Fatalf("load template: %v", err)
	}
	state := t.TempDir()
	cfg := runnerConfig{
		Root:           lambdaenvtest.Root(t),
		Template:       tpl,
		StackName:      "posse-" + env,
		Parameters:     map[string]string{"Environment": env, "AdminKeySha256": strings.Repeat("ab", 32)},
		MotoEndpoint:   srv.Endpoint(),
		RunDir:         filepath.Join(state, "run"),
		LogDir:         filepath.Join(state, "logs"),
		RIE:            lambdaenvtest.RIE(t),
		Instances:      2,
		ExtraEnv:       []string{"POSSE_PLATFORM_BASE_URL=http://sim.invalid"},
		GatewayAddr:    "127.0.0.1:0",
		SimAddr:        "127.0.0.1:0",
		ScheduleGroups: []string{"echo-" + env},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	r := newRunner(cfg)
	t.Cleanup(func() {
		r.close()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(cfg.LogDir, "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := r.deploy(ctx); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if err := r.startSimulator(); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	if err := r.startFunctions(ctx); err != nil {
		t.Fatalf("functions: %v", err)
	}
	return &testStack{t: t, r: r, sqs: sqs.NewFromConfig(r.aws), env: env}
}

func (s *testStack) serve() {
	s.t.Helper()
	if err := s.r.serve(context.Background()); err != nil {
		s.t.Fatalf("serve: %v", err)
	}
}

func (s *testStack) queueURL(logicalID string) string { return s.r.stack.Queues[logicalID].URL }

// sendBatch puts bodies on a queue in one call, each with a message
// attribute naming it.
func (s *testStack) sendBatch(logicalID string, bodies ...string) {
	s.t.Helper()
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i, b := range bodies {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{"name": {DataType: aws.String("String"), StringValue: aws.String(b)}},
		})
	}
	out, err := s.sqs.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL(logicalID)), Entries: entries})
	if err != nil || len(out.Failed) > 0 {
		s.t.Fatalf("send batch: %v %v", err, out)
	}
}

// output is one message the echo function wrote to its output queue.
type output struct {
	Source string            `json:"source"`
	Record events.SQSMessage `json:"record"`
	Event  json.RawMessage   `json:"event"`
}

// collect reads the output queue until done says so or the deadline passes.
func (s *testStack) collect(timeout time.Duration, done func([]output) bool) []output {
	s.t.Helper()
	var got []output
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := s.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.queueURL("OutputQueue")), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			s.t.Fatalf("read output queue: %v", err)
		}
		for _, m := range out.Messages {
			var o output
			if err := json.Unmarshal([]byte(*m.Body), &o); err != nil {
				s.t.Fatalf("output %s: %v", *m.Body, err)
			}
			// The runner warms each instance with {} at start.
			if o.Source != "event" || string(o.Event) != "{}" {
				got = append(got, o)
			}
			_, _ = s.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(s.queueURL("OutputQueue")), ReceiptHandle: m.ReceiptHandle})
		}
		if done(got) {
			return got
		}
	}
	return got
}

// deliveries maps each SQS body the function saw to its receive counts.
func deliveries(outs []output) map[string][]string {
	m := map[string][]string{}
	for _, o := range outs {
		if o.Source == "sqs" {
			m[o.Record.Body] = append(m[o.Record.Body], o.Record.Attributes["ApproximateReceiveCount"])
		}
	}
	for _, v := range m {
		sort.Strings(v)
	}
	return m
}

// drain reads every message on a queue (waiting up to timeout for want of
// them) and returns the bodies, sorted.
func (s *testStack) drain(logicalID string, want int, timeout time.Duration) []string {
	s.t.Helper()
	var bodies []string
	deadline := time.Now().Add(timeout)
	for len(bodies) < want && time.Now().Before(deadline) {
		out, err := s.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.queueURL(logicalID)), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			s.t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
		}
	}
	sort.Strings(bodies)
	return bodies
}

func (s *testStack) queueEmpty(logicalID string) bool {
	out, err := s.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(s.queueURL(logicalID)), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		s.t.Fatalf("queue attributes: %v", err)
	}
	return out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
}

// TestESM drives the work queue (ReportBatchItemFailures, BatchSize 5,
// visibility timeout 2 s, DLQ after 2 receives) and the plain queue
// (without ReportBatchItemFailures) through the real echo function.
func TestESM(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		queue  string
		bodies []string
		// want: receive counts per body, then what ends in the DLQ.
		want map[string][]string
		dead []string
	}{
		{"partial batch deletes only successes", "WorkQueue", []string{"ok-a", "fail-b", "ok-c"},
			map[string][]string{"ok-a": {"1"}, "ok-c": {"1"}, "fail-b": {"1", "2"}}, []string{"fail-b"}},
		{"unknown item id fails the whole batch", "WorkQueue", []string{"ok-d", "bad-id"},
			map[string][]string{"ok-d": {"1", "2"}, "bad-id": {"1", "2"}}, []string{"bad-id", "ok-d"}},
		{"function error deletes nothing", "WorkQueue", []string{"ok-e", "crash"},
			map[string][]string{"ok-e": {"1", "2"}, "crash": {"1", "2"}}, []string{"crash", "ok-e"}},
		{"without ReportBatchItemFailures success deletes all", "PlainQueue", []string{"fail-f", "ok-g"},
			map[string][]string{"fail-f": {"1"}, "ok-g": {"1"}}, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// One poller per mapping, so the records sent together share a batch.
			s := startStack(t, "esm"+strconv.Itoa(i), func(c *runnerConfig) { c.ESMConcurrency = 1 })
			s.sendBatch(tc.queue, tc.bodies...)
			s.serve()
			var dead []string
			if tc.dead != nil {
				dead = s.drain("WorkDLQ", len(tc.dead), 30*time.Second)
			}
			outs := s.collect(15*time.Second, func(o []output) bool {
				d := deliveries(o)
				for body, counts := range tc.want {
					if len(d[body]) < len(counts) {
						return false
					}
				}
				return true
			})
			if tc.dead == nil {
				// Give a wrongly kept message time to come back (visibility 2 s).
				time.Sleep(3 * time.Second)
				outs = append(outs, s.collect(time.Second, func([]output) bool { return false })...)
			}
			if got := deliveries(outs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("deliveries (body → receive counts): got %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(dead, tc.dead) {
				t.Errorf("DLQ: got %v, want %v", dead, tc.dead)
			}
			if !s.queueEmpty(tc.queue) {
				t.Errorf("%s still holds messages", tc.queue)
			}
			checkRecord(t, s, tc.queue, outs)
		})
	}
}

// checkRecord compares one delivered record with what Lambda sends.
func checkRecord(t *testing.T, s *testStack, queue string, outs []output) {
	t.Helper()
	var r events.SQSMessage
	for _, o := range outs {
		if o.Source == "sqs" {
			r = o.Record
			break
		}
	}
	sum := md5.Sum([]byte(r.Body))
	q := s.r.stack.Queues[queue]
	if r.EventSource != "aws:sqs" || r.EventSourceARN != q.ARN || r.AWSRegion != "us-east-1" || r.Md5OfBody != hex.EncodeToString(sum[:]) || r.MessageId == "" || r.ReceiptHandle == "" {
		t.Errorf("record: got %+v", r)
	}
	for _, a := range []string{"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} {
		if r.Attributes[a] == "" {
			t.Errorf("record attribute %s missing: %v", a, r.Attributes)
		}
	}
	if a := r.MessageAttributes["name"]; a.DataType != "String" || a.StringValue == nil || *a.StringValue != r.Body || r.Md5OfMessageAttributes == "" {
		t.Errorf("message attributes: got %+v (md5 %q)", r.MessageAttributes, r.Md5OfMessageAttributes)
	}
}

// TestGateway sends HTTP requests through the gateway to the echo function.
func TestGateway(t *testing.T) {
	t.Parallel()
	s := startStack(t, "gw", nil)
	s.serve()
	base := s.r.gatewayURL
	if s.r.apiURL != base+"/v1" {
		t.Errorf("API URL: got %q, want %q", s.r.apiURL, base+"/v1")
	}

	req, _ := http.NewRequest("PUT", base+"/v1/echo/a/b%20c?x=1&x=2&y=z", strings.NewReader(`{"hello":"world"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Custom", "one")
	req.Header.Add("X-Custom", "two")
	req.Header.Set("Cookie", "session=abc; theme=dark")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Echo") != "yes" || !reflect.DeepEqual(resp.Header.Values("X-Multi"), []string{"a", "b"}) ||
		!reflect.DeepEqual(resp.Header.Values("Set-Cookie"), []string{"c1=v1; Path=/", "c2=v2"}) || resp.Header.Get("Apigw-Requestid") == "" {
		t.Fatalf("response: %d %v", resp.StatusCode, resp.Header)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("echoed event %s: %v", body, err)
	}
	api := s.r.stack.HTTPAPIs["Api"]
	checks := map[string][2]any{
		"version":        {ev.Version, "2.0"},
		"routeKey":       {ev.RouteKey, "ANY /echo/{proxy+}"},
		"rawPath":        {ev.RawPath, "/v1/echo/a/b%20c"},
		"rawQueryString": {ev.RawQueryString, "x=1&x=2&y=z"},
		"stage":          {ev.RequestContext.Stage, "v1"},
		"apiId":          {ev.RequestContext.APIID, api.ID},
		"accountId":      {ev.RequestContext.AccountID, "123456789012"},
		"method":         {ev.RequestContext.HTTP.Method, "PUT"},
		"http.path":      {ev.RequestContext.HTTP.Path, "/v1/echo/a/b c"},
		"sourceIp":       {ev.RequestContext.HTTP.SourceIP, "127.0.0.1"},
		"x-custom":       {ev.Headers["x-custom"], "one,two"},
		"content-type":   {ev.Headers["content-type"], "application/json"},
		"body":           {ev.Body, `{"hello":"world"}`},
		"base64":         {ev.IsBase64Encoded, false},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: got %v, want %v", name, c[0], c[1])
		}
	}
	if want := map[string]string{"proxy": "a/b c"}; !reflect.DeepEqual(ev.PathParameters, want) {
		t.Errorf("pathParameters: got %v, want %v", ev.PathParameters, want)
	}
	if want := map[string]string{"x": "1,2", "y": "z"}; !reflect.DeepEqual(ev.QueryStringParameters, want) {
		t.Errorf("queryStringParameters: got %v, want %v", ev.QueryStringParameters, want)
	}
	if want := []string{"session=abc", "theme=dark"}; !reflect.DeepEqual(ev.Cookies, want) {
		t.Errorf("cookies: got %v, want %v", ev.Cookies, want)
	}

	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, b, _ := get("/v1/items/42"); code != 200 || !strings.Contains(b, `"routeKey":"GET /items/{id}"`) || !strings.Contains(b, `"pathParameters":{"id":"42"}`) {
		t.Errorf("GET /v1/items/42: got %d %s", code, b)
	}
	for _, path := range []string{"/v1/nothing", "/v2/echo/x", "/echo/x", "/v1/items/42/more"} {
		if code, b, _ := get(path); code != 404 || b != `{"message":"Not Found"}` {
			t.Errorf("GET %s: got %d %s, want 404 Not Found", path, code, b)
		}
	}
	if code, b, _ := get("/v1/echo/crash"); code != 500 || b != `{"message":"Internal Server Error"}` {
		t.Errorf("crash: got %d %s, want 500", code, b)
	}
	if code, b, h := get("/v1/echo/binary"); code != 200 || b != "\x00\x01\x02\xff" || h.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("binary: got %d %q %v", code, b, h)
	}
	if code, b, h := get("/v1/echo/raw"); code != 200 || b != `{"hello":"world"}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("raw: got %d %q %v", code, b, h)
	}
	for name, want := range map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "echo-gw", "AWS_LAMBDA_FUNCTION_TIMEOUT": "4", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		"AWS_ENDPOINT_URL": mototest.Server(t).Endpoint(), "POSSE_PLATFORM_BASE_URL": "http://sim.invalid",
		"ECHO_ENV": "gw", "ECHO_OVERRIDDEN": "local", "ECHO_OUTPUT_QUEUE_URL": s.queueURL("OutputQueue"),
	} {
		if code, b, _ := get("/v1/echo/env/" + name); code != 200 || b != `{"value":"`+want+`"}` {
			t.Errorf("env %s: got %d %s, want %q", name, code, b, want)
		}
	}
	binReq, _ := http.NewRequest("POST", base+"/v1/echo/upload", strings.NewReader("\x00\xff"))
	binReq.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(binReq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var binEv events.APIGatewayV2HTTPRequest
	_ = json.Unmarshal(body, &binEv)
	if !binEv.IsBase64Encoded || binEv.Body != base64.StdEncoding.EncodeToString([]byte("\x00\xff")) {
		t.Errorf("binary request body: got %q base64=%v", binEv.Body, binEv.IsBase64Encoded)
	}
	// The function's 4 s timeout ends in API Gateway's 500.
	if code, b, _ := get("/v1/echo/sleep"); code != 500 || b != `{"message":"Internal Server Error"}` {
		t.Errorf("timeout: got %d %s, want 500", code, b)
	}
	// The demo-site calls `make dev` makes, against the stub API.
	site := createDemoSite(context.Background(), s.r.apiURL, "wrong-key")
	if site.err == nil {
		t.Errorf("demo site with a wrong admin key: got no error")
	}
}

// TestScheduleAtFiresIntoQueue: a one-time schedule in a time zone far
// from UTC fires into its SQS target at its due time, and is deleted.
func TestScheduleAtFiresIntoQueue(t *testing.T) {
	t.Parallel()
	s := startStack(t, "at", nil)
	s.serve()
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	due := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	sc := scheduler.NewFromConfig(s.r.aws)
	group := s.r.stack.ScheduleGroups["ScheduleGroup"].Name
	_, err := sc.CreateSchedule(context.Background(), &scheduler.CreateScheduleInput{
		Name: aws.String("post-1"), GroupName: aws.String(group),
		ScheduleExpression:         aws.String("at(" + due.In(kolkata).Format("2006-01-02T15:04:05") + ")"),
		ScheduleExpressionTimezone: aws.String("Asia/Kolkata"),
		FlexibleTimeWindow:         &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		ActionAfterCompletion:      schedtypes.ActionAfterCompletionDelete,
		Target: &schedtypes.Target{
			Arn: aws.String(s.r.stack.Queues["OutputQueue"].ARN), RoleArn: aws.String("arn:aws:iam::123456789012:role/scheduler"),
			Input: aws.String(`{"source":"schedule","event":{"post":"p1"}}`),
		},
	})
	if err != nil {
		t.Fatalf("create schedule: %v", err)
	}
	var sent time.Time
	outs := s.collect(15*time.Second, func(o []output) bool { return len(o) > 0 })
	if len(outs) == 0 || outs[0].Source != "schedule" || string(outs[0].Event) != `{"post":"p1"}` {
		t.Fatalf("schedule did not deliver its input: %+v", outs)
	}
	sent = time.Now()
	if sent.Before(due) {
		t.Errorf("delivered at %v, before its due time %v", sent, due)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := sc.GetSchedule(context.Background(), &scheduler.GetScheduleInput{Name: aws.String("post-1"), GroupName: aws.String(group)})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule still exists after firing")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestScheduleV2RateInvokesFunction: the template's rate(1 minute)
// ScheduleV2 event invokes the echo function with its Input (the ticker's
// clock runs a minute ahead).
func TestScheduleV2RateInvokesFunction(t *testing.T) {
	t.Parallel()
	s := startStack(t, "rate", func(c *runnerConfig) {
		c.Now = func() time.Time { return time.Now().Add(61 * time.Second) }
	})
	s.serve()
	outs := s.collect(15*time.Second, func(o []output) bool { return len(o) > 0 })
	if len(outs) == 0 || outs[0].Source != "event" || string(outs[0].Event) != `{"kind":"tick"}` {
		t.Fatalf("rate schedule did not invoke the function with its input: %+v", outs)
	}
}
