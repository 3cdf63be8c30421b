// Package ledgertest is an in-memory stand-in for the DynamoDB calls the
// ledger makes on single items (GetItem, conditional PutItem,
// TransactWriteItems of conditional puts and deletes), for unit tests of the ledger and
// the dispatcher. It understands exactly the condition expressions the
// ledger writes; listings (Query) are left to the integration tests
// against moto.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DB is the fake table. It is safe for concurrent use.
type DB struct {
	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue
	// BeforeWrite, when set, runs before each write with the item's key;
	// a non-nil error fails the write (fault injection).
	BeforeWrite func(pk, sk string) error
	// Writes counts successful writes.
	Writes int
}

// New returns an empty table.
func New() *DB { return &DB{items: map[string]map[string]types.AttributeValue{}} }

func s(v types.AttributeValue) string {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return "S:" + x.Value
	case *types.AttributeValueMemberN:
		return "N:" + x.Value
	case nil:
		return ""
	}
	return fmt.Sprintf("%T", v)
}

func keyOf(item map[string]types.AttributeValue) (string, string, string) {
	pk, sk := s(item["PK"]), s(item["SK"])
	return pk + "|" + sk, strings.TrimPrefix(pk, "S:"), strings.TrimPrefix(sk, "S:")
}

// GetItem implements the ledger's dynamoAPI.
func (d *DB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, _, _ := keyOf(in.Key)
	it := d.items[k]
	if it == nil {
		return &dynamodb.GetItemOutput{}, nil
	}
	return &dynamodb.GetItemOutput{Item: maps.Clone(it)}, nil
}

// PutItem implements the ledger's dynamoAPI.
func (d *DB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(in.Item, in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); err != nil {
		return nil, err
	}
	k, _, _ := keyOf(in.Item)
	d.items[k] = maps.Clone(in.Item)
	d.Writes++
	return &dynamodb.PutItemOutput{}, nil
}

// DeleteItem deletes an item, conditionally like PutItem (for stores that
// share the table with the ledger in unit tests, such as shared/schedule).
func (d *DB) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// check only reads the key attributes of the item it is given.
	if err := d.check(in.Key, in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); err != nil {
		return nil, err
	}
	k, _, _ := keyOf(in.Key)
	delete(d.items, k)
	d.Writes++
	return &dynamodb.DeleteItemOutput{}, nil
}

// Query is not supported: listings are tested against moto.
func (d *DB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, errors.New("ledgertest: Query is not supported; use the moto integration tests")
}

// TransactWriteItems implements the ledger's dynamoAPI for puts and
// deletes.
func (d *DB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var reasons []types.CancellationReason
	failed := false
	for _, t := range in.TransactItems {
		var err error
		switch {
		case t.Put != nil:
			err = d.check(t.Put.Item, t.Put.ConditionExpression, t.Put.ExpressionAttributeNames, t.Put.ExpressionAttributeValues)
		case t.Delete != nil:
			// check only reads the key attributes of the item it is given.
			err = d.check(t.Delete.Key, t.Delete.ConditionExpression, t.Delete.ExpressionAttributeNames, t.Delete.ExpressionAttributeValues)
		default:
			return nil, errors.New("ledgertest: only Put and Delete are supported in transactions")
		}
		code := "None"
		if err != nil {
			var ccf *types.ConditionalCheckFailedException
			if !errors.As(err, &ccf) {
				return nil, err
			}
			code, failed = "ConditionalCheckFailed", true
		}
		reasons = append(reasons, types.CancellationReason{Code: &code})
	}
	if failed {
		return nil, &types.TransactionCanceledException{CancellationReasons: reasons}
	}
	for _, t := range in.TransactItems {
		if t.Delete != nil {
			k, _, _ := keyOf(t.Delete.Key)
			delete(d.items, k)
			d.Writes++
			continue
		}
		k, _, _ := keyOf(t.Put.Item)
		d.items[k] = maps.Clone(t.Put.Item)
		d.Writes++
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// check evaluates a condition of clauses joined by AND: attribute_exists(a),
// attribute_not_exists(a) and a = :v (a may be a #name).
func (d *DB) check(item map[string]types.AttributeValue, cond *string, names map[string]string, values map[string]types.AttributeValue) error {
	k, pk, sk := keyOf(item)
	if d.BeforeWrite != nil {
		if err := d.BeforeWrite(pk, sk); err != nil {
			return err
		}
	}
	if cond == nil {
		return nil
	}
	cur := d.items[k]
	name := func(a string) string {
		if n, ok := names[a]; ok {
			return n
		}
		return a
	}
	for _, c := range strings.Split(*cond, " AND ") {
		c = strings.TrimSpace(c)
		var ok bool
		switch {
		case strings.HasPrefix(c, "attribute_exists(") && strings.HasSuffix(c, ")"):
			_, ok = cur[name(c[len("attribute_exists("):len(c)-1])]
		case strings.HasPrefix(c, "attribute_not_exists(") && strings.HasSuffix(c, ")"):
			_, exists := cur[name(c[len("attribute_not_exists("):len(c)-1])]
			ok = !exists
		default:
			a, v, found := strings.Cut(c, " = ")
			if !found {
				return fmt.Errorf("ledgertest: unsupported condition %q", c)
			}
			want, known := values[strings.TrimSpace(v)]
			if !known {
				return fmt.Errorf("ledgertest: no value for %q", v)
			}
			got := cur[name(strings.TrimSpace(a))]
			ok = got != nil && s(got) == s(want)
		}
		if !ok {
			return &types.ConditionalCheckFailedException{Message: &c}
		}
	}
	return nil
}

// Item returns a stored item, or nil.
func (d *DB) Item(pk, sk string) map[string]types.AttributeValue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.items["S:"+pk+"|S:"+sk])
}
