package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
)

// Index partitions of the sweep's work queues (GSI2).
const (
	QueueLease   = "LEASE"   // publishing, by lease deadline
	QueueQueued  = "QUEUED"  // queued, by when it was (last) enqueued
	QueueWaiting = "WAITING" // retrying or deferred, by NextAttemptAt
	// QueueMetricsFirst holds sent deliveries not read yet, by SentAt.
	QueueMetricsFirst = "METRICS#SENT"
	// QueueMetrics holds sent deliveries whose next engagement reading is
	// due, by MetricsNextAt.
	QueueMetrics = "METRICS"
)

// sortableTime is a fixed-width UTC layout: sort keys built with it order
// as text exactly as the times they hold (RFC 3339 with a variable number of
// fractional digits does not).
const sortableTime = "2006-01-02T15:04:05.000000000Z"

// maxHistory bounds the attempt history kept on a delivery (the newest
// entries are kept), so an item never approaches DynamoDB's size limit.
const maxHistory = 50

// transactLimit is DynamoDB's TransactWriteItems item limit.
const transactLimit = 100

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// updateAPI is UpdateItem, which the DynamoDB client has: Claim uses it to
// claim in one write. A dynamoAPI without it (the in-memory table of the
// ledger's unit tests) gets the read-then-write claim, which Claim also
// uses for every case the one write does not cover.
type updateAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Store keeps deliveries in DynamoDB.
type Store struct {
	db    dynamoAPI
	table string
	now   func() time.Time
}

// NewStore returns a Store on table. now may be nil for the wall clock. It
// does no I/O.
func NewStore(db dynamoAPI, table string, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, table: table, now: now}
}

// record is a delivery item as stored: the delivery and the ledger's own
// bookkeeping, which never leaves this package except through Lease.
type record struct {
	Delivery
	// Version increases with every write; every write is conditional on the
	// version it read (optimistic concurrency).
	Version int64 `dynamodbav:"version"`
	// Fence is the fencing token of the latest claim.
	Fence      int64      `dynamodbav:"fence"`
	LeaseUntil *time.Time `dynamodbav:"lease_until,omitempty"`
	// Journal holds adapter checkpoints across attempts.
	Journal map[string]string `dynamodbav:"journal,omitempty"`
	// QueuedAt is when the delivery was last put on the queue (queued state).
	QueuedAt *time.Time `dynamodbav:"queued_at,omitempty"`
	// WakeAt is the due time of a message known to be in flight for
	// NextAttemptAt (a delayed message or a one-time schedule).
	WakeAt *time.Time `dynamodbav:"wake_at,omitempty"`
	// DueAt is when the delivery became due: created queued, its schedule
	// fired, or an operator retried it. Latency is measured from it.
	DueAt *time.Time `dynamodbav:"due_at,omitempty"`
	// Seq numbers attempts across retries requested by operators (Attempts
	// starts over at each; Seq never does).
	Seq int `dynamodbav:"seq"`
	// Deferrals counts rate-limit deferrals.
	Deferrals int `dynamodbav:"deferrals"`
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func sortable(t time.Time) string { return t.UTC().Format(sortableTime) }

func pk(siteID string) string { return "SITE#" + siteID }

func sk(id string) string { return "DLV#" + id }

func key(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(pk(siteID)), "SK": str(sk(id))}
}

// listPartition is GSI1PK of a site's deliveries.
func listPartition(siteID string) string { return "SITE#" + siteID + "#DLV" }

// workKey returns the GSI2 keys of r's state, or "" when r is in no work
// queue.
func workKey(r record) (string, string) {
	var (
		part string
		at   *time.Time
	)
	switch r.State {
	case StatePublishing:
		part, at = QueueLease, r.LeaseUntil
	case StateQueued:
		part, at = QueueQueued, r.QueuedAt
	case StateRetrying, StateDeferred:
		part, at = QueueWaiting, r.NextAttemptAt
	case StateSent:
		return MetricsKey(r.Delivery)
	}
	if part == "" {
		return "", ""
	}
	if at == nil {
		t := r.UpdatedAt
		at = &t
	}
	return part, sortable(*at) + "#" + r.SiteID + "#" + r.ID
}

// MetricsKey is the GSI2 entry of a sent delivery whose engagement
// readings are due: the first by its sent time (no write is added to the
// publish path: the outcome's own write carries it), later ones by
// MetricsNextAt. It is "" once readings stopped or for any other state.
func MetricsKey(d Delivery) (string, string) {
	switch {
	case d.State != StateSent || d.MetricsStatus != "" || d.SentAt == nil:
		return "", ""
	case d.MetricsNextAt != nil:
		return QueueMetrics, sortable(*d.MetricsNextAt) + "#" + d.SiteID + "#" + d.ID
	case d.MetricsReads == 0:
		return QueueMetricsFirst, sortable(*d.SentAt) + "#" + d.SiteID + "#" + d.ID
	}
	return "", ""
}

// item marshals r with its table and index keys.
func (r record) item() (map[string]types.AttributeValue, error) {
	if len(r.History) > maxHistory {
		r.History = r.History[len(r.History)-maxHistory:]
	}
	it, err := attributevalue.MarshalMap(r)
	if err != nil {
		return nil, fmt.Errorf("marshal delivery %s: %w", r.ID, err)
	}
	if len(r.Journal) == 0 {
		it["journal"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
	}
	it["PK"], it["SK"] = str(pk(r.SiteID)), str(sk(r.ID))
	it["GSI1PK"] = str(listPartition(r.SiteID))
	it["GSI1SK"] = str(sortable(r.CreatedAt) + "#" + r.ID)
	if p, s := workKey(r); p != "" {
		it["GSI2PK"], it["GSI2SK"] = str(p), str(s)
	}
	return it, nil
}

func unmarshalRecord(it map[string]types.AttributeValue) (record, error) {
	var r record
	if err := attributevalue.UnmarshalMap(it, &r); err != nil {
		return record{}, fmt.Errorf("unmarshal delivery: %w", err)
	}
	return r, nil
}

// get reads a delivery with a consistent read.
func (s *Store) get(ctx context.Context, siteID, id string) (record, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            key(siteID, id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return record{}, fmt.Errorf("get delivery %s: %w", id, err)
	}
	if out.Item == nil {
		return record{}, apperr.NotFound("delivery")
	}
	r, err := unmarshalRecord(out.Item)
	if err != nil {
		return record{}, fmt.Errorf("get delivery %s: %w", id, err)
	}
	return r, nil
}

// errStale is returned by put when the item changed since it was read.
var errStale = errors.New("the delivery changed since it was read")

// put writes r (whose Version is the one read) as version r.Version+1,
// conditional on the stored version still being r.Version. It returns the
// written record, or errStale.
func (s *Store) put(ctx context.Context, r record) (record, error) {
	return s.putCond(ctx, r, false, nil)
}

// putCond is put, also conditional on the fencing token when fenced, and
// with the event ev in the same transaction when ev is not nil.
func (s *Store) putCond(ctx context.Context, r record, fenced bool, ev *event.Event) (record, error) {
	read := r.Version
	r.Version++
	r.UpdatedAt = s.now().UTC()
	it, err := r.item()
	if err != nil {
		return record{}, err
	}
	in := &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      it,
		ConditionExpression:       aws.String("attribute_exists(PK) AND version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(read)},
	}
	if fenced {
		in.ConditionExpression = aws.String("attribute_exists(PK) AND version = :v AND fence = :f AND #s = :pub")
		in.ExpressionAttributeNames = map[string]string{"#s": "state"}
		in.ExpressionAttributeValues[":f"] = num(r.Fence)
		in.ExpressionAttributeValues[":pub"] = str(string(StatePublishing))
	}
	if ev != nil {
		err = s.putWithEvent(ctx, in, ev)
	} else {
		_, err = s.db.PutItem(ctx, in)
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) || errors.Is(err, errStale) {
		return record{}, errStale
	}
	if err != nil {
		return record{}, fmt.Errorf("write delivery %s: %w", r.ID, err)
	}
	if len(r.History) > maxHistory {
		r.History = r.History[len(r.History)-maxHistory:]
	}
	return r, nil
}

// putWithEvent writes the delivery put in and the event it records in one
// transaction: both or neither. A failed condition on the delivery is
// errStale; a transaction that collided with another one on the same item
// is tried again a few times.
func (s *Store) putWithEvent(ctx context.Context, in *dynamodb.PutItemInput, ev *event.Event) error {
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: in.TableName, Item: in.Item, ConditionExpression: in.ConditionExpression,
			ExpressionAttributeNames: in.ExpressionAttributeNames, ExpressionAttributeValues: in.ExpressionAttributeValues}},
		{Put: ev.Put(s.table)},
	}
	const tries = 3
	var err error
	for range tries {
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			break
		}
		if reason(tce, 0) == "ConditionalCheckFailed" || len(tce.CancellationReasons) == 0 {
			return errStale
		}
		if reason(tce, 1) == "ConditionalCheckFailed" {
			// The event exists and the delivery did not change: a write of
			// the same outcome already landed. It cannot be told apart from
			// a lost answer here, so the caller reads again.
			return fmt.Errorf("record event %s of delivery: it exists already: %w", ev.ID, err)
		}
		if reason(tce, 0) != "TransactionConflict" && reason(tce, 1) != "TransactionConflict" {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write the outcome and event %s: %w", ev.ID, err)
	}
	return nil
}

// reason is the cancellation reason code of a transaction's i-th item.
func reason(e *types.TransactionCanceledException, i int) string {
	if i >= len(e.CancellationReasons) {
		return ""
	}
	return aws.ToString(e.CancellationReasons[i].Code)
}

// change applies f to the current record and writes it, retrying a few
// times when another writer got there first. f returns an error to refuse
// the change in the state it sees.
func (s *Store) change(ctx context.Context, siteID, id string, f func(r *record) error) (record, error) {
	const tries = 5
	for range tries {
		r, err := s.get(ctx, siteID, id)
		if err != nil {
			return record{}, err
		}
		if err := f(&r); errors.Is(err, errUnchanged) {
			return r, nil
		} else if err != nil {
			return record{}, err
		}
		w, err := s.put(ctx, r)
		if errors.Is(err, errStale) {
			continue
		}
		return w, err
	}
	return record{}, apperr.New(apperr.KindConflict, "concurrent_update", "the delivery is being changed concurrently; try again")
}

// errUnchanged makes change stop without writing: the record is already as
// the caller wants it.
var errUnchanged = errors.New("unchanged")
