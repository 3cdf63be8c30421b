package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/audit"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/target"
)

// countingCalls counts AWS calls by API name.
type countingCalls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingCalls) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[op]++
}

// take returns the counts so far as "Op=n" sorted, and starts again.
func (c *countingCalls) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(c.n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", op, c.n[op]))
	}
	c.n = map[string]int{}
	return strings.Join(parts, " ")
}

// countingDB passes DynamoDB calls through to moto and counts them.
type countingDB struct {
	*countingCalls
	db *dynamodb.Client
}

func (c countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.db.GetItem(ctx, in, o...)
}

func (c countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.db.PutItem(ctx, in, o...)
}

func (c countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem")
	return c.db.UpdateItem(ctx, in, o...)
}

func (c countingDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.count("DeleteItem")
	return c.db.DeleteItem(ctx, in, o...)
}

func (c countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	return c.db.Query(ctx, in, o...)
}

func (c countingDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.count("BatchGetItem")
	return c.db.BatchGetItem(ctx, in, o...)
}

func (c countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count("TransactWriteItems")
	return c.db.TransactWriteItems(ctx, in, o...)
}

// countingSQS passes the SQS calls the API makes through to moto and
// counts them.
type countingSQS struct {
	*sqs.Client
	calls *countingCalls
}

func (c countingSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.calls.count("SendMessageBatch")
	return c.Client.SendMessageBatch(ctx, in, o...)
}

// countedServer is the API with the publishing dependencies real on the
// stack's moto table and queue, every DynamoDB and SQS call counted.
func countedServer(s *motoStack, calls *countingCalls) *Server {
	db := countingDB{countingCalls: calls, db: s.db}
	conns := connection.NewStore(db, s.table)
	led := ledger.NewStore(db, s.table, s.clock.Now)
	return New(Deps{
		Sites: site.NewStore(db, s.table, s.clock.Now, nil), MaxBodyBytes: 1 << 20, Now: s.clock.Now,
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Connections: storeConns{Store: conns, connMap: &connMap{}},
		Targets:     target.NewStore(db, s.table, conns, s.clock.Now, nil),
		Deliveries:  led,
		Snapshots:   compose.NewSnapshots(db, s.table, s.clock.Now),
		Publishers:  registry.New(registry.Config{}),
		Queue:       queue.New(queue.Config{SQS: countingSQS{Client: s.sqs, calls: calls}, DispatchURL: s.queueURL, DLQURL: s.dlqURL, DLQARN: s.dlqARN, Deliveries: led}),
		Idempotency: idempotency.NewStore(db, s.table, s.clock.Now, nil),
		Audit:       audit.NewStore(db, s.table, 0, s.clock.Now, nil),
		KeyCacheTTL: DefaultKeyCacheTTL,
	})
}

// TestIntegrationAWSCallsPerDispatch pins the AWS calls of one
// single-target POST /v1/dispatch through the real handler and stores on
// moto (call economy, issue 10): a change that adds one must show here.
func TestIntegrationAWSCallsPerDispatch(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	tx := s.target(s.keyA, "conn_xa", "X", "")
	// The key's last use was just recorded (creating the target), so no
	// call below refreshes it.
	calls := &countingCalls{n: map[string]int{}}
	srv := countedServer(s, calls)
	dispatch := func(rev, idemKey string, want int) http.Header {
		t.Helper()
		body := dispatchBody(`{"postId":"p1","revision":"`+rev+`","url":"https://alpha.example/p1"}`, []string{tx}, "")
		r := httptest.NewRequest("POST", "/v1/dispatch", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+s.keyA)
		if idemKey != "" {
			r.Header.Set(IdempotencyKeyHeader, idemKey)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != want {
			t.Fatalf("dispatch %s: got %d %s, want %d", rev, w.Code, w.Body, want)
		}
		return w.Header()
	}
	// Before (issue 10): GetItem=3 PutItem=3 BatchGetItem=1 without a key
	// (the API key, the connection, the delivery; the snapshot, the
	// delivery, the audit entry; the targets), PutItem=4 UpdateItem=1 with
	// one (the key's claim and answer).
	for _, tc := range []struct {
		name, rev, key string
		status         int
		want           string
	}{
		// The API key, the targets, the connections, one transaction
		// (snapshot, delivery, audit entry).
		{"cold instance", "1", "", 202, "BatchGetItem=2 GetItem=1 SendMessageBatch=1 TransactWriteItems=1"},
		// The key is cached for DefaultKeyCacheTTL.
		{"warm instance", "2", "", 202, "BatchGetItem=2 SendMessageBatch=1 TransactWriteItems=1"},
		// The key's answer is in the same transaction.
		{"with Idempotency-Key", "3", "k3", 202, "BatchGetItem=2 SendMessageBatch=1 TransactWriteItems=1"},
		// A replay reads what it needs to validate, finds the key taken by
		// the transaction's condition and answers from the record.
		{"replayed", "3", "k3", 202, "BatchGetItem=2 GetItem=1 TransactWriteItems=1"},
		{"same key, another body", "4", "k3", 422, "BatchGetItem=2 GetItem=1 TransactWriteItems=1"},
	} {
		calls.take()
		h := dispatch(tc.rev, tc.key, tc.status)
		if got := calls.take(); got != tc.want {
			t.Errorf("%s: calls of one single-target dispatch: got %s, want %s", tc.name, got, tc.want)
		}
		if tc.name == "replayed" && h.Get(ReplayedHeader) != "true" {
			t.Errorf("replayed: got header %q, want true", h.Get(ReplayedHeader))
		}
	}
	if n := len(s.drain(s.queueURL)); n != 3 {
		t.Errorf("messages: got %d, want 3 (one per new delivery)", n)
	}
}
