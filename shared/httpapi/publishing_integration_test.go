package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/audit"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/target"
)

type dynamoAttr = types.AttributeValue

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func targetStoreOf(db *dynamodb.Client, table string, conns *connection.Store, now func() time.Time) *target.Store {
	return target.NewStore(db, table, conns, now, nil)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// storeConns is a connectionService over the real connection store: the
// publishing routes only read connections.
type storeConns struct {
	*connection.Store
	*connMap
}

func (s storeConns) Get(ctx context.Context, siteID, id string) (connection.Connection, error) {
	return s.Store.Get(ctx, siteID, id)
}

func (s storeConns) List(ctx context.Context, siteID string, limit int, cursor string) ([]connection.Connection, string, error) {
	return s.Store.List(ctx, siteID, limit, cursor)
}

func (s storeConns) Delete(ctx context.Context, siteID, id string) error {
	return s.Store.Delete(ctx, siteID, id)
}

// motoStack is the API with every publishing dependency real, on moto:
// one table, the dispatch queue and its DLQ, two sites.
type motoStack struct {
	t          *testing.T
	ctx        context.Context
	db         *dynamodb.Client
	sqs        *sqs.Client
	table      string
	queueURL   string
	dlqURL     string
	dlqARN     string
	clock      *clock
	srv        *Server
	ledger     *ledger.Store
	sites      *site.Store
	a, b       site.Site
	keyA, keyB string
}

func randomName(t *testing.T) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newMotoStack(t *testing.T) *motoStack {
	t.Helper()
	cfg := mototest.Config(t)
	s := &motoStack{t: t, ctx: context.Background(), db: dynamodb.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg),
		clock: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	s.table = mototest.Table(t, s.db)
	name := "api-" + randomName(t)
	dlq, err := s.sqs.CreateQueue(s.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := s.sqs.GetQueueAttributes(s.ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.sqs.CreateQueue(s.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		"VisibilityTimeout": "360",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, attrs.Attributes["QueueArn"]),
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.queueURL, s.dlqURL, s.dlqARN = *q.QueueUrl, *dlq.QueueUrl, attrs.Attributes["QueueArn"]

	s.sites = site.NewStore(s.db, s.table, s.clock.Now, nil)
	mkSite := func(n string) (site.Site, string) {
		st, err := s.sites.Create(s.ctx, site.NewSite{Name: n, Timezone: "UTC", ReturnURL: "https://" + strings.ToLower(n) + ".example/back"})
		if err != nil {
			t.Fatal(err)
		}
		_, key, err := s.sites.IssueKey(s.ctx, st.ID, "cms")
		if err != nil {
			t.Fatal(err)
		}
		return st, key
	}
	s.a, s.keyA = mkSite("Alpha")
	s.b, s.keyB = mkSite("Beta")
	s.putConn(s.a.ID, "conn_xa", platform.X, connection.StatusActive)
	s.putConn(s.a.ID, "conn_ma", platform.Mastodon, connection.StatusActive)
	s.putConn(s.a.ID, "conn_la", platform.LinkedIn, connection.StatusBroken)
	s.putConn(s.b.ID, "conn_xb", platform.X, connection.StatusActive)

	conns := connection.NewStore(s.db, s.table)
	s.ledger = ledger.NewStore(s.db, s.table, s.clock.Now)
	s.srv = New(Deps{
		Sites: s.sites, AdminKeySHA256: hash(adminKey), MaxBodyBytes: 1 << 20, Now: s.clock.Now, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Connections: storeConns{Store: conns, connMap: &connMap{}},
		Targets:     targetStoreOf(s.db, s.table, conns, s.clock.Now),
		Deliveries:  s.ledger,
		Snapshots:   compose.NewSnapshots(s.db, s.table, s.clock.Now),
		Publishers:  registry.New(registry.Config{}),
		Queue:       queue.New(queue.Config{SQS: s.sqs, DispatchURL: s.queueURL, DLQURL: s.dlqURL, DLQARN: s.dlqARN, Deliveries: s.ledger}),
		Idempotency: idempotency.NewStore(s.db, s.table, s.clock.Now, nil),
		Audit:       audit.NewStore(s.db, s.table, 0, s.clock.Now, nil),
		Analytics:   stats.New(s.db, s.table),
		RecentStats: stats.New(s.db, s.table),
		Blocks:      ratelimit.New(s.db, s.table, s.clock.Now),
	})
	return s
}

// putConn writes a connection item as the connection store keeps it.
func (s *motoStack) putConn(siteID, id string, p platform.Name, st connection.Status) {
	item, err := attributevalue.MarshalMap(connection.Connection{ID: id, SiteID: siteID, Platform: p, AccountID: "acct-" + id, Handle: id,
		Status: st, TokenVersion: 1, CreatedAt: s.clock.Now(), UpdatedAt: s.clock.Now()})
	if err != nil {
		s.t.Fatal(err)
	}
	item["PK"], item["SK"] = str("SITE#"+siteID), str("CONN#"+id)
	if _, err := s.db.PutItem(s.ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item}); err != nil {
		s.t.Fatal(err)
	}
}

// call makes a request and returns the status, body and header. The clock
// moves 1 ms first, so audit entries of consecutive calls are ordered.
func (s *motoStack) call(method, path, key, body string, hdr ...string) (int, string, http.Header) {
	s.t.Helper()
	s.clock.Advance(time.Millisecond)
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.srv.ServeHTTP(w, r)
	return w.Code, w.Body.String(), w.Header()
}

// must calls and fails the test unless the status is want; it decodes the
// body into v when v is not nil.
func (s *motoStack) must(want int, v any, method, path, key, body string, hdr ...string) {
	s.t.Helper()
	status, b, _ := s.call(method, path, key, body, hdr...)
	if status != want {
		s.t.Fatalf("%s %s: got %d %s, want %d", method, path, status, b, want)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(b), v); err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// items returns every item of the table as "PK|SK".
func (s *motoStack) items() []string {
	s.t.Helper()
	var out []string
	p := dynamodb.NewScanPaginator(s.db, &dynamodb.ScanInput{TableName: &s.table})
	for p.HasMorePages() {
		page, err := p.NextPage(s.ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, it := range page.Items {
			var k struct{ PK, SK string }
			_ = attributevalue.UnmarshalMap(it, &k)
			out = append(out, k.PK+"|"+k.SK)
		}
	}
	sort.Strings(out)
	return out
}

// drain receives and deletes every message of queueURL and returns the
// bodies.
func (s *motoStack) drain(queueURL string) []string {
	s.t.Helper()
	var bodies []string
	for {
		out, err := s.sqs.ReceiveMessage(s.ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, VisibilityTimeout: 30})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return bodies
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
			if _, err := s.sqs.DeleteMessage(s.ctx, &sqs.DeleteMessageInput{QueueUrl: &queueURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				s.t.Fatal(err)
			}
		}
	}
}

// visible is a queue's count of visible messages.
func (s *motoStack) visible(queueURL string) int {
	s.t.Helper()
	out, err := s.sqs.GetQueueAttributes(s.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queueURL, AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		s.t.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	return n
}

// depth is a queue's visible + in-flight count.
func (s *motoStack) depth(queueURL string) int {
	s.t.Helper()
	out, err := s.sqs.GetQueueAttributes(s.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queueURL, AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		s.t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b
}

func (s *motoStack) target(key, conn, name, extra string) string {
	s.t.Helper()
	var tg struct{ ID string }
	s.must(201, &tg, "POST", "/v1/targets", key, `{"connectionId":"`+conn+`","name":"`+name+`"`+extra+`}`)
	return tg.ID
}

func TestTargetsCRUDAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	var tg struct {
		ID, Platform string
		Active       bool
		Defaults     struct {
			Hashtags    []string
			IncludeLink bool
			UTM         struct{ Source string }
		}
	}
	s.must(201, &tg, "POST", "/v1/targets", s.keyA, `{"connectionId":"conn_xa","name":"Main X","defaults":{"hashtags":["#Go"],"utm":{"source":"posse"}},"hourlyRateLimit":10}`)
	if tg.Platform != "x" || !tg.Active || !tg.Defaults.IncludeLink || tg.Defaults.Hashtags[0] != "Go" || tg.Defaults.UTM.Source != "posse" {
		t.Errorf("created: got %+v", tg)
	}
	before := s.items()
	for _, c := range []struct {
		key, body string
		want      int
		field     string
	}{
		{s.keyA, `{"connectionId":"conn_xb","name":"Beta's X"}`, 422, "connectionId"},
		{s.keyA, `{"connectionId":"conn_nope","name":"x"}`, 422, "connectionId"},
		{s.keyA, `{"name":"x"}`, 400, "connectionId"},
		{s.keyA, `{"connectionId":"conn_xa","name":"x","defaults":{"messageTemplate":"{author}"}}`, 400, "defaults.messageTemplate"},
		{s.keyA, `{"connectionId":"conn_xa","name":"x","hourlyRateLimit":-1}`, 400, "hourlyRateLimit"},
	} {
		status, body, _ := s.call("POST", "/v1/targets", c.key, c.body)
		if status != c.want || !hasField(problemOf(t, body), c.field) {
			t.Errorf("create %s: got %d %s, want %d naming %s", c.body, status, body, c.want, c.field)
		}
	}
	if after := s.items(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("rejected creates wrote: before %v, after %v", before, after)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if status, _, _ := s.call(m, "/v1/targets/"+tg.ID, s.keyB, ""); status != 404 {
			t.Errorf("%s another site's target: got %d, want 404", m, status)
		}
	}
	if status, _, _ := s.call("PATCH", "/v1/targets/"+tg.ID, s.keyB, `{"name":"mine"}`); status != 404 {
		t.Errorf("PATCH another site's target: got %d, want 404", status)
	}
	if status, body, _ := s.call("PATCH", "/v1/targets/"+tg.ID, s.keyA, `{"connectionId":"conn_xb"}`); status != 422 || !hasField(problemOf(t, body), "connectionId") {
		t.Errorf("PATCH to another site's connection: got %d %s, want 422 naming connectionId", status, body)
	}
	var up struct {
		Name, Platform string
		Active         bool
	}
	s.must(200, &up, "PATCH", "/v1/targets/"+tg.ID, s.keyA, `{"connectionId":"conn_ma","active":false}`)
	if up.Platform != "mastodon" || up.Active || up.Name != "Main X" {
		t.Errorf("patched: got %+v", up)
	}
	var list struct {
		Items      []struct{ ID string }
		NextCursor string
	}
	s.must(200, &list, "GET", "/v1/targets", s.keyB, "")
	if len(list.Items) != 0 {
		t.Errorf("Beta's targets: got %v, want none", list.Items)
	}
	s.must(200, &list, "GET", "/v1/targets", s.keyA, "")
	if len(list.Items) != 1 || list.Items[0].ID != tg.ID {
		t.Errorf("Alpha's targets: got %v", list.Items)
	}
	s.must(204, nil, "DELETE", "/v1/targets/"+tg.ID, s.keyA, "")
	if status, _, _ := s.call("GET", "/v1/targets/"+tg.ID, s.keyA, ""); status != 404 {
		t.Errorf("after delete: got %d, want 404", status)
	}
	var log struct{ Items []audit.Entry }
	s.must(200, &log, "GET", "/v1/audit", s.keyA, "")
	var actions []string
	for _, e := range log.Items {
		actions = append(actions, e.Action)
	}
	if fmt.Sprint(actions) != "[target.delete target.update target.create]" {
		t.Errorf("audit, newest first: got %v", actions)
	}
	s.must(200, &log, "GET", "/v1/audit", s.keyB, "")
	if len(log.Items) != 0 {
		t.Errorf("Beta's audit: got %v, want none", log.Items)
	}
}

func TestDispatchAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	tx := s.target(s.keyA, "conn_xa", "X", `,"defaults":{"hashtags":["posse"],"utm":{"source":"posse","medium":"social"}}`)
	tm := s.target(s.keyA, "conn_ma", "Mastodon", `,"defaults":{"options":{"visibility":"unlisted"}}`)
	tl := s.target(s.keyA, "conn_la", "LinkedIn", "")
	tb := s.target(s.keyB, "conn_xb", "Beta X", "")
	post := `{"postId":"p1","revision":"1","title":"Launch","excerpt":"We launched.","url":"https://alpha.example/launch"}`

	before := s.items()
	for _, c := range []struct {
		name, body string
		field      string
	}{
		{"broken connection", dispatchBody(post, []string{tx, tl}, ""), "targets[" + tl + "]"},
		{"another site's target", dispatchBody(post, []string{tx, tb}, ""), "targetIds[1]"},
		{"custom message", dispatchBody(post, []string{tx}, `,"customMessage":"`+strings.Repeat("x", 2001)+`"`), "customMessage"},
	} {
		status, body, _ := s.call("POST", "/v1/dispatch", s.keyA, c.body, "Idempotency-Key", "reject-"+strings.ReplaceAll(c.name, " ", "-"))
		if status != 422 || !hasField(problemOf(t, body), c.field) {
			t.Errorf("%s: got %d %s, want 422 naming %s", c.name, status, body, c.field)
		}
	}
	if after := s.items(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("rejected dispatches wrote: before %d items, after %d: %v", len(before), len(after), after)
	}
	if n := s.depth(s.queueURL); n != 0 {
		t.Errorf("rejected dispatches queued %d messages", n)
	}

	body := dispatchBody(post, []string{tx, tm}, `,"customMessage":"Big news"`)
	var first dispatchResponse
	s.must(202, &first, "POST", "/v1/dispatch", s.keyA, body, "Idempotency-Key", "launch-1")
	if first.Created != 2 || len(first.Deliveries) != 2 {
		t.Fatalf("dispatch: got %+v", first)
	}
	x := first.Deliveries[0]
	if x.Text != "Launch\n\nBig news\n\nhttps://alpha.example/launch?utm_medium=social&utm_source=posse\n\n#posse" || x.State != ledger.StateQueued || len(x.Options) != 0 {
		t.Errorf("X delivery: got %+v", x)
	}
	if m := first.Deliveries[1]; m.Platform != platform.Mastodon || m.Options["visibility"] != "unlisted" {
		t.Errorf("Mastodon delivery: got %+v", m)
	}
	snap, err := compose.NewSnapshots(s.db, s.table, nil).Get(s.ctx, s.a.ID, "p1", "1")
	if err != nil || snap.Title != "Launch" {
		t.Errorf("snapshot: got %+v, %v", snap, err)
	}
	bodies := s.drain(s.queueURL)
	if len(bodies) != 2 {
		t.Fatalf("messages: got %d, want 2", len(bodies))
	}
	seen := map[string]bool{}
	for _, b := range bodies {
		m, err := ledger.DecodeMessage(b)
		if err != nil || m.SiteID != s.a.ID {
			t.Errorf("message %q: %v", b, err)
		}
		seen[m.DeliveryID] = true
	}
	if !seen[x.ID] || !seen[first.Deliveries[1].ID] {
		t.Errorf("messages name %v, want both deliveries", seen)
	}

	// The same key and body: the stored answer, nothing new.
	status, replay, h := s.call("POST", "/v1/dispatch", s.keyA, body, "Idempotency-Key", "launch-1")
	firstJSON, _ := json.Marshal(first)
	var replayed dispatchResponse
	_ = json.Unmarshal([]byte(replay), &replayed)
	replayJSON, _ := json.Marshal(replayed)
	if status != 202 || h.Get(ReplayedHeader) != "true" || string(replayJSON) != string(firstJSON) {
		t.Errorf("replay: got %d %s (%v)", status, replay, h)
	}
	if n := s.depth(s.queueURL); n != 0 {
		t.Errorf("the replay queued %d messages", n)
	}
	// The same key, another body.
	status, other, _ := s.call("POST", "/v1/dispatch", s.keyA, dispatchBody(post, []string{tx}, ""), "Idempotency-Key", "launch-1")
	if status != 422 || problemOf(t, other).Code != "idempotency_key_reused" {
		t.Errorf("same key, other body: got %d %s", status, other)
	}
	// The same revision without a key: the existing deliveries.
	var second dispatchResponse
	s.must(202, &second, "POST", "/v1/dispatch", s.keyA, body)
	if second.Created != 0 || second.Deliveries[0].ID != x.ID || second.Deliveries[1].ID != first.Deliveries[1].ID {
		t.Errorf("second dispatch: got %+v", second)
	}
	var list struct{ Items []ledger.Delivery }
	s.must(200, &list, "GET", "/v1/deliveries?postId=p1", s.keyA, "")
	if len(list.Items) != 2 {
		t.Errorf("deliveries of p1: got %d, want 2", len(list.Items))
	}
	s.must(200, &list, "GET", "/v1/deliveries", s.keyB, "")
	if len(list.Items) != 0 {
		t.Errorf("Beta sees Alpha's deliveries: %v", list.Items)
	}
	if status, _, _ := s.call("GET", "/v1/deliveries/"+x.ID, s.keyB, ""); status != 404 {
		t.Errorf("Beta reads Alpha's delivery: got %d, want 404", status)
	}
	for _, op := range []string{"retry", "cancel"} {
		if status, _, _ := s.call("POST", "/v1/deliveries/"+x.ID+"/"+op, s.keyB, ""); status != 404 {
			t.Errorf("Beta %s Alpha's delivery: got %d, want 404", op, status)
		}
	}
	var d ledger.Delivery
	s.must(200, &d, "POST", "/v1/deliveries/"+x.ID+"/cancel", s.keyA, "")
	if d.State != ledger.StateCancelled {
		t.Errorf("cancel: got %s", d.State)
	}
	if status, body, _ := s.call("POST", "/v1/deliveries/"+x.ID+"/retry", s.keyA, ""); status != 409 {
		t.Errorf("retry a cancelled delivery: got %d %s, want 409", status, body)
	}
	var qs struct {
		DispatchQueue map[string]int
		Deliveries    map[string]int
	}
	s.clock.Advance(2 * time.Minute)
	s.must(200, &qs, "GET", "/v1/queue/status", s.keyA, "")
	if qs.Deliveries["queued"] != 1 || qs.Deliveries["cancelled"] != 1 || qs.DispatchQueue["visible"] != 2 || qs.DispatchQueue["oldestAgeSeconds"] != 120 {
		t.Errorf("queue status: got %+v", qs)
	}
}

// deadLetter puts body in the DLQ as SQS's redrive policy would.
func (s *motoStack) deadLetter(body string) {
	s.t.Helper()
	if _, err := s.sqs.SendMessage(s.ctx, &sqs.SendMessageInput{QueueUrl: &s.dlqURL, MessageBody: &body}); err != nil {
		s.t.Fatal(err)
	}
}

func TestDeadLettersAndRedriveAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	tx := s.target(s.keyA, "conn_xa", "X", "")
	tm := s.target(s.keyA, "conn_ma", "Mastodon", "")
	tb := s.target(s.keyB, "conn_xb", "Beta X", "")
	post := `{"postId":"p9","revision":"2","title":"T","url":"https://alpha.example/p9"}`
	var da, db dispatchResponse
	s.must(202, &da, "POST", "/v1/dispatch", s.keyA, dispatchBody(post, []string{tx, tm}, ""))
	s.must(202, &db, "POST", "/v1/dispatch", s.keyB, dispatchBody(post, []string{tb}, ""))
	// Every message dies: move them to the DLQ, with a poison one.
	for _, b := range s.drain(s.queueURL) {
		s.deadLetter(b)
	}
	s.deadLetter("{not json")
	if n := s.depth(s.dlqURL); n != 4 {
		t.Fatalf("DLQ depth: got %d, want 4", n)
	}

	var dead struct {
		Items []struct {
			MessageID, DeliveryID string
			ReceiveCount          int
			Delivery              *ledger.Delivery
		}
		Scanned int
	}
	for range 2 { // reading twice changes nothing
		s.must(200, &dead, "GET", "/v1/queue/dead-letters", s.keyA, "")
		if len(dead.Items) != 2 || dead.Scanned != 4 {
			t.Fatalf("Alpha's dead letters: got %+v, want its 2 of 4", dead)
		}
		for _, it := range dead.Items {
			if it.Delivery == nil || it.Delivery.SiteID != s.a.ID || it.Delivery.ID != it.DeliveryID {
				t.Errorf("dead letter without its delivery: %+v", it)
			}
		}
		if n := s.visible(s.dlqURL); n != 4 {
			t.Fatalf("visible DLQ messages after reading: got %d, want 4 (none hidden, none deleted)", n)
		}
	}
	s.must(200, &dead, "GET", "/v1/queue/dead-letters", s.keyB, "")
	if len(dead.Items) != 1 || dead.Items[0].DeliveryID != db.Deliveries[0].ID {
		t.Errorf("Beta's dead letters: got %+v", dead.Items)
	}
	var qs struct{ DeadLetterQueue map[string]int }
	s.must(200, &qs, "GET", "/v1/queue/status", s.keyA, "")
	if qs.DeadLetterQueue["visible"] != 4 {
		t.Errorf("status DLQ: got %+v", qs.DeadLetterQueue)
	}

	var res queue.Redrive
	s.must(200, &res, "POST", "/v1/queue/redrive", s.keyA, `{"filter":{"platform":"mastodon"},"dryRun":true}`)
	if len(res.Selected) != 1 || res.Selected[0].DeliveryID != da.Deliveries[1].ID || len(res.Moved) != 0 || s.depth(s.dlqURL) != 4 || s.depth(s.queueURL) != 0 {
		t.Fatalf("dry run: got %+v", res)
	}
	s.must(200, &res, "POST", "/v1/queue/redrive", s.keyA, `{"filter":{"platform":"mastodon"}}`, "Idempotency-Key", "redrive-1")
	if len(res.Moved) != 1 || s.depth(s.dlqURL) != 3 {
		t.Fatalf("redrive mastodon: got %+v, DLQ depth %d", res, s.depth(s.dlqURL))
	}
	moved := s.drain(s.queueURL)
	if len(moved) != 1 || moved[0] != ledger.DeliveryMessage(s.a.ID, da.Deliveries[1].ID).Encode() {
		t.Errorf("dispatch queue after the redrive: got %v", moved)
	}
	// Everything else of Alpha's: only its X message moves; Beta's and the
	// poison one stay.
	s.must(200, &res, "POST", "/v1/queue/redrive", s.keyA, `{}`)
	if len(res.Moved) != 1 || s.depth(s.dlqURL) != 2 {
		t.Fatalf("redrive the rest: got %+v, DLQ depth %d", res, s.depth(s.dlqURL))
	}
	moved = s.drain(s.queueURL)
	if len(moved) != 1 || !strings.Contains(moved[0], da.Deliveries[0].ID) {
		t.Errorf("dispatch queue: got %v, want Alpha's X message", moved)
	}
	s.must(200, &dead, "GET", "/v1/queue/dead-letters", s.keyB, "")
	if len(dead.Items) != 1 {
		t.Errorf("Beta's dead letter after Alpha's redrives: got %+v", dead.Items)
	}
	s.must(200, &dead, "GET", "/v1/queue/dead-letters", s.keyA, "")
	if len(dead.Items) != 0 {
		t.Errorf("Alpha's dead letters after the redrive: got %+v", dead.Items)
	}
	var log struct{ Items []audit.Entry }
	s.must(200, &log, "GET", "/v1/audit?limit=3", s.keyA, "")
	if len(log.Items) != 3 || log.Items[0].Action != "queue.redrive" || log.Items[2].Action != "queue.redrive_dry_run" {
		t.Errorf("audit: got %+v", log.Items)
	}
}

func TestIdempotencyStoreAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	st := idempotency.NewStore(s.db, s.table, s.clock.Now, nil)
	fp := idempotency.Fingerprint("POST", "/v1/dispatch", []byte(`{}`))
	c, replay, err := st.Begin(s.ctx, s.a.ID, "k", fp)
	if err != nil || replay != nil {
		t.Fatalf("Begin: %v %v", replay, err)
	}
	if _, _, err := st.Begin(s.ctx, s.a.ID, "k", fp); err != idempotency.ErrInFlight {
		t.Errorf("Begin while in flight: got %v", err)
	}
	if _, _, err := st.Begin(s.ctx, s.b.ID, "k", fp); err != nil {
		t.Errorf("the same key on another site: got %v", err)
	}
	if err := st.Complete(s.ctx, c, idempotency.Response{Status: 202, ContentType: "application/json", Body: []byte(`{"ok":true}`)}); err != nil {
		t.Fatal(err)
	}
	_, replay, err = st.Begin(s.ctx, s.a.ID, "k", fp)
	if err != nil || replay == nil || replay.Status != 202 || string(replay.Body) != `{"ok":true}` {
		t.Errorf("replay: got %+v, %v", replay, err)
	}
	if _, _, err := st.Begin(s.ctx, s.a.ID, "k", "other"); err != idempotency.ErrReused {
		t.Errorf("another body: got %v", err)
	}
	out, err := s.db.GetItem(s.ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: map[string]dynamoAttr{"PK": str("IDEM#" + s.a.ID + "#k"), "SK": str("META")}})
	if err != nil || out.Item["expires_at"] == nil {
		t.Fatalf("item: %v %v", out, err)
	}
	var exp struct {
		ExpiresAt int64 `dynamodbav:"expires_at"`
	}
	_ = attributevalue.UnmarshalMap(out.Item, &exp)
	if want := s.clock.Now().Add(24 * time.Hour).Unix(); exp.ExpiresAt != want {
		t.Errorf("expires_at: got %d, want %d (24 h, epoch seconds)", exp.ExpiresAt, want)
	}
	// A claim whose call died is free after its lease; an expired key is free.
	c2, _, err := st.Begin(s.ctx, s.a.ID, "dies", fp)
	if err != nil {
		t.Fatal(err)
	}
	_ = c2
	s.clock.Advance(idempotency.DefaultLease + time.Second)
	if _, replay, err := st.Begin(s.ctx, s.a.ID, "dies", fp); err != nil || replay != nil {
		t.Errorf("after the lease: got %v %v, want a new claim", replay, err)
	}
	s.clock.Advance(25 * time.Hour)
	if _, replay, err := st.Begin(s.ctx, s.a.ID, "k", "other"); err != nil || replay != nil {
		t.Errorf("after the TTL: got %v %v, want a new claim", replay, err)
	}
}

func TestAuditListPagesAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	for i := range 3 {
		s.target(s.keyA, "conn_xa", "T"+strconv.Itoa(i), "")
		s.clock.Advance(time.Second)
	}
	var page struct {
		Items      []audit.Entry
		NextCursor string
	}
	s.must(200, &page, "GET", "/v1/audit?limit=2", s.keyA, "")
	if len(page.Items) != 2 || page.NextCursor == "" || !page.Items[0].At.After(page.Items[1].At) {
		t.Fatalf("page 1: got %+v", page)
	}
	status, body, _ := s.call("GET", "/v1/audit?cursor="+url.QueryEscape(page.NextCursor), s.keyB, "")
	if status != 400 || !hasField(problemOf(t, body), "cursor") {
		t.Errorf("Alpha's cursor with Beta's key: got %d %s, want 400 naming cursor", status, body)
	}
	s.must(200, &page, "GET", "/v1/audit?limit=2&cursor="+url.QueryEscape(page.NextCursor), s.keyA, "")
	if len(page.Items) != 1 {
		t.Errorf("page 2: got %+v", page)
	}
	out, err := s.db.Query(s.ctx, &dynamodb.QueryInput{TableName: &s.table, KeyConditionExpression: aws.String("PK = :p"),
		ExpressionAttributeValues: map[string]dynamoAttr{":p": str("SITE#" + s.a.ID + "#AUDIT")}})
	if err != nil || len(out.Items) != 3 {
		t.Fatalf("audit items: %v %v", out, err)
	}
	var e struct {
		ExpiresAt int64 `dynamodbav:"expires_at"`
		At        time.Time
	}
	_ = attributevalue.UnmarshalMap(out.Items[0], &e)
	var at struct {
		At time.Time `dynamodbav:"at"`
	}
	_ = attributevalue.UnmarshalMap(out.Items[0], &at)
	if want := at.At.Add(audit.DefaultRetention).Unix(); e.ExpiresAt != want {
		t.Errorf("expires_at: got %d, want %d (90 days)", e.ExpiresAt, want)
	}
}

// TestMoveTaskRoutesAgainstMoto drives the admin whole-queue redrive
// through the queue client into moto's StartMessageMoveTask (serve.py).
func TestMoveTaskRoutesAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	var tasks struct{ Items []queue.MoveTask }
	s.must(200, &tasks, "GET", "/v1/queue/move-task", adminKey, "")
	if len(tasks.Items) != 0 {
		t.Fatalf("tasks before any: got %+v", tasks.Items)
	}
	// Every site's messages, and a poison one: the move takes them all.
	bodies := []string{ledger.DeliveryMessage(s.a.ID, "dlv_a").Encode(), ledger.DeliveryMessage(s.b.ID, "dlv_b").Encode(), "{not json"}
	for _, b := range bodies {
		s.deadLetter(b)
	}
	var started struct{ TaskHandle string }
	s.must(202, &started, "POST", "/v1/queue/move-task", adminKey, "")
	wait := func(status string) queue.MoveTask {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.must(200, &tasks, "GET", "/v1/queue/move-task", adminKey, "")
			if len(tasks.Items) > 0 && tasks.Items[0].Status == status {
				return tasks.Items[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("move task: got %+v after 10 s, want %s", tasks.Items, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	done := wait("COMPLETED")
	if done.SourceARN != s.dlqARN || done.DestinationARN != "" || done.MessagesMoved != 3 || done.MessagesToMove != 3 || done.TaskHandle != "" {
		t.Errorf("completed task: got %+v, want 3 of 3 moved from %s back to source", done, s.dlqARN)
	}
	moved := s.drain(s.queueURL)
	sort.Strings(moved)
	want := append([]string{}, bodies...)
	sort.Strings(want)
	if fmt.Sprint(moved) != fmt.Sprint(want) || s.depth(s.dlqURL) != 0 {
		t.Errorf("dispatch queue after the move: got %v (DLQ depth %d), want every dead letter", moved, s.depth(s.dlqURL))
	}

	// A slow task: a second start is 409 naming it; DELETE cancels it.
	for i := range 5 {
		s.deadLetter(ledger.DeliveryMessage(s.a.ID, "dlv_slow"+strconv.Itoa(i)).Encode())
	}
	s.must(202, &started, "POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":1}`)
	status, body, _ := s.call("POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":500}`)
	if status != 409 || !strings.Contains(body, "move_task_running") || !strings.Contains(body, started.TaskHandle) {
		t.Errorf("second start: got %d %s, want 409 naming %s", status, body, started.TaskHandle)
	}
	var cancelled struct {
		TaskHandle string
		Status     string
	}
	s.must(200, &cancelled, "DELETE", "/v1/queue/move-task", adminKey, "")
	if cancelled.TaskHandle != started.TaskHandle || cancelled.Status != "CANCELLING" {
		t.Errorf("cancel: got %+v, want %s CANCELLING", cancelled, started.TaskHandle)
	}
	stopped := wait("CANCELLED")
	if stopped.MaxMessagesPerSecond != 1 || stopped.MessagesMoved >= 5 || s.depth(s.dlqURL) != 5-int(stopped.MessagesMoved) {
		t.Errorf("cancelled task: got %+v with DLQ depth %d, want rate 1 and the unmoved rest still in the DLQ", stopped, s.depth(s.dlqURL))
	}
	s.must(404, nil, "DELETE", "/v1/queue/move-task", adminKey, "")
	s.must(403, nil, "POST", "/v1/queue/move-task", s.keyA, "")
}
