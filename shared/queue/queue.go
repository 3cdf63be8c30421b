// Package queue is the api function's side of the dispatch queue and its
// dead-letter queue: sending delivery messages in batches (retrying the
// entries a batch could not take), reading the queues' depth, looking at
// what is in the DLQ without changing any message's fate, moving a site's
// chosen DLQ messages back to the dispatch queue, and the whole-queue SQS
// message move tasks of the DLQ (StartMessageMoveTask, as the console's
// "Start DLQ redrive").
//
// Messages are ledger.Message bodies. The dispatcher is idempotent by the
// ledger (a message for a settled delivery does nothing), so a message sent
// twice, or moved back while a copy is still queued, never publishes twice.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/shared/ledger"
)

// batchSize is SQS's entry limit per batch call.
const batchSize = 10

// sqsAPI is what Client calls.
type sqsAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, opts ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
	ListMessageMoveTasks(ctx context.Context, in *sqs.ListMessageMoveTasksInput, opts ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error)
	CancelMessageMoveTask(ctx context.Context, in *sqs.CancelMessageMoveTaskInput, opts ...func(*sqs.Options)) (*sqs.CancelMessageMoveTaskOutput, error)
}

// deliveryGetter reads a site's delivery (ledger.Store).
type deliveryGetter interface {
	Get(ctx context.Context, siteID, id string) (ledger.Delivery, error)
}

// Config is what a Client is built from.
type Config struct {
	SQS         sqsAPI
	DispatchURL string
	DLQURL      string
	// DLQARN names the DLQ to SQS's message move tasks.
	DLQARN string
	// Deliveries reads the delivery a dead letter names.
	Deliveries deliveryGetter
	// Attempts is how often a batch entry is tried (default 4); the waits
	// between tries grow from Backoff (default 100 ms), doubling.
	Attempts int
	Backoff  time.Duration
	// Sleep waits between tries; nil is a timer honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client sends to and inspects the dispatch queue and its DLQ.
type Client struct{ cfg Config }

// New returns a Client. It does no I/O.
func New(cfg Config) *Client {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Client{cfg: cfg}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Outgoing is one message to send: ID names it in errors (a delivery id).
type Outgoing struct {
	ID   string
	Body string
}

// SendError lists the messages that could not be sent after every try.
type SendError struct {
	Failed []string // Outgoing.ID of each
	Err    error    // the last cause
}

// Error implements error.
func (e *SendError) Error() string {
	return fmt.Sprintf("send %d messages (%s): %v", len(e.Failed), strings.Join(e.Failed, ", "), e.Err)
}

// Unwrap returns the last cause.
func (e *SendError) Unwrap() error { return e.Err }

// Send sends msgs to the dispatch queue with SendMessageBatch, ten at a
// time. Entries a batch fails (or a failed call's entries) are tried again
// with backoff; what still fails is returned as a *SendError.
func (c *Client) Send(ctx context.Context, msgs []Outgoing) error {
	return c.send(ctx, c.cfg.DispatchURL, msgs)
}

// entry is a message being sent with the attributes it keeps.
type entry struct {
	Outgoing
	attrs map[string]types.MessageAttributeValue
}

func (c *Client) send(ctx context.Context, queueURL string, msgs []Outgoing) error {
	es := make([]entry, len(msgs))
	for i, m := range msgs {
		es[i] = entry{Outgoing: m}
	}
	failed, err := c.sendEntries(ctx, queueURL, es)
	if len(failed) == 0 {
		return nil
	}
	ids := make([]string, len(failed))
	for i, e := range failed {
		ids[i] = e.ID
	}
	return &SendError{Failed: ids, Err: err}
}

// sendEntries sends es in batches with retries and returns those that
// failed every try, with the last error.
func (c *Client) sendEntries(ctx context.Context, queueURL string, es []entry) ([]entry, error) {
	var failed []entry
	var last error
	for start := 0; start < len(es); start += batchSize {
		pending := es[start:min(start+batchSize, len(es))]
		wait := c.cfg.Backoff
		for try := 1; len(pending) > 0; try++ {
			var err error
			pending, err = c.sendBatch(ctx, queueURL, pending)
			if err != nil {
				last = err
			}
			if len(pending) == 0 || try == c.cfg.Attempts || ctx.Err() != nil {
				break
			}
			if err := c.cfg.Sleep(ctx, wait); err != nil {
				last = err
				break
			}
			wait *= 2
		}
		failed = append(failed, pending...)
	}
	return failed, last
}

// sendBatch sends one batch of at most ten and returns the entries that
// failed with a reason.
func (c *Client) sendBatch(ctx context.Context, queueURL string, batch []entry) ([]entry, error) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL)}
	for i, e := range batch {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{
			Id: aws.String("m" + strconv.Itoa(i)), MessageBody: aws.String(e.Body), MessageAttributes: e.attrs,
		})
	}
	out, err := c.cfg.SQS.SendMessageBatch(ctx, in)
	if err != nil {
		return batch, fmt.Errorf("send message batch: %w", err)
	}
	var retry []entry
	var last error
	for _, f := range out.Failed {
		i, convErr := strconv.Atoi(strings.TrimPrefix(aws.ToString(f.Id), "m"))
		if convErr != nil || i < 0 || i >= len(batch) {
			continue
		}
		retry = append(retry, batch[i])
		last = fmt.Errorf("send message %s: %s (%s)", batch[i].ID, aws.ToString(f.Code), aws.ToString(f.Message))
	}
	if len(out.Successful)+len(out.Failed) < len(batch) {
		// An entry neither succeeded nor failed: send it again, the
		// consumer is idempotent.
		done := map[string]bool{}
		for _, s := range out.Successful {
			done[aws.ToString(s.Id)] = true
		}
		for _, f := range out.Failed {
			done[aws.ToString(f.Id)] = true
		}
		for i, e := range batch {
			if !done["m"+strconv.Itoa(i)] {
				retry = append(retry, e)
			}
		}
		last = errors.New("send message batch: the answer did not account for every entry")
	}
	return retry, last
}

// Depth is a queue's message counts from its SQS attributes.
type Depth struct {
	Visible  int `json:"visible"`
	InFlight int `json:"inFlight"`
	Delayed  int `json:"delayed"`
}

// Status is the depth of the dispatch queue and of its DLQ.
type Status struct {
	Dispatch Depth
	DLQ      Depth
	// OldestDeadLetter is the earliest time a message now in the DLQ was
	// sent to the dispatch queue, among up to ten looked at (see peek);
	// zero when the DLQ shows no message. SQS's attributes carry no
	// oldest-message age (that is the CloudWatch metric
	// ApproximateAgeOfOldestMessage), so it is sampled.
	OldestDeadLetter time.Time
}

// Status reads both queues' attributes and samples the DLQ's oldest
// message.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	var err error
	if st.Dispatch, err = c.depth(ctx, c.cfg.DispatchURL); err != nil {
		return Status{}, err
	}
	if st.DLQ, err = c.depth(ctx, c.cfg.DLQURL); err != nil {
		return Status{}, err
	}
	if st.DLQ.Visible > 0 {
		msgs, err := c.peek(ctx, batchSize)
		if err != nil {
			return Status{}, err
		}
		for _, m := range msgs {
			if !m.sentAt.IsZero() && (st.OldestDeadLetter.IsZero() || m.sentAt.Before(st.OldestDeadLetter)) {
				st.OldestDeadLetter = m.sentAt
			}
		}
	}
	return st, nil
}

func (c *Client) depth(ctx context.Context, queueURL string) (Depth, error) {
	out, err := c.cfg.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return Depth{}, fmt.Errorf("get attributes of queue %s: %w", queueName(queueURL), err)
	}
	n := func(a types.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(a)])
		return v
	}
	return Depth{
		Visible:  n(types.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}

// queueName is the last path segment of a queue URL, for error messages.
func queueName(u string) string {
	return u[strings.LastIndex(u, "/")+1:]
}
