package ledger_test

import (
	"context"
	"testing"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
)

func scheduled(site, post, target, scheduleID string) ledger.NewDelivery {
	n := newDelivery(site, post, target)
	n.State, n.ScheduleID = ledger.StateScheduled, scheduleID
	return n
}

func TestScheduleMessage(t *testing.T) {
	t.Parallel()
	m := ledger.ScheduleMessage("site_1", "sch_1", 3)
	got, err := ledger.DecodeMessage(m.Encode())
	if err != nil || got != m {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, m)
	}
	for _, body := range []string{
		`{"v":1,"type":"schedule","siteId":"s","scheduleId":"sch_1"}`,
		`{"v":1,"type":"schedule","siteId":"s","scheduleVersion":1}`,
	} {
		if _, err := ledger.DecodeMessage(body); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("DecodeMessage(%q): got %v, want an invalid error", body, err)
		}
	}
}

func TestActivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, c := setup(t)
	d := create(t, s, scheduled("site_1", "p1", "tgt_1", "sch_1"))
	if d.State != ledger.StateScheduled || d.ScheduleID != "sch_1" {
		t.Fatalf("created: got state %s schedule %q, want scheduled under sch_1", d.State, d.ScheduleID)
	}
	// Not claimable by the sweep's queued index until activated, and a
	// foreign schedule cannot activate it.
	if _, _, err := s.Activate(ctx, "site_1", d.ID, "sch_other"); !apperr.Is(err, apperr.KindConflict) {
		t.Fatalf("Activate with another schedule: got %v, want a conflict", err)
	}
	c.Advance(1)
	got, activated, err := s.Activate(ctx, "site_1", d.ID, "sch_1")
	if err != nil || !activated || got.State != ledger.StateQueued {
		t.Fatalf("Activate: got %s activated=%v err=%v, want queued activated", got.State, activated, err)
	}
	again, activated, err := s.Activate(ctx, "site_1", d.ID, "sch_1")
	if err != nil || activated || again.State != ledger.StateQueued || again.UpdatedAt != got.UpdatedAt {
		t.Fatalf("second Activate: got %s activated=%v err=%v, want the same queued delivery, unchanged", again.State, activated, err)
	}
	// Cancelled after the fire, before a claim: activation leaves it so.
	if _, err := s.Cancel(ctx, "site_1", d.ID); err != nil {
		t.Fatal(err)
	}
	if got, activated, err := s.Activate(ctx, "site_1", d.ID, "sch_1"); err != nil || activated || got.State != ledger.StateCancelled {
		t.Fatalf("Activate after cancel: got %s activated=%v err=%v, want cancelled, not activated", got.State, activated, err)
	}
	if _, _, err := s.Activate(ctx, "site_2", d.ID, "sch_1"); !apperr.Is(err, apperr.KindNotFound) {
		t.Fatalf("Activate from another site: got %v, want not found", err)
	}
}

func TestReviseScheduled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db, _ := setup(t)
	n := scheduled("site_1", "p1", "tgt_1", "sch_1")
	d := create(t, s, n)
	writes := db.Writes
	if _, err := s.ReviseScheduled(ctx, n); err != nil || db.Writes != writes {
		t.Fatalf("revise with the same content: err %v, %d writes; want nil and none", err, db.Writes-writes)
	}
	n.Text = "New words"
	got, err := s.ReviseScheduled(ctx, n)
	if err != nil || got.Text != "New words" || got.ID != d.ID || got.State != ledger.StateScheduled {
		t.Fatalf("revise: got %+v, %v; want the new text, still scheduled", got, err)
	}
	other := n
	other.ScheduleID = "sch_2"
	if _, err := s.ReviseScheduled(ctx, other); !apperr.Is(err, apperr.KindConflict) {
		t.Fatalf("revise from another schedule: got %v, want a conflict", err)
	}
	if _, _, err := s.Activate(ctx, "site_1", d.ID, "sch_1"); err != nil {
		t.Fatal(err)
	}
	n.Text = "Too late"
	if _, err := s.ReviseScheduled(ctx, n); !apperr.Is(err, apperr.KindConflict) {
		t.Fatalf("revise after the fire: got %v, want a conflict", err)
	}
}

func TestDeleteScheduled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := setup(t)
	d := create(t, s, scheduled("site_1", "p1", "tgt_1", "sch_1"))
	if err := s.DeleteScheduled(ctx, "site_1", d.ID, "sch_2"); !apperr.Is(err, apperr.KindConflict) {
		t.Fatalf("delete from another schedule: got %v, want a conflict", err)
	}
	if err := s.DeleteScheduled(ctx, "site_1", d.ID, "sch_1"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Get(ctx, "site_1", d.ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Fatalf("get after delete: got %v, want not found", err)
	}
	if err := s.DeleteScheduled(ctx, "site_1", d.ID, "sch_1"); err != nil {
		t.Fatalf("delete again: got %v, want nil", err)
	}
	// The same delivery can be created again (a schedule created anew).
	create(t, s, scheduled("site_1", "p1", "tgt_1", "sch_3"))
	q := create(t, s, newDelivery("site_1", "p2", "tgt_1"))
	if err := s.DeleteScheduled(ctx, "site_1", q.ID, ""); !apperr.Is(err, apperr.KindConflict) {
		t.Fatalf("delete a queued delivery: got %v, want a conflict", err)
	}
}
