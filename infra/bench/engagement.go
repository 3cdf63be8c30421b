package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/ratelimit"
)

// engagementReads measures engagement reading: posts read per second per
// platform through each adapter against the simulator (in the platform's
// batches), against bare loopback requests to the same server; and the
// DynamoDB calls the collector makes per reading, against moto.
func engagementReads(ctx context.Context, srv *moto.Server) ([]result, error) {
	const perPlatform = 200
	sim := platformsim.New(platformsim.Options{})
	hs := httptest.NewServer(sim)
	defer hs.Close()
	sim.SetPublicURL(hs.URL)
	reg := registry.New(registry.Config{BaseURL: hs.URL, HTTPClient: hs.Client(), Instances: outbound.NewClient(outbound.Options{AllowLoopback: true})})
	accts := map[platform.Name]platform.Account{}
	created := time.Now().Add(-time.Hour)
	ids := map[platform.Name][]string{}
	for _, p := range platform.All {
		a := platformsim.Account{Platform: string(p), ID: "bench-" + string(p), Handle: "bench", AccessToken: "tok-bench-" + string(p)}
		sim.AddAccount(a)
		acct := platform.Account{ID: a.ID, Handle: a.Handle, AccessToken: a.AccessToken}
		if p == platform.Mastodon || p == platform.Bluesky {
			acct.BaseURL = hs.URL + "/" + string(p)
		}
		accts[p] = acct
		for i := range perPlatform {
			id := strconv.Itoa(8100000000 + i)
			switch p {
			case platform.LinkedIn:
				id = "urn:li:share:" + id
			case platform.Bluesky:
				id = "at://" + a.ID + "/app.bsky.feed.post/" + id
			}
			sim.SeedPost(platformsim.Post{Platform: string(p), ID: id, AccountID: a.ID, CreatedAt: created})
			ids[p] = append(ids[p], id)
		}
	}
	// Floor: bare requests to the same server, one at a time.
	floorN := 500
	start := time.Now()
	for range floorN {
		resp, err := hs.Client().Get(hs.URL + "/_sim/calls")
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
	}
	floor := float64(floorN) / time.Since(start).Seconds()
	var out []result
	for _, p := range platform.All {
		rd, _ := reg.MetricsReader(p)
		start := time.Now()
		n := 0
		for _, batch := range platform.Batches(ids[p], rd.MetricsBatch()) {
			got, err := rd.ReadMetrics(ctx, accts[p], batch)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			n += len(got)
		}
		rate := float64(n) / time.Since(start).Seconds()
		out = append(out, withFloor(result{Name: "metric reads/s, " + string(p), Value: rate, Unit: "posts/s",
			Note: fmt.Sprintf("batch %d; floor: bare loopback requests/s", rd.MetricsBatch())}, floor))
	}

	// DynamoDB calls per reading: 100 sent Bluesky deliveries (batches of
	// 25) of one connection, read once by the collector.
	db := &countingDB{Client: dynamodb.NewFromConfig(moto.Config(srv.Endpoint()))}
	table := "bench-engagement"
	if err := createTable(ctx, db.Client, table); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	led := ledger.NewStore(db, table, clock)
	const deliveries = 100
	for i := range deliveries {
		ds, _, err := led.CreateAll(ctx, []ledger.NewDelivery{{SiteID: "site_bench", PostID: "p" + strconv.Itoa(i), Revision: "1",
			TargetID: "t1", ConnectionID: "conn_b", Platform: platform.Bluesky, Text: "bench"}})
		if err != nil {
			return nil, err
		}
		lease, err := led.Claim(ctx, "site_bench", ds[0].ID, ledger.Policy{})
		if err != nil {
			return nil, err
		}
		if _, err := lease.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: ids[platform.Bluesky][i]}}); err != nil {
			return nil, err
		}
	}
	now = now.Add(2 * time.Hour)
	col, err := engagement.New(engagement.Config{Work: led, Store: engagement.NewStore(db, table), Readers: reg,
		Accounts: benchAccounts{accts[platform.Bluesky]}, Connections: benchConns{}, Limiter: ratelimit.New(db, table, clock),
		ReadAfter: []time.Duration{time.Hour, 24 * time.Hour}, ReadsPerHour: 1000, Now: clock})
	if err != nil {
		return nil, err
	}
	db.calls.Store(0)
	st, err := col.Run(ctx)
	if err != nil {
		return nil, err
	}
	if st.Read != deliveries {
		return nil, fmt.Errorf("collector read %d of %d deliveries: %+v", st.Read, deliveries, st)
	}
	out = append(out, result{Name: "DynamoDB calls per reading", Value: float64(db.calls.Load()) / float64(st.Read), Unit: "calls",
		Note: fmt.Sprintf("%d readings of one connection in %d platform calls: 2 queries, 1 batch get per 100, 2 block reads, 1 budget take per batch, 1 transaction per reading (the connection read and credential open are faked here: +1-2 per connection)", st.Read, st.Calls)})
	return out, nil
}

// countingDB counts the DynamoDB calls made through it.
type countingDB struct {
	*dynamodb.Client
	calls atomic.Int64
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.calls.Add(1)
	return c.Client.GetItem(ctx, in, o...)
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.calls.Add(1)
	return c.Client.PutItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.calls.Add(1)
	return c.Client.UpdateItem(ctx, in, o...)
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.calls.Add(1)
	return c.Client.Query(ctx, in, o...)
}

func (c *countingDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.calls.Add(1)
	return c.Client.BatchGetItem(ctx, in, o...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.calls.Add(1)
	return c.Client.TransactWriteItems(ctx, in, o...)
}

type benchAccounts struct{ acct platform.Account }

func (b benchAccounts) Ensure(context.Context, string, string) (platform.Account, error) {
	return b.acct, nil
}

type benchConns struct{}

func (benchConns) Get(context.Context, string, string) (connection.Connection, error) {
	return connection.Connection{Status: connection.StatusActive}, nil
}

// createTable creates the single table with its two GSIs, as the template
// does.
func createTable(ctx context.Context, db *dynamodb.Client, table string) error {
	attr := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	keys := func(h, r string) []types.KeySchemaElement {
		return []types.KeySchemaElement{{AttributeName: aws.String(h), KeyType: types.KeyTypeHash}, {AttributeName: aws.String(r), KeyType: types.KeyTypeRange}}
	}
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{attr("PK"), attr("SK"), attr("GSI1PK"), attr("GSI1SK"), attr("GSI2PK"), attr("GSI2SK")},
		KeySchema:            keys("PK", "SK"),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{IndexName: aws.String("GSI1"), KeySchema: keys("GSI1PK", "GSI1SK"), Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll}},
			{IndexName: aws.String("GSI2"), KeySchema: keys("GSI2PK", "GSI2SK"), Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}},
		},
	})
	if err != nil {
		return fmt.Errorf("create the engagement bench table: %w", err)
	}
	return nil
}
