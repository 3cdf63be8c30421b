package event_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// TestIntegrationOutbox runs the outbox against moto's DynamoDB: an outcome
// and its event in one transaction, a stale worker's outcome refused with
// no event, the pending index the sweep reads, and the fan-out's mark.
func TestIntegrationOutbox(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	ledgers := ledger.NewStore(db, table, clock)
	events := event.NewStore(db, table)
	ctx := context.Background()

	out, _, err := ledgers.CreateAll(ctx, []ledger.NewDelivery{{SiteID: "site_a", PostID: "p", Revision: "1", TargetID: "tgt_1",
		ConnectionID: "conn_1", Platform: platform.Mastodon, Text: "Hello"}})
	if err != nil {
		t.Fatal(err)
	}
	d := out[0]
	p := ledger.Policy{Lease: time.Minute}
	l1, err := ledgers.Claim(ctx, d.SiteID, d.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	l2, err := ledgers.TakeOver(ctx, d.SiteID, d.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "9", URL: "https://m.example/9"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l1.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "9"}}); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("the stale worker's outcome: got %v, want ErrLeaseLost", err)
	}
	ev, ok := l2.Event()
	if !ok {
		t.Fatal("no event recorded with the outcome")
	}
	got, err := events.Get(ctx, "site_a", ev.ID)
	if err != nil || !got.Pending || got.Type != event.DeliverySent || string(got.Body) != string(ev.Body()) {
		t.Fatalf("stored event: got %+v, %v; want the pending delivery.sent with its exact body", got, err)
	}
	if _, err := events.Get(ctx, "site_b", ev.ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("another site reads the event: got %v, want not found", err)
	}

	refs, err := events.Pending(ctx, now.Add(-time.Minute), 10)
	if err != nil || len(refs) != 0 {
		t.Errorf("pending a minute before it was recorded: got %v, %v; want none", refs, err)
	}
	refs, err = events.Pending(ctx, now.Add(time.Second), 10)
	if err != nil || len(refs) != 1 || refs[0] != (event.Ref{SiteID: "site_a", ID: ev.ID}) {
		t.Fatalf("pending: got %v, %v; want the event", refs, err)
	}
	if err := events.Handed(ctx, "site_a", ev.ID); err != nil {
		t.Fatal(err)
	}
	if refs, _ := events.Pending(ctx, now.Add(time.Second), 10); len(refs) != 0 {
		t.Errorf("pending after the fan-out: got %v, want none", refs)
	}
	if got, _ := events.Get(ctx, "site_a", ev.ID); got.Pending {
		t.Error("the event is still marked pending")
	}
	// Handing on an event that is gone is not an error; a ping is stored
	// once and never pending.
	if err := events.Handed(ctx, "site_a", event.ID("gone")); err != nil {
		t.Errorf("Handed on a missing event: %v", err)
	}
	ping, _ := event.New("site_a", event.Ping, now, event.PingData{WebhookID: "wh_1", Message: "hi"}, "ping", "wh_1", "1")
	for range 2 {
		if err := events.Put(ctx, ping); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := events.Get(ctx, "site_a", ping.ID); err != nil || got.Pending {
		t.Errorf("ping: got %+v, %v; want stored and not pending", got, err)
	}
}
