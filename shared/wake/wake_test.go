package wake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

type fakeQueue struct{ sent []*sqs.SendMessageInput }

func (f *fakeQueue) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.sent = append(f.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

type fakeScheduler struct {
	created []*scheduler.CreateScheduleInput
	exists  bool
}

func (f *fakeScheduler) CreateSchedule(_ context.Context, in *scheduler.CreateScheduleInput, _ ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error) {
	f.created = append(f.created, in)
	if f.exists {
		return nil, &schedtypes.ConflictException{Message: aws.String("exists")}
	}
	return &scheduler.CreateScheduleOutput{}, nil
}

func TestSend(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	q, s := &fakeQueue{}, &fakeScheduler{}
	w := &Waker{Queue: q, QueueURL: "https://sqs.test/q", QueueARN: "arn:aws:sqs:us-east-1:0:q", Scheduler: s,
		ScheduleGroup: "posse-test", RoleARN: "arn:aws:iam::0:role/s", DLQARN: "arn:aws:sqs:us-east-1:0:dlq", Now: func() time.Time { return now }}
	ctx := context.Background()
	for at, want := range map[time.Duration]int32{-time.Minute: 0, 1500 * time.Millisecond: 2, MaxDelay: 900} {
		q.sent = nil
		if err := w.Send(ctx, Wake{Body: "b", At: now.Add(at), Name: "n", What: "x"}); err != nil {
			t.Fatal(err)
		}
		if len(q.sent) != 1 || q.sent[0].DelaySeconds != want || len(s.created) != 0 {
			t.Errorf("wait %v: got %d messages (%v), %d schedules; want one with DelaySeconds %d", at, len(q.sent), q.sent, len(s.created), want)
		}
	}
	if err := w.Send(ctx, Wake{Body: "b", At: now.Add(2 * time.Hour), Name: "whwake-" + strings.Repeat("a", 80), Description: "d", What: "x"}); err != nil {
		t.Fatal(err)
	}
	if len(s.created) != 1 {
		t.Fatalf("a 2 h wait: got %d schedules, want 1", len(s.created))
	}
	in := s.created[0]
	if len(aws.ToString(in.Name)) != 64 || aws.ToString(in.ScheduleExpression) != "at(2026-12-04T11:00:01)" || aws.ToString(in.Target.Input) != "b" ||
		aws.ToString(in.Target.Arn) != w.QueueARN || aws.ToString(in.GroupName) != "posse-test" || in.ActionAfterCompletion != schedtypes.ActionAfterCompletionDelete {
		t.Errorf("schedule: got %+v", in)
	}
	s.exists = true
	if err := w.Send(ctx, Wake{Body: "b", At: now.Add(2 * time.Hour), Name: "n", What: "x"}); err != nil {
		t.Errorf("the same schedule again: got %v, want nil", err)
	}
	bare := &Waker{Queue: q, QueueURL: "u", Now: w.Now}
	if err := bare.Send(ctx, Wake{Body: "b", At: now.Add(time.Hour), What: "delivery d"}); err == nil || !strings.Contains(err.Error(), "no scheduler configured") {
		t.Errorf("no scheduler: got %v", err)
	}
}
