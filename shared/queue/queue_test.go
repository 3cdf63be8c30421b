package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// fakeSQS records sends and fails the entries its script says to.
type fakeSQS struct {
	mu       sync.Mutex
	calls    []int               // entries per SendMessageBatch call
	sent     map[string][]string // queue → bodies
	failBody map[string]int      // body → how many more sends of it fail
	callErr  int                 // how many more calls fail outright
	dlq      []types.Message
	deleted  []string
	received int
	moves    fakeMoves
}

func newFakeSQS() *fakeSQS {
	return &fakeSQS{sent: map[string][]string{}, failBody: map[string]int{}}
}

func (f *fakeSQS) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Entries) > batchSize {
		return nil, fmt.Errorf("batch of %d", len(in.Entries))
	}
	f.calls = append(f.calls, len(in.Entries))
	if f.callErr > 0 {
		f.callErr--
		return nil, errors.New("connection reset")
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		body := aws.ToString(e.MessageBody)
		if f.failBody[body] > 0 {
			f.failBody[body]--
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
			continue
		}
		f.sent[aws.ToString(in.QueueUrl)] = append(f.sent[aws.ToString(in.QueueUrl)], body)
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m-" + body)})
	}
	return out, nil
}

// ReceiveMessage returns the DLQ's messages from the start, like moto: with
// VisibilityTimeout 0 they all stay visible.
func (f *fakeSQS) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.VisibilityTimeout != 0 {
		return nil, fmt.Errorf("visibility timeout %d, want 0", in.VisibilityTimeout)
	}
	f.received++
	var out []types.Message
	for i, m := range f.dlq {
		if len(out) == int(in.MaxNumberOfMessages) {
			break
		}
		n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
		f.dlq[i].Attributes["ApproximateReceiveCount"] = strconv.Itoa(n + 1)
		f.dlq[i].ReceiptHandle = aws.String(fmt.Sprintf("rh-%s-%d", aws.ToString(m.MessageId), n+1))
		c := f.dlq[i]
		c.Attributes = map[string]string{"ApproximateReceiveCount": strconv.Itoa(n + 1), "SentTimestamp": m.Attributes["SentTimestamp"]}
		out = append(out, c)
	}
	return &sqs.ReceiveMessageOutput{Messages: out}, nil
}

func (f *fakeSQS) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		rh := aws.ToString(e.ReceiptHandle)
		kept := f.dlq[:0]
		found := false
		for _, m := range f.dlq {
			if aws.ToString(m.ReceiptHandle) == rh {
				found = true
				f.deleted = append(f.deleted, aws.ToString(m.MessageId))
				continue
			}
			kept = append(kept, m)
		}
		f.dlq = kept
		if found {
			out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
		} else {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid")})
		}
	}
	return out, nil
}

func (f *fakeSQS) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToString(in.QueueUrl) == "dlq" {
		return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"ApproximateNumberOfMessages": strconv.Itoa(len(f.dlq))}}, nil
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "2", "ApproximateNumberOfMessagesDelayed": "1"}}, nil
}

func (f *fakeSQS) addDead(id, body string, sent time.Time) {
	f.dlq = append(f.dlq, types.Message{MessageId: aws.String(id), Body: aws.String(body),
		Attributes: map[string]string{"ApproximateReceiveCount": "5", "SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10)}})
}

// fakeLedger returns deliveries by site and id.
type fakeLedger map[string]ledger.Delivery

func (l fakeLedger) Get(_ context.Context, siteID, id string) (ledger.Delivery, error) {
	if d, ok := l[siteID+"/"+id]; ok {
		return d, nil
	}
	return ledger.Delivery{}, apperr.NotFound("delivery")
}

func newClient(f *fakeSQS, l fakeLedger) (*Client, *[]time.Duration) {
	var waits []time.Duration
	c := New(Config{SQS: f, DispatchURL: "dispatch", DLQURL: "dlq", Deliveries: l,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	return c, &waits
}

func outgoing(n int) []Outgoing {
	out := make([]Outgoing, n)
	for i := range out {
		out[i] = Outgoing{ID: "dlv_" + strconv.Itoa(i), Body: "b" + strconv.Itoa(i)}
	}
	return out
}

func TestSendBatchesOfTen(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	c, waits := newClient(f, nil)
	if err := c.Send(context.Background(), outgoing(23)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if fmt.Sprint(f.calls) != "[10 10 3]" || len(f.sent["dispatch"]) != 23 || len(*waits) != 0 {
		t.Errorf("calls %v, sent %d, waits %v; want [10 10 3], 23, none", f.calls, len(f.sent["dispatch"]), *waits)
	}
}

func TestSendRetriesFailedEntries(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	f.failBody["b3"], f.failBody["b12"] = 2, 1
	f.callErr = 1
	c, waits := newClient(f, nil)
	if err := c.Send(context.Background(), outgoing(15)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// Batch 1: a failed call, then b3 fails twice. Batch 2: b12 fails once.
	if fmt.Sprint(f.calls) != "[10 10 1 1 5 1]" {
		t.Errorf("calls: got %v, want [10 10 1 1 5 1] (only failed entries are sent again)", f.calls)
	}
	if fmt.Sprint(*waits) != "[100ms 200ms 400ms 100ms]" {
		t.Errorf("waits: got %v, want doubling backoff per batch", *waits)
	}
	if len(f.sent["dispatch"]) != 15 {
		t.Errorf("sent %d, want 15 (each once)", len(f.sent["dispatch"]))
	}
}

func TestSendReportsWhatNeverWent(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	f.failBody["b1"] = 100
	c, _ := newClient(f, nil)
	err := c.Send(context.Background(), outgoing(3))
	var se *SendError
	if !errors.As(err, &se) || fmt.Sprint(se.Failed) != "[dlv_1]" {
		t.Fatalf("Send: got %v, want a SendError naming dlv_1", err)
	}
	if len(f.calls) != 4 {
		t.Errorf("calls: got %d, want 4 attempts", len(f.calls))
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	old := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	f.addDead("m1", ledger.DeliveryMessage("site_a", "dlv_1").Encode(), old.Add(time.Hour))
	f.addDead("m2", ledger.DeliveryMessage("site_b", "dlv_2").Encode(), old)
	c, _ := newClient(f, nil)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Dispatch != (Depth{Visible: 3, InFlight: 2, Delayed: 1}) || st.DLQ.Visible != 2 || !st.OldestDeadLetter.Equal(old) {
		t.Errorf("Status: got %+v", st)
	}
	if len(f.dlq) != 2 {
		t.Errorf("the status read removed DLQ messages")
	}
}

func deadQueue() (*fakeSQS, fakeLedger) {
	f := newFakeSQS()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	l := fakeLedger{
		"site_a/dlv_x":  {ID: "dlv_x", SiteID: "site_a", Platform: platform.X, TargetID: "tgt_one", State: ledger.StateQueued},
		"site_a/dlv_m":  {ID: "dlv_m", SiteID: "site_a", Platform: platform.Mastodon, TargetID: "tgt_two", State: ledger.StateFailed},
		"site_b/dlv_bx": {ID: "dlv_bx", SiteID: "site_b", Platform: platform.X, TargetID: "tgt_three", State: ledger.StateQueued},
	}
	f.addDead("m-x", ledger.DeliveryMessage("site_a", "dlv_x").Encode(), at)
	f.addDead("m-bx", ledger.DeliveryMessage("site_b", "dlv_bx").Encode(), at)
	f.addDead("m-poison", "not json", at)
	f.addDead("m-m", ledger.DeliveryMessage("site_a", "dlv_m").Encode(), at.Add(time.Hour))
	f.addDead("m-gone", ledger.DeliveryMessage("site_a", "dlv_gone").Encode(), at)
	return f, l
}

func TestDeadLettersShowOnlyTheSitesAndMoveNothing(t *testing.T) {
	t.Parallel()
	f, l := deadQueue()
	c, _ := newClient(f, l)
	got, scanned, err := c.DeadLetters(context.Background(), "site_a", 100)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, d := range got {
		ids = append(ids, d.MessageID)
	}
	if fmt.Sprint(ids) != "[m-x m-m m-gone]" || scanned != 5 {
		t.Errorf("dead letters: got %v of %d scanned, want [m-x m-m m-gone] of 5", ids, scanned)
	}
	if got[0].Delivery == nil || got[0].Delivery.ID != "dlv_x" || got[2].Delivery != nil || got[0].ReceiveCount < 6 {
		t.Errorf("joined deliveries: got %+v", got)
	}
	if len(f.dlq) != 5 || len(f.deleted) != 0 || len(f.sent) != 0 {
		t.Errorf("reading changed the queue: %d left, %v deleted, %v sent", len(f.dlq), f.deleted, f.sent)
	}
	if f.received != 3 {
		t.Errorf("receives: got %d, want 3 (one with news, two without)", f.received)
	}
}

func TestRedrive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		filter RedriveFilter
		dry    bool
		want   string
	}{
		{"everything of the site", RedriveFilter{}, false, "[m-x m-m m-gone]"},
		{"dry run", RedriveFilter{}, true, "[]"},
		{"by platform", RedriveFilter{Platform: platform.Mastodon}, false, "[m-m]"},
		{"by target", RedriveFilter{TargetID: "tgt_one"}, false, "[m-x]"},
		{"by state", RedriveFilter{State: ledger.StateFailed}, false, "[m-m]"},
		{"since", RedriveFilter{Since: time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC)}, false, "[m-m]"},
		{"another site's target matches nothing", RedriveFilter{TargetID: "tgt_three"}, false, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, l := deadQueue()
			c, _ := newClient(f, l)
			res, err := c.Redrive(ctx, "site_a", tt.filter, tt.dry, 100)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.Moved) != tt.want || fmt.Sprint(f.deleted) != tt.want {
				t.Errorf("moved %v, deleted %v; want %s", res.Moved, f.deleted, tt.want)
			}
			if len(f.sent["dispatch"]) != len(res.Moved) {
				t.Errorf("sent %d to the dispatch queue, moved %d", len(f.sent["dispatch"]), len(res.Moved))
			}
			for _, body := range f.sent["dispatch"] {
				m, err := ledger.DecodeMessage(body)
				if err != nil || m.SiteID != "site_a" {
					t.Errorf("moved a message that is not site_a's: %q", body)
				}
			}
			left := map[string]bool{}
			for _, m := range f.dlq {
				left[aws.ToString(m.MessageId)] = true
			}
			if !left["m-bx"] || !left["m-poison"] {
				t.Errorf("another site's or an undecodable message left the DLQ: %v remain", left)
			}
			if tt.dry && len(res.Selected) != 3 {
				t.Errorf("dry run selected %d, want 3", len(res.Selected))
			}
		})
	}
}

func TestRedriveKeepsWhatCouldNotBeSent(t *testing.T) {
	t.Parallel()
	f, l := deadQueue()
	f.failBody[ledger.DeliveryMessage("site_a", "dlv_m").Encode()] = 100
	c, _ := newClient(f, l)
	res, err := c.Redrive(context.Background(), "site_a", RedriveFilter{}, false, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Moved) != "[m-x m-gone]" || fmt.Sprint(res.Failed) != "[m-m]" {
		t.Errorf("moved %v failed %v", res.Moved, res.Failed)
	}
	kept := false
	for _, m := range f.dlq {
		kept = kept || aws.ToString(m.MessageId) == "m-m"
	}
	if !kept {
		t.Error("a message that could not be sent was deleted from the DLQ")
	}
}
