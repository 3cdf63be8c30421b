package moto_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/local/mototest"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func k(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": s(pk), "SK": s("x")}
}

// TestTransactionsAreAllOrNothing: serve.py's TransactWriteItems (which
// restores the items it wrote instead of copying the table) keeps
// DynamoDB's rules: all writes or none, the cancellation reason of each
// item in order, the item a failed condition saw when asked for it, a
// validation error for two operations on one item, and a write that fails
// after others landed undoes them.
func TestTransactionsAreAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	put := func(pk, v string) types.TransactWriteItem {
		it := k(pk)
		it["v"] = s(v)
		return types.TransactWriteItem{Put: &types.Put{TableName: &table, Item: it}}
	}
	get := func(pk string) map[string]types.AttributeValue {
		t.Helper()
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: k(pk), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	value := func(pk string) string {
		t.Helper()
		if it := get(pk); it != nil {
			return it["v"].(*types.AttributeValueMemberS).Value
		}
		return ""
	}

	// All hold: every write lands.
	if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{put("a", "1"), put("b", "1")}}); err != nil {
		t.Fatal(err)
	}
	if value("a") != "1" || value("b") != "1" {
		t.Fatalf("after a transaction: a=%q b=%q, want 1 and 1", value("a"), value("b"))
	}

	// The second condition fails: nothing is written; the reasons name it,
	// with the item it saw.
	cond := put("b", "2")
	cond.Put.ConditionExpression = aws.String("v = :want")
	cond.Put.ExpressionAttributeValues = map[string]types.AttributeValue{":want": s("0")}
	cond.Put.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{put("a", "2"), cond, put("c", "2")}})
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) || len(tce.CancellationReasons) != 3 {
		t.Fatalf("failed condition: got %v, want a cancellation with 3 reasons", err)
	}
	if got := []string{aws.ToString(tce.CancellationReasons[0].Code), aws.ToString(tce.CancellationReasons[1].Code), aws.ToString(tce.CancellationReasons[2].Code)}; got[0] != "None" || got[1] != "ConditionalCheckFailed" || got[2] != "None" {
		t.Errorf("reasons: got %v, want None, ConditionalCheckFailed, None", got)
	}
	if it := tce.CancellationReasons[1].Item; it == nil || it["v"].(*types.AttributeValueMemberS).Value != "1" {
		t.Errorf("the failed condition's item: got %v, want v=1", it)
	}
	if value("a") != "1" || value("b") != "1" || get("c") != nil {
		t.Errorf("after a cancelled transaction: a=%q b=%q c=%v, want 1, 1 and none", value("a"), value("b"), get("c"))
	}

	// Two operations on one item: a validation error, nothing written.
	_, err = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{put("d", "1"), put("d", "2")}})
	if err == nil || get("d") != nil {
		t.Errorf("two operations on one item: got %v and d=%v, want an error and no item", err, get("d"))
	}

	// A write that fails after others landed (ADD to a string): the
	// writes before it are undone, a new item removed and a changed one
	// restored.
	bad := types.TransactWriteItem{Update: &types.Update{TableName: &table, Key: k("b"), UpdateExpression: aws.String("ADD v :one"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}}}}
	if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{put("a", "3"), put("e", "3"), bad}}); err == nil {
		t.Fatal("ADD to a string in a transaction: got nil, want an error")
	}
	if value("a") != "1" || get("e") != nil || value("b") != "1" {
		t.Errorf("after a failed write: a=%q e=%v b=%q, want 1, none and 1", value("a"), get("e"), value("b"))
	}
}
