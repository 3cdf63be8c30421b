package webhook_test

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/wake"
	"github.com/posse-dev/posse/shared/webhook"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// received is one request the test receiver got.
type received struct {
	id, ts, sig string
	body        []byte
}

// receiver answers each request with the next status of its script (200
// once the script is used up) and records what it got.
type receiver struct {
	mu     sync.Mutex
	script []int
	got    []received
	srv    *httptest.Server
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"), b})
		status := 200
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// verify checks a Standard Webhooks signature header against a secret,
// written from the specification, independently of webhook.Sign.
func verify(t *testing.T, secret string, r received) int {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(r.id + "." + r.ts + "." + string(r.body)))
	want := m.Sum(nil)
	n := 0
	for _, s := range strings.Fields(r.sig) {
		v, b64, ok := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && v == "v1" && err == nil && hmac.Equal(got, want) {
			n++
		}
	}
	return n
}

type fakeWaker struct {
	mu    sync.Mutex
	wakes []wake.Wake
}

func (f *fakeWaker) Send(_ context.Context, w wake.Wake) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wakes = append(f.wakes, w)
	return nil
}

func (f *fakeWaker) all() []wake.Wake {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wake.Wake(nil), f.wakes...)
}

// env is one test's moto resources, services and clock.
type env struct {
	t       *testing.T
	now     time.Time
	table   string
	db      *dynamodb.Client
	queues  *sqs.Client
	qurl    string
	store   *webhook.Store
	events  *event.Store
	svc     *webhook.Service
	d       *webhook.Deliverer
	waker   *fakeWaker
	sweeper *webhook.Sweeper
}

func newEnv(t *testing.T, mod func(*webhook.DelivererConfig)) *env {
	t.Helper()
	cfg := mototest.Config(t)
	ctx := context.Background()
	e := &env{t: t, now: time.Now().UTC().Truncate(time.Second), db: dynamodb.NewFromConfig(cfg), queues: sqs.NewFromConfig(cfg), waker: &fakeWaker{}}
	table := mototest.Table(t, e.db)
	e.table = table
	keys := kms.NewFromConfig(cfg)
	key, err := keys.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.queues.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(strings.TrimPrefix(table, "test-") + "-webhook")})
	if err != nil {
		t.Fatal(err)
	}
	e.qurl = aws.ToString(q.QueueUrl)
	clock := func() time.Time { return e.now }
	sealer, _ := vault.NewSealer(keys, vault.Config{KeyID: aws.ToString(key.KeyMetadata.KeyId)})
	opener, _ := vault.NewOpener(keys, vault.Config{})
	e.store, e.events = webhook.NewStore(e.db, table), event.NewStore(e.db, table)
	pub := event.NewPublisher(e.queues, e.qurl)
	e.svc, err = webhook.NewService(webhook.ServiceConfig{Store: e.store, Events: e.events, Sealer: sealer, Queue: pub,
		Rules: webhook.Rules{AllowInsecure: true}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	dc := webhook.DelivererConfig{Store: e.store, Events: e.events, Opener: opener, Queue: e.queues, QueueURL: e.qurl, Waker: e.waker,
		HTTP: outbound.NewClient(outbound.Options{AllowPrivate: true, Timeout: 2 * time.Second}), Timeout: 2 * time.Second, Now: clock}
	if mod != nil {
		mod(&dc)
	}
	if e.d, err = webhook.NewDeliverer(dc); err != nil {
		t.Fatal(err)
	}
	e.sweeper = &webhook.Sweeper{Store: e.store, Queue: e.queues, QueueURL: e.qurl, Now: clock}
	return e
}

// endpoint registers an endpoint and returns its id and secret.
func (e *env) endpoint(siteID, body string) (string, string) {
	e.t.Helper()
	var in webhook.Input
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		e.t.Fatal(err)
	}
	out, err := e.svc.Create(context.Background(), siteID, in)
	if err != nil {
		e.t.Fatalf("create %s: %v", body, err)
	}
	return out.ID, out.Secret
}

// record writes a pending event as an outcome's transaction would.
func (e *env) record(siteID string, typ event.Type, cause string) event.Event {
	e.t.Helper()
	ev, err := event.New(siteID, typ, e.now, event.DeliveryData{DeliveryID: "dlv_" + cause, State: "sent"}, cause)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: ev.Item(true)}); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// handle processes one message body.
func (e *env) handle(body string) {
	e.t.Helper()
	if err := e.d.HandleRecord(context.Background(), webhook.Record{MessageID: "m", Body: body}); err != nil {
		e.t.Fatalf("handle %s: %v", body, err)
	}
}

// drain receives and handles every message on the queue, in waves, and
// returns how many it handled.
func (e *env) drain() int {
	e.t.Helper()
	n := 0
	for {
		out, err := e.queues.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.qurl, MaxNumberOfMessages: 10})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return n
		}
		for _, m := range out.Messages {
			e.handle(aws.ToString(m.Body))
			if _, err := e.queues.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.qurl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				e.t.Fatal(err)
			}
			n++
		}
	}
}

func (e *env) attempts(siteID, webhookID string) []webhook.Attempt {
	e.t.Helper()
	out, _, err := e.svc.Attempts(context.Background(), siteID, webhookID, 50, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestIntegrationFanOutSignsAndDeliversOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rA, rB, rC, rD := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	a, secretA := e.endpoint("site_a", `{"url":"`+rA.srv.URL+`/hook"}`)
	e.endpoint("site_a", `{"url":"`+rB.srv.URL+`/hook","eventTypes":["delivery.failed"]}`)
	e.endpoint("site_a", `{"url":"`+rC.srv.URL+`/hook","enabled":false}`)
	e.endpoint("site_b", `{"url":"`+rD.srv.URL+`/hook"}`)

	ev := e.record("site_a", event.DeliverySent, "one")
	e.handle(event.EventMessage("site_a", ev.ID).Encode())
	e.handle(event.EventMessage("site_a", ev.ID).Encode()) // a duplicate before any attempt ran
	if n := e.drain(); n != 2 {
		t.Errorf("attempt messages: got %d, want 2 (the fan-out ran twice; the claim decides)", n)
	}
	got := rA.requests()
	if len(got) != 1 || len(rB.requests())+len(rC.requests())+len(rD.requests()) != 0 {
		t.Fatalf("requests: A %d, B %d, C %d, D %d; want one to A only (B not subscribed, C disabled, D another site)",
			len(got), len(rB.requests()), len(rC.requests()), len(rD.requests()))
	}
	r := got[0]
	if r.id != ev.ID || string(r.body) != string(ev.Body()) || verify(t, secretA, r) != 1 {
		t.Errorf("request: webhook-id %q, body %s, signature %q; want the event signed with A's secret", r.id, r.body, r.sig)
	}
	if ts, _ := strconv.ParseInt(r.ts, 10, 64); ts != e.now.Unix() {
		t.Errorf("webhook-timestamp: got %s, want %d", r.ts, e.now.Unix())
	}
	if st, _ := e.events.Get(context.Background(), "site_a", ev.ID); st.Pending {
		t.Error("the event is still pending after its fan-out")
	}
	as := e.attempts("site_a", a)
	if len(as) != 1 || as[0].State != webhook.AttemptSucceeded || as[0].StatusCode != 200 || as[0].Tries != 1 || len(as[0].History) != 1 {
		t.Errorf("attempts: got %+v, want one succeeded with status 200", as)
	}
	// The event again (a lost answer, a sweep): nothing new.
	e.handle(event.EventMessage("site_a", ev.ID).Encode())
	if n := e.drain(); n != 0 || len(rA.requests()) != 1 {
		t.Errorf("after a repeated fan-out: %d messages, %d requests; want none more", n, len(rA.requests()))
	}
	// Replay: the same event again, now, as a new attempt.
	q, err := e.svc.Replay(context.Background(), "site_a", ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.drain()
	if got := rA.requests(); len(got) != 2 || got[1].id != ev.ID || verify(t, secretA, got[1]) != 1 {
		t.Errorf("replay %s: got %d requests, want the same event id again", q.Replay, len(got))
	}
	if _, err := e.svc.Replay(context.Background(), "site_b", ev.ID); err == nil {
		t.Error("another site replays the event: got nil, want not found")
	}
}

func TestIntegrationRetriesThenDead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *webhook.DelivererConfig) { c.Schedule = []time.Duration{time.Second, time.Minute} })
	rcv := newReceiver(t, 500, 503, 500)
	id, _ := e.endpoint("site_a", `{"url":"`+rcv.srv.URL+`/hook","eventTypes":["delivery.sent"]}`)
	ev := e.record("site_a", event.DeliverySent, "retry")
	e.handle(event.EventMessage("site_a", ev.ID).Encode())
	e.drain()
	as := e.attempts("site_a", id)
	wakes := e.waker.all()
	if len(as) != 1 || as[0].State != webhook.AttemptRetrying || as[0].StatusCode != 500 || as[0].ErrorKind != "http_status" ||
		as[0].NextAttemptAt == nil || !as[0].NextAttemptAt.Equal(e.now.Add(time.Second)) || len(wakes) != 1 || !wakes[0].At.Equal(e.now.Add(time.Second)) {
		t.Fatalf("after a 500: attempts %+v, wakes %v; want retrying in 1 s", as, wakes)
	}
	if ep, _ := e.svc.Get(context.Background(), "site_a", id); ep.FailingSince == nil || !ep.Enabled {
		t.Errorf("endpoint after a failure: %+v, want failing since now, still enabled", ep)
	}
	// The wake-up arrives within the clock skew SQS delays may have: it runs.
	e.handle(wakes[0].Body)
	as = e.attempts("site_a", id)
	if len(rcv.requests()) != 2 || as[0].State != webhook.AttemptRetrying || !as[0].NextAttemptAt.Equal(e.now.Add(time.Minute)) {
		t.Fatalf("second try: %d requests, attempt %+v; want retrying in a minute", len(rcv.requests()), as[0])
	}
	// A duplicate half a minute early: a wake-up is known to be in flight,
	// so it is acknowledged without a request.
	e.now = e.now.Add(30 * time.Second)
	last := e.waker.all()[len(e.waker.all())-1]
	e.handle(last.Body)
	if len(rcv.requests()) != 2 || len(e.waker.all()) != 2 {
		t.Fatalf("early duplicate: %d requests, %d wakes; want neither more", len(rcv.requests()), len(e.waker.all()))
	}
	e.now = e.now.Add(30 * time.Second)
	for range 2 { // the wake-up, and a redelivery of it
		e.handle(last.Body)
	}
	as = e.attempts("site_a", id)
	if as[0].State != webhook.AttemptDead || as[0].Tries != 3 || len(rcv.requests()) != 3 || as[0].NextAttemptAt != nil {
		t.Errorf("after the schedule: got %s with %d tries and %d requests, want dead after 3", as[0].State, as[0].Tries, len(rcv.requests()))
	}
}

func TestIntegrationGoneAndFailingEndpointsAreDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *webhook.DelivererConfig) { c.DisableAfter = time.Hour })
	gone := newReceiver(t, 410)
	g, _ := e.endpoint("site_a", `{"url":"`+gone.srv.URL+`/hook"}`)
	down := newReceiver(t, 500, 500, 500, 500)
	d, _ := e.endpoint("site_a", `{"url":"`+down.srv.URL+`/hook"}`)
	ev := e.record("site_a", event.DeliverySent, "gone")
	e.handle(event.EventMessage("site_a", ev.ID).Encode())
	e.drain()
	if as := e.attempts("site_a", g); as[0].State != webhook.AttemptFailed || as[0].ErrorKind != "gone" {
		t.Errorf("410: attempt %+v, want failed (gone), not retried", as[0])
	}
	if ep, _ := e.svc.Get(context.Background(), "site_a", g); ep.Enabled || !strings.Contains(ep.DisabledReason, "410") {
		t.Errorf("410: endpoint %+v, want disabled with the reason", ep)
	}
	e.now = e.now.Add(2 * time.Hour) // failing since the first try, longer than DisableAfter
	e.handle(e.waker.all()[0].Body)
	ep, _ := e.svc.Get(context.Background(), "site_a", d)
	if ep.Enabled || !strings.Contains(ep.DisabledReason, "every attempt failed since") {
		t.Fatalf("failing for 2 h with DisableAfter 1 h: endpoint %+v, want disabled with the reason", ep)
	}
	// The next try of a disabled endpoint does not go out.
	e.now = e.now.Add(time.Hour)
	e.handle(e.waker.all()[len(e.waker.all())-1].Body)
	if as := e.attempts("site_a", d); as[0].State != webhook.AttemptFailed || as[0].ErrorKind != "endpoint_disabled" || len(down.requests()) != 2 {
		t.Errorf("disabled: attempt %+v after %d requests, want failed without a third request", as[0], len(down.requests()))
	}
	// Enabled again by the site: the streak starts over.
	on := true
	ep, err := e.svc.Update(context.Background(), "site_a", d, webhook.Input{Enabled: &on})
	if err != nil || !ep.Enabled || ep.DisabledReason != "" || ep.FailingSince != nil {
		t.Errorf("enable: %+v %v", ep, err)
	}
}

func TestIntegrationRotationSignsWithBothSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rcv := newReceiver(t)
	id, old := e.endpoint("site_a", `{"url":"`+rcv.srv.URL+`/hook"}`)
	rot, err := e.svc.RotateSecret(context.Background(), "site_a", id, webhook.RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	e.handle(event.EventMessage("site_a", e.record("site_a", event.DeliverySent, "rot1").ID).Encode())
	e.drain()
	r := rcv.requests()[0]
	if len(strings.Fields(r.sig)) != 2 || verify(t, old, r) != 1 || verify(t, rot.Secret, r) != 1 {
		t.Errorf("during the overlap: signature %q; want two, one per secret", r.sig)
	}
	e.now = e.now.Add(25 * time.Hour)
	e.handle(event.EventMessage("site_a", e.record("site_a", event.DeliverySent, "rot2").ID).Encode())
	e.drain()
	r = rcv.requests()[1]
	if len(strings.Fields(r.sig)) != 1 || verify(t, old, r) != 0 || verify(t, rot.Secret, r) != 1 {
		t.Errorf("after the overlap: signature %q; want only the new secret's", r.sig)
	}
}

func TestIntegrationPrivateAddressesAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *webhook.DelivererConfig) { c.HTTP = outbound.NewClient(outbound.Options{Timeout: time.Second}) })
	rcv := newReceiver(t)
	id, _ := e.endpoint("site_a", `{"url":"`+rcv.srv.URL+`/hook"}`)
	e.handle(event.EventMessage("site_a", e.record("site_a", event.DeliverySent, "ssrf").ID).Encode())
	e.drain()
	as := e.attempts("site_a", id)
	if len(rcv.requests()) != 0 || as[0].ErrorKind != "blocked_address" || as[0].State != webhook.AttemptRetrying {
		t.Errorf("loopback endpoint outside the local stack: %d requests, attempt %+v; want none, blocked_address", len(rcv.requests()), as[0])
	}
}

func TestIntegrationSweepSendsLostAttemptsAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rcv := newReceiver(t, 500)
	id, _ := e.endpoint("site_a", `{"url":"`+rcv.srv.URL+`/hook"}`)
	e.handle(event.EventMessage("site_a", e.record("site_a", event.DeliverySent, "lost").ID).Encode())
	e.drain() // retrying; its wake-up (the fake waker) never arrives
	if n, err := e.sweeper.Sweep(context.Background(), e.now.Add(-time.Minute), 10); n != 0 || err != nil {
		t.Errorf("sweep before it is overdue: %d, %v; want nothing", n, err)
	}
	e.now = e.now.Add(5 * time.Minute)
	if n, err := e.sweeper.Sweep(context.Background(), e.now.Add(-time.Minute), 10); n != 1 || err != nil {
		t.Fatalf("sweep when overdue: %d, %v; want it sent again", n, err)
	}
	if n, _ := e.sweeper.Sweep(context.Background(), e.now.Add(-time.Minute), 10); n != 0 {
		t.Errorf("second sweep: sent %d again, want 0", n)
	}
	e.drain()
	if as := e.attempts("site_a", id); as[0].State != webhook.AttemptSucceeded || len(rcv.requests()) != 2 {
		t.Errorf("after the sweep: %+v with %d requests, want succeeded on the 2nd", as[0], len(rcv.requests()))
	}
}
