package schedule

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/ledger/ledgertest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/queue"
)

// fakeDB is the ledger's in-memory table; Query is left to the moto tests.
type fakeDB struct{ *ledgertest.DB }

// fakeScheduler keeps schedules by name, like Scheduler: create of an
// existing name is a conflict, update or delete of a missing one not found.
type fakeScheduler struct {
	mu        sync.Mutex
	schedules map[string]*scheduler.UpdateScheduleInput
	calls     []string
	// fail, when set, answers a call ("create", "update", "delete") with
	// an error instead (nil lets it through).
	fail func(op string, n int) error
	// before runs at the start of every call.
	before func(op string)
}

func newFakeScheduler() *fakeScheduler {
	return &fakeScheduler{schedules: map[string]*scheduler.UpdateScheduleInput{}}
}

func (f *fakeScheduler) enter(op string) error {
	if f.before != nil {
		f.before(op)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	if f.fail != nil {
		n := 0
		for _, c := range f.calls {
			if c == op {
				n++
			}
		}
		return f.fail(op, n)
	}
	return nil
}

func (f *fakeScheduler) CreateSchedule(_ context.Context, in *scheduler.CreateScheduleInput, _ ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error) {
	if err := f.enter("create"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.schedules[*in.Name]; ok {
		return nil, &schedtypes.ConflictException{Message: aws.String("exists")}
	}
	f.schedules[*in.Name] = updateInput(in)
	return &scheduler.CreateScheduleOutput{}, nil
}

func (f *fakeScheduler) UpdateSchedule(_ context.Context, in *scheduler.UpdateScheduleInput, _ ...func(*scheduler.Options)) (*scheduler.UpdateScheduleOutput, error) {
	if err := f.enter("update"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.schedules[*in.Name]; !ok {
		return nil, &schedtypes.ResourceNotFoundException{Message: aws.String("missing")}
	}
	f.schedules[*in.Name] = in
	return &scheduler.UpdateScheduleOutput{}, nil
}

func (f *fakeScheduler) DeleteSchedule(_ context.Context, in *scheduler.DeleteScheduleInput, _ ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error) {
	if err := f.enter("delete"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.schedules[*in.Name]; !ok {
		return nil, &schedtypes.ResourceNotFoundException{Message: aws.String("missing")}
	}
	delete(f.schedules, *in.Name)
	return &scheduler.DeleteScheduleOutput{}, nil
}

func (f *fakeScheduler) get(name string) *scheduler.UpdateScheduleInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.schedules[name]
}

func (f *fakeScheduler) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeSQS records direct sends.
type fakeSQS struct {
	mu   sync.Mutex
	sent []*sqs.SendMessageInput
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

// fakeQueue records delivery messages; err fails a send.
type fakeQueue struct {
	mu   sync.Mutex
	sent []queue.Outgoing
	err  error
}

func (f *fakeQueue) Send(_ context.Context, msgs []queue.Outgoing) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, msgs...)
	return nil
}

func (f *fakeQueue) messages() []queue.Outgoing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]queue.Outgoing(nil), f.sent...)
}

// memSnapshots keeps snapshots in a map.
type memSnapshots struct {
	mu    sync.Mutex
	posts map[string]compose.Post
}

func (m *memSnapshots) Save(_ context.Context, siteID string, p compose.Post) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := siteID + "|" + p.PostID + "|" + p.Revision
	if _, ok := m.posts[k]; ok {
		return false, nil
	}
	m.posts[k] = p
	return true, nil
}

func (m *memSnapshots) Get(_ context.Context, siteID, postID, revision string) (compose.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.posts[siteID+"|"+postID+"|"+revision]
	if !ok {
		return compose.Snapshot{}, apperr.NotFound("post snapshot")
	}
	return compose.Snapshot{Post: p, SiteID: siteID}, nil
}

// env is a Service on fakes.
type env struct {
	t      *testing.T
	ctx    context.Context
	svc    *Service
	db     fakeDB
	ledger *ledger.Store
	sched  *fakeScheduler
	sqs    *fakeSQS
	queue  *fakeQueue
	clock  *fakeClock
	ids    int
}

const (
	testSite  = "site_a"
	testGroup = "posse-test"
	queueARN  = "arn:aws:sqs:us-east-1:000000000000:posse-test-dispatch"
	roleARN   = "arn:aws:iam::000000000000:role/scheduler"
	dlqARN    = "arn:aws:sqs:us-east-1:000000000000:posse-test-scheduler-dlq"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), db: fakeDB{ledgertest.New()}, sched: newFakeScheduler(),
		sqs: &fakeSQS{}, queue: &fakeQueue{}, clock: newFakeClock()}
	e.ledger = ledger.NewStore(e.db, "posse-test", e.clock.Now)
	svc, err := New(Config{
		DB: e.db, Table: "posse-test", Ledger: e.ledger, Snapshots: &memSnapshots{posts: map[string]compose.Post{}},
		Scheduler: e.sched, Group: testGroup, QueueARN: queueARN, RoleARN: roleARN, DLQARN: dlqARN,
		SQS: e.sqs, QueueURL: "http://sqs.local/posse-test-dispatch", Queue: e.queue,
		Limits: Limits{Rate: 1000, Burst: 1000}, Now: e.clock.Now, PaceNow: e.clock.Now, Sleep: e.clock.Sleep, Rand: func() float64 { return 0 },
		NewID: func() (string, error) {
			e.ids++
			return fmt.Sprintf("sch_test%d", e.ids), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

func post(id string) compose.Post {
	return compose.Post{PostID: id, Revision: "1", Title: "Title " + id, URL: "https://blog.example/" + id, Media: []platform.Media{}}
}

// deliveriesFor composes trivially: one Mastodon delivery per target.
func deliveriesFor(p compose.Post, custom string, targets ...string) []ledger.NewDelivery {
	out := make([]ledger.NewDelivery, len(targets))
	for i, tg := range targets {
		out[i] = ledger.NewDelivery{SiteID: testSite, PostID: p.PostID, Revision: p.Revision, TargetID: tg, ConnectionID: "conn_" + tg,
			Platform: platform.Mastodon, Text: custom + " " + p.Title + " " + p.URL, Link: p.URL}
	}
	return out
}

// create schedules post postID to targets at in the future.
func (e *env) create(postID string, in time.Duration, targets ...string) (Schedule, []ledger.Delivery) {
	e.t.Helper()
	p := post(postID)
	w := When{At: e.clock.Now().Add(in).UTC().Truncate(time.Second), Zone: "Europe/Berlin"}
	sch, ds, err := e.svc.Create(e.ctx, NewSchedule{SiteID: testSite, Post: p, TargetIDs: targets, When: w,
		Deliveries: deliveriesFor(p, "", targets...)})
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return sch, ds
}

// delivery reads a delivery, or fails.
func (e *env) delivery(id string) ledger.Delivery {
	e.t.Helper()
	d, err := e.ledger.Get(e.ctx, testSite, id)
	if err != nil {
		e.t.Fatalf("get delivery %s: %v", id, err)
	}
	return d
}

// schedule reads a schedule, or fails.
func (e *env) schedule(id string) Schedule {
	e.t.Helper()
	s, err := e.svc.Get(e.ctx, testSite, id)
	if err != nil {
		e.t.Fatalf("get schedule %s: %v", id, err)
	}
	return s
}
