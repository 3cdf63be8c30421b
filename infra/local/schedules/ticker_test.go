package schedules_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/local/schedules"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

const role = "arn:aws:iam::123456789012:role/scheduler"

// fixture is one test's schedule group, target queue and ticker.
type fixture struct {
	t        *testing.T
	sched    *scheduler.Client
	sqs      *sqs.Client
	group    string
	queueURL string
	queueARN string
}

func newFixture(t *testing.T, group string, fifo bool) *fixture {
	t.Helper()
	cfg := mototest.Config(t)
	f := &fixture{t: t, sched: scheduler.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), group: group}
	ctx := context.Background()
	if _, err := f.sched.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String(group)}); err != nil {
		t.Fatalf("create group: %v", err)
	}
	name := group + "-target"
	attrs := map[string]string{}
	if fifo {
		name += ".fifo"
		attrs["FifoQueue"] = "true"
	}
	q, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	f.queueURL = *q.QueueUrl
	f.queueARN = "arn:aws:sqs:us-east-1:123456789012:" + name
	return f
}

// run starts a ticker limited to the fixture's group; now shifts the clock.
func (f *fixture) run(offset time.Duration, fn func(string) (schedules.Invoker, bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	tk := schedules.New(schedules.Options{
		Scheduler: f.sched, SQS: f.sqs, Function: fn, Groups: []string{f.group},
		Now:    func() time.Time { return time.Now().Add(offset) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	done := make(chan struct{})
	go func() { tk.Run(ctx); close(done) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

func (f *fixture) create(in *scheduler.CreateScheduleInput) {
	f.t.Helper()
	in.GroupName = aws.String(f.group)
	if in.FlexibleTimeWindow == nil {
		in.FlexibleTimeWindow = &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff}
	}
	if in.Target == nil {
		in.Target = &schedtypes.Target{Arn: aws.String(f.queueARN), RoleArn: aws.String(role)}
	}
	if _, err := f.sched.CreateSchedule(context.Background(), in); err != nil {
		f.t.Fatalf("create schedule: %v", err)
	}
}

// receive waits up to d for one message on the target queue.
func (f *fixture) receive(d time.Duration) (sqstypes.Message, bool) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		out, err := f.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(f.queueURL), WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			f.t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) > 0 {
			m := out.Messages[0]
			_, _ = f.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(f.queueURL), ReceiptHandle: m.ReceiptHandle})
			return m, true
		}
	}
	return sqstypes.Message{}, false
}

func (f *fixture) exists(name string) bool {
	_, err := f.sched.GetSchedule(context.Background(), &scheduler.GetScheduleInput{Name: aws.String(name), GroupName: aws.String(f.group)})
	return err == nil
}

// at returns an at() expression about d from now, in loc, and its instant.
func at(d time.Duration, loc *time.Location) (string, time.Time) {
	due := time.Now().Add(d).Truncate(time.Second).Add(time.Second)
	return "at(" + due.In(loc).Format("2006-01-02T15:04:05") + ")", due
}

// TestOneTimeScheduleInTimeZone: an at() schedule in a zone far from UTC
// fires into its SQS queue at its due time, then is deleted
// (ActionAfterCompletion DELETE); one with NONE fires once and stays.
func TestOneTimeScheduleInTimeZone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "at-tz", false)
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	expr, due := at(2*time.Second, kolkata)
	f.create(&scheduler.CreateScheduleInput{
		Name: aws.String("once"), ScheduleExpression: aws.String(expr), ScheduleExpressionTimezone: aws.String("Asia/Kolkata"),
		ActionAfterCompletion: schedtypes.ActionAfterCompletionDelete,
		Target:                &schedtypes.Target{Arn: aws.String(f.queueARN), RoleArn: aws.String(role), Input: aws.String(`{"post":"p1","arn":"<aws.scheduler.schedule-arn>"}`)},
	})
	f.run(0, nil)
	m, ok := f.receive(15 * time.Second)
	if !ok {
		t.Fatalf("the at() schedule did not fire within 15 s of its due time %v", due)
	}
	sent := sentAt(t, m)
	if sent.Before(due) {
		t.Errorf("fired at %v, before its due time %v", sent, due)
	}
	if lag := sent.Sub(due); lag > 3*time.Second {
		t.Errorf("fired %v after its due time, want within a second or two", lag)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(*m.Body), &body); err != nil || body["post"] != "p1" || body["arn"] != "arn:aws:scheduler:us-east-1:123456789012:schedule/at-tz/once" {
		t.Errorf("body: got %s, want the Input with the schedule ARN filled in", *m.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.exists("once") {
		if time.Now().After(deadline) {
			t.Fatalf("schedule still exists after firing (ActionAfterCompletion DELETE)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m, ok := f.receive(1500 * time.Millisecond); ok {
		t.Errorf("fired twice: %s", *m.Body)
	}
}

func TestOneTimeScheduleKept(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "at-keep", false)
	ny, _ := time.LoadLocation("America/New_York")
	expr, _ := at(time.Second, ny)
	f.create(&scheduler.CreateScheduleInput{Name: aws.String("keep"), ScheduleExpression: aws.String(expr), ScheduleExpressionTimezone: aws.String("America/New_York")})
	past, _ := at(-time.Hour, time.UTC)
	f.create(&scheduler.CreateScheduleInput{Name: aws.String("off"), ScheduleExpression: aws.String(past), State: schedtypes.ScheduleStateDisabled})
	f.run(0, nil)
	m, ok := f.receive(15 * time.Second)
	if !ok {
		t.Fatalf("the at() schedule did not fire")
	}
	if got := *m.Body; !json.Valid([]byte(got)) {
		t.Errorf("default event is not JSON: %s", got)
	}
	// Updating a fired one-time schedule without moving its time does not
	// fire it again.
	if _, err := f.sched.UpdateSchedule(context.Background(), &scheduler.UpdateScheduleInput{
		Name: aws.String("keep"), GroupName: aws.String(f.group), ScheduleExpression: aws.String(expr),
		ScheduleExpressionTimezone: aws.String("America/New_York"), Description: aws.String("edited"),
		FlexibleTimeWindow: &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		Target:             &schedtypes.Target{Arn: aws.String(f.queueARN), RoleArn: aws.String(role)},
	}); err != nil {
		t.Fatalf("update schedule: %v", err)
	}
	if m, ok := f.receive(2 * time.Second); ok {
		t.Errorf("fired again, or the DISABLED schedule fired: %s", *m.Body)
	}
	if !f.exists("keep") {
		t.Errorf("schedule without ActionAfterCompletion DELETE was deleted")
	}
}

// fakeFunction records scheduled invocations.
type fakeFunction struct {
	mu  sync.Mutex
	got []map[string]any
}

func (f *fakeFunction) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev map[string]any
	_ = json.Unmarshal(payload, &ev)
	f.mu.Lock()
	f.got = append(f.got, ev)
	f.mu.Unlock()
	return []byte(`null`), nil
}

func (f *fakeFunction) events() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.got...)
}

// TestRateSchedules: rate() fires N after creation (the ticker's clock runs
// a minute ahead), into a function with Scheduler's default event and into
// a FIFO queue with the schedule's message group; an EndDate in the past
// stops a schedule.
func TestRateSchedules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "rate", true)
	fn := &fakeFunction{}
	fnARN := "arn:aws:lambda:us-east-1:123456789012:function:sweeper"
	f.create(&scheduler.CreateScheduleInput{Name: aws.String("to-function"), ScheduleExpression: aws.String("rate(1 minute)"),
		Target: &schedtypes.Target{Arn: aws.String(fnARN), RoleArn: aws.String(role)}})
	f.create(&scheduler.CreateScheduleInput{Name: aws.String("to-queue"), ScheduleExpression: aws.String("rate(1 minute)"),
		Target: &schedtypes.Target{Arn: aws.String(f.queueARN), RoleArn: aws.String(role), Input: aws.String("tick"), SqsParameters: &schedtypes.SqsParameters{MessageGroupId: aws.String("g1")}}})
	f.create(&scheduler.CreateScheduleInput{Name: aws.String("ended"), ScheduleExpression: aws.String("rate(1 minute)"),
		EndDate: aws.Time(time.Now().Add(30 * time.Second)), Target: &schedtypes.Target{Arn: aws.String(fnARN), RoleArn: aws.String(role), Input: aws.String(`{"ended":true}`)}})
	f.create(&scheduler.CreateScheduleInput{Name: aws.String("hourly"), ScheduleExpression: aws.String("rate(1 hour)"),
		Target: &schedtypes.Target{Arn: aws.String(fnARN), RoleArn: aws.String(role), Input: aws.String(`{"hourly":true}`)}})
	f.run(61*time.Second, func(name string) (schedules.Invoker, bool) { return fn, name == "sweeper" })

	m, ok := f.receive(10 * time.Second)
	if !ok {
		t.Fatalf("rate(1 minute) did not fire into the queue")
	}
	if *m.Body != "tick" || m.Attributes["MessageGroupId"] != "g1" {
		t.Errorf("queue message: got %q group %q, want tick in group g1", *m.Body, m.Attributes["MessageGroupId"])
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(fn.events()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // any extra (wrong) invocation would show by now
	evs := fn.events()
	if len(evs) != 1 {
		t.Fatalf("function invocations: got %d %v, want exactly one (to-function)", len(evs), evs)
	}
	ev := evs[0]
	if ev["source"] != "aws.scheduler" || ev["detail-type"] != "Scheduled Event" || ev["detail"] != "{}" || ev["account"] != "123456789012" {
		t.Errorf("default event: got %v", ev)
	}
	if res, _ := ev["resources"].([]any); len(res) != 1 || res[0] != "arn:aws:scheduler:us-east-1:123456789012:schedule/rate/to-function" {
		t.Errorf("default event resources: got %v", ev["resources"])
	}
}

func sentAt(t *testing.T, m sqstypes.Message) time.Time {
	t.Helper()
	ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	if err != nil {
		t.Fatalf("SentTimestamp %q: %v", m.Attributes["SentTimestamp"], err)
	}
	return time.UnixMilli(ms)
}
