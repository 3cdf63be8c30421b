package engagement_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// growingReader answers likes = 10 × the reading number, views = 100 ×.
type growingReader struct{ n int64 }

func (g *growingReader) MetricsReader(platform.Name) (platform.MetricsReader, bool) { return g, true }
func (g *growingReader) MetricsBatch() int                                          { return 25 }
func (g *growingReader) MetricsScopes() []string                                    { return nil }
func (g *growingReader) ReadMetrics(_ context.Context, _ platform.Account, ids []string) (map[string]platform.Reading, error) {
	g.n++
	out := map[string]platform.Reading{}
	for _, id := range ids {
		r := platform.NewReading(id, time.Now())
		likes, views := 10*g.n, 100*g.n
		r.Set(platform.Likes, "likeCount", &likes)
		r.Set(platform.Views, "views", &views)
		out[id] = r
	}
	return out, nil
}

type accounts struct{}

func (accounts) Ensure(context.Context, string, string) (platform.Account, error) {
	return platform.Account{ID: "a", AccessToken: "t"}, nil
}

type conns struct{}

func (conns) Get(context.Context, string, string) (connection.Connection, error) {
	return connection.Connection{Status: connection.StatusActive}, nil
}

func TestIntegrationReadingsEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	c := &clock{t: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	led := ledger.NewStore(db, table, c.Now)
	dl, _, err := led.CreateAll(ctx, []ledger.NewDelivery{{SiteID: "site_a", PostID: "p1", Revision: "r1", TargetID: "t1",
		ConnectionID: "conn_1", Platform: platform.Bluesky, Text: "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := led.Claim(ctx, "site_a", dl[0].ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "at://did/app.bsky.feed.post/1"}}); err != nil {
		t.Fatal(err)
	}
	rd := &growingReader{}
	store := engagement.NewStore(db, table)
	col, err := engagement.New(engagement.Config{Work: led, Store: store, Readers: rd, Accounts: accounts{}, Connections: conns{},
		Limiter: ratelimit.New(db, table, c.Now), ReadAfter: []time.Duration{time.Hour, 2 * time.Hour}, ReadsPerHour: 5, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	run := func(want int) {
		t.Helper()
		st, err := col.Run(ctx)
		if err != nil || st.Read != want {
			t.Fatalf("Run: got %+v, %v, want %d read", st, err, want)
		}
	}
	run(0) // not due yet
	c.Advance(time.Hour + time.Second)
	run(1)
	run(0) // the next is due at sent + 2h
	c.Advance(time.Hour)
	run(1)
	c.Advance(time.Hour)
	run(0) // done

	got, err := led.Get(ctx, "site_a", dl[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.MetricsReads != 2 || got.MetricsStatus != ledger.MetricsDone || got.MetricsLast["likes"] != 20 {
		t.Errorf("delivery: got reads %d status %q last %v, want 2 done likes 20", got.MetricsReads, got.MetricsStatus, got.MetricsLast)
	}
	rs, err := store.Readings(ctx, "site_a", dl[0].ID)
	if err != nil || len(rs) != 2 || rs[0].Figures["likes"] != 10 || rs[1].Figures["views"] != 200 || rs[1].N != 2 {
		t.Fatalf("readings: got %+v, %v, want two growing readings", rs, err)
	}
	if other, _ := store.Readings(ctx, "site_b", dl[0].ID); len(other) != 0 {
		t.Errorf("another site's readings: got %d, want 0", len(other))
	}
	// The day's counters hold the latest figures (sums of the deltas).
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "SITE#site_a#STATS"}, "SK": &types.AttributeValueMemberS{Value: "2026-12-04#bluesky"}}})
	if err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[string]string{"eng_likes": "20", "eng_views": "200", "eng_posts": "1", "eng_posts_likes": "1"} {
		if v, _ := out.Item[attr].(*types.AttributeValueMemberN); v == nil || v.Value != want {
			t.Errorf("stats %s: got %v, want %s", attr, out.Item[attr], want)
		}
	}
	_ = stats.DateLayout
}
