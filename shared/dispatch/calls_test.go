package dispatch_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/vault"
)

// countingDB passes DynamoDB calls through to moto and counts them by
// operation.
type countingDB struct {
	db *dynamodb.Client
	mu sync.Mutex
	n  map[string]int
}

func (c *countingDB) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[op]++
}

// take returns the counts so far as "Op=n" sorted, and starts again.
func (c *countingDB) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(c.n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", op, c.n[op]))
	}
	c.n = map[string]int{}
	return strings.Join(parts, " ")
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.db.GetItem(ctx, in, o...)
}

func (c *countingDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.count("BatchGetItem")
	return c.db.BatchGetItem(ctx, in, o...)
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.db.PutItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem")
	return c.db.UpdateItem(ctx, in, o...)
}

func (c *countingDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.count("DeleteItem")
	return c.db.DeleteItem(ctx, in, o...)
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	return c.db.Query(ctx, in, o...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count("TransactWriteItems")
	return c.db.TransactWriteItems(ctx, in, o...)
}

// countingDispatcher is a Dispatcher wired as the dispatch function wires
// it (ledger, connection, limiter, statistics) on a DynamoDB client that
// counts its calls.
func countingDispatcher(t *testing.T, s *stack) (*dispatch.Dispatcher, *countingDB) {
	t.Helper()
	db := &countingDB{db: s.e.DB, n: map[string]int{}}
	v, err := vault.New(s.e.KMS, vault.Config{KeyID: s.e.KeyAlias})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := connection.NewRefresher(connection.RefresherConfig{Store: connection.NewStore(db, s.e.Table), Vault: v,
		OAuth: oauth.New(oauth.Config{}), Now: s.e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatch.New(dispatch.Config{
		Ledger: ledger.NewStore(db, s.e.Table, s.e.Clock.Now), Accounts: ref, Publishers: s.reg,
		Limiter: ratelimit.New(db, s.e.Table, s.e.Clock.Now), Stats: stats.New(db, s.e.Table),
		Queue: s.sqs, QueueURL: s.queue, Logger: s.e.Log, Now: s.e.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, db
}

// TestIntegrationDynamoDBCallsPerDelivery pins the DynamoDB calls one
// delivery attempt makes, by outcome, through everything the dispatch
// function wires (ledger, connection, limiter, statistics): call economy
// (architecture §12, issue 10) means a change that adds one must show up
// here.
func TestIntegrationDynamoDBCallsPerDelivery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault platformsim.FaultKind
		state ledger.State
		calls string
	}{
		// UpdateItem: the claim (one conditional write that returns the
		// delivery), the target's hourly limit and the statistics (one
		// write per SQS batch: here a batch of one); BatchGetItem: the
		// connection and the platform's block on it; PutItem: the
		// adapter's checkpoint before its create call, fenced;
		// TransactWriteItems: the outcome and its event (the webhook
		// outbox). Before issue 10: GetItem=3 PutItem=3
		// TransactWriteItems=1 UpdateItem=2.
		{"sent", "", ledger.StateSent, "BatchGetItem=1 PutItem=1 TransactWriteItems=1 UpdateItem=3"},
		{"retrying", platformsim.FaultServerError, ledger.StateRetrying, "BatchGetItem=1 PutItem=1 TransactWriteItems=1 UpdateItem=3"},
		// No event; the outcome is a PutItem, and the platform's block an
		// UpdateItem.
		{"deferred by the platform", platformsim.FaultRateLimit, ledger.StateDeferred, "BatchGetItem=1 PutItem=2 UpdateItem=3"},
		// Renew reads the connection again and marks it broken, with its
		// connection.broken event in the same transaction.
		{"failed: token refused", platformsim.FaultExpiredToken, ledger.StateFailed, "BatchGetItem=1 GetItem=1 PutItem=1 TransactWriteItems=2 UpdateItem=3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			s.connect(platform.Mastodon)
			d, db := countingDispatcher(t, s)
			dl := s.create(platform.Mastodon, "counted")
			if tc.fault != "" {
				s.e.Sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: tc.fault, ResetSeconds: 60})
			}
			db.take()
			rec := dispatch.Record{MessageID: "m1", Body: ledger.DeliveryMessage(dl.SiteID, dl.ID).Encode(), ReceiveCount: 1}
			if err := d.HandleRecord(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			calls := db.take()
			if got := s.get(dl.ID).State; got != tc.state {
				t.Fatalf("state: got %s, want %s", got, tc.state)
			}
			if calls != tc.calls {
				t.Errorf("DynamoDB calls of one %s attempt: got %s, want %s", tc.state, calls, tc.calls)
			}
		})
	}
}

// TestIntegrationDynamoDBCallsPerBatch pins the calls of an SQS batch of
// ten deliveries to targets without an hourly limit of their own: four per
// delivery (claim, connection and block, checkpoint, outcome with its
// event) and one statistics write for the batch, and the counters still
// count every delivery.
func TestIntegrationDynamoDBCallsPerBatch(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.connect(platform.Mastodon)
	d, db := countingDispatcher(t, s)
	const n = 10
	var recs []dispatch.Record
	for i := range n {
		nd := ledger.NewDelivery{SiteID: s.e.Site.ID, PostID: fmt.Sprint("post", i), Revision: "r1", TargetID: "tgt_mastodon",
			ConnectionID: s.conns[platform.Mastodon], Platform: platform.Mastodon, Text: fmt.Sprint("Hello number ", i)}
		out, _, err := s.ledger.CreateAll(s.e.Ctx, []ledger.NewDelivery{nd})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, dispatch.Record{MessageID: fmt.Sprint("m", i), Body: ledger.DeliveryMessage(s.e.Site.ID, out[0].ID).Encode(), ReceiveCount: 1})
	}
	db.take()
	if failed := d.Handle(context.Background(), recs); len(failed) != 0 {
		t.Fatalf("failed records: %v", failed)
	}
	calls := db.take()
	want := fmt.Sprintf("BatchGetItem=%d PutItem=%d TransactWriteItems=%d UpdateItem=%d", n, n, n, n+1)
	if calls != want {
		t.Errorf("DynamoDB calls of a batch of %d: got %s, want %s", n, calls, want)
	}
	rep, err := stats.New(s.e.DB, s.e.Table).Query(s.e.Ctx, s.e.Site.ID, s.e.Clock.Now().Add(-24*time.Hour), s.e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Sent != n {
		t.Errorf("sent counted: got %d, want %d", rep.Summary.Sent, n)
	}
}
