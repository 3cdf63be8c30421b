package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/webhook"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

const fixtureSite = "site_aaaaaaaaaaaaaaaaaaaaaaaaaa"

func readBatch(t *testing.T) (events.SQSEvent, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sqs-batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("sqs-batch.json: %v", err)
	}
	return ev, b
}

func TestSQSBatchFixture(t *testing.T) {
	t.Parallel()
	ev, _ := readBatch(t)
	if len(ev.Records) != 3 {
		t.Fatalf("records: got %d, want 3 (an event, a poison message, an event that does not exist)", len(ev.Records))
	}
	m, err := event.DecodeMessage(ev.Records[0].Body)
	if err != nil || m.SiteID != fixtureSite || m.EventID != event.ID("fixture", "webhook") || m.Type != event.MessageEvent {
		t.Errorf("first record: got %+v, %v; want the fixture event's fan-out", m, err)
	}
	if _, err := event.DecodeMessage(ev.Records[1].Body); err == nil {
		t.Error("second record decodes; want a poison message")
	}
	for _, r := range ev.Records {
		if r.EventSource != "aws:sqs" || !strings.HasPrefix(r.EventSourceARN, "arn:aws:sqs:") || r.Attributes["ApproximateReceiveCount"] == "" {
			t.Errorf("record %s: got %+v, want a real SQS record", r.MessageId, r)
		}
	}
}

// TestBootstrapUnderRIE deploys template.yaml into moto, registers an
// endpoint (its secret sealed under the stack's key) and records the event
// the fixture names, then invokes the real webhook bootstrap under the RIE:
// with testdata/sqs-batch.json the fan-out puts one attempt message on the
// webhook queue, the poison message is the only batch item failure and the
// missing event is acknowledged; with that attempt message the endpoint
// gets the event once, signed with its secret.
func TestBootstrapUnderRIE(t *testing.T) {
	srv := mototest.Server(t)
	ctx := context.Background()
	awsCfg := moto.Config(srv.Endpoint())
	st := lambdaenvtest.Deploy(t, awsCfg, nil)
	fn := lambdaenvtest.Function(t, st, "WebhookFunction")

	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	defer rcv.Close()

	db, keys, queues := dynamodb.NewFromConfig(awsCfg), kms.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)
	table := st.Tables["Table"].Name
	queueURL := st.Queues["WebhookQueue"].URL
	sealer, err := vault.NewSealer(keys, vault.Config{KeyID: st.Aliases["KeyAlias"].Name})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := webhook.NewService(webhook.ServiceConfig{Store: webhook.NewStore(db, table), Events: event.NewStore(db, table), Sealer: sealer,
		Queue: event.NewPublisher(queues, queueURL), Rules: webhook.Rules{AllowInsecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	u := rcv.URL + "/hook"
	hook, err := svc.Create(ctx, fixtureSite, webhook.Input{URL: &u})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.New(fixtureSite, event.DeliverySent, time.Now(), event.DeliveryData{DeliveryID: "dlv_fixture", State: "sent"}, "fixture", "webhook")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: ev.Item(true)}); err != nil {
		t.Fatal(err)
	}

	env := append(fn.EnvironmentList(), moto.Env(srv.Endpoint())...)
	pool := lambdaenvtest.Start(t, lambdaenv.Config{
		Name: fn.Name, Bootstrap: lambdaenvtest.Build(t, "WebhookFunction"), Instances: 1,
		Timeout: fn.Timeout, MemoryMB: fn.MemoryMB, Env: env,
	})
	batch, payload := readBatch(t)
	invoke := func(p []byte) events.SQSEventResponse {
		t.Helper()
		ictx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := pool.Invoke(ictx, p)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		return resp
	}
	if resp := invoke(payload); len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != batch.Records[1].MessageId {
		t.Fatalf("fan-out batch: failures %+v, want only the poison message", resp.BatchItemFailures)
	}
	msgs, err := queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Messages) != 1 {
		t.Fatalf("webhook queue after the fan-out: %d messages, want one attempt", len(msgs.Messages))
	}
	attempt := batch
	attempt.Records = attempt.Records[:1]
	attempt.Records[0].Body = aws.ToString(msgs.Messages[0].Body)
	attempt.Records[0].MessageId = aws.ToString(msgs.Messages[0].MessageId)
	ap, _ := json.Marshal(attempt)
	for range 2 { // the attempt, and a redelivery of it
		if resp := invoke(ap); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("attempt: failures %+v, want none", resp.BatchItemFailures)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the endpoint got %d requests, want 1", len(got))
	}
	r := got[0]
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(hook.Secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(bodies[0])))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if r.Header.Get("webhook-id") != ev.ID || r.Header.Get("webhook-signature") != want || string(bodies[0]) != string(ev.Body()) {
		t.Errorf("request: id %q signature %q body %s; want the event signed with the endpoint's secret",
			r.Header.Get("webhook-id"), r.Header.Get("webhook-signature"), bodies[0])
	}
	for _, f := range pool.LogFiles() {
		b, _ := os.ReadFile(f)
		for _, secret := range []string{hook.Secret, strings.TrimPrefix(want, "v1,"), "this is not a webhook message"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("the function's log holds a secret, a signature or a message body")
			}
		}
	}
	if d, ok := pool.InitDuration(); ok {
		t.Logf("webhook bootstrap init duration under the RIE: %v", d)
	}
}
