// Package wake puts a message back on an SQS queue to arrive at a given
// time, without holding a worker: a delayed message (DelaySeconds) up to
// SQS's 15 minutes, a one-time EventBridge Scheduler schedule (deleted
// after it fires) beyond. The dispatcher defers and retries deliveries with
// it; the webhook function retries attempts with it.
package wake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// MaxDelay is SQS's longest DelaySeconds; longer waits use a one-time
// Scheduler schedule.
const MaxDelay = 15 * time.Minute

// queueAPI is the part of the SQS client a Waker uses.
type queueAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// schedulerAPI is the part of the Scheduler client a Waker uses.
type schedulerAPI interface {
	CreateSchedule(ctx context.Context, in *scheduler.CreateScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
}

// Waker sends messages to one queue at a time to come.
type Waker struct {
	Queue    queueAPI
	QueueURL string
	// QueueARN, Scheduler, ScheduleGroup, RoleARN and DLQARN are for waits
	// beyond MaxDelay: a one-time schedule whose target is the queue, sent
	// with the role Scheduler assumes.
	QueueARN      string
	Scheduler     schedulerAPI
	ScheduleGroup string
	RoleARN       string
	DLQARN        string
	Now           func() time.Time
}

// Wake is one message to send at a time.
type Wake struct {
	// Body is the message body.
	Body string
	// At is when it should arrive.
	At time.Time
	// Name prefixes the schedule's name (a schedule's name is Name-<unix
	// seconds of At>, cut to 64 characters); the same Name and At schedule
	// once.
	Name string
	// Description describes the schedule; never a secret.
	Description string
	// What names the message in errors ("delivery dlv_...").
	What string
}

func (w *Waker) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}

// Send puts the message on the queue to arrive at m.At: a delayed message
// up to MaxDelay (at once when At is past), else a one-time schedule. A
// schedule of the same name that exists already is success.
func (w *Waker) Send(ctx context.Context, m Wake) error {
	wait := m.At.Sub(w.now())
	if wait <= MaxDelay {
		secs := int32(math.Ceil(wait.Seconds()))
		secs = max(0, min(secs, int32(MaxDelay/time.Second)))
		_, err := w.Queue.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: &w.QueueURL, MessageBody: aws.String(m.Body), DelaySeconds: secs,
		})
		if err != nil {
			return fmt.Errorf("re-send %s with a %ds delay: %w", m.What, secs, err)
		}
		return nil
	}
	if w.Scheduler == nil || w.QueueARN == "" || w.RoleARN == "" {
		return fmt.Errorf("schedule %s at %s: no scheduler configured", m.What, m.At.UTC().Format(time.RFC3339))
	}
	at := m.At.UTC().Truncate(time.Second).Add(time.Second)
	name := m.Name + "-" + strconv.FormatInt(at.Unix(), 10)
	if len(name) > 64 {
		name = name[:64]
	}
	in := &scheduler.CreateScheduleInput{
		Name:                       aws.String(name),
		ScheduleExpression:         aws.String("at(" + at.Format("2006-01-02T15:04:05") + ")"),
		ScheduleExpressionTimezone: aws.String("UTC"),
		FlexibleTimeWindow:         &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		// Not a CloudFormation property: set on each schedule.
		ActionAfterCompletion: schedtypes.ActionAfterCompletionDelete,
		Description:           aws.String(m.Description),
		Target: &schedtypes.Target{
			Arn:         aws.String(w.QueueARN),
			RoleArn:     aws.String(w.RoleARN),
			Input:       aws.String(m.Body),
			RetryPolicy: &schedtypes.RetryPolicy{MaximumRetryAttempts: aws.Int32(185), MaximumEventAgeInSeconds: aws.Int32(86400)},
		},
	}
	if w.ScheduleGroup != "" {
		in.GroupName = aws.String(w.ScheduleGroup)
	}
	if w.DLQARN != "" {
		in.Target.DeadLetterConfig = &schedtypes.DeadLetterConfig{Arn: aws.String(w.DLQARN)}
	}
	_, err := w.Scheduler.CreateSchedule(ctx, in)
	var exists *schedtypes.ConflictException
	if errors.As(err, &exists) {
		return nil // the same wake-up was scheduled already
	}
	if err != nil {
		return fmt.Errorf("schedule %s at %s: %w", m.What, at.Format(time.RFC3339), err)
	}
	return nil
}
