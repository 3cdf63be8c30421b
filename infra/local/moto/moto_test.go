package moto_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// TestCountersAreAtomic: concurrent ADDs on one item must all count, as on
// DynamoDB (moto_server alone loses some; serve.py serialises them).
func TestCountersAreAtomic(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	const workers, each = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
					TableName:                 &table,
					Key:                       map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: "C"}, "SK": &types.AttributeValueMemberS{Value: "C"}},
					UpdateExpression:          aws.String("ADD n :one"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("UpdateItem: %v", err)
	}
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: "C"}, "SK": &types.AttributeValueMemberS{Value: "C"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.Atoi(out.Item["n"].(*types.AttributeValueMemberN).Value)
	if got != workers*each {
		t.Fatalf("counter after %d concurrent ADDs: got %d, want %d", workers*each, got, workers*each)
	}
	calls, err := moto.Calls(mototest.Server(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if calls["DynamoDB_20120810.UpdateItem"] < workers*each {
		t.Fatalf("counted UpdateItem calls: got %d, want at least %d", calls["DynamoDB_20120810.UpdateItem"], workers*each)
	}
}
