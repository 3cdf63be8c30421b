package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/schedule"
)

// scheduleStub is EventBridge Scheduler as far as creating a schedule
// goes: the dispatcher only sees its fire messages.
type scheduleStub struct{}

func (scheduleStub) CreateSchedule(context.Context, *scheduler.CreateScheduleInput, ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error) {
	return &scheduler.CreateScheduleOutput{}, nil
}

func (scheduleStub) UpdateSchedule(context.Context, *scheduler.UpdateScheduleInput, ...func(*scheduler.Options)) (*scheduler.UpdateScheduleOutput, error) {
	return &scheduler.UpdateScheduleOutput{}, nil
}

func (scheduleStub) DeleteSchedule(context.Context, *scheduler.DeleteScheduleInput, ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error) {
	return &scheduler.DeleteScheduleOutput{}, nil
}

func (scheduleStub) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return &sqs.SendMessageOutput{}, nil
}

// outbox collects the delivery messages a fire enqueues.
type outbox struct {
	mu   sync.Mutex
	msgs []queue.Outgoing
}

func (o *outbox) Send(_ context.Context, msgs []queue.Outgoing) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, msgs...)
	return nil
}

func (o *outbox) take() []dispatch.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	recs := make([]dispatch.Record, len(o.msgs))
	for i, m := range o.msgs {
		recs[i] = dispatch.Record{MessageID: fmt.Sprintf("m-%s-%d", m.ID, i), Body: m.Body, ReceiveCount: 1}
	}
	o.msgs = nil
	return recs
}

type snapshots struct{}

func (snapshots) Save(context.Context, string, compose.Post) (bool, error) { return true, nil }

func (snapshots) Get(context.Context, string, string, string) (compose.Snapshot, error) {
	return compose.Snapshot{}, apperr.NotFound("post snapshot")
}

// lateFirer hands fires to a service built after the rig (on its table).
type lateFirer struct{ svc *schedule.Service }

func (f *lateFirer) Fire(ctx context.Context, siteID, id string, version int) (schedule.FireResult, error) {
	return f.svc.Fire(ctx, siteID, id, version)
}

// scheduleRig is the dispatcher rig with a schedule service on the same
// in-memory table, firing through HandleRecord.
func scheduleRig(t *testing.T) (*rig, *schedule.Service, *outbox) {
	t.Helper()
	out, firer := &outbox{}, &lateFirer{}
	r := newRig(t, func(c *dispatch.Config) { c.Schedules = firer })
	svc, err := schedule.New(schedule.Config{
		DB: r.db, Table: "posse-test", Ledger: r.ledger, Snapshots: snapshots{},
		Scheduler: scheduleStub{}, Group: "posse-test", QueueARN: "arn:aws:sqs:eu-west-1:000000000000:q",
		RoleARN: "arn:aws:iam::000000000000:role/sched", SQS: scheduleStub{}, QueueURL: "https://sqs.test/q",
		Queue: out, Now: r.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	firer.svc = svc
	return r, svc, out
}

func TestScheduleFiresThroughTheDispatcherAndPublishesOnce(t *testing.T) {
	t.Parallel()
	r, svc, out := scheduleRig(t)
	ctx := context.Background()
	p := compose.Post{PostID: "p1", Revision: "r1", Title: "Hello", URL: "https://blog.example/p1"}
	news := []ledger.NewDelivery{
		{SiteID: "site_a", PostID: "p1", Revision: "r1", TargetID: "tgt_1", ConnectionID: "conn_1", Platform: platform.Mastodon, Text: "Hello 1"},
		{SiteID: "site_a", PostID: "p1", Revision: "r1", TargetID: "tgt_2", ConnectionID: "conn_1", Platform: platform.Mastodon, Text: "Hello 2"},
	}
	sch, _, err := svc.Create(ctx, schedule.NewSchedule{SiteID: "site_a", Post: p, TargetIDs: []string{"tgt_1", "tgt_2"},
		When: schedule.When{At: r.clock.Now().Add(time.Hour), Zone: "UTC"}, Deliveries: news})
	if err != nil {
		t.Fatal(err)
	}
	fire := func(version int) error {
		return r.d.HandleRecord(ctx, dispatch.Record{MessageID: fmt.Sprintf("fire-%d", version),
			Body: ledger.ScheduleMessage("site_a", sch.ID, version).Encode(), ReceiveCount: 1})
	}
	// Before its time nothing is claimable through a message of its own.
	if got := r.get(sch.DeliveryIDs[0]); got.State != ledger.StateScheduled {
		t.Fatalf("before the fire: got %s, want scheduled", got.State)
	}
	r.clock.Advance(time.Hour)
	if err := fire(1); err != nil {
		t.Fatalf("fire: %v", err)
	}
	recs := out.take()
	if len(recs) != 2 {
		t.Fatalf("fire enqueued %d messages, want 2", len(recs))
	}
	// The same fire again (Scheduler's at-least-once, SQS redelivery), and a
	// stale one: nothing more.
	if err := fire(1); err != nil {
		t.Fatalf("second fire: %v", err)
	}
	if err := fire(7); err != nil {
		t.Fatalf("fire of another version: %v", err)
	}
	if more := out.take(); len(more) != 0 {
		t.Fatalf("repeated fires enqueued %d more messages", len(more))
	}
	// Each delivery message delivered twice publishes once.
	if failed := r.d.Handle(ctx, append(recs, recs...)); len(failed) != 0 {
		t.Fatalf("delivery messages failed: %v", failed)
	}
	if published, _ := r.pub.counts(); published != 2 {
		t.Fatalf("published %d posts, want 2 (one per target)", published)
	}
	for _, id := range sch.DeliveryIDs {
		if d := r.get(id); d.State != ledger.StateSent {
			t.Errorf("delivery %s: got %s, want sent", id, d.State)
		}
	}
}

func TestScheduleMessagesWithoutSchedulesStayOnTheQueue(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	err := r.d.HandleRecord(context.Background(), dispatch.Record{MessageID: "m1", Body: ledger.ScheduleMessage("site_a", "sch_1", 1).Encode()})
	if err == nil {
		t.Fatal("a schedule message without Schedules: got nil, want an error (batch item failure)")
	}
}

// failingFirer fails every fire.
type failingFirer struct{ err error }

func (f failingFirer) Fire(context.Context, string, string, int) (schedule.FireResult, error) {
	return schedule.FireResult{}, f.err
}

func TestScheduleFireErrorsAreBatchItemFailures(t *testing.T) {
	t.Parallel()
	for _, cause := range []error{schedule.ErrFireInProgress, errors.New("table down")} {
		r := newRig(t, func(c *dispatch.Config) { c.Schedules = failingFirer{cause} })
		failed := r.d.Handle(context.Background(), []dispatch.Record{{MessageID: "m1", Body: ledger.ScheduleMessage("site_a", "sch_1", 1).Encode()}})
		if len(failed) != 1 {
			t.Errorf("fire failing with %v: got failures %v, want the message", cause, failed)
		}
	}
}
