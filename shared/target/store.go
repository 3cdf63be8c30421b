package target

import (
	"context"
	"crypto/rand"
	"encoding/base32"
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
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/cursor"
)

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// connectionGetter reads a site's connection (shared/connection's Store or
// Service).
type connectionGetter interface {
	Get(ctx context.Context, siteID, id string) (connection.Connection, error)
}

// Store keeps targets in DynamoDB.
type Store struct {
	db    dynamoAPI
	table string
	conns connectionGetter
	now   func() time.Time
	rand  func([]byte) (int, error)
}

// NewStore returns a Store on table that checks connection ids with conns.
// now and random may be nil for the wall clock and crypto/rand. It does no
// I/O.
func NewStore(db dynamoAPI, table string, conns connectionGetter, now func() time.Time, random func([]byte) (int, error)) *Store {
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Read
	}
	return &Store{db: db, table: table, conns: conns, now: now, rand: random}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// IDPrefix starts every target id.
const IDPrefix = "tgt_"

// ValidID reports whether id can be a target id, before it reaches a key.
func ValidID(id string) bool {
	if !strings.HasPrefix(id, IDPrefix) || len(id) > 64 || len(id) == len(IDPrefix) {
		return false
	}
	for _, r := range id[len(IDPrefix):] {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

func (s *Store) newID() (string, error) {
	b := make([]byte, 16)
	if _, err := s.rand(b); err != nil {
		return "", fmt.Errorf("generate target id: %w", err)
	}
	return IDPrefix + idEncoding.EncodeToString(b), nil
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func key(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str("SITE#" + siteID), "SK": str("TARGET#" + id)}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// errNotFound is the answer for a target the site does not have.
func errNotFound() error { return apperr.NotFound("target") }

// checkConnection resolves the connection a target names; one the site
// does not have is a 422 naming connectionId.
func (s *Store) checkConnection(ctx context.Context, t *Target) error {
	c, err := s.conns.Get(ctx, t.SiteID, t.ConnectionID)
	if apperr.Is(err, apperr.KindNotFound) {
		return apperr.Unprocessable("unknown_connection", "connectionId: this site has no connection "+strconv.Quote(t.ConnectionID),
			[]apperr.Problem{{Field: "connectionId", Message: "is not a connection of this site"}})
	}
	if err != nil {
		return fmt.Errorf("check connection %s of target %s: %w", t.ConnectionID, t.ID, err)
	}
	t.Platform = c.Platform
	return nil
}

// Create validates in and stores a new target of siteID. A target is
// active and includes the link unless the input says otherwise.
func (s *Store) Create(ctx context.Context, siteID string, in Input) (Target, error) {
	now := s.now().UTC()
	t := Target{SiteID: siteID, Active: true, Defaults: Defaults{IncludeLink: true, Hashtags: []string{}, Options: map[string]string{}},
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if ps := in.apply(&t, true); len(ps) > 0 {
		return Target{}, apperr.InvalidProblems(ps)
	}
	id, err := s.newID()
	if err != nil {
		return Target{}, err
	}
	t.ID = id
	if err := s.checkConnection(ctx, &t); err != nil {
		return Target{}, err
	}
	if err := s.put(ctx, t, "attribute_not_exists(PK)", nil); err != nil {
		return Target{}, err
	}
	return t, nil
}

// put writes t under condition (with values).
func (s *Store) put(ctx context.Context, t Target, condition string, values map[string]types.AttributeValue) error {
	item, err := attributevalue.MarshalMap(t)
	if err != nil {
		return fmt.Errorf("marshal target %s: %w", t.ID, err)
	}
	item["PK"], item["SK"] = str("SITE#"+t.SiteID), str("TARGET#"+t.ID)
	in := &dynamodb.PutItemInput{TableName: &s.table, Item: item, ConditionExpression: aws.String(condition)}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
		in.ExpressionAttributeNames = map[string]string{"#version": "version"}
	}
	if _, err := s.db.PutItem(ctx, in); err != nil {
		if isConditionFailed(err) {
			return apperr.New(apperr.KindConflict, "target_changed", "the target changed while it was being updated; read it and try again")
		}
		return fmt.Errorf("put target %s: %w", t.ID, err)
	}
	return nil
}

// Get returns a site's target.
func (s *Store) Get(ctx context.Context, siteID, id string) (Target, error) {
	if !ValidID(id) {
		return Target{}, errNotFound()
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(siteID, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Target{}, fmt.Errorf("get target %s: %w", id, err)
	}
	if out.Item == nil {
		return Target{}, errNotFound()
	}
	return unmarshal(out.Item)
}

func unmarshal(item map[string]types.AttributeValue) (Target, error) {
	var t Target
	if err := attributevalue.UnmarshalMap(item, &t); err != nil {
		return Target{}, fmt.Errorf("unmarshal target: %w", err)
	}
	if t.Defaults.Hashtags == nil {
		t.Defaults.Hashtags = []string{}
	}
	if t.Defaults.Options == nil {
		t.Defaults.Options = map[string]string{}
	}
	return t, nil
}

// GetMany returns those of ids that are targets of siteID, by id; the
// others are simply absent. At most 100 ids.
func (s *Store) GetMany(ctx context.Context, siteID string, ids []string) (map[string]Target, error) {
	out := map[string]Target{}
	var keys []map[string]types.AttributeValue
	seen := map[string]bool{}
	for _, id := range ids {
		if ValidID(id) && !seen[id] {
			seen[id] = true
			keys = append(keys, key(siteID, id))
		}
	}
	if len(keys) > 100 {
		return nil, fmt.Errorf("get targets of %s: %d ids, over BatchGetItem's 100", siteID, len(keys))
	}
	for attempt := 0; len(keys) > 0; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, time.Duration(attempt*attempt)*25*time.Millisecond); err != nil {
				return nil, fmt.Errorf("get targets of %s: %w", siteID, err)
			}
		}
		if attempt == 8 {
			return nil, fmt.Errorf("get targets of %s: %d keys still unprocessed", siteID, len(keys))
		}
		res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			s.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
		}})
		if err != nil {
			return nil, fmt.Errorf("get targets of %s: %w", siteID, err)
		}
		for _, item := range res.Responses[s.table] {
			t, err := unmarshal(item)
			if err != nil {
				return nil, err
			}
			if t.SiteID == siteID {
				out[t.ID] = t
			}
		}
		keys = res.UnprocessedKeys[s.table].Keys
	}
	return out, nil
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

// List returns up to limit of a site's targets after cursor (an opaque
// value a previous page returned; "" starts at the beginning).
func (s *Store) List(ctx context.Context, siteID string, limit int, after string) ([]Target, string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :p AND begins_with(SK, :t)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str("SITE#" + siteID), ":t": str("TARGET#")},
		Limit:                     aws.Int32(int32(limit)),
		ConsistentRead:            aws.Bool(true),
	}
	if after != "" {
		start, err := cursor.Decode(after, func(m map[string]string) bool {
			return len(m) == 2 && m["PK"] == "SITE#"+siteID && strings.HasPrefix(m["SK"], "TARGET#")
		})
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list targets of %s: %w", siteID, err)
	}
	targets := make([]Target, 0, len(out.Items))
	for _, it := range out.Items {
		t, err := unmarshal(it)
		if err != nil {
			return nil, "", err
		}
		targets = append(targets, t)
	}
	next, err := cursor.Encode(out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return targets, next, nil
}

// Update applies in's given fields to a site's target. A connectionId that
// is not one of the site's connections is a 422 naming it; a concurrent
// update is a conflict.
func (s *Store) Update(ctx context.Context, siteID, id string, in Input) (Target, error) {
	t, err := s.Get(ctx, siteID, id)
	if err != nil {
		return Target{}, err
	}
	read := t.Version
	before := t.ConnectionID
	if ps := in.apply(&t, false); len(ps) > 0 {
		return Target{}, apperr.InvalidProblems(ps)
	}
	if t.ConnectionID != before {
		if err := s.checkConnection(ctx, &t); err != nil {
			return Target{}, err
		}
	}
	t.Version = read + 1
	t.UpdatedAt = s.now().UTC()
	err = s.put(ctx, t, "#version = :v", map[string]types.AttributeValue{
		":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(read, 10)},
	})
	if err != nil {
		return Target{}, err
	}
	return t, nil
}

// Delete removes a site's target. Deliveries already created for it keep
// their frozen text and connection.
func (s *Store) Delete(ctx context.Context, siteID, id string) error {
	if !ValidID(id) {
		return errNotFound()
	}
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:           &s.table,
		Key:                 key(siteID, id),
		ConditionExpression: aws.String("attribute_exists(PK)"),
	})
	if isConditionFailed(err) {
		return errNotFound()
	}
	if err != nil {
		return fmt.Errorf("delete target %s: %w", id, err)
	}
	return nil
}
