package ledger_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// countingDB counts the ledger's DynamoDB calls.
type countingDB struct {
	*dynamodb.Client
	n atomic.Int64
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.n.Add(1)
	return c.Client.GetItem(ctx, in, o...)
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.n.Add(1)
	return c.Client.PutItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.n.Add(1)
	return c.Client.UpdateItem(ctx, in, o...)
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.n.Add(1)
	return c.Client.Query(ctx, in, o...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.n.Add(1)
	return c.Client.TransactWriteItems(ctx, in, o...)
}

// TestIntegrationPublishPathCalls pins the ledger's DynamoDB calls for one
// delivery from creation to sent: engagement readings add none (their
// index entry is an attribute of the outcome's own write).
func TestIntegrationPublishPathCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := dynamodb.NewFromConfig(mototest.Config(t))
	db := &countingDB{Client: client}
	s := ledger.NewStore(db, mototest.Table(t, client), nil)
	ds, _, err := s.CreateAll(ctx, []ledger.NewDelivery{{SiteID: "site_a", PostID: "p1", Revision: "r1", TargetID: "t1",
		ConnectionID: "c1", Platform: platform.Mastodon, Text: "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	created := db.n.Load()
	lease, err := s.Claim(ctx, "site_a", ds[0].ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	claimed := db.n.Load() - created
	if _, err := lease.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1"}}); err != nil {
		t.Fatal(err)
	}
	finished := db.n.Load() - created - claimed
	t.Logf("ledger DynamoDB calls per delivery: create %d, claim %d, finish (sent) %d", created, claimed, finished)
	// The claim was a read and a conditional write until it became one
	// conditional UpdateItem (issue 10).
	if created != 2 || claimed != 1 || finished != 1 {
		t.Errorf("calls: got create %d claim %d finish %d, want 2, 1, 1", created, claimed, finished)
	}
}
