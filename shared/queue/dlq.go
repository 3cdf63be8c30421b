package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// Scan bounds.
const (
	// DefaultScan is how many distinct DLQ messages a listing or redrive
	// looks at by default; MaxScan the most it may ask for.
	DefaultScan = 100
	MaxScan     = 1000
)

// message is one DLQ message as received.
type message struct {
	id           string
	body         string
	receipt      string // the handle of the latest receive: the one DeleteMessage honours
	receiveCount int
	sentAt       time.Time
	attrs        map[string]types.MessageAttributeValue
}

// peek returns up to max distinct messages of the DLQ, leaving every one
// where it is.
//
// Each ReceiveMessage uses VisibilityTimeout 0 (sent explicitly: see
// zeroReceiveTimeouts), so a message is visible
// again at once: nothing is hidden from the console, the alarm or another
// reader, and nothing is deleted. The one side effect SQS does not let a
// reader avoid is that every receive adds one to the message's
// ApproximateReceiveCount (and sets its first-receive time). That does not
// change its fate: the DLQ has no redrive policy of its own, so no count
// moves a message anywhere, retention runs from the original enqueue time,
// and the dispatcher decides by the ledger, never by receive counts. The
// counts shown are therefore inflated by earlier reads.
//
// With a visibility timeout of 0 the same message can come back in the
// next call; messages are told apart by id, and the scan stops after two
// calls bring nothing new. Standard queues sample their servers, so a large
// DLQ may need more than one scan to be seen whole.
func (c *Client) peek(ctx context.Context, max int) ([]message, error) {
	seen := map[string]int{}
	var out []message
	for calls, idle := 0, 0; len(out) < max && idle < 2 && calls < max/batchSize+5; calls++ {
		res, err := c.cfg.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(c.cfg.DLQURL),
			MaxNumberOfMessages: int32(min(batchSize, max-len(out))),
			VisibilityTimeout:   0,
			WaitTimeSeconds:     0,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount,
				types.MessageSystemAttributeNameSentTimestamp,
			},
			MessageAttributeNames: []string{"All"},
		}, zeroReceiveTimeouts)
		if err != nil {
			return nil, fmt.Errorf("receive from queue %s: %w", queueName(c.cfg.DLQURL), err)
		}
		fresh := 0
		for _, m := range res.Messages {
			id := aws.ToString(m.MessageId)
			rc, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
			msg := message{
				id: id, body: aws.ToString(m.Body), receipt: aws.ToString(m.ReceiptHandle), receiveCount: rc,
				sentAt: epochMillis(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)]), attrs: m.MessageAttributes,
			}
			if i, ok := seen[id]; ok {
				out[i].receipt, out[i].receiveCount = msg.receipt, msg.receiveCount
				continue
			}
			seen[id] = len(out)
			out = append(out, msg)
			fresh++
		}
		if fresh == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return out, nil
}

func epochMillis(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// DeadLetter is a DLQ message of one site, with the delivery it names.
type DeadLetter struct {
	MessageID string `json:"messageId"`
	// DeliveryID (or ScheduleID, for a fired schedule) is what the message
	// asks the dispatcher to do.
	DeliveryID string `json:"deliveryId,omitempty"`
	ScheduleID string `json:"scheduleId,omitempty"`
	// ReceiveCount is SQS's approximate receive count; every read of the
	// DLQ adds one.
	ReceiveCount int `json:"receiveCount"`
	// SentAt is when the message was first sent to the dispatch queue.
	SentAt time.Time `json:"sentAt"`
	// Delivery is the delivery as the ledger has it now; nil when the
	// ledger has none of that id.
	Delivery *ledger.Delivery `json:"delivery"`

	msg message
}

// DeadLetters returns the DLQ messages of siteID among up to scan
// messages looked at, with their deliveries, and how many were looked at.
// Messages of other sites, and messages that do not decode (they name no
// site), are never shown. Nothing is moved or deleted (see peek).
func (c *Client) DeadLetters(ctx context.Context, siteID string, scan int) ([]DeadLetter, int, error) {
	if scan <= 0 {
		scan = DefaultScan
	}
	msgs, err := c.peek(ctx, min(scan, MaxScan))
	if err != nil {
		return nil, 0, err
	}
	out := []DeadLetter{}
	for _, m := range msgs {
		dm, err := ledger.DecodeMessage(m.body)
		if err != nil || dm.SiteID != siteID {
			continue
		}
		dl := DeadLetter{MessageID: m.id, DeliveryID: dm.DeliveryID, ScheduleID: dm.ScheduleID, ReceiveCount: m.receiveCount, SentAt: m.sentAt, msg: m}
		if dm.DeliveryID != "" {
			d, err := c.cfg.Deliveries.Get(ctx, siteID, dm.DeliveryID)
			switch {
			case apperr.Is(err, apperr.KindNotFound):
			case err != nil:
				return nil, 0, fmt.Errorf("read delivery %s of dead letter %s: %w", dm.DeliveryID, m.id, err)
			default:
				dl.Delivery = &d
			}
		}
		out = append(out, dl)
	}
	return out, len(msgs), nil
}

// RedriveFilter chooses the DLQ messages a redrive moves. Zero fields do
// not filter; a filter on the delivery never matches a message whose
// delivery the ledger does not have.
type RedriveFilter struct {
	Platform platform.Name
	TargetID string
	State    ledger.State
	// Since keeps messages first sent to the dispatch queue at or after it.
	Since time.Time
}

func (f RedriveFilter) match(dl DeadLetter) bool {
	if !f.Since.IsZero() && dl.SentAt.Before(f.Since) {
		return false
	}
	if f.Platform == "" && f.TargetID == "" && f.State == "" {
		return true
	}
	d := dl.Delivery
	if d == nil {
		return false
	}
	return (f.Platform == "" || d.Platform == f.Platform) &&
		(f.TargetID == "" || d.TargetID == f.TargetID) &&
		(f.State == "" || d.State == f.State)
}

// Redrive is what a redrive chose and did.
type Redrive struct {
	DryRun bool `json:"dryRun"`
	// Scanned is how many DLQ messages (of every site) were looked at.
	Scanned int `json:"scanned"`
	// Selected are the site's messages the filter chose.
	Selected []DeadLetter `json:"selected"`
	// Moved are the message ids sent back to the dispatch queue and
	// deleted from the DLQ; Failed those that could not be sent (they stay
	// in the DLQ). NotDeleted were sent but their DLQ copy could not be
	// deleted: the dispatcher will see them twice, which the ledger makes
	// harmless, and a later redrive may move them again.
	Moved      []string `json:"moved"`
	Failed     []string `json:"failed"`
	NotDeleted []string `json:"notDeleted"`
}

// Redrive moves the DLQ messages of siteID that f chooses (among up to
// scan looked at) back to the dispatch queue: each is sent there, then
// deleted from the DLQ. With dryRun it only reports what it would move.
// Other sites' messages, and messages that do not decode, are never moved.
func (c *Client) Redrive(ctx context.Context, siteID string, f RedriveFilter, dryRun bool, scan int) (Redrive, error) {
	dls, scanned, err := c.DeadLetters(ctx, siteID, scan)
	if err != nil {
		return Redrive{}, err
	}
	r := Redrive{DryRun: dryRun, Scanned: scanned, Selected: []DeadLetter{}, Moved: []string{}, Failed: []string{}, NotDeleted: []string{}}
	for _, dl := range dls {
		if f.match(dl) {
			r.Selected = append(r.Selected, dl)
		}
	}
	if dryRun || len(r.Selected) == 0 {
		return r, nil
	}
	es := make([]entry, len(r.Selected))
	for i, dl := range r.Selected {
		es[i] = entry{Outgoing: Outgoing{ID: dl.MessageID, Body: dl.msg.body}, attrs: dl.msg.attrs}
	}
	failed, sendErr := c.sendEntries(ctx, c.cfg.DispatchURL, es)
	unsent := map[string]bool{}
	for _, e := range failed {
		unsent[e.ID] = true
		r.Failed = append(r.Failed, e.ID)
	}
	var sent []DeadLetter
	for _, dl := range r.Selected {
		if !unsent[dl.MessageID] {
			sent = append(sent, dl)
		}
	}
	notDeleted, delErr := c.deleteFromDLQ(ctx, sent)
	for _, dl := range sent {
		if notDeleted[dl.MessageID] {
			r.NotDeleted = append(r.NotDeleted, dl.MessageID)
		} else {
			r.Moved = append(r.Moved, dl.MessageID)
		}
	}
	if len(r.Moved) == 0 && len(r.Selected) > 0 {
		if sendErr == nil {
			sendErr = delErr
		}
		return r, fmt.Errorf("redrive %d dead letters of %s: %w", len(r.Selected), siteID, sendErr)
	}
	return r, nil
}

// deleteFromDLQ deletes dls from the DLQ, ten at a time, and returns the
// ids it could not delete.
func (c *Client) deleteFromDLQ(ctx context.Context, dls []DeadLetter) (map[string]bool, error) {
	notDeleted := map[string]bool{}
	var last error
	for start := 0; start < len(dls); start += batchSize {
		batch := dls[start:min(start+batchSize, len(dls))]
		in := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(c.cfg.DLQURL)}
		for i, dl := range batch {
			in.Entries = append(in.Entries, types.DeleteMessageBatchRequestEntry{
				Id: aws.String("d" + strconv.Itoa(i)), ReceiptHandle: aws.String(dl.msg.receipt),
			})
		}
		out, err := c.cfg.SQS.DeleteMessageBatch(ctx, in)
		if err != nil {
			last = fmt.Errorf("delete from queue %s: %w", queueName(c.cfg.DLQURL), err)
			for _, dl := range batch {
				notDeleted[dl.MessageID] = true
			}
			continue
		}
		for _, f := range out.Failed {
			i, err := strconv.Atoi(strings.TrimPrefix(aws.ToString(f.Id), "d"))
			if err == nil && i >= 0 && i < len(batch) {
				notDeleted[batch[i].MessageID] = true
				last = fmt.Errorf("delete %s from queue %s: %s", batch[i].MessageID, queueName(c.cfg.DLQURL), aws.ToString(f.Code))
			}
		}
	}
	return notDeleted, last
}
