package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
)

// PendingPartition is GSI2PK of the events not yet handed to the fan-out.
const PendingPartition = "EVTPENDING"

// SortableTime is a fixed-width UTC layout: sort keys built with it order
// as text exactly as the times they hold.
const SortableTime = "2006-01-02T15:04:05.000000000Z"

// Partition is PK of a site's events.
func Partition(siteID string) string { return "SITE#" + siteID + "#EVT" }

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// Key is the item key of an event.
func Key(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(Partition(siteID)), "SK": str(id)}
}

// Item is e's item. pending marks it for the fan-out (the sparse GSI2
// entry the sweep looks at).
func (e Event) Item(pending bool) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		"PK": str(Partition(e.SiteID)), "SK": str(e.ID),
		"event_id": str(e.ID), "type": str(string(e.Type)), "site_id": str(e.SiteID),
		"created_at": str(e.CreatedAt.UTC().Format(time.RFC3339Nano)),
		"body":       str(string(e.Body())),
		"expires_at": &types.AttributeValueMemberN{Value: strconv.FormatInt(e.CreatedAt.Add(Retention).Unix(), 10)},
	}
	if pending {
		it["GSI2PK"] = str(PendingPartition)
		it["GSI2SK"] = str(e.CreatedAt.UTC().Format(SortableTime) + "#" + e.SiteID + "#" + e.ID)
	}
	return it
}

// Put is the write of e inside a transaction with the state change that
// caused it: conditional on the event not existing yet.
func (e Event) Put(table string) *types.Put {
	return &types.Put{TableName: aws.String(table), Item: e.Item(true), ConditionExpression: aws.String("attribute_not_exists(PK)")}
}

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store reads the outbox and writes events that have no state change of
// their own (ping).
type Store struct {
	db    dynamoAPI
	table string
}

// NewStore returns a Store on table. It does no I/O.
func NewStore(db dynamoAPI, table string) *Store { return &Store{db: db, table: table} }

// Stored is an event as stored.
type Stored struct {
	Event
	// Body is the exact JSON every attempt sends.
	Body []byte
	// Pending reports whether the fan-out has not handed the event on yet.
	Pending bool
}

// Get returns a site's event; another site's, or one past its retention,
// is not found.
func (s *Store) Get(ctx context.Context, siteID, id string) (Stored, error) {
	if !ValidID(id) {
		return Stored{}, apperr.NotFound("event")
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: Key(siteID, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Stored{}, fmt.Errorf("get event %s: %w", id, err)
	}
	if out.Item == nil {
		return Stored{}, apperr.NotFound("event")
	}
	body, _ := out.Item["body"].(*types.AttributeValueMemberS)
	if body == nil {
		return Stored{}, fmt.Errorf("get event %s: the item has no body", id)
	}
	var e Event
	if err := json.Unmarshal([]byte(body.Value), &e); err != nil {
		return Stored{}, fmt.Errorf("get event %s: decode body: %w", id, err)
	}
	if e.SiteID != siteID || e.ID != id {
		return Stored{}, apperr.NotFound("event")
	}
	_, pending := out.Item["GSI2PK"]
	return Stored{Event: e, Body: []byte(body.Value), Pending: pending}, nil
}

// Put writes an event without a state change of its own (ping), not
// pending: its writer sends its message at once. Writing the same event
// again is not an error.
func (s *Store) Put(ctx context.Context, e Event) error {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: e.Item(false),
		ConditionExpression: aws.String("attribute_not_exists(PK)")})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("put event %s: %w", e.ID, err)
	}
	return nil
}

// Handed clears an event's pending mark: the fan-out has made its
// attempts. An event that is gone (past its retention) is not an error.
func (s *Store) Handed(ctx context.Context, siteID, id string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: Key(siteID, id),
		UpdateExpression:    aws.String("REMOVE GSI2PK, GSI2SK"),
		ConditionExpression: aws.String("attribute_exists(PK)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("mark event %s handed: %w", id, err)
	}
	return nil
}

// Ref names an event.
type Ref struct {
	SiteID, ID string
}

// Pending returns up to limit events still pending that were created
// before before, oldest first. The index is eventually consistent: the
// fan-out is idempotent, so an event sent twice does no harm.
func (s *Store) Pending(ctx context.Context, before time.Time, limit int) ([]Ref, error) {
	refs, err := Due(ctx, s.db, s.table, PendingPartition, before.UTC().Format(SortableTime), "#EVT", limit)
	if err != nil {
		return nil, fmt.Errorf("list pending events: %w", err)
	}
	return refs, nil
}

// queryAPI is what Due calls.
type queryAPI interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Due reads a cross-site work queue of GSI2: up to limit items of
// partition whose GSI2SK sorts before before, oldest first, each named by
// the site of its PK (SITE#<site><pkSuffix>) and its SK. Items of another
// shape are skipped.
func Due(ctx context.Context, db queryAPI, table, partition, before, pkSuffix string, limit int) ([]Ref, error) {
	in := &dynamodb.QueryInput{
		TableName:              &table,
		IndexName:              aws.String("GSI2"),
		KeyConditionExpression: aws.String("GSI2PK = :q AND GSI2SK < :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":q": str(partition), ":t": str(before),
		},
	}
	var refs []Ref
	for len(refs) < limit {
		in.Limit = aws.Int32(int32(limit - len(refs)))
		out, err := db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", partition, err)
		}
		for _, it := range out.Items {
			p, _ := it["PK"].(*types.AttributeValueMemberS)
			k, _ := it["SK"].(*types.AttributeValueMemberS)
			if p == nil || k == nil || !strings.HasPrefix(p.Value, "SITE#") || !strings.HasSuffix(p.Value, pkSuffix) {
				continue
			}
			refs = append(refs, Ref{SiteID: strings.TrimSuffix(strings.TrimPrefix(p.Value, "SITE#"), pkSuffix), ID: k.Value})
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return refs, nil
}

// queueAPI is the part of the SQS client a Publisher uses.
type queueAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Publisher puts messages on the webhook queue.
type Publisher struct {
	sqs queueAPI
	url string
}

// NewPublisher returns a Publisher that sends to the webhook queue at
// queueURL. It does no I/O.
func NewPublisher(client queueAPI, queueURL string) *Publisher {
	return &Publisher{sqs: client, url: queueURL}
}

// Publish sends the message that fans event eventID of siteID out.
func (p *Publisher) Publish(ctx context.Context, siteID, eventID string) error {
	return p.Send(ctx, EventMessage(siteID, eventID))
}

// Send sends m now.
func (p *Publisher) Send(ctx context.Context, m Message) error {
	_, err := p.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &p.url, MessageBody: aws.String(m.Encode())})
	if err != nil {
		return fmt.Errorf("send %s message for event %s: %w", m.Type, m.EventID, err)
	}
	return nil
}
