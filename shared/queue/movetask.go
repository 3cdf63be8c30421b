package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// Move task limits, as SQS sets them.
const (
	// MaxMoveRate is the highest MaxNumberOfMessagesPerSecond SQS accepts.
	MaxMoveRate = 500
	// maxListedTasks is the most tasks ListMessageMoveTasks answers.
	maxListedTasks = 10
)

// Move task statuses, as SQS names them.
const (
	TaskRunning    = "RUNNING"
	TaskCompleted  = "COMPLETED"
	TaskCancelling = "CANCELLING"
	TaskCancelled  = "CANCELLED"
	TaskFailed     = "FAILED"
)

// MoveTask is one SQS message move task of the DLQ (ListMessageMoveTasks).
type MoveTask struct {
	Status string `json:"status"`
	// TaskHandle is given only while the task runs, as SQS does.
	TaskHandle     string `json:"taskHandle,omitempty"`
	SourceARN      string `json:"sourceArn"`
	DestinationARN string `json:"destinationArn,omitempty"` // empty: each message back to its source queue
	// MaxMessagesPerSecond is the rate the task was started with; 0 when
	// SQS chose it.
	MaxMessagesPerSecond int       `json:"maxMessagesPerSecond,omitempty"`
	MessagesMoved        int64     `json:"approximateMessagesMoved"`
	MessagesToMove       int64     `json:"approximateMessagesToMove"`
	StartedAt            time.Time `json:"startedAt"`
	FailureReason        string    `json:"failureReason,omitempty"`
}

// Active reports whether the task still runs (or is being cancelled).
func (t MoveTask) Active() bool { return t.Status == TaskRunning || t.Status == TaskCancelling }

// TaskRunningError means a move task already runs on the DLQ: SQS allows
// one at a time per source queue.
type TaskRunningError struct {
	// Task is the running task; its zero value when SQS would not list it.
	Task MoveTask
}

// Error implements error.
func (e *TaskRunningError) Error() string {
	if e.Task.Status == "" {
		return "a message move task already runs on the dispatch DLQ"
	}
	return fmt.Sprintf("a message move task already runs on the dispatch DLQ (%s since %s, %d of %d moved)",
		e.Task.Status, e.Task.StartedAt.Format(time.RFC3339), e.Task.MessagesMoved, e.Task.MessagesToMove)
}

// ErrNoRunningTask means there is no running move task to cancel.
var ErrNoRunningTask = errors.New("no message move task runs on the dispatch DLQ")

// StartMoveTask starts an SQS message move task that moves every message
// of the DLQ back to the queue it was dead-lettered from (the dispatch
// queue): what the SQS console's "Start DLQ redrive" does. perSecond caps
// the rate (1..MaxMoveRate); 0 lets SQS choose. It answers the task
// handle, or a *TaskRunningError when a task already runs.
func (c *Client) StartMoveTask(ctx context.Context, perSecond int) (string, error) {
	if perSecond < 0 || perSecond > MaxMoveRate {
		return "", fmt.Errorf("start move task: rate %d is outside 0..%d", perSecond, MaxMoveRate)
	}
	in := &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(c.cfg.DLQARN)}
	if perSecond > 0 {
		in.MaxNumberOfMessagesPerSecond = aws.Int32(int32(perSecond))
	}
	out, err := c.cfg.SQS.StartMessageMoveTask(ctx, in)
	if err == nil {
		return aws.ToString(out.TaskHandle), nil
	}
	// SQS refuses a second task with InvalidParameterValue ("There is
	// already a task running..."); the list tells it from other refusals.
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidParameterValue" {
		if tasks, lerr := c.MoveTasks(ctx, 1); lerr == nil && len(tasks) == 1 && tasks[0].Active() {
			return "", &TaskRunningError{Task: tasks[0]}
		}
	}
	return "", fmt.Errorf("start move task on queue %s: %w", arnName(c.cfg.DLQARN), err)
}

// MoveTasks lists the DLQ's most recent move tasks, newest first (at most
// ten, as SQS keeps; max <= 0 asks for all of them).
func (c *Client) MoveTasks(ctx context.Context, max int) ([]MoveTask, error) {
	if max <= 0 || max > maxListedTasks {
		max = maxListedTasks
	}
	out, err := c.cfg.SQS.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{
		SourceArn: aws.String(c.cfg.DLQARN), MaxResults: aws.Int32(int32(max)),
	})
	if err != nil {
		return nil, fmt.Errorf("list move tasks of queue %s: %w", arnName(c.cfg.DLQARN), err)
	}
	tasks := make([]MoveTask, 0, len(out.Results))
	for _, r := range out.Results {
		tasks = append(tasks, moveTask(r))
	}
	return tasks, nil
}

// CancelMoveTask cancels the DLQ's running move task. Messages already
// moved stay where they went. It answers the task as it was and how many
// messages SQS had moved, or ErrNoRunningTask.
func (c *Client) CancelMoveTask(ctx context.Context) (MoveTask, int64, error) {
	tasks, err := c.MoveTasks(ctx, 1)
	if err != nil {
		return MoveTask{}, 0, err
	}
	if len(tasks) == 0 || tasks[0].Status != TaskRunning {
		return MoveTask{}, 0, ErrNoRunningTask
	}
	out, err := c.cfg.SQS.CancelMessageMoveTask(ctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: aws.String(tasks[0].TaskHandle)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) { // it ended between the list and the cancel
		return MoveTask{}, 0, ErrNoRunningTask
	}
	if err != nil {
		return MoveTask{}, 0, fmt.Errorf("cancel move task of queue %s: %w", arnName(c.cfg.DLQARN), err)
	}
	return tasks[0], out.ApproximateNumberOfMessagesMoved, nil
}

func moveTask(r types.ListMessageMoveTasksResultEntry) MoveTask {
	return MoveTask{
		Status:               aws.ToString(r.Status),
		TaskHandle:           aws.ToString(r.TaskHandle),
		SourceARN:            aws.ToString(r.SourceArn),
		DestinationARN:       aws.ToString(r.DestinationArn),
		MaxMessagesPerSecond: int(aws.ToInt32(r.MaxNumberOfMessagesPerSecond)),
		MessagesMoved:        r.ApproximateNumberOfMessagesMoved,
		MessagesToMove:       aws.ToInt64(r.ApproximateNumberOfMessagesToMove),
		StartedAt:            time.UnixMilli(r.StartedTimestamp).UTC(),
		FailureReason:        aws.ToString(r.FailureReason),
	}
}

// arnName is the resource name of an ARN, for error messages.
func arnName(arn string) string {
	for i := len(arn) - 1; i >= 0; i-- {
		if arn[i] == ':' {
			return arn[i+1:]
		}
	}
	return arn
}
