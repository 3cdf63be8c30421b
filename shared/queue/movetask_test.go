package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// The move task calls of fakeSQS: tasks is what ListMessageMoveTasks
// answers (newest first); startErr and cancelErr fail the next call.
type fakeMoves struct {
	tasks     []types.ListMessageMoveTasksResultEntry
	starts    []*sqs.StartMessageMoveTaskInput
	lists     []*sqs.ListMessageMoveTasksInput
	cancels   []string
	startErr  error
	cancelErr error
}

func (f *fakeSQS) StartMessageMoveTask(_ context.Context, in *sqs.StartMessageMoveTaskInput, _ ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moves.starts = append(f.moves.starts, in)
	if err := f.moves.startErr; err != nil {
		return nil, err
	}
	return &sqs.StartMessageMoveTaskOutput{TaskHandle: aws.String("handle-1")}, nil
}

func (f *fakeSQS) ListMessageMoveTasks(_ context.Context, in *sqs.ListMessageMoveTasksInput, _ ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moves.lists = append(f.moves.lists, in)
	n := min(int(aws.ToInt32(in.MaxResults)), len(f.moves.tasks))
	return &sqs.ListMessageMoveTasksOutput{Results: f.moves.tasks[:n]}, nil
}

func (f *fakeSQS) CancelMessageMoveTask(_ context.Context, in *sqs.CancelMessageMoveTaskInput, _ ...func(*sqs.Options)) (*sqs.CancelMessageMoveTaskOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moves.cancels = append(f.moves.cancels, aws.ToString(in.TaskHandle))
	if err := f.moves.cancelErr; err != nil {
		return nil, err
	}
	return &sqs.CancelMessageMoveTaskOutput{ApproximateNumberOfMessagesMoved: 7}, nil
}

const dlqARN = "arn:aws:sqs:us-east-1:123456789012:posse-test-dispatch-dlq"

func newMoveClient(f *fakeSQS) *Client {
	return New(Config{SQS: f, DispatchURL: "dispatch", DLQURL: "dlq", DLQARN: dlqARN})
}

var started = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

func running() types.ListMessageMoveTasksResultEntry {
	return types.ListMessageMoveTasksResultEntry{Status: aws.String(TaskRunning), TaskHandle: aws.String("handle-0"), SourceArn: aws.String(dlqARN),
		ApproximateNumberOfMessagesMoved: 3, ApproximateNumberOfMessagesToMove: aws.Int64(40), MaxNumberOfMessagesPerSecond: aws.Int32(10),
		StartedTimestamp: started.UnixMilli()}
}

func TestStartMoveTask(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		rate     int
		wantRate *int32
	}{
		{"SQS chooses the rate", 0, nil},
		{"capped rate", 100, aws.Int32(100)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSQS()
			h, err := newMoveClient(f).StartMoveTask(context.Background(), c.rate)
			if err != nil || h != "handle-1" {
				t.Fatalf("StartMoveTask: got %q %v, want handle-1", h, err)
			}
			in := f.moves.starts[0]
			if aws.ToString(in.SourceArn) != dlqARN || in.DestinationArn != nil || (in.MaxNumberOfMessagesPerSecond == nil) != (c.wantRate == nil) ||
				c.wantRate != nil && *in.MaxNumberOfMessagesPerSecond != *c.wantRate {
				t.Errorf("request: got %+v, want the DLQ as source, no destination (back to source), rate %v", in, c.wantRate)
			}
		})
	}
	if _, err := newMoveClient(newFakeSQS()).StartMoveTask(context.Background(), MaxMoveRate+1); err == nil {
		t.Error("rate 501: got no error")
	}
}

func TestStartMoveTaskWhileOneRuns(t *testing.T) {
	t.Parallel()
	refused := &smithy.GenericAPIError{Code: "InvalidParameterValue",
		Message: "There is already a task running. Only one active task is allowed for a source queue arn at a given time."}
	f := newFakeSQS()
	f.moves.startErr, f.moves.tasks = refused, []types.ListMessageMoveTasksResultEntry{running()}
	_, err := newMoveClient(f).StartMoveTask(context.Background(), 0)
	var tr *TaskRunningError
	if !errors.As(err, &tr) || tr.Task.TaskHandle != "handle-0" || tr.Task.MessagesMoved != 3 || !tr.Task.StartedAt.Equal(started) {
		t.Fatalf("StartMoveTask while one runs: got %v (%+v), want a TaskRunningError naming handle-0", err, tr)
	}

	// The same code for another reason (the DLQ is no queue's DLQ): not a conflict.
	f = newFakeSQS()
	f.moves.startErr = &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "Source queue must be configured as a Dead Letter Queue."}
	f.moves.tasks = []types.ListMessageMoveTasksResultEntry{{Status: aws.String(TaskCompleted), SourceArn: aws.String(dlqARN)}}
	_, err = newMoveClient(f).StartMoveTask(context.Background(), 0)
	if err == nil || errors.As(err, &tr) || !errors.Is(err, f.moves.startErr) {
		t.Fatalf("StartMoveTask refused otherwise: got %v, want the SQS error wrapped, no TaskRunningError", err)
	}
}

func TestMoveTasks(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	done := types.ListMessageMoveTasksResultEntry{Status: aws.String(TaskFailed), SourceArn: aws.String(dlqARN),
		DestinationArn: aws.String("arn:aws:sqs:us-east-1:123456789012:elsewhere"), FailureReason: aws.String("AWS.SimpleQueueService.NonExistentQueue"),
		ApproximateNumberOfMessagesMoved: 2, ApproximateNumberOfMessagesToMove: aws.Int64(5), StartedTimestamp: started.Add(-time.Hour).UnixMilli()}
	f.moves.tasks = []types.ListMessageMoveTasksResultEntry{running(), done}
	got, err := newMoveClient(f).MoveTasks(context.Background(), 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("MoveTasks: got %v %v", got, err)
	}
	if aws.ToInt32(f.moves.lists[0].MaxResults) != 10 || aws.ToString(f.moves.lists[0].SourceArn) != dlqARN {
		t.Errorf("request: got %+v, want the DLQ and MaxResults 10", f.moves.lists[0])
	}
	want := []MoveTask{
		{Status: TaskRunning, TaskHandle: "handle-0", SourceARN: dlqARN, MaxMessagesPerSecond: 10, MessagesMoved: 3, MessagesToMove: 40, StartedAt: started},
		{Status: TaskFailed, SourceARN: dlqARN, DestinationARN: "arn:aws:sqs:us-east-1:123456789012:elsewhere", MessagesMoved: 2, MessagesToMove: 5,
			StartedAt: started.Add(-time.Hour), FailureReason: "AWS.SimpleQueueService.NonExistentQueue"},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("task %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if !got[0].Active() || got[1].Active() {
		t.Errorf("Active: got %v %v, want true false", got[0].Active(), got[1].Active())
	}
}

func TestCancelMoveTask(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	f.moves.tasks = []types.ListMessageMoveTasksResultEntry{running()}
	task, moved, err := newMoveClient(f).CancelMoveTask(context.Background())
	if err != nil || task.TaskHandle != "handle-0" || moved != 7 || len(f.moves.cancels) != 1 || f.moves.cancels[0] != "handle-0" {
		t.Fatalf("CancelMoveTask: got %+v %d %v (cancels %v), want handle-0 cancelled with 7 moved", task, moved, err, f.moves.cancels)
	}
	for _, c := range []struct {
		name  string
		tasks []types.ListMessageMoveTasksResultEntry
		err   error
	}{
		{"no task ever", nil, nil},
		{"the newest has completed", []types.ListMessageMoveTasksResultEntry{{Status: aws.String(TaskCompleted)}}, nil},
		{"it ends between list and cancel", []types.ListMessageMoveTasksResultEntry{running()}, &types.ResourceNotFoundException{Message: aws.String("Task does not exist.")}},
	} {
		f := newFakeSQS()
		f.moves.tasks, f.moves.cancelErr = c.tasks, c.err
		if _, _, err := newMoveClient(f).CancelMoveTask(context.Background()); !errors.Is(err, ErrNoRunningTask) {
			t.Errorf("%s: got %v, want ErrNoRunningTask", c.name, err)
		}
	}
}
