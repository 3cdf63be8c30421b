package ai

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/llm"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// countingDB counts the calls made to DynamoDB. With serial set it runs
// UpdateItem calls one at a time: moto applies concurrent updates of one
// item without a lock, where DynamoDB makes each conditional update atomic.
type countingDB struct {
	dynamoAPI
	serial bool

	mu     sync.Mutex
	counts map[string]int
	update sync.Mutex
}

func newCountingDB(db dynamoAPI, serial bool) *countingDB {
	return &countingDB{dynamoAPI: db, serial: serial, counts: map[string]int{}}
}

func (c *countingDB) add(op string) {
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
}

func (c *countingDB) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	clear(c.counts)
	return out
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.add("GetItem")
	return c.dynamoAPI.GetItem(ctx, in, opts...)
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.add("PutItem")
	return c.dynamoAPI.PutItem(ctx, in, opts...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.add("UpdateItem")
	if c.serial {
		c.update.Lock()
		defer c.update.Unlock()
	}
	return c.dynamoAPI.UpdateItem(ctx, in, opts...)
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.add("Query")
	return c.dynamoAPI.Query(ctx, in, opts...)
}

// motoTable returns a client of the test binary's moto and a fresh table.
func motoTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	return db, mototest.Table(t, db)
}

func newMotoRouter(t *testing.T, db dynamoAPI, table string, c Config, ps ...llm.Provider) *Router {
	t.Helper()
	c.DB, c.Table, c.Providers = db, table, ps
	if c.Now == nil {
		c.Now = func() time.Time { return fixedNow }
	}
	if c.ChainBudget == 0 {
		c.ChainBudget = 15 * time.Second // moto under -race is slower than DynamoDB
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIntegrationCooldownAcrossRouters(t *testing.T) {
	t.Parallel()
	db, table := motoTable(t)
	clk := newClock(fixedNow)
	badA := provider(llm.Cohere, fails(llm.CodeServer, 0))
	badB := provider(llm.Cohere, fails(llm.CodeServer, 0))
	a := newMotoRouter(t, db, table, Config{Now: clk.now}, badA, provider(llm.OpenAI, answers(goodText)))
	b := newMotoRouter(t, db, table, Config{Now: clk.now}, badB, provider(llm.OpenAI, answers(goodText)))
	ctx := context.Background()
	for i := range 3 {
		in := baseInput()
		in.PostID = fmt.Sprint("p", i)
		res, err := a.Adapt(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Attempts[0].Code != llm.CodeServer || res.Provider != string(llm.OpenAI) {
			t.Fatalf("adapt %d on A: got %+v, want cohere failing then openai", i, res.Attempts)
		}
	}
	in := baseInput()
	in.PostID = "on-b"
	res, err := b.Adapt(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if badB.calls.Load() != 0 || res.Attempts[0].Code != CodeCooldown || res.Provider != string(llm.OpenAI) {
		t.Errorf("B: got %d cohere calls and %+v, want cohere cooled down by A's failures", badB.calls.Load(), res.Attempts)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: key(cooldownPK, "cohere")})
	if err != nil {
		t.Fatal(err)
	}
	if until := getTime(out.Item, "until_ms"); !until.Equal(fixedNow.Add(time.Minute)) || getNum(out.Item, "expires_at") <= fixedNow.Unix() {
		t.Errorf("cooldown item: got %v, want until %s and a TTL", out.Item, fixedNow.Add(time.Minute))
	}
	clk.set(fixedNow.Add(61 * time.Second))
	in.PostID = "later"
	if _, err := b.Adapt(ctx, in); err != nil {
		t.Fatal(err)
	}
	if badB.calls.Load() != 1 {
		t.Errorf("after the cooldown: got %d cohere calls on B, want 1", badB.calls.Load())
	}
}

func TestIntegrationBudgetConcurrent(t *testing.T) {
	t.Parallel()
	db, table := motoTable(t)
	cdb := newCountingDB(db, true)
	// The fake reports exactly the reserved estimate as usage, so settling
	// frees nothing and the budget pays for exactly 10 calls.
	p := provider(llm.OpenAI, func(_ context.Context, req llm.Request, _ int) (llm.Response, error) {
		time.Sleep(20 * time.Millisecond)
		return llm.Response{Text: answerJSON(goodText), Usage: llm.Usage{
			InputTokens: (len(req.System)+len(req.User))/2 + 64, OutputTokens: req.MaxOutputTokens, Reported: true}}, nil
	})
	r := newMotoRouter(t, cdb, table, Config{}, p)
	req, err := buildRequest(baseInput(), 0)
	if err != nil {
		t.Fatal(err)
	}
	est := r.estimate(llm.OpenAI, "gpt-4.1-nano", req)
	var wg sync.WaitGroup
	results := make([]Result, 50)
	for i := range results {
		wg.Go(func() {
			in := baseInput()
			in.PostID = fmt.Sprint("post_", i)
			in.Budget = 10 * est
			res, err := r.Adapt(context.Background(), in)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	calls := int(p.calls.Load())
	ai, exhausted := 0, 0
	for _, res := range results {
		switch {
		case res.Source == SourceAI:
			ai++
		case res.Reason == ReasonBudgetExhausted:
			exhausted++
		default:
			t.Errorf("unexpected result %+v", res)
		}
	}
	if calls > 10 || calls < 1 || ai != calls || exhausted != 50-calls {
		t.Errorf("got %d provider calls, %d AI texts, %d budget_exhausted; want at most 10 calls, one text each, the rest exhausted", calls, ai, exhausted)
	}
	if got, err := r.MonthCost(context.Background(), "site_a", fixedNow); err != nil || got != int64(calls)*est || got > 10*est {
		t.Errorf("month cost: got %d, %v; want %d", got, err, int64(calls)*est)
	}
	t.Logf("%d of 50 concurrent adapts called the provider (estimate %d micro-USD, budget %d)", calls, est, 10*est)
}

func TestIntegrationCacheAcrossRouters(t *testing.T) {
	t.Parallel()
	db, table := motoTable(t)
	var calls atomic.Int32
	slow := func() *fakeProvider {
		return provider(llm.OpenAI, func(ctx context.Context, req llm.Request, n int) (llm.Response, error) {
			calls.Add(1)
			time.Sleep(300 * time.Millisecond)
			return answers(goodText)(ctx, req, n)
		})
	}
	a := newMotoRouter(t, db, table, Config{}, slow())
	b := newMotoRouter(t, db, table, Config{}, slow())
	var wg sync.WaitGroup
	results := make([]Result, 3)
	for i, r := range []*Router{a, a, b} {
		wg.Go(func() {
			res, err := r.Adapt(context.Background(), baseInput())
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	cached := 0
	for _, res := range results {
		if res.Source != SourceAI || res.Text != results[0].Text {
			t.Errorf("got %s %q, want the same AI text everywhere", res.Source, res.Text)
		}
		if res.Cached {
			cached++
		}
	}
	if calls.Load() != 1 || cached != 2 {
		t.Errorf("got %d provider calls and %d cached results, want 1 and 2", calls.Load(), cached)
	}
	res, err := b.Adapt(context.Background(), baseInput())
	if err != nil || !res.Cached || res.Text != goodText || calls.Load() != 1 {
		t.Errorf("a later adapt: got cached=%v %q, %v, %d calls; want a cache hit", res.Cached, res.Text, err, calls.Load())
	}
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &table, Key: key(genPK("site_a"), genKey(baseInput()))})
	if err != nil {
		t.Fatal(err)
	}
	if getStr(out.Item, "state") != stateDone || getNum(out.Item, "expires_at") != fixedNow.Add(genTTL).Unix() {
		t.Errorf("cache item: got %v, want done with a 30-day TTL", out.Item)
	}
}

func TestIntegrationLedgerAndUsage(t *testing.T) {
	t.Parallel()
	db, table := motoTable(t)
	// Cohere answers without the link but reports usage: the failed call
	// still costs 500×0.0375 + 40×0.15 = 24.75 → 25 micro-USD.
	secret := "an answer that must never be stored"
	cohere := provider(llm.Cohere, func(context.Context, llm.Request, int) (llm.Response, error) {
		return llm.Response{Text: answerJSON(secret), Model: "command-r7b-12-2024", Usage: llm.Usage{InputTokens: 500, OutputTokens: 40, Reported: true}}, nil
	})
	// OpenAI reports no usage: estimated from the lengths.
	openai := provider(llm.OpenAI, func(context.Context, llm.Request, int) (llm.Response, error) {
		return llm.Response{Text: answerJSON(goodText)}, nil
	})
	r := newMotoRouter(t, db, table, Config{}, cohere, openai)
	ctx := context.Background()
	res, err := r.Adapt(ctx, baseInput())
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != SourceAI || res.Provider != string(llm.OpenAI) || !res.Estimated || res.CostMicros <= 25 {
		t.Fatalf("got %+v, want openai's text, estimated, costing more than cohere's 25", res)
	}
	out, err := db.Query(ctx, &dynamodb.QueryInput{
		TableName: &table, KeyConditionExpression: aws.String("PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(callPK("site_a"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 2 {
		t.Fatalf("ledger: got %d items, want 2", len(out.Items))
	}
	byProvider := map[string]map[string]types.AttributeValue{}
	for _, it := range out.Items {
		byProvider[getStr(it, "provider")] = it
		if !strings.HasPrefix(getStr(it, "SK"), "2026-12-04T10:00:00.000000000Z#") || getNum(it, "expires_at") != fixedNow.Add(ledgerTTL).Unix() {
			t.Errorf("ledger key or TTL: got %s, %d", getStr(it, "SK"), getNum(it, "expires_at"))
		}
		for attr, v := range it {
			if s, ok := v.(*types.AttributeValueMemberS); ok && (strings.Contains(s.Value, secret) || strings.Contains(s.Value, "Syndicating")) {
				t.Errorf("ledger attribute %s holds an answer", attr)
			}
		}
		if getStr(it, "post_id") != "post_1" || getStr(it, "revision") != "3" || getStr(it, "delivery_id") != "dlv_1" ||
			getStr(it, "platform") != "x" || len(getStr(it, "prompt_sha256")) != 64 {
			t.Errorf("ledger item: got %v", it)
		}
	}
	c := byProvider["cohere"]
	if getStr(c, "outcome") != llm.CodeInvalidOutput || getNum(c, "cost_micros") != 25 || getNum(c, "input_tokens") != 500 ||
		getNum(c, "output_tokens") != 40 || getStr(c, "model") != "command-r7b-12-2024" {
		t.Errorf("cohere's call: got %v", c)
	}
	o := byProvider["openai"]
	if est, _ := o["estimated"].(*types.AttributeValueMemberBOOL); getStr(o, "outcome") != CodeOK || est == nil || !est.Value || getNum(o, "cost_micros") != res.CostMicros-25 {
		t.Errorf("openai's call: got %v", o)
	}

	rows, err := r.Usage(ctx, "site_a", fixedNow.AddDate(0, 0, -1), fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	want := []UsageRow{
		{Day: "2026-12-04", Provider: llm.Cohere, Model: "command-r7b-12-2024", Calls: 1, Failures: 1, InputTokens: 500, OutputTokens: 40, CostMicros: 25},
		{Day: "2026-12-04", Provider: llm.OpenAI, Model: "gpt-4.1-nano", Calls: 1, Failures: 0,
			InputTokens: getNum(o, "input_tokens"), OutputTokens: getNum(o, "output_tokens"), CostMicros: res.CostMicros - 25},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("usage: got %+v, want %+v", rows, want)
	}
	if rows, err := r.Usage(ctx, "site_a", fixedNow.AddDate(0, 0, 1), fixedNow.AddDate(0, 0, 2)); err != nil || len(rows) != 0 {
		t.Errorf("usage of days without calls: got %v, %v; want none", rows, err)
	}
	if _, err := r.Usage(ctx, "site_a", fixedNow, fixedNow.AddDate(0, 0, -1)); err == nil {
		t.Error("usage of a range ending before it starts: got no error")
	}
	if got, err := r.MonthCost(ctx, "site_a", fixedNow); err != nil || got != res.CostMicros {
		t.Errorf("month cost: got %d, %v; want %d (settled to the real cost)", got, err, res.CostMicros)
	}
	// A second call the same day adds to the counters.
	in := baseInput()
	in.PostID = "post_2"
	if _, err := r.Adapt(ctx, in); err != nil {
		t.Fatal(err)
	}
	rows, _ = r.Usage(ctx, "site_a", fixedNow, fixedNow)
	if len(rows) != 2 || rows[0].Calls != 2 || rows[0].Failures != 2 || rows[1].Calls != 2 {
		t.Errorf("usage after a second adapt: got %+v", rows)
	}
}

func TestIntegrationCallCount(t *testing.T) {
	t.Parallel()
	db, table := motoTable(t)
	cdb := newCountingDB(db, false)
	r := newMotoRouter(t, cdb, table, Config{}, provider(llm.OpenAI, answers(goodText)))
	ctx := context.Background()
	if _, err := r.Adapt(ctx, baseInput()); err != nil {
		t.Fatal(err)
	}
	miss := cdb.snapshot()
	// Cache read; lease; cooldown read; reserve; settle + ledger + daily
	// counters; cache write.
	want := map[string]int{"GetItem": 1, "PutItem": 3, "Query": 1, "UpdateItem": 3}
	if fmt.Sprint(miss) != fmt.Sprint(want) {
		t.Errorf("cache miss: got %v, want %v", miss, want)
	}
	if res, err := r.Adapt(ctx, baseInput()); err != nil || !res.Cached {
		t.Fatalf("got %v, %v; want a cache hit", res.Cached, err)
	}
	if hit := cdb.snapshot(); fmt.Sprint(hit) != fmt.Sprint(map[string]int{"GetItem": 1}) {
		t.Errorf("cache hit: got %v, want one GetItem", hit)
	}
	in := baseInput()
	in.PostID = "post_2"
	if _, err := r.Adapt(ctx, in); err != nil {
		t.Fatal(err)
	}
	warm := cdb.snapshot()
	if warm["Query"] != 0 {
		t.Errorf("a second miss within %s read the cooldowns again: %v", cooldownReadTTL, warm)
	}
	t.Logf("DynamoDB calls: miss %v, hit 1 GetItem, miss with the cooldown read cached %v", miss, warm)
}
