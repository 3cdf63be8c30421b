// Package esm polls SQS queues the way Lambda's event source mapping does
// and invokes a function with each batch: long polling with every system
// and message attribute, batches of up to BatchSize records gathered for up
// to MaximumBatchingWindow, records shaped exactly as Lambda delivers them
// (events.SQSEvent), and Lambda's rules for what to delete afterwards:
//
//   - the invocation failed (error, timeout): delete nothing;
//   - without ReportBatchItemFailures: delete the whole batch;
//   - with it: delete every record not listed in batchItemFailures; a
//     response that is not valid JSON, or an itemIdentifier that is empty,
//     null, misnamed or not in the batch, fails the whole batch.
//
// Messages that are not deleted come back after the queue's visibility
// timeout, and the queue's redrive policy (moto implements it) moves them to
// the dead-letter queue after maxReceiveCount receives.
package esm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the part of the SQS client the poller uses.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Invoker runs a function synchronously; *lambdaenv.Pool is one.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Mapping is one event source mapping: a queue and the function it feeds.
type Mapping struct {
	// Name identifies the mapping in logs ("DispatchFunction.Dispatch").
	Name     string
	QueueURL string
	QueueARN string
	// BatchSize is the most records per invocation (default 10).
	BatchSize int
	// MaximumBatchingWindow is how long to gather records before invoking
	// with fewer than BatchSize (default 0: invoke with what one receive
	// returns).
	MaximumBatchingWindow   time.Duration
	ReportBatchItemFailures bool
	// Concurrency is how many batches may be in flight (default 1); the
	// runner uses the function's pool size.
	Concurrency int
	// WaitTime is the long-polling wait of each receive (default 20 s).
	WaitTime time.Duration
	Function Invoker
}

// Poller runs one mapping.
type Poller struct {
	sqs    SQSAPI
	m      Mapping
	region string
	log    *slog.Logger
}

// New checks a mapping and returns its poller.
func New(client SQSAPI, m Mapping, logger *slog.Logger) (*Poller, error) {
	if m.QueueURL == "" || m.QueueARN == "" || m.Function == nil {
		return nil, fmt.Errorf("event source mapping %s: queue URL, queue ARN and function are required", m.Name)
	}
	parts := strings.Split(m.QueueARN, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return nil, fmt.Errorf("event source mapping %s: %q is not an SQS queue ARN", m.Name, m.QueueARN)
	}
	if m.BatchSize <= 0 {
		m.BatchSize = 10
	}
	if m.Concurrency <= 0 {
		m.Concurrency = 1
	}
	if m.WaitTime <= 0 || m.WaitTime > 20*time.Second {
		m.WaitTime = 20 * time.Second
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Poller{sqs: client, m: m, region: parts[3], log: logger.With("mapping", m.Name)}, nil
}

// Run polls until ctx ends, with Concurrency batches in flight at most.
func (p *Poller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.m.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx)
		}()
	}
	wg.Wait()
}

func (p *Poller) loop(ctx context.Context) {
	for ctx.Err() == nil {
		msgs, err := p.receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("receive failed", "queue", p.m.QueueARN, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		if len(msgs) > 0 {
			p.process(ctx, msgs)
		}
	}
}

// receive gathers one batch: a long poll for the first records, then more
// receives until BatchSize records or the batching window has passed.
func (p *Poller) receive(ctx context.Context) ([]types.Message, error) {
	msgs, err := p.receiveOnce(ctx, p.m.BatchSize, p.m.WaitTime)
	if err != nil || len(msgs) == 0 || p.m.MaximumBatchingWindow <= 0 {
		return msgs, err
	}
	deadline := time.Now().Add(p.m.MaximumBatchingWindow)
	for len(msgs) < p.m.BatchSize {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			break
		}
		wait := remaining.Truncate(time.Second)
		more, err := p.receiveOnce(ctx, p.m.BatchSize-len(msgs), wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// Keep what was received; the batch goes on without the rest.
			p.log.Warn("receive failed while batching", "error", err)
			break
		}
		msgs = append(msgs, more...)
		if len(more) == 0 && wait == 0 {
			sleep(ctx, min(100*time.Millisecond, remaining))
		}
	}
	return msgs, nil
}

func (p *Poller) receiveOnce(ctx context.Context, n int, wait time.Duration) ([]types.Message, error) {
	out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.m.QueueURL),
		MaxNumberOfMessages:         int32(min(n, 10)),
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", p.m.QueueARN, err)
	}
	return out.Messages, nil
}

func (p *Poller) process(ctx context.Context, msgs []types.Message) {
	payload, err := json.Marshal(Event(msgs, p.m.QueueARN, p.region))
	if err != nil {
		p.log.Error("encode event", "error", err)
		return
	}
	out, err := p.m.Function.Invoke(ctx, payload)
	if ctx.Err() != nil {
		return // shutting down: the messages come back after their visibility timeout
	}
	keep, reason := Outcome(msgs, out, err, p.m.ReportBatchItemFailures)
	if err != nil {
		p.log.Warn("invocation failed; batch returns to the queue", "records", len(msgs), "error", err)
	} else if reason != "" {
		p.log.Warn("batch failed", "records", len(msgs), "reason", reason)
	}
	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		if keep[i] {
			continue
		}
		del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	// Deleting what succeeded must not be cut short by a shutdown.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for len(del) > 0 {
		chunk := del[:min(10, len(del))]
		del = del[len(chunk):]
		res, err := p.sqs.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.m.QueueURL), Entries: chunk})
		if err != nil {
			p.log.Error("delete processed messages", "error", err)
			return
		}
		for _, f := range res.Failed {
			p.log.Error("delete processed message", "id", aws.ToString(f.Id), "code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
		}
	}
	p.log.Debug("batch done", "records", len(msgs), "kept", count(keep))
}

func count(keep []bool) int {
	n := 0
	for _, k := range keep {
		if k {
			n++
		}
	}
	return n
}

// Event builds the SQS event Lambda delivers for msgs.
func Event(msgs []types.Message, queueARN, region string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             map[string]string{},
			MessageAttributes:      map[string]events.SQSMessageAttribute{},
			EventSourceARN:         queueARN,
			EventSource:            "aws:sqs",
			AWSRegion:              region,
		}
		for k, v := range m.Attributes {
			rec.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			a := events.SQSMessageAttribute{
				StringValue:      v.StringValue,
				BinaryValue:      v.BinaryValue,
				StringListValues: append([]string{}, v.StringListValues...),
				BinaryListValues: append([][]byte{}, v.BinaryListValues...),
				DataType:         aws.ToString(v.DataType),
			}
			rec.MessageAttributes[k] = a
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// Outcome decides which records stay on the queue (keep[i] true) after an
// invocation, by Lambda's rules; reason explains a whole-batch failure that
// the function reported in its response.
func Outcome(msgs []types.Message, out []byte, invokeErr error, reportBatchItemFailures bool) (keep []bool, reason string) {
	keep = make([]bool, len(msgs))
	all := func(why string) ([]bool, string) {
		for i := range keep {
			keep[i] = true
		}
		return keep, why
	}
	if invokeErr != nil {
		return all("")
	}
	if !reportBatchItemFailures {
		return keep, ""
	}
	failures, err := batchItemFailures(out)
	if err != nil {
		return all(err.Error())
	}
	index := map[string]int{}
	for i, m := range msgs {
		index[aws.ToString(m.MessageId)] = i
	}
	for _, id := range failures {
		i, ok := index[id]
		if !ok {
			return all(fmt.Sprintf("itemIdentifier %q is not in the batch", id))
		}
		keep[i] = true
	}
	return keep, ""
}

// errBadResponse marks a response that fails the whole batch.
var errBadResponse = errors.New("bad batch response")

// batchItemFailures reads the ids a function reported as failed.
func batchItemFailures(out []byte) ([]string, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 || string(out) == "null" {
		return nil, nil
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("%w: response is not a JSON object: %v", errBadResponse, err)
	}
	raw, ok := resp["batchItemFailures"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: batchItemFailures is not a list of objects", errBadResponse)
	}
	ids := make([]string, 0, len(items))
	for _, item := range items {
		var id string
		if v, ok := item["itemIdentifier"]; !ok || json.Unmarshal(v, &id) != nil || id == "" {
			return nil, fmt.Errorf("%w: a batch item failure has no itemIdentifier", errBadResponse)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
