package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// The fixture's site, and the delivery its first record names.
const (
	fixtureSite     = "site_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	fixturePost     = "post-fixture"
	fixtureRevision = "r1"
	fixtureTarget   = "tgt_fixture"
)

func readBatch(t *testing.T) (events.SQSEvent, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sqs-batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("sqs-batch.json: %v", err)
	}
	return ev, b
}

func TestSQSBatchFixture(t *testing.T) {
	t.Parallel()
	ev, _ := readBatch(t)
	if len(ev.Records) != 3 {
		t.Fatalf("records: got %d, want 3 (a delivery, a poison message, a deleted delivery)", len(ev.Records))
	}
	m, err := ledger.DecodeMessage(ev.Records[0].Body)
	if err != nil || m.SiteID != fixtureSite || m.DeliveryID != ledger.DeliveryID(fixtureSite, fixturePost, fixtureRevision, fixtureTarget) {
		t.Errorf("first record: got %+v, %v; want the fixture delivery's message", m, err)
	}
	if _, err := ledger.DecodeMessage(ev.Records[1].Body); err == nil {
		t.Error("second record decodes; want a poison message")
	}
	for _, r := range ev.Records {
		if r.EventSource != "aws:sqs" || !strings.HasPrefix(r.EventSourceARN, "arn:aws:sqs:") || r.Attributes["ApproximateReceiveCount"] == "" {
			t.Errorf("record %s: got %+v, want a real SQS record", r.MessageId, r)
		}
	}
}

// TestBootstrapUnderRIE deploys template.yaml into moto, connects a
// Mastodon account on the simulator, creates the delivery the fixture names
// and invokes the real dispatch bootstrap under the RIE with
// testdata/sqs-batch.json: the delivery is published once, the poison
// message is the only batch item failure, and the message for a delivery
// that does not exist is acknowledged. A second invocation publishes
// nothing more.
func TestBootstrapUnderRIE(t *testing.T) {
	srv := mototest.Server(t)
	ctx := context.Background()
	awsCfg := moto.Config(srv.Endpoint())
	st := lambdaenvtest.Deploy(t, awsCfg, nil)
	fn := lambdaenvtest.Function(t, st, "DispatchFunction")

	sim := platformsim.New(platformsim.Options{})
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	sim.SetPublicURL(simSrv.URL)
	token := "masto-token-" + strings.Repeat("x", 20)
	sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "10901", Handle: "poster", AccessToken: token})

	db, keys := dynamodb.NewFromConfig(awsCfg), kms.NewFromConfig(awsCfg)
	table := st.Tables["Table"].Name
	// The fixture names a fixed site id: store the site under it.
	item, err := attributevalue.MarshalMap(site.Site{ID: fixtureSite, Name: "Blog", Timezone: "UTC", ReturnURL: "https://blog.example.test/back", CreatedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	item["PK"], item["SK"] = &types.AttributeValueMemberS{Value: "SITE#" + fixtureSite}, &types.AttributeValueMemberS{Value: "META"}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("put site: %v", err)
	}
	sealer, err := vault.NewSealer(keys, vault.Config{KeyID: st.Aliases["KeyAlias"].Name})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := connection.NewService(connection.ServiceConfig{
		Store: connection.NewStore(db, table), Sealer: sealer, Sites: site.NewStore(db, table, nil, nil),
		OAuth: oauth.New(oauth.Config{}), AllowHTTPInstances: true, PublicURL: "https://api.example.test",
		Identifiers: registry.New(registry.Config{BaseURL: simSrv.URL, HTTPClient: simSrv.Client()}).Identifiers(),
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := svc.Connect(ctx, fixtureSite, connection.ManualRequest{Platform: platform.Mastodon, InstanceURL: simSrv.URL + "/mastodon", AccessToken: token})
	if err != nil {
		t.Fatalf("connect mastodon: %v", err)
	}
	deliveries := ledger.NewStore(db, table, nil)
	created, _, err := deliveries.CreateAll(ctx, []ledger.NewDelivery{{
		SiteID: fixtureSite, PostID: fixturePost, Revision: fixtureRevision, TargetID: fixtureTarget, ConnectionID: conn.ID,
		Platform: platform.Mastodon, Text: "Hello from the dispatch bootstrap", Link: "https://blog.example.test/hello",
	}})
	if err != nil {
		t.Fatal(err)
	}

	env := append(fn.EnvironmentList(), moto.Env(srv.Endpoint())...)
	env = append(env, "POSSE_PLATFORM_BASE_URL="+simSrv.URL)
	pool := lambdaenvtest.Start(t, lambdaenv.Config{
		Name: fn.Name, Bootstrap: lambdaenvtest.Build(t, "DispatchFunction"), Instances: 1,
		Timeout: fn.Timeout, MemoryMB: fn.MemoryMB, Env: env,
	})
	ev, payload := readBatch(t)
	for round := range 2 {
		ictx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := pool.Invoke(ictx, payload)
		cancel()
		if err != nil {
			t.Fatalf("invoke %d: %v", round, err)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[1].MessageId {
			t.Errorf("invoke %d: batch item failures %s, want only the poison message %s", round, out, ev.Records[1].MessageId)
		}
	}
	got, err := deliveries.Get(ctx, fixtureSite, created[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ledger.StateSent || got.PlatformURL == "" || got.Attempts != 1 {
		t.Errorf("delivery: got %s %q after %d attempts, want sent once", got.State, got.PlatformURL, got.Attempts)
	}
	if posts := sim.Posts("mastodon"); len(posts) != 1 || posts[0].Text != "Hello from the dispatch bootstrap" {
		t.Errorf("simulator posts: got %+v, want exactly one", posts)
	}
	for _, f := range pool.LogFiles() {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), token) {
			t.Error("the function's log holds the access token")
		}
		if strings.Contains(string(b), "this is not a dispatch message") {
			t.Error("the function's log holds a message body")
		}
	}
	// The invocation's metrics: EMF lines on stdout, without ids. The
	// emulator copies the function's output to the log file as it comes:
	// give the last lines a moment.
	sentLines := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sentLines = 0
		for _, f := range pool.LogFiles() {
			b, _ := os.ReadFile(f)
			for _, line := range strings.Split(string(b), "\n") {
				i := strings.Index(line, "{")
				if !strings.Contains(line, `"_aws"`) || i < 0 {
					continue
				}
				if strings.Contains(line, fixtureSite) || strings.Contains(line, created[0].ID) {
					t.Fatalf("a metric line holds an id: %s", line)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(line[i:]), &m); err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				if m["Deliveries"] == 1.0 && m["Outcome"] == "sent" && m["Platform"] == "mastodon" && m["function"] == "dispatch" {
					sentLines++
				}
			}
		}
		if sentLines >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if sentLines != 1 {
		t.Errorf("EMF lines counting the sent delivery: got %d, want 1", sentLines)
	}
	if d, ok := pool.InitDuration(); ok {
		t.Logf("dispatch bootstrap init duration under the RIE: %v", d)
	}
}
