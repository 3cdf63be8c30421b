package schedule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/cursor"
	"github.com/posse-dev/posse/shared/event"
)

// WorkQueue is the GSI2 partition of schedules waiting to fire (by
// scheduled time) or firing (by the fire's lease), for the sweep.
const WorkQueue = "SCHEDULE"

// sortableTime is a fixed-width UTC layout, so sort keys order as the times
// they hold (the ledger's layout).
const sortableTime = "2006-01-02T15:04:05.000000000Z"

// dynamoAPI is what the schedule store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// record is a schedule item as stored: the schedule and its bookkeeping.
type record struct {
	Schedule
	// Seq increases with every write; every write is conditional on the
	// Seq it read (optimistic concurrency). Version, by contrast, only
	// changes when what fires changes.
	Seq int64 `dynamodbav:"seq"`
	// FiringUntil is the lease of a fire in progress (state firing).
	FiringUntil *time.Time `dynamodbav:"firing_until,omitempty"`
	// MaxVersion is the highest version ever issued. An undone change
	// restores the previous Version, but the next change still takes a
	// version never used, so a stray message of the undone one stays stale.
	MaxVersion int `dynamodbav:"max_version"`
}

// store keeps schedule items in DynamoDB.
type store struct {
	db    dynamoAPI
	table string
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func sortable(t time.Time) string { return t.UTC().Format(sortableTime) }

func pk(siteID string) string { return "SITE#" + siteID }

func sk(id string) string { return "SCHED#" + id }

// listPartition is GSI1PK of a site's schedules.
func listPartition(siteID string) string { return "SITE#" + siteID + "#SCHED" }

func key(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(pk(siteID)), "SK": str(sk(id))}
}

// item marshals r with its table and index keys.
func (r record) item() (map[string]types.AttributeValue, error) {
	it, err := attributevalue.MarshalMap(r)
	if err != nil {
		return nil, fmt.Errorf("marshal schedule %s: %w", r.ID, err)
	}
	it["PK"], it["SK"] = str(pk(r.SiteID)), str(sk(r.ID))
	it["GSI1PK"] = str(listPartition(r.SiteID))
	it["GSI1SK"] = str(sortable(r.ScheduledFor) + "#" + r.ID)
	switch {
	case r.State == StateScheduled:
		it["GSI2PK"], it["GSI2SK"] = str(WorkQueue), str(sortable(r.ScheduledFor)+"#"+r.SiteID+"#"+r.ID)
	case r.State == StateFiring && r.FiringUntil != nil:
		it["GSI2PK"], it["GSI2SK"] = str(WorkQueue), str(sortable(*r.FiringUntil)+"#"+r.SiteID+"#"+r.ID)
	}
	return it, nil
}

func unmarshal(it map[string]types.AttributeValue) (record, error) {
	var r record
	if err := attributevalue.UnmarshalMap(it, &r); err != nil {
		return record{}, fmt.Errorf("unmarshal schedule: %w", err)
	}
	return r, nil
}

// errStale means the item changed since it was read.
var errStale = errors.New("the schedule changed since it was read")

// get reads a site's schedule with a consistent read; another site's is
// not found.
func (s *store) get(ctx context.Context, siteID, id string) (record, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(siteID, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return record{}, fmt.Errorf("get schedule %s: %w", id, err)
	}
	if out.Item == nil {
		return record{}, apperr.NotFound("schedule")
	}
	r, err := unmarshal(out.Item)
	if err != nil {
		return record{}, fmt.Errorf("get schedule %s: %w", id, err)
	}
	return r, nil
}

// create writes a new schedule (Seq 1); one with the same id is errStale.
func (s *store) create(ctx context.Context, r record) (record, error) {
	r.Seq = 1
	it, err := r.item()
	if err != nil {
		return record{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it, ConditionExpression: aws.String("attribute_not_exists(PK)")})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return record{}, errStale
	}
	if err != nil {
		return record{}, fmt.Errorf("create schedule %s: %w", r.ID, err)
	}
	return r, nil
}

// put writes r (whose Seq is the one read) as Seq+1, conditional on the
// stored Seq; errStale when another write came first.
func (s *store) put(ctx context.Context, r record) (record, error) {
	return s.putWithEvent(ctx, r, nil)
}

// putWithEvent is put with the event ev (when not nil) written in the same
// transaction, conditional on not existing: both or neither.
func (s *store) putWithEvent(ctx context.Context, r record, ev *event.Event) (record, error) {
	read := r.Seq
	r.Seq++
	it, err := r.item()
	if err != nil {
		return record{}, err
	}
	cond, vals := aws.String("attribute_exists(PK) AND seq = :q"), map[string]types.AttributeValue{":q": num(read)}
	if ev != nil {
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: &s.table, Item: it, ConditionExpression: cond, ExpressionAttributeValues: vals}},
			{Put: ev.Put(s.table)},
		}})
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) {
			return record{}, errStale // changed since it was read (or the event exists: read again)
		}
	} else {
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it, ConditionExpression: cond, ExpressionAttributeValues: vals})
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return record{}, errStale
	}
	if err != nil {
		return record{}, fmt.Errorf("write schedule %s: %w", r.ID, err)
	}
	return r, nil
}

// remove deletes r, conditional on its Seq.
func (s *store) remove(ctx context.Context, r record) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: key(r.SiteID, r.ID),
		ConditionExpression:       aws.String("seq = :q"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":q": num(r.Seq)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return errStale
	}
	if err != nil {
		return fmt.Errorf("delete schedule %s: %w", r.ID, err)
	}
	return nil
}

// Filter narrows List. Zero fields do not filter.
type Filter struct {
	State State
	// From (inclusive) and To (exclusive) bound ScheduledFor.
	From, To time.Time
}

// MaxListLimit is the largest page List returns.
const MaxListLimit = 100

// list returns up to limit of a site's schedules matching f, soonest first,
// after cursor, and the next page's cursor ("" at the end).
func (s *store) list(ctx context.Context, siteID string, f Filter, limit int, after string) ([]record, string, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	if f.State != "" && !f.State.Valid() {
		return nil, "", apperr.Invalid("state", fmt.Sprintf("must be one of %s", statesList()))
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return nil, "", apperr.Invalid("to", "must be after from")
	}
	values := map[string]types.AttributeValue{":p": str(listPartition(siteID))}
	cond := "GSI1PK = :p"
	switch {
	case !f.From.IsZero() && !f.To.IsZero():
		cond += " AND GSI1SK BETWEEN :f AND :t"
		values[":f"], values[":t"] = str(sortable(f.From)), str(sortable(f.To))
	case !f.From.IsZero():
		cond += " AND GSI1SK >= :f"
		values[":f"] = str(sortable(f.From))
	case !f.To.IsZero():
		cond += " AND GSI1SK < :t"
		values[":t"] = str(sortable(f.To))
	}
	in := &dynamodb.QueryInput{
		TableName: &s.table, IndexName: aws.String("GSI1"),
		KeyConditionExpression: aws.String(cond), ExpressionAttributeValues: values,
	}
	if f.State != "" {
		in.FilterExpression = aws.String("#s = :s")
		in.ExpressionAttributeNames = map[string]string{"#s": "state"}
		values[":s"] = str(string(f.State))
	}
	if after != "" {
		start, err := cursor.Decode(after, func(a map[string]string) bool {
			return len(a) == 4 && a["PK"] == pk(siteID) && strings.HasPrefix(a["SK"], "SCHED#") &&
				a["GSI1PK"] == listPartition(siteID) && a["GSI1SK"] != ""
		})
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	var out []record
	for {
		// A filter applies after Limit: read one more than needed.
		in.Limit = aws.Int32(int32(limit - len(out) + 1))
		page, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("list schedules of %s: %w", siteID, err)
		}
		for _, it := range page.Items {
			r, err := unmarshal(it)
			if err != nil {
				return nil, "", fmt.Errorf("list schedules of %s: %w", siteID, err)
			}
			// To is exclusive; BETWEEN's bound is inclusive.
			if !f.To.IsZero() && !r.ScheduledFor.Before(f.To) {
				continue
			}
			out = append(out, r)
		}
		if len(out) > limit || len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		c, err := cursor.Encode(map[string]types.AttributeValue{
			"PK": str(pk(siteID)), "SK": str(sk(last.ID)),
			"GSI1PK": str(listPartition(siteID)), "GSI1SK": str(sortable(last.ScheduledFor) + "#" + last.ID),
		})
		if err != nil {
			return nil, "", fmt.Errorf("list schedules of %s: %w", siteID, err)
		}
		next = c
	}
	return out, next, nil
}

// Ref names a schedule in the sweep's work queue.
type Ref struct {
	SiteID, ID string
	// Due is the scheduled time (scheduled) or the fire's lease (firing).
	Due time.Time
}

// overdue lists up to limit schedules of the work queue due before before,
// oldest first. The index is eventually consistent: callers re-read.
func (s *store) overdue(ctx context.Context, before time.Time, limit int) ([]Ref, error) {
	in := &dynamodb.QueryInput{
		TableName: &s.table, IndexName: aws.String("GSI2"),
		KeyConditionExpression: aws.String("GSI2PK = :q AND GSI2SK < :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":q": str(WorkQueue), ":t": str(sortable(before)),
		},
	}
	var refs []Ref
	for len(refs) < limit {
		in.Limit = aws.Int32(int32(limit - len(refs)))
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list overdue schedules: %w", err)
		}
		for _, it := range out.Items {
			r, err := unmarshal(it)
			if err != nil {
				return nil, fmt.Errorf("list overdue schedules: %w", err)
			}
			due := r.ScheduledFor
			if r.State == StateFiring && r.FiringUntil != nil {
				due = *r.FiringUntil
			}
			refs = append(refs, Ref{SiteID: r.SiteID, ID: r.ID, Due: due})
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return refs, nil
}
