package connection

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// batchGetAPI is BatchGetItem, which the DynamoDB client has: ReadAlong
// reads a connection and other items in one request with it. A dynamoAPI
// without it (the unit tests' in-memory table) reads them one by one.
type batchGetAPI interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// getAlong reads a connection and the item at also in one consistent
// BatchGetItem. The item is nil when it does not exist; the connection's
// absence is a not_found error, returned with the item.
func (s *Store) getAlong(ctx context.Context, siteID, id string, also map[string]types.AttributeValue) (record, map[string]types.AttributeValue, error) {
	db, ok := s.db.(batchGetAPI)
	if !ok || !validID(id) {
		item, err := s.getItem(ctx, also)
		if err != nil {
			return record{}, nil, err
		}
		rec, err := s.get(ctx, siteID, id)
		return rec, item, err
	}
	conn := connKey(siteID, id)
	keys := []map[string]types.AttributeValue{conn, also}
	var found []map[string]types.AttributeValue
	for try := 0; len(keys) > 0; try++ {
		if try == 3 {
			return record{}, nil, apperr.New(apperr.KindTransient, "connection.read_throttled", "the connection could not be read: DynamoDB left keys unprocessed; try again")
		}
		out, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			s.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
		}})
		if err != nil {
			return record{}, nil, fmt.Errorf("get connection %s: %w", id, err)
		}
		found = append(found, out.Responses[s.table]...)
		keys = out.UnprocessedKeys[s.table].Keys
	}
	var (
		rec   record
		item  map[string]types.AttributeValue
		seen  bool
		match = func(it, k map[string]types.AttributeValue) bool {
			pk, _ := it["PK"].(*types.AttributeValueMemberS)
			sk, _ := it["SK"].(*types.AttributeValueMemberS)
			kp, _ := k["PK"].(*types.AttributeValueMemberS)
			ks, _ := k["SK"].(*types.AttributeValueMemberS)
			return pk != nil && sk != nil && kp != nil && ks != nil && pk.Value == kp.Value && sk.Value == ks.Value
		}
	)
	for _, it := range found {
		switch {
		case match(it, conn):
			r, err := unmarshalRecord(it)
			if err != nil {
				return record{}, nil, err
			}
			rec, seen = r, true
		case match(it, also):
			item = it
		}
	}
	if !seen {
		return record{}, item, apperr.NotFound("connection")
	}
	return rec, item, nil
}

// getItem reads any item of the table (nil when it does not exist).
func (s *Store) getItem(ctx context.Context, k map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get item: %w", err)
	}
	return out.Item, nil
}

// ReadAlong reads a site's connection together with one other item of the
// table at also (the dispatcher's platform block), in one request, and
// returns that item (nil when absent) and open, which is Ensure from the
// connection as read: fresh credentials, refreshing them first when they
// expire within their window. ReadAlong itself neither decrypts nor
// refreshes, so a caller that learns from the item not to publish pays for
// neither. open's errors are Ensure's (not_found, a broken connection).
func (r *Refresher) ReadAlong(ctx context.Context, siteID, id string, also map[string]types.AttributeValue) (item map[string]types.AttributeValue, open func(context.Context) (platform.Account, error), err error) {
	rec, item, err := r.cfg.Store.getAlong(ctx, siteID, id, also)
	if err != nil && !apperr.Is(err, apperr.KindNotFound) {
		return nil, nil, err
	}
	if err != nil {
		gone := err
		return item, func(context.Context) (platform.Account, error) { return platform.Account{}, gone }, nil
	}
	return item, func(ctx context.Context) (platform.Account, error) { return r.ensureFrom(ctx, siteID, id, "", &rec) }, nil
}
