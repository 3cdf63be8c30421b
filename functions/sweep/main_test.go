package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestScheduledEventFixture(t *testing.T) {
	t.Parallel()
	lambdaenvtest.CheckScheduledFixture(t, filepath.Join("testdata", "scheduled-event.json"), "posse.sweep")
}

// TestBootstrapUnderRIE deploys template.yaml into moto, leaves a delivery
// queued for 11 minutes without a message, and invokes the real sweep
// bootstrap under the RIE with the Scheduler payload: the delivery is put
// back on the dispatch queue once, and not again on the next run.
func TestBootstrapUnderRIE(t *testing.T) {
	srv := mototest.Server(t)
	ctx := context.Background()
	awsCfg := moto.Config(srv.Endpoint())
	st := lambdaenvtest.Deploy(t, awsCfg, nil)
	fn := lambdaenvtest.Function(t, st, "SweepFunction")
	lambdaenvtest.RequireSchedule(t, st, "SweepFunction", "rate(1 minute)")

	db := dynamodb.NewFromConfig(awsCfg)
	table := st.Tables["Table"].Name
	past := func() time.Time { return time.Now().Add(-11 * time.Minute) }
	created, _, err := ledger.NewStore(db, table, past).CreateAll(ctx, []ledger.NewDelivery{{
		SiteID: "site_sweep", PostID: "p1", Revision: "r1", TargetID: "tgt_1", ConnectionID: "conn_1",
		Platform: platform.Mastodon, Text: "lost message",
	}})
	if err != nil {
		t.Fatal(err)
	}

	env := append(fn.EnvironmentList(), moto.Env(srv.Endpoint())...)
	pool := lambdaenvtest.Start(t, lambdaenv.Config{
		Name: fn.Name, Bootstrap: lambdaenvtest.Build(t, "SweepFunction"), Instances: 1,
		Timeout: fn.Timeout, MemoryMB: fn.MemoryMB, Env: env,
	})
	payload, err := os.ReadFile(filepath.Join("testdata", "scheduled-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	for round, want := range []int{1, 0} {
		ictx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := pool.Invoke(ictx, payload)
		cancel()
		if err != nil {
			t.Fatalf("invoke %d: %v", round, err)
		}
		var got dispatch.SweepStats
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		if got.Requeued != want || got.Errors != 0 {
			t.Errorf("sweep %d: got %s, want %d re-enqueued and no errors", round, out, want)
		}
	}
	queueURL := ""
	for _, kv := range fn.EnvironmentList() {
		if v, ok := strings.CutPrefix(kv, "POSSE_DISPATCH_QUEUE_URL="); ok {
			queueURL = v
		}
	}
	msgs, err := sqs.NewFromConfig(awsCfg).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Messages) != 1 || *msgs.Messages[0].Body != ledger.DeliveryMessage("site_sweep", created[0].ID).Encode() {
		t.Errorf("dispatch queue: got %d messages, want the lost delivery's message once", len(msgs.Messages))
	}
	if d, ok := pool.InitDuration(); ok {
		t.Logf("sweep bootstrap init duration under the RIE: %v", d)
	}
}
