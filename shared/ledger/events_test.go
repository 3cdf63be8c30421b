package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/ledger/ledgertest"
)

// storedEvent reads an event item the fake table holds, or nil.
func storedEvent(t *testing.T, db *ledgertest.DB, siteID, id string) map[string]any {
	t.Helper()
	it := db.Item(event.Partition(siteID), id)
	if it == nil {
		return nil
	}
	body, _ := it["body"].(*types.AttributeValueMemberS)
	if body == nil {
		t.Fatalf("event %s has no body", id)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(body.Value), &out); err != nil {
		t.Fatalf("event %s body: %v", id, err)
	}
	if it["GSI2PK"] == nil {
		t.Errorf("event %s is not marked pending for the fan-out", id)
	}
	return out
}

func TestFinishRecordsItsEventInTheSameWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		o     ledger.Outcome
		typ   event.Type
		check func(t *testing.T, data map[string]any)
	}{
		{"sent", ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "77", URL: "https://m.example/77"}}, event.DeliverySent,
			func(t *testing.T, data map[string]any) {
				if data["platformPostId"] != "77" || data["url"] != "https://m.example/77" || data["error"] != nil {
					t.Errorf("data: got %v, want the post's id and url and no error", data)
				}
			}},
		{"failed", ledger.Outcome{State: ledger.StateFailed, Err: apperr.New(apperr.KindPermanent, "mastodon.rejected", "too long")}, event.DeliveryFailed,
			func(t *testing.T, data map[string]any) {
				e, _ := data["error"].(map[string]any)
				if e["kind"] != "permanent" || e["code"] != "mastodon.rejected" || e["message"] != "too long" {
					t.Errorf("data.error: got %v", data["error"])
				}
			}},
		{"dead", ledger.Outcome{State: ledger.StateDead, Err: apperr.New(apperr.KindTransient, "x", "down")}, event.DeliveryDead, nil},
		{"unknown", ledger.Outcome{State: ledger.StateUnknown, Err: apperr.New(apperr.KindAmbiguous, "posse.unknown_outcome", "check it")}, event.DeliveryUnknown, nil},
		{"retrying", ledger.Outcome{State: ledger.StateRetrying, Err: apperr.New(apperr.KindTransient, "x", "down"),
			NextAttemptAt: time.Date(2026, 11, 2, 9, 31, 0, 0, time.UTC)}, event.DeliveryRetrying,
			func(t *testing.T, data map[string]any) {
				if data["nextAttemptAt"] != "2026-11-02T09:31:00Z" || data["errorKind"] != "transient" {
					t.Errorf("data: got %v, want nextAttemptAt and errorKind", data)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, db, _ := setup(t)
			ctx := context.Background()
			d := create(t, s, newDelivery("site_a", "p", "t"))
			l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := l.Event(); ok {
				t.Fatal("Event before Finish: got one, want none")
			}
			if _, err := l.Finish(ctx, tc.o); err != nil {
				t.Fatal(err)
			}
			ev, ok := l.Event()
			if !ok || ev.Type != tc.typ || ev.ID != event.DeliveryEventID(d.ID, 1, tc.typ) || ev.SiteID != "site_a" {
				t.Fatalf("Event: got %+v %v, want %s with the id of (delivery, seq 1, type)", ev, ok, tc.typ)
			}
			body := storedEvent(t, db, "site_a", ev.ID)
			if body == nil {
				t.Fatalf("event %s not stored", ev.ID)
			}
			data, _ := body["data"].(map[string]any)
			if body["type"] != string(tc.typ) || data["deliveryId"] != d.ID || data["postId"] != "p" || data["revision"] != "r1" ||
				data["targetId"] != "t" || data["platform"] != "mastodon" || data["state"] != tc.name {
				t.Errorf("stored event: got %v", body)
			}
			if tc.check != nil {
				tc.check(t, data)
			}
		})
	}
}

func TestDeferralRecordsNoEvent(t *testing.T) {
	t.Parallel()
	s, db, c := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	writes := db.Writes
	if _, err := l.Finish(ctx, ledger.Outcome{State: ledger.StateDeferred, Err: apperr.New(apperr.KindRateLimited, "", ""), NextAttemptAt: c.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Event(); ok || db.Writes != writes+1 {
		t.Errorf("deferral: event %v, %d writes; want no event and one write", ok, db.Writes-writes)
	}
}

func TestEachAttemptRecordsItsOwnEventAndALostLeaseNone(t *testing.T) {
	t.Parallel()
	s, db, c := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	p := ledger.Policy{Lease: time.Minute}
	l1, err := s.Claim(ctx, d.SiteID, d.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l1.Finish(ctx, ledger.Outcome{State: ledger.StateRetrying, Err: apperr.New(apperr.KindTransient, "", ""), NextAttemptAt: c.Now()}); err != nil {
		t.Fatal(err)
	}
	// Attempt 2 dies mid-publish; the sweep takes it over and finds the post.
	l2, err := s.Claim(ctx, d.SiteID, d.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Minute)
	l3, err := s.TakeOver(ctx, d.SiteID, d.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l3.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1"}, Note: "reconciled"}); err != nil {
		t.Fatal(err)
	}
	// The first worker wakes up and finishes too: nothing is written.
	writes := db.Writes
	if _, err := l2.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1"}}); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("stale Finish: got %v, want ErrLeaseLost", err)
	}
	if _, ok := l2.Event(); ok || db.Writes != writes {
		t.Errorf("stale Finish: event %v, %d writes; want none", ok, db.Writes-writes)
	}
	if storedEvent(t, db, "site_a", event.DeliveryEventID(d.ID, 1, event.DeliveryRetrying)) == nil {
		t.Error("attempt 1's delivery.retrying is missing")
	}
	if storedEvent(t, db, "site_a", event.DeliveryEventID(d.ID, 2, event.DeliverySent)) == nil {
		t.Error("attempt 2's delivery.sent (recorded by the takeover) is missing")
	}
}

func TestOutcomeAndEventAreAtomic(t *testing.T) {
	t.Parallel()
	s, db, _ := setup(t)
	ctx := context.Background()
	d := create(t, s, newDelivery("site_a", "p", "t"))
	l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	// The event's write fails: the outcome must not be written either.
	db.BeforeWrite = func(pk, _ string) error {
		if strings.HasSuffix(pk, "#EVT") {
			return errors.New("throttled")
		}
		return nil
	}
	if _, err := l.Finish(ctx, ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: "1"}}); err == nil || errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("Finish with the event failing: got %v, want the table's error", err)
	}
	if got, _ := s.Get(ctx, d.SiteID, d.ID); got.State != ledger.StatePublishing {
		t.Errorf("delivery after the failed transaction: got %s, want still publishing", got.State)
	}
	if db.Item(event.Partition("site_a"), event.DeliveryEventID(d.ID, 1, event.DeliverySent)) != nil {
		t.Error("the event was written without its outcome")
	}
}

// An adaptation that crossed 80% of the site's AI budget, or found it
// spent, records its ai.budget_* event in the same write that freezes the
// text; an ordinary one records none.
func TestAdaptRecordsBudgetEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		info ledger.AIInfo
		typ  event.Type
	}{
		{"warning", ledger.AIInfo{Source: ledger.AIGenerated, Provider: "gemini", BudgetWarning: true}, event.AIBudgetWarning},
		{"exhausted", ledger.AIInfo{Source: ledger.AIFallback, Reason: "budget_exhausted"}, event.AIBudgetExhausted},
		{"none", ledger.AIInfo{Source: ledger.AIGenerated, Provider: "gemini"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, db, _ := setup(t)
			ctx := context.Background()
			n := newDelivery("site_a", "p", "t")
			n.AI = &ledger.AIInfo{Source: ledger.AIPending}
			d := create(t, s, n)
			l, err := s.Claim(ctx, d.SiteID, d.ID, ledger.Policy{})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Adapt(ctx, "adapted", nil, tc.info); err != nil {
				t.Fatal(err)
			}
			ev, ok := l.AdaptEvent()
			if tc.typ == "" {
				if ok {
					t.Fatalf("AdaptEvent: got %+v, want none", ev)
				}
				return
			}
			if !ok || ev.Type != tc.typ {
				t.Fatalf("AdaptEvent: got %+v %v, want %s", ev, ok, tc.typ)
			}
			body := storedEvent(t, db, "site_a", ev.ID)
			data, _ := body["data"].(map[string]any)
			if body["type"] != string(tc.typ) || data["deliveryId"] != d.ID || data["platform"] != "mastodon" {
				t.Errorf("stored event: got %v", body)
			}
		})
	}
}
