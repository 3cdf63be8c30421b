package ratelimit_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/ratelimit"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestIntegrationTakeAndBlock(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	var now atomic.Pointer[time.Time]
	start := time.Date(2026, 11, 2, 9, 59, 0, 0, time.UTC)
	now.Store(&start)
	l := ratelimit.New(db, table, func() time.Time { return *now.Load() })
	ctx := context.Background()

	// Sequential: moto_server applies concurrent updates of one item
	// without a lock (DynamoDB itself makes each conditional ADD atomic).
	ok := 0
	for range 8 {
		took, _, err := l.Take(ctx, "site_a", "target:t1", 5, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if took {
			ok++
		}
	}
	if ok != 5 {
		t.Errorf("takes allowed: got %d, want 5", ok)
	}
	took, end, err := l.Take(ctx, "site_a", "target:t1", 5, time.Hour)
	if err != nil || took || !end.Equal(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("over the limit: got %v until %s, %v; want refused until 10:00", took, end, err)
	}
	if took, _, _ := l.Take(ctx, "site_b", "target:t1", 5, time.Hour); !took {
		t.Error("another site's limit was used")
	}
	next := start.Add(2 * time.Minute)
	now.Store(&next)
	if took, _, _ := l.Take(ctx, "site_a", "target:t1", 5, time.Hour); !took {
		t.Error("a new window is still refused")
	}
	if took, _, _ := l.Take(ctx, "site_a", "target:t2", 0, time.Hour); !took {
		t.Error("no limit refused")
	}

	if _, blocked, err := l.Blocked(ctx, "site_a", "x:conn_1"); err != nil || blocked {
		t.Errorf("no block: got %v, %v", blocked, err)
	}
	until := next.Add(5 * time.Minute)
	if err := l.Block(ctx, "site_a", "x:conn_1", until); err != nil {
		t.Fatal(err)
	}
	if err := l.Block(ctx, "site_a", "x:conn_1", next.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, blocked, err := l.Blocked(ctx, "site_a", "x:conn_1")
	if err != nil || !blocked || !got.Equal(until) {
		t.Errorf("blocked: got %v until %s, %v; want until %s (an earlier block does not shorten it)", blocked, got, err, until)
	}
	later := until.Add(time.Second)
	now.Store(&later)
	if _, blocked, _ := l.Blocked(ctx, "site_a", "x:conn_1"); blocked {
		t.Error("the block outlived its end")
	}
}
