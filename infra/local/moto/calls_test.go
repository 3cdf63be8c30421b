package moto_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
)

// TestCallDetail: requests are counted by the caller's app id, the
// service's signing name and the operation (X-Amz-Target or Scheduler's
// REST route), and ResetCalls zeroes them. It runs its own moto so the
// reset touches no other test.
func TestCallDetail(t *testing.T) {
	mototest.Server(t) // skips, or fails under POSSE_INTEGRATION=1, without moto
	ctx := context.Background()
	srv, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	named := moto.Config(srv.Endpoint())
	named.AppID = "BenchFunction"
	q := sqs.NewFromConfig(named)
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("counted")})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qu.QueueUrl, MessageBody: aws.String("x")}); err != nil {
			t.Fatal(err)
		}
	}
	sch := scheduler.NewFromConfig(moto.Config(srv.Endpoint()))
	if _, err := sch.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String("counted")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sch.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("none"), GroupName: aws.String("counted")}); err == nil {
		t.Fatal("GetSchedule of a missing schedule: got no error")
	}

	got, err := moto.CallDetail(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	want := map[moto.CallCount]bool{
		{Caller: "BenchFunction", Service: "sqs", Operation: "CreateQueue", Count: 1}:         true,
		{Caller: "BenchFunction", Service: "sqs", Operation: "SendMessage", Count: 2}:         true,
		{Caller: "unnamed", Service: "scheduler", Operation: "CreateScheduleGroup", Count: 1}: true,
		{Caller: "unnamed", Service: "scheduler", Operation: "GetSchedule", Count: 1}:         true,
	}
	for _, c := range got {
		if !want[c] {
			t.Errorf("unexpected count %+v", c)
		}
		delete(want, c)
	}
	for c := range want {
		t.Errorf("missing count %+v; got %+v", c, got)
	}

	if err := moto.ResetCalls(srv.Endpoint()); err != nil {
		t.Fatal(err)
	}
	if got, err = moto.CallDetail(srv.Endpoint()); err != nil || len(got) != 0 {
		t.Fatalf("after ResetCalls: got %+v, %v; want no counts", got, err)
	}
	if calls, err := moto.Calls(srv.Endpoint()); err != nil || len(calls) != 0 {
		t.Fatalf("Calls after ResetCalls: got %v, %v; want no counts", calls, err)
	}
}
