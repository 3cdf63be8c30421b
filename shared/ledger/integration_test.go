package ledger_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func motoStore(t *testing.T) (*ledger.Store, *clock) {
	t.Helper()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	c := newClock()
	return ledger.NewStore(db, mototest.Table(t, db), c.Now), c
}

func TestIntegrationCreateAndList(t *testing.T) {
	t.Parallel()
	s, c := motoStore(t)
	ctx := context.Background()
	var first []ledger.Delivery
	for i := range 5 {
		var batch []ledger.NewDelivery
		for _, tgt := range []string{"t1", "t2", "t3"} {
			batch = append(batch, newDelivery("site_a", fmt.Sprint("p", i), tgt))
		}
		out, created, err := s.CreateAll(ctx, batch)
		if err != nil {
			t.Fatalf("CreateAll %d: %v", i, err)
		}
		for j := range created {
			if !created[j] {
				t.Fatalf("CreateAll %d: delivery %d not created", i, j)
			}
		}
		if i == 0 {
			first = out
		}
		c.Advance(time.Second)
	}
	// The other site's deliveries never show.
	if _, _, err := s.CreateAll(ctx, []ledger.NewDelivery{newDelivery("site_b", "p0", "t1")}); err != nil {
		t.Fatal(err)
	}
	// A repeat with one new target: the existing ones come back as they are.
	out, created, err := s.CreateAll(ctx, []ledger.NewDelivery{newDelivery("site_a", "p0", "t1"), newDelivery("site_a", "p0", "t4")})
	if err != nil || created[0] || !created[1] || out[0].ID != first[0].ID {
		t.Fatalf("repeat: got %v %v %v", out, created, err)
	}

	var all []ledger.Delivery
	cursor := ""
	for page := 0; ; page++ {
		ds, next, err := s.List(ctx, "site_a", ledger.Filter{}, 4, cursor)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ds...)
		if next == "" {
			break
		}
		if page > 10 {
			t.Fatal("List does not end")
		}
		cursor = next
	}
	if len(all) != 16 {
		t.Fatalf("listed %d deliveries, want 16", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].CreatedAt.After(all[i-1].CreatedAt) {
			t.Fatalf("not newest first at %d: %s after %s", i, all[i].CreatedAt, all[i-1].CreatedAt)
		}
	}
	for _, d := range all {
		if d.SiteID != "site_a" {
			t.Fatalf("site_a's listing holds %s's delivery", d.SiteID)
		}
	}
	if _, _, err := s.List(ctx, "site_b", ledger.Filter{}, 4, cursor); !apperr.Is(err, apperr.KindInvalid) {
		t.Errorf("site_a's cursor used by site_b: got %v, want invalid", err)
	}

	ds, _, err := s.List(ctx, "site_a", ledger.Filter{PostID: "p2"}, 10, "")
	if err != nil || len(ds) != 3 {
		t.Errorf("by post: got %d, %v; want 3", len(ds), err)
	}
	ds, next, err := s.List(ctx, "site_a", ledger.Filter{TargetID: "t2"}, 2, "")
	if err != nil || len(ds) != 2 || next == "" || ds[0].TargetID != "t2" {
		t.Errorf("by target, page 1: got %d, %q, %v", len(ds), next, err)
	}
	start := newClock().Now()
	ds, _, err = s.List(ctx, "site_a", ledger.Filter{Since: start.Add(time.Second), Until: start.Add(3 * time.Second)}, 50, "")
	if err != nil || len(ds) != 6 {
		t.Errorf("by time: got %d, %v; want 6 (p1 and p2)", len(ds), err)
	}

	// States: cancel one, publish one.
	if _, err := s.Cancel(ctx, "site_a", first[1].ID); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, "site_a", first[2].ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1", URL: "https://m.example/1"}}); err != nil {
		t.Fatal(err)
	}
	ds, _, err = s.List(ctx, "site_a", ledger.Filter{State: ledger.StateSent}, 10, "")
	if err != nil || len(ds) != 1 || ds[0].ID != first[2].ID {
		t.Errorf("by state: got %v, %v", ds, err)
	}
	counts, err := s.CountByState(ctx, "site_a")
	if err != nil {
		t.Fatal(err)
	}
	if counts[ledger.StateQueued] != 14 || counts[ledger.StateCancelled] != 1 || counts[ledger.StateSent] != 1 || len(counts) != len(ledger.States) {
		t.Errorf("counts: got %v", counts)
	}
}

func TestIntegrationWorkQueues(t *testing.T) {
	t.Parallel()
	s, c := motoStore(t)
	ctx := context.Background()
	out, _, err := s.CreateAll(ctx, []ledger.NewDelivery{newDelivery("site_a", "p", "t1"), newDelivery("site_a", "p", "t2"), newDelivery("site_b", "p", "t1")})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	queued, err := s.Due(ctx, ledger.QueueQueued, c.Now(), 10)
	if err != nil || len(queued) != 3 {
		t.Fatalf("queued: got %v, %v; want 3", queued, err)
	}
	lease, err := s.Claim(ctx, "site_a", out[0].ID, ledger.Policy{Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.Claim(ctx, "site_b", out[2].ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Finish(ctx, ledger.Outcome{State: ledger.StateDeferred, Err: apperr.New(apperr.KindRateLimited, "", ""), NextAttemptAt: c.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if refs, _ := s.Due(ctx, ledger.QueueLease, c.Now(), 10); len(refs) != 0 {
		t.Errorf("leases expired now: got %v, want none", refs)
	}
	c.Advance(2 * time.Minute)
	refs, err := s.Due(ctx, ledger.QueueLease, c.Now(), 10)
	if err != nil || len(refs) != 1 || refs[0] != (ledger.Ref{SiteID: "site_a", ID: out[0].ID}) {
		t.Errorf("expired leases: got %v, %v", refs, err)
	}
	refs, err = s.Due(ctx, ledger.QueueWaiting, c.Now(), 10)
	if err != nil || len(refs) != 1 || refs[0].SiteID != "site_b" {
		t.Errorf("waiting: got %v, %v", refs, err)
	}
	moved, err := s.Requeued(ctx, "site_b", out[2].ID, c.Now())
	if err != nil || !moved {
		t.Errorf("requeue overdue: got %v, %v", moved, err)
	}
	if refs, _ := s.Due(ctx, ledger.QueueWaiting, c.Now().Add(-time.Second), 10); len(refs) != 0 {
		t.Errorf("waiting after requeue: got %v, want none before now", refs)
	}
	if queued, _ := s.Due(ctx, ledger.QueueQueued, c.Now(), 10); len(queued) != 1 {
		t.Errorf("queued after two claims: got %v, want 1", queued)
	}
	if _, err := lease.Finish(ctx, ledger.Outcome{State: ledger.StateSent}); err != nil {
		t.Fatalf("finish an expired but not taken-over lease: %v", err)
	}
	if refs, _ := s.Due(ctx, ledger.QueueLease, c.Now(), 10); len(refs) != 0 {
		t.Errorf("a sent delivery is still in the lease queue: %v", refs)
	}
}
