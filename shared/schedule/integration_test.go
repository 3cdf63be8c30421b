package schedule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/queue"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// motoEnv is a Service on moto: its own table, schedule group and queues.
type motoEnv struct {
	t        *testing.T
	ctx      context.Context
	svc      *Service
	ledger   *ledger.Store
	sched    *scheduler.Client
	sqs      *sqs.Client
	group    string
	queueURL string
	queueARN string
	clock    *fakeClock
}

func newMotoEnv(t *testing.T) *motoEnv {
	t.Helper()
	cfg := mototest.Config(t)
	e := &motoEnv{t: t, ctx: context.Background(), sched: scheduler.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), clock: newFakeClock()}
	// The moto tests run on the wall clock's date: Scheduler refuses nothing
	// in moto, but the times must look real.
	e.clock.t = time.Now().UTC().Truncate(time.Second)
	db := dynamodb.NewFromConfig(cfg)
	table := mototest.Table(t, db)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "sched-" + hex.EncodeToString(suffix)
	e.group = "posse-" + name
	if _, err := e.sched.CreateScheduleGroup(e.ctx, &scheduler.CreateScheduleGroupInput{Name: &e.group}); err != nil {
		t.Fatal(err)
	}
	arnOf := func(url *string) string {
		out, err := e.sqs.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{QueueUrl: url,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes["QueueArn"]
	}
	q, err := e.sqs.CreateQueue(e.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dispatch")})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := e.sqs.CreateQueue(e.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-scheduler-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	e.queueURL, e.queueARN = aws.ToString(q.QueueUrl), arnOf(q.QueueUrl)
	e.ledger = ledger.NewStore(db, table, e.clock.Now)
	e.svc, err = New(Config{
		DB: db, Table: table, Ledger: e.ledger, Snapshots: compose.NewSnapshots(db, table, e.clock.Now),
		Scheduler: e.sched, Group: e.group, QueueARN: e.queueARN, RoleARN: "arn:aws:iam::123456789012:role/posse-test-scheduler",
		DLQARN: arnOf(dlq.QueueUrl), SQS: e.sqs, QueueURL: e.queueURL,
		Queue:  queue.New(queue.Config{SQS: e.sqs, DispatchURL: e.queueURL}),
		Limits: Limits{Rate: 500, Burst: 50}, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *motoEnv) create(site, postID string, at time.Time, zone string, targets ...string) Schedule {
	e.t.Helper()
	p := post(postID)
	ds := deliveriesFor(p, "", targets...)
	for i := range ds {
		ds[i].SiteID = site
	}
	sch, _, err := e.svc.Create(e.ctx, NewSchedule{SiteID: site, Post: p, TargetIDs: targets, When: When{At: at, Zone: zone}, Deliveries: ds})
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return sch
}

func (e *motoEnv) scheduled(name string) (*scheduler.GetScheduleOutput, error) {
	return e.sched.GetSchedule(e.ctx, &scheduler.GetScheduleInput{Name: &name, GroupName: &e.group})
}

func TestSchedulerScheduleAgainstMoto(t *testing.T) {
	t.Parallel()
	e := newMotoEnv(t)
	berlin := mustZone(t, "Europe/Berlin")
	at := time.Date(e.clock.Now().Year()+1, 7, 1, 9, 30, 0, 0, berlin)
	sch := e.create("site_a", "p1", at, "Europe/Berlin", "tgt_a", "tgt_b")

	got, err := e.scheduled(sch.SchedulerName)
	if err != nil {
		t.Fatalf("GetSchedule: %v", err)
	}
	want := map[string][2]string{
		"expression": {aws.ToString(got.ScheduleExpression), "at(" + at.Format(wallLayout) + ")"},
		"timezone":   {aws.ToString(got.ScheduleExpressionTimezone), "Europe/Berlin"},
		"window":     {string(got.FlexibleTimeWindow.Mode), "OFF"},
		"after":      {string(got.ActionAfterCompletion), "DELETE"},
		"target":     {aws.ToString(got.Target.Arn), e.queueARN},
		"input":      {aws.ToString(got.Target.Input), ledger.ScheduleMessage("site_a", sch.ID, 1).Encode()},
		"state":      {string(got.State), "ENABLED"},
	}
	for name, c := range want {
		if c[0] != c[1] {
			t.Errorf("%s: got %q, want %q", name, c[0], c[1])
		}
	}
	if got.Target.DeadLetterConfig == nil || got.Target.RetryPolicy == nil || aws.ToInt32(got.Target.RetryPolicy.MaximumRetryAttempts) != 185 {
		t.Errorf("target: got DLQ %v retry %v, want both", got.Target.DeadLetterConfig, got.Target.RetryPolicy)
	}

	// Reschedule: the same Scheduler schedule, new time and version.
	later := When{At: at.Add(26 * time.Hour).UTC(), Zone: "America/New_York"}
	up, _, err := e.svc.Update(e.ctx, "site_a", sch.ID, Change{When: &later})
	if err != nil {
		t.Fatal(err)
	}
	got, err = e.scheduled(sch.SchedulerName)
	if err != nil {
		t.Fatal(err)
	}
	expr, zone := Expression(later)
	if aws.ToString(got.ScheduleExpression) != expr || aws.ToString(got.ScheduleExpressionTimezone) != zone ||
		aws.ToString(got.Target.Input) != ledger.ScheduleMessage("site_a", sch.ID, up.Version).Encode() {
		t.Errorf("after the reschedule: %s in %s with %s; want %s in %s with version %d",
			aws.ToString(got.ScheduleExpression), aws.ToString(got.ScheduleExpressionTimezone), aws.ToString(got.Target.Input), expr, zone, up.Version)
	}

	// Cancel: the Scheduler schedule is gone, the deliveries cancelled.
	if _, ds, err := e.svc.Cancel(e.ctx, "site_a", sch.ID); err != nil || len(ds) != 2 || ds[0].State != ledger.StateCancelled {
		t.Fatalf("Cancel: got %v %v", ds, err)
	}
	var nf *schedtypes.ResourceNotFoundException
	if _, err := e.scheduled(sch.SchedulerName); !errors.As(err, &nf) {
		t.Fatalf("GetSchedule after cancel: got %v, want not found", err)
	}
}

func TestFireAgainstMoto(t *testing.T) {
	t.Parallel()
	e := newMotoEnv(t)
	sch := e.create("site_a", "p1", e.clock.Now().Add(time.Hour), "UTC", "tgt_a", "tgt_b", "tgt_c")
	res, err := e.svc.Fire(e.ctx, "site_a", sch.ID, 1)
	if err != nil || res.Enqueued != 3 {
		t.Fatalf("Fire: got %+v %v, want 3 deliveries enqueued", res, err)
	}
	if res, err := e.svc.Fire(e.ctx, "site_a", sch.ID, 1); err != nil || res.Action != FireDuplicate {
		t.Fatalf("second Fire: got %+v %v", res, err)
	}
	got := map[string]bool{}
	for {
		out, err := e.sqs.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: &e.queueURL, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			dm, err := ledger.DecodeMessage(aws.ToString(m.Body))
			if err != nil || dm.Type != ledger.MessageDelivery || got[dm.DeliveryID] {
				t.Fatalf("message %s: %+v %v (duplicate %v)", aws.ToString(m.Body), dm, err, got[dm.DeliveryID])
			}
			got[dm.DeliveryID] = true
		}
	}
	for _, id := range sch.DeliveryIDs {
		d, err := e.ledger.Get(e.ctx, "site_a", id)
		if !got[id] || err != nil || d.State != ledger.StateQueued {
			t.Errorf("delivery %s: message %v, state %s (%v); want one message and queued", id, got[id], d.State, err)
		}
	}
}

func TestListAgainstMoto(t *testing.T) {
	t.Parallel()
	e := newMotoEnv(t)
	start := e.clock.Now().Add(time.Hour).Truncate(time.Minute)
	var ids []string
	for i := range 23 {
		// Created out of order: the listing is by time.
		at := start.Add(time.Duration((i*7)%23) * time.Minute)
		sch := e.create("site_a", fmt.Sprintf("p%02d", i), at, "UTC", "tgt_a")
		ids = append(ids, sch.ID)
	}
	e.create("site_b", "other", start, "UTC", "tgt_a")
	if _, _, err := e.svc.Cancel(e.ctx, "site_a", ids[3]); err != nil {
		t.Fatal(err)
	}

	var all []Schedule
	cursor, pages := "", 0
	for {
		page, next, err := e.svc.List(e.ctx, "site_a", Filter{}, 5, cursor)
		if err != nil {
			t.Fatal(err)
		}
		all, cursor, pages = append(all, page...), next, pages+1
		if cursor == "" {
			break
		}
	}
	if len(all) != 23 || pages != 5 {
		t.Fatalf("listed %d schedules in %d pages, want 23 in 5", len(all), pages)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ScheduledFor.Before(all[i-1].ScheduledFor) || all[i].SiteID != "site_a" {
			t.Fatalf("listing not soonest first within site_a at %d: %v then %v", i, all[i-1].ScheduledFor, all[i].ScheduledFor)
		}
	}
	cancelled, _, err := e.svc.List(e.ctx, "site_a", Filter{State: StateCancelled}, 10, "")
	if err != nil || len(cancelled) != 1 || cancelled[0].ID != ids[3] {
		t.Fatalf("state filter: got %d (%v)", len(cancelled), err)
	}
	window, _, err := e.svc.List(e.ctx, "site_a", Filter{From: start.Add(5 * time.Minute), To: start.Add(10 * time.Minute)}, 100, "")
	if err != nil || len(window) != 5 {
		t.Fatalf("time filter [5m, 10m): got %d schedules (%v), want 5", len(window), err)
	}
	_, next, err := e.svc.List(e.ctx, "site_a", Filter{}, 5, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.List(e.ctx, "site_b", Filter{}, 5, next); !apperr.Is(err, apperr.KindInvalid) {
		t.Fatalf("another site's cursor: got %v, want invalid", err)
	}
	overdue, err := e.svc.Overdue(e.ctx, start.Add(3*time.Minute), 100)
	if err != nil || len(overdue) != 4 {
		t.Fatalf("overdue before +3m: got %d (%v), want the 3 of site_a and 1 of site_b", len(overdue), err)
	}
}
