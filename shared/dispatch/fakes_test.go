package dispatch_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/ledger/ledgertest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/stats"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fakeAccounts struct {
	mu         sync.Mutex
	ensureErr  error
	renewErr   error
	token      string
	renewed    int
	broken     []string
	ensureHook func()
}

func (f *fakeAccounts) Ensure(context.Context, string, string) (platform.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ensureHook != nil {
		f.ensureHook()
	}
	if f.ensureErr != nil {
		return platform.Account{}, f.ensureErr
	}
	return platform.Account{ID: "acct", AccessToken: f.token}, nil
}

func (f *fakeAccounts) Renew(_ context.Context, _, _, rejected string) (platform.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewed++
	if f.renewErr != nil {
		return platform.Account{}, f.renewErr
	}
	f.token = rejected + "-renewed"
	return platform.Account{ID: "acct", AccessToken: f.token}, nil
}

func (f *fakeAccounts) MarkBroken(_ context.Context, _, id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken = append(f.broken, id+":"+reason)
	return nil
}

// fakePublisher answers Publish and Reconcile with the functions set.
type fakePublisher struct {
	mu         sync.Mutex
	publish    func(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error)
	reconcile  func(p platform.Post) (platform.Result, bool, error)
	published  int
	reconciled int
	tokens     []string
}

func (f *fakePublisher) Name() platform.Name                     { return platform.Mastodon }
func (f *fakePublisher) Capabilities() platform.Capabilities     { return platform.Capabilities{} }
func (f *fakePublisher) Validate(platform.Post) []apperr.Problem { return nil }

func (f *fakePublisher) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	f.mu.Lock()
	f.published++
	f.tokens = append(f.tokens, acct.AccessToken)
	pub := f.publish
	f.mu.Unlock()
	if pub == nil {
		return platform.Result{ID: "1", URL: "https://m.example/1"}, nil
	}
	return pub(ctx, acct, p, j)
}

func (f *fakePublisher) Reconcile(_ context.Context, _ platform.Account, p platform.Post) (platform.Result, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconciled++
	if f.reconcile == nil {
		return platform.Result{}, false, apperr.New(apperr.KindAmbiguous, "cannot_tell", "cannot tell")
	}
	return f.reconcile(p)
}

func (f *fakePublisher) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.published, f.reconciled
}

type fakePublishers map[platform.Name]platform.Publisher

func (f fakePublishers) Publisher(p platform.Name) (platform.Publisher, bool) {
	pub, ok := f[p]
	return pub, ok
}

type fakeQueue struct {
	mu         sync.Mutex
	sent       []*sqs.SendMessageInput
	visibility []*sqs.ChangeMessageVisibilityInput
	extended   chan struct{}
	sendErr    error
}

func (f *fakeQueue) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	f.sent = append(f.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

func (f *fakeQueue) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	f.visibility = append(f.visibility, in)
	ch := f.extended
	f.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (f *fakeQueue) messages() []*sqs.SendMessageInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sqs.SendMessageInput(nil), f.sent...)
}

type fakeScheduler struct {
	mu      sync.Mutex
	created []*scheduler.CreateScheduleInput
}

func (f *fakeScheduler) CreateSchedule(_ context.Context, in *scheduler.CreateScheduleInput, _ ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, in)
	return &scheduler.CreateScheduleOutput{}, nil
}

type fakeLimiter struct {
	mu     sync.Mutex
	taken  map[string]int
	blocks map[string]time.Time
	now    func() time.Time
}

func (f *fakeLimiter) Take(_ context.Context, site, scope string, limit int, window time.Duration) (bool, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if limit <= 0 {
		return true, time.Time{}, nil
	}
	start := f.now().Truncate(window)
	k := site + "|" + scope + "|" + start.String()
	if f.taken[k] >= limit {
		return false, start.Add(window), nil
	}
	f.taken[k]++
	return true, time.Time{}, nil
}

func (f *fakeLimiter) Block(_ context.Context, site, scope string, until time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if until.After(f.blocks[site+"|"+scope]) {
		f.blocks[site+"|"+scope] = until
	}
	return nil
}

func (f *fakeLimiter) Blocked(_ context.Context, site, scope string) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.blocks[site+"|"+scope]
	return u, u.After(f.now()), nil
}

type fakeStats struct {
	mu     sync.Mutex
	events []stats.Event
}

func (f *fakeStats) Record(_ context.Context, _ string, _ platform.Name, _ time.Time, e stats.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	return nil
}

func (f *fakeStats) total() stats.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t stats.Event
	for _, e := range f.events {
		t.Sent += e.Sent
		t.Failed += e.Failed
		t.Retries += e.Retries
		t.AICostMicros += e.AICostMicros
	}
	return t
}

// rig is one unit test's dispatcher and fakes.
type rig struct {
	t        *testing.T
	clock    *clock
	db       *ledgertest.DB
	ledger   *ledger.Store
	accounts *fakeAccounts
	pub      *fakePublisher
	queue    *fakeQueue
	sched    *fakeScheduler
	limiter  *fakeLimiter
	stats    *fakeStats
	d        *dispatch.Dispatcher
}

func newRig(t *testing.T, mod func(*dispatch.Config)) *rig {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)}
	r := &rig{t: t, clock: c, db: ledgertest.New(), accounts: &fakeAccounts{token: "tok"}, pub: &fakePublisher{},
		queue: &fakeQueue{}, sched: &fakeScheduler{}, stats: &fakeStats{},
		limiter: &fakeLimiter{taken: map[string]int{}, blocks: map[string]time.Time{}, now: c.Now}}
	r.ledger = ledger.NewStore(r.db, "posse-test", c.Now)
	cfg := dispatch.Config{
		Ledger: r.ledger, Policy: ledger.Policy{MaxAttempts: 3, BackoffBase: 10 * time.Second, Rand: func() float64 { return 0 }},
		Accounts: r.accounts, Publishers: fakePublishers{platform.Mastodon: r.pub}, Limiter: r.limiter, Stats: r.stats,
		Queue: r.queue, QueueURL: "https://sqs.test/q", QueueARN: "arn:aws:sqs:eu-west-1:000000000000:q",
		Scheduler: r.sched, ScheduleGroup: "posse-test", SchedulerRoleARN: "arn:aws:iam::000000000000:role/sched",
		SchedulerDLQARN: "arn:aws:sqs:eu-west-1:000000000000:sched-dlq", Now: c.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := dispatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	return r
}

// delivery creates a queued delivery and returns it with its message.
func (r *rig) delivery(post string) (ledger.Delivery, dispatch.Record) {
	r.t.Helper()
	out, _, err := r.ledger.CreateAll(context.Background(), []ledger.NewDelivery{{
		SiteID: "site_a", PostID: post, Revision: "r1", TargetID: "tgt_1", ConnectionID: "conn_1",
		Platform: platform.Mastodon, Text: "Hello", RateLimitPerHour: 100,
	}})
	if err != nil {
		r.t.Fatal(err)
	}
	d := out[0]
	return d, dispatch.Record{MessageID: "m-" + post, ReceiptHandle: "rh-" + post, Body: ledger.DeliveryMessage(d.SiteID, d.ID).Encode(), ReceiveCount: 1}
}

func (r *rig) get(id string) ledger.Delivery {
	r.t.Helper()
	d, err := r.ledger.Get(context.Background(), "site_a", id)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}
