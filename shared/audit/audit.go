// Package audit records who changed what through the API: one entry per
// mutating call (key id, action, entity, time, source IP), kept for a
// retention period and listed newest first.
//
// Items (one table):
//
//	SITE#<site>#AUDIT  <time>#<id>  the entry; expires_at (the table's TTL
//	                                attribute, epoch seconds) = time + retention
//
// <time> is fixed-width UTC, so entries sort as text in time order.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/cursor"
)

// DefaultRetention is how long entries are kept unless configured.
const DefaultRetention = 90 * 24 * time.Hour

// sortableTime is a fixed-width UTC layout that sorts as text.
const sortableTime = "2006-01-02T15:04:05.000000000Z"

// Entry is one audited call.
type Entry struct {
	ID     string    `json:"id" dynamodbav:"audit_id"`
	SiteID string    `json:"-" dynamodbav:"site_id"`
	At     time.Time `json:"at" dynamodbav:"at"`
	// KeyID is the API key that made the call; "admin" for the admin key.
	KeyID string `json:"keyId" dynamodbav:"key_id"`
	// Action names what was done, e.g. "target.create", "delivery.retry".
	Action string `json:"action" dynamodbav:"action"`
	// EntityType and EntityID name what it was done to.
	EntityType string `json:"entityType,omitempty" dynamodbav:"entity_type,omitempty"`
	EntityID   string `json:"entityId,omitempty" dynamodbav:"entity_id,omitempty"`
	Method     string `json:"method" dynamodbav:"method"`
	Path       string `json:"path" dynamodbav:"path"`
	Status     int    `json:"status" dynamodbav:"status"`
	SourceIP   string `json:"sourceIp,omitempty" dynamodbav:"source_ip,omitempty"`
	RequestID  string `json:"requestId,omitempty" dynamodbav:"request_id,omitempty"`
}

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store keeps audit entries in DynamoDB.
type Store struct {
	db        dynamoAPI
	table     string
	retention time.Duration
	now       func() time.Time
	rand      func([]byte) (int, error)
}

// NewStore returns a Store on table keeping entries for retention (0 means
// DefaultRetention); now and random may be nil for the wall clock and
// crypto/rand. It does no I/O.
func NewStore(db dynamoAPI, table string, retention time.Duration, now func() time.Time, random func([]byte) (int, error)) *Store {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Read
	}
	return &Store{db: db, table: table, retention: retention, now: now, rand: random}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func partition(siteID string) string { return "SITE#" + siteID + "#AUDIT" }

// Record stores e, setting its id and, when zero, its time.
func (s *Store) Record(ctx context.Context, e Entry) (Entry, error) {
	e, put, err := s.Put(e)
	if err != nil {
		return Entry{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: put.TableName, Item: put.Item})
	if err != nil {
		return Entry{}, fmt.Errorf("record audit entry %s of %s: %w", e.Action, e.SiteID, err)
	}
	return e, nil
}

// Put returns e with its id and, when zero, its time set, and the write
// that records it, for a caller that records the entry in the same
// transaction as the change it audits.
func (s *Store) Put(e Entry) (Entry, types.Put, error) {
	b := make([]byte, 10)
	if _, err := s.rand(b); err != nil {
		return Entry{}, types.Put{}, fmt.Errorf("generate audit id: %w", err)
	}
	e.ID = "aud_" + idEncoding.EncodeToString(b)
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = e.At.UTC()
	item, err := attributevalue.MarshalMap(e)
	if err != nil {
		return Entry{}, types.Put{}, fmt.Errorf("marshal audit entry: %w", err)
	}
	item["PK"] = str(partition(e.SiteID))
	item["SK"] = str(e.At.Format(sortableTime) + "#" + e.ID)
	item["expires_at"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(e.At.Add(s.retention).Unix(), 10)}
	return e, types.Put{TableName: &s.table, Item: item}, nil
}

// List returns up to limit of a site's entries, newest first, after cursor
// (an opaque value a previous page returned; "" starts with the newest).
func (s *Store) List(ctx context.Context, siteID string, limit int, after string) ([]Entry, string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(partition(siteID))},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit)),
	}
	if after != "" {
		start, err := cursor.Decode(after, func(m map[string]string) bool {
			return len(m) == 2 && m["PK"] == partition(siteID) && strings.Contains(m["SK"], "#aud_")
		})
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list audit of %s: %w", siteID, err)
	}
	entries := make([]Entry, 0, len(out.Items))
	for _, it := range out.Items {
		var e Entry
		if err := attributevalue.UnmarshalMap(it, &e); err != nil {
			return nil, "", fmt.Errorf("unmarshal audit entry: %w", err)
		}
		entries = append(entries, e)
	}
	next, err := cursor.Encode(out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return entries, next, nil
}
