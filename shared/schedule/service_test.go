package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/smithy-go"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
)

func code(err error) string {
	if e, ok := apperr.As(err); ok {
		return e.Code
	}
	return fmt.Sprint(err)
}

func TestCreateWritesLedgerThenScheduler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// When Scheduler is called, the schedule and its deliveries are in the
	// ledger already.
	e.sched.before = func(op string) {
		if op != "create" {
			return
		}
		if it := e.db.Item("SITE#"+testSite, "SCHED#sch_test1"); it == nil {
			t.Errorf("CreateSchedule before the schedule item was written")
		}
		if _, err := e.ledger.Get(e.ctx, testSite, ledger.DeliveryID(testSite, "p1", "1", "tgt_a")); err != nil {
			t.Errorf("CreateSchedule before the deliveries were written: %v", err)
		}
	}
	sch, ds := e.create("p1", time.Hour, "tgt_a", "tgt_b")
	if sch.State != StateScheduled || sch.Version != 1 || sch.Via != ViaScheduler || sch.SchedulerName != "post-sch_test1" {
		t.Fatalf("schedule: got %+v", sch)
	}
	if len(ds) != 2 || len(sch.DeliveryIDs) != 2 {
		t.Fatalf("deliveries: got %d (%v), want 2", len(ds), sch.DeliveryIDs)
	}
	for i, d := range ds {
		if d.State != ledger.StateScheduled || d.ScheduleID != sch.ID || d.ID != sch.DeliveryIDs[i] {
			t.Errorf("delivery %d: got state %s schedule %q id %s, want scheduled under %s", i, d.State, d.ScheduleID, d.ID, sch.ID)
		}
	}
	in := e.sched.get("post-sch_test1")
	if in == nil {
		t.Fatalf("no Scheduler schedule; calls %v", e.sched.callList())
	}
	local := sch.ScheduledFor.In(mustZone(t, "Europe/Berlin")).Format(wallLayout)
	for name, c := range map[string][2]string{
		"group":      {aws.ToString(in.GroupName), testGroup},
		"expression": {aws.ToString(in.ScheduleExpression), "at(" + local + ")"},
		"timezone":   {aws.ToString(in.ScheduleExpressionTimezone), "Europe/Berlin"},
		"window":     {string(in.FlexibleTimeWindow.Mode), "OFF"},
		"after":      {string(in.ActionAfterCompletion), "DELETE"},
		"target":     {aws.ToString(in.Target.Arn), queueARN},
		"role":       {aws.ToString(in.Target.RoleArn), roleARN},
		"dlq":        {aws.ToString(in.Target.DeadLetterConfig.Arn), dlqARN},
		"retries":    {fmt.Sprint(aws.ToInt32(in.Target.RetryPolicy.MaximumRetryAttempts)), "185"},
	} {
		if c[0] != c[1] {
			t.Errorf("Scheduler %s: got %q, want %q", name, c[0], c[1])
		}
	}
	m, err := ledger.DecodeMessage(aws.ToString(in.Target.Input))
	if err != nil || m != ledger.ScheduleMessage(testSite, sch.ID, 1) {
		t.Errorf("input: got %+v, %v; want the schedule message of version 1", m, err)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestCreateRollsBackWhenSchedulerFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sched.fail = func(op string, n int) error {
		if op == "create" && n == 1 {
			return &smithy.GenericAPIError{Code: "ValidationException", Message: "nope"}
		}
		return nil
	}
	p := post("p1")
	_, _, err := e.svc.Create(e.ctx, NewSchedule{SiteID: testSite, Post: p, TargetIDs: []string{"tgt_a"},
		When: When{At: e.clock.Now().Add(time.Hour), Zone: "UTC"}, Deliveries: deliveriesFor(p, "", "tgt_a")})
	if !apperr.Is(err, apperr.KindTransient) || code(err) != "schedule_not_created" {
		t.Fatalf("Create: got %v, want a transient schedule_not_created", err)
	}
	if it := e.db.Item("SITE#"+testSite, "SCHED#sch_test1"); it != nil {
		t.Errorf("the schedule item was left behind")
	}
	if _, err := e.ledger.Get(e.ctx, testSite, ledger.DeliveryID(testSite, "p1", "1", "tgt_a")); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("the delivery was left behind: %v", err)
	}
	if !slices.Contains(e.sched.callList(), "delete") {
		t.Errorf("no DeleteSchedule for a possibly created schedule: calls %v", e.sched.callList())
	}
	// Nothing blocks a second try.
	sch, _ := e.create("p1", time.Hour, "tgt_a")
	if sch.State != StateScheduled {
		t.Fatalf("second try: got %s", sch.State)
	}
}

func TestCreateRollbackFailureLeavesScheduleFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var tableDown atomic.Bool
	e.sched.fail = func(op string, _ int) error {
		if op == "create" {
			tableDown.Store(true) // from now on: the rollback's delete of the delivery fails
			return errors.New("scheduler down")
		}
		return nil
	}
	e.db.BeforeWrite = func(_, sk string) error {
		if strings.HasPrefix(sk, "DLV#") && tableDown.Load() {
			return errors.New("table down")
		}
		return nil
	}
	p := post("p1")
	_, _, err := e.svc.Create(e.ctx, NewSchedule{SiteID: testSite, Post: p, TargetIDs: []string{"tgt_a"},
		When: When{At: e.clock.Now().Add(time.Hour), Zone: "UTC"}, Deliveries: deliveriesFor(p, "", "tgt_a")})
	if code(err) != "schedule_failed" || !strings.Contains(err.Error(), "sch_test1") {
		t.Fatalf("Create: got %v, want schedule_failed naming the schedule", err)
	}
	e.db.BeforeWrite = nil
	sch := e.schedule("sch_test1")
	if sch.State != StateFailed || sch.Failure == "" {
		t.Fatalf("schedule: got %s %q, want failed with a reason", sch.State, sch.Failure)
	}
	if res, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1); err != nil || res.Action != FireFailed {
		t.Fatalf("Fire of a failed schedule: got %+v %v, want %s", res, err, FireFailed)
	}
	// Cancelling it frees the revision.
	if _, _, err := e.svc.Cancel(e.ctx, testSite, sch.ID); err != nil {
		t.Fatalf("cancel failed schedule: %v", err)
	}
}

func TestCreateConflictsWithAnExistingDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := post("p1")
	if _, _, err := e.ledger.CreateAll(e.ctx, deliveriesFor(p, "", "tgt_b")); err != nil { // dispatched now
		t.Fatal(err)
	}
	writes := e.db.Writes
	_, _, err := e.svc.Create(e.ctx, NewSchedule{SiteID: testSite, Post: p, TargetIDs: []string{"tgt_a", "tgt_b"},
		When: When{At: e.clock.Now().Add(time.Hour), Zone: "UTC"}, Deliveries: deliveriesFor(p, "", "tgt_a", "tgt_b")})
	e2, _ := apperr.As(err)
	if !apperr.Is(err, apperr.KindConflict) || len(e2.Problems) != 1 || e2.Problems[0].Field != "targets[tgt_b]" {
		t.Fatalf("Create: got %v, want a conflict naming targets[tgt_b]", err)
	}
	if e.db.Writes != writes || len(e.sched.callList()) != 0 {
		t.Fatalf("a refused Create wrote %d items and called Scheduler %v", e.db.Writes-writes, e.sched.callList())
	}
	// The same targets in another schedule are taken too.
	first, _ := e.create("p2", time.Hour, "tgt_a")
	p2 := post("p2")
	_, _, err = e.svc.Create(e.ctx, NewSchedule{SiteID: testSite, Post: p2, TargetIDs: []string{"tgt_a"},
		When: When{At: e.clock.Now().Add(2 * time.Hour), Zone: "UTC"}, Deliveries: deliveriesFor(p2, "", "tgt_a")})
	if !apperr.Is(err, apperr.KindConflict) || !strings.Contains(err.Error(), "belongs to schedule "+first.ID) {
		t.Fatalf("second schedule of the same revision: got %v, want a conflict naming the first", err)
	}
}

func TestCreateDueNowGoesStraightToTheQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", 3*time.Second, "tgt_a")
	if sch.Via != ViaQueue || len(e.sched.callList()) != 0 {
		t.Fatalf("got via %s and Scheduler calls %v, want the queue and none", sch.Via, e.sched.callList())
	}
	if len(e.sqs.sent) != 1 || e.sqs.sent[0].DelaySeconds != 3 || *e.sqs.sent[0].MessageBody != ledger.ScheduleMessage(testSite, sch.ID, 1).Encode() {
		t.Fatalf("direct send: got %+v", e.sqs.sent)
	}
}

func TestThrottledCreateIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sched.fail = func(op string, n int) error {
		if op == "create" && n <= 2 {
			return &schedtypes.ThrottlingException{Message: aws.String("Rate exceeded")}
		}
		return nil
	}
	sch, _ := e.create("p1", time.Hour, "tgt_a")
	if e.sched.get(sch.SchedulerName) == nil || len(e.clock.Sleeps()) != 2 {
		t.Fatalf("got schedule %v after sleeps %v, want it created after 2 backoffs", e.sched.get(sch.SchedulerName), e.clock.Sleeps())
	}
}

func TestRescheduleMakesOldFireStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a")
	when := When{At: sch.ScheduledFor.Add(24 * time.Hour), Zone: "America/New_York"}
	up, ds, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{When: &when, IfVersion: 1})
	if err != nil || up.Version != 2 || !up.ScheduledFor.Equal(when.At) || up.Timezone != "America/New_York" || len(ds) != 1 {
		t.Fatalf("Update: got %+v %v, want version 2 at the new time", up, err)
	}
	in := e.sched.get(sch.SchedulerName)
	expr, zone := Expression(when)
	if aws.ToString(in.ScheduleExpression) != expr || aws.ToString(in.ScheduleExpressionTimezone) != zone ||
		in.ActionAfterCompletion != schedtypes.ActionAfterCompletionDelete ||
		aws.ToString(in.Target.Input) != ledger.ScheduleMessage(testSite, sch.ID, 2).Encode() {
		t.Fatalf("Scheduler after the change: %s in %s, input %s", aws.ToString(in.ScheduleExpression), aws.ToString(in.ScheduleExpressionTimezone), aws.ToString(in.Target.Input))
	}
	if calls := e.sched.callList(); fmt.Sprint(calls) != "[create update]" {
		t.Errorf("Scheduler calls: got %v, want [create update]", calls)
	}
	if res, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1); err != nil || res.Action != FireStale || len(e.queue.messages()) != 0 {
		t.Fatalf("stale fire: got %+v %v and %d messages, want %s and none", res, err, len(e.queue.messages()), FireStale)
	}
	if d := e.delivery(sch.DeliveryIDs[0]); d.State != ledger.StateScheduled {
		t.Fatalf("after a stale fire the delivery is %s, want scheduled", d.State)
	}
	if res, err := e.svc.Fire(e.ctx, testSite, sch.ID, 2); err != nil || res.Action != FireDone || res.Enqueued != 1 {
		t.Fatalf("fire of version 2: got %+v %v", res, err)
	}
	// A stale change (composed against version 1) is refused.
	if _, _, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{When: &when, IfVersion: 1}); !apperr.Is(err, apperr.KindConflict) {
		t.Fatalf("update after fire: got %v, want a conflict", err)
	}
}

func TestUpdateTargetsAndText(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a", "tgt_b")
	custom := "Now with words"
	targets := []string{"tgt_b", "tgt_c"}
	up, ds, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{TargetIDs: targets, CustomMessage: &custom,
		Deliveries: deliveriesFor(post("p1"), custom, targets...)})
	if err != nil {
		t.Fatal(err)
	}
	idOf := func(tg string) string { return ledger.DeliveryID(testSite, "p1", "1", tg) }
	if fmt.Sprint(up.TargetIDs) != "[tgt_b tgt_c]" || fmt.Sprint(up.DeliveryIDs) != fmt.Sprint([]string{idOf("tgt_b"), idOf("tgt_c")}) || up.CustomMessage != custom {
		t.Fatalf("updated: got targets %v deliveries %v custom %q", up.TargetIDs, up.DeliveryIDs, up.CustomMessage)
	}
	if len(ds) != 2 || !strings.HasPrefix(ds[0].Text, custom) || !strings.HasPrefix(ds[1].Text, custom) {
		t.Fatalf("deliveries: got %+v, want both with the new text", ds)
	}
	if _, err := e.ledger.Get(e.ctx, testSite, idOf("tgt_a")); !apperr.Is(err, apperr.KindNotFound) {
		t.Fatalf("the delivery of the target taken out: got %v, want it gone", err)
	}
	res, err := e.svc.Fire(e.ctx, testSite, sch.ID, up.Version)
	if err != nil || res.Activated != 2 {
		t.Fatalf("fire: got %+v %v, want both deliveries activated", res, err)
	}
}

func TestUpdateUndoneWhenSchedulerFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a", "tgt_b")
	before := e.delivery(sch.DeliveryIDs[1])
	e.sched.fail = func(op string, n int) error {
		if op == "update" && n == 1 {
			return errors.New("scheduler down")
		}
		return nil
	}
	when := When{At: sch.ScheduledFor.Add(time.Hour), Zone: "UTC"}
	custom := "changed"
	targets := []string{"tgt_b", "tgt_c"}
	_, _, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{When: &when, TargetIDs: targets, CustomMessage: &custom,
		Deliveries: deliveriesFor(post("p1"), custom, targets...)})
	if code(err) != "schedule_not_changed" || !apperr.Is(err, apperr.KindTransient) {
		t.Fatalf("Update: got %v, want a transient schedule_not_changed", err)
	}
	got := e.schedule(sch.ID)
	if got.State != StateScheduled || got.Version != 1 || !got.ScheduledFor.Equal(sch.ScheduledFor) || fmt.Sprint(got.DeliveryIDs) != fmt.Sprint(sch.DeliveryIDs) {
		t.Fatalf("after the undo: got %+v, want it as it was", got)
	}
	if d := e.delivery(sch.DeliveryIDs[1]); d.Text != before.Text {
		t.Errorf("kept delivery: got text %q, want %q back", d.Text, before.Text)
	}
	if _, err := e.ledger.Get(e.ctx, testSite, ledger.DeliveryID(testSite, "p1", "1", "tgt_c")); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("added delivery left behind: %v", err)
	}
	if e.delivery(sch.DeliveryIDs[0]).State != ledger.StateScheduled {
		t.Errorf("the delivery of the target the change would take out is gone")
	}
	// The version of the undone change is never used again.
	up, _, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{When: &when})
	if err != nil || up.Version != 3 {
		t.Fatalf("next change: got version %d (%v), want 3", up.Version, err)
	}
	if res, _ := e.svc.Fire(e.ctx, testSite, sch.ID, 2); res.Action != FireStale {
		t.Fatalf("a stray fire of the undone version: got %s, want %s", res.Action, FireStale)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a", "tgt_b")
	got, ds, err := e.svc.Cancel(e.ctx, testSite, sch.ID)
	if err != nil || got.State != StateCancelled || got.CancelledAt == nil || len(ds) != 2 {
		t.Fatalf("Cancel: got %+v %v", got, err)
	}
	for _, d := range ds {
		if d.State != ledger.StateCancelled {
			t.Errorf("delivery %s: got %s, want cancelled", d.ID, d.State)
		}
	}
	if e.sched.get(sch.SchedulerName) != nil {
		t.Errorf("the Scheduler schedule was not deleted")
	}
	if res, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1); err != nil || res.Action != FireCancelled || len(e.queue.messages()) != 0 {
		t.Fatalf("fire after cancel: got %+v %v, %d messages; want %s and nothing sent", res, err, len(e.queue.messages()), FireCancelled)
	}
	if again, _, err := e.svc.Cancel(e.ctx, testSite, sch.ID); err != nil || again.State != StateCancelled {
		t.Fatalf("second cancel: got %+v %v, want the cancelled schedule", again, err)
	}
	when := When{At: sch.ScheduledFor.Add(time.Hour), Zone: "UTC"}
	if _, _, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{When: &when}); code(err) != "cancelled" {
		t.Fatalf("update after cancel: got %v, want a cancelled conflict", err)
	}
	if _, _, err := e.svc.Cancel(e.ctx, "site_b", sch.ID); !apperr.Is(err, apperr.KindNotFound) {
		t.Fatalf("cancel from another site: got %v, want not found", err)
	}
}

func TestFireIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a", "tgt_b")
	e.clock.Advance(time.Hour + 300*time.Millisecond)
	res, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1)
	if err != nil || res.Action != FireDone || res.Activated != 2 || res.Enqueued != 2 {
		t.Fatalf("first fire: got %+v %v", res, err)
	}
	msgs := e.queue.messages()
	for i, m := range msgs {
		if m.Body != ledger.DeliveryMessage(testSite, sch.DeliveryIDs[i]).Encode() {
			t.Errorf("message %d: got %s, want the delivery message of %s", i, m.Body, sch.DeliveryIDs[i])
		}
	}
	fired := e.schedule(sch.ID)
	if late, ok := FireLate(fired); fired.State != StateFired || !ok || late != 300*time.Millisecond {
		t.Fatalf("after the fire: got %s, late %v", fired.State, late)
	}
	writes := e.db.Writes
	res, err = e.svc.Fire(e.ctx, testSite, sch.ID, 1)
	if err != nil || res.Action != FireDuplicate || e.db.Writes != writes || len(e.queue.messages()) != 2 {
		t.Fatalf("second fire: got %+v %v, %d writes, %d messages; want %s, nothing written or sent",
			res, err, e.db.Writes-writes, len(e.queue.messages()), FireDuplicate)
	}
	// Cancel after the fire, before a claim: the delivery is cancelled and
	// the dispatcher's claim acknowledges its message without publishing.
	if _, err := e.ledger.Cancel(e.ctx, testSite, sch.DeliveryIDs[0]); err != nil {
		t.Fatal(err)
	}
	_, err = e.ledger.Claim(e.ctx, testSite, sch.DeliveryIDs[0], ledger.Policy{})
	if ce, ok := ledger.Refused(err); !ok || ce.Reason != ledger.RefusedSettled || ce.Delivery.State != ledger.StateCancelled {
		t.Fatalf("claim of the cancelled delivery: got %v, want refused as settled (cancelled)", err)
	}
	if lease, err := e.ledger.Claim(e.ctx, testSite, sch.DeliveryIDs[1], ledger.Policy{}); err != nil || lease.From() != ledger.StateQueued {
		t.Fatalf("claim of the other delivery: got %v, want claimed from queued", err)
	}
	// The schedule that fired can no longer be changed or cancelled.
	when := When{At: sch.ScheduledFor.Add(time.Hour), Zone: "UTC"}
	if _, _, err := e.svc.Update(e.ctx, testSite, sch.ID, Change{When: &when}); code(err) != "already_fired" {
		t.Errorf("update after the fire: got %v, want already_fired", err)
	}
	if _, _, err := e.svc.Cancel(e.ctx, testSite, sch.ID); code(err) != "already_fired" || !strings.Contains(err.Error(), "/v1/deliveries/{id}/cancel") {
		t.Errorf("cancel after the fire: got %v, want already_fired pointing at the delivery cancel", err)
	}
}

func TestFireTakesOverADeadFire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a")
	e.queue.err = errors.New("queue down")
	if _, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1); err == nil {
		t.Fatal("fire with the queue down: got nil, want an error (the message comes back)")
	}
	e.queue.err = nil
	if d := e.delivery(sch.DeliveryIDs[0]); d.State != ledger.StateQueued {
		t.Fatalf("delivery after the failed send: got %s, want queued (the sweep's safety net)", d.State)
	}
	// A duplicate while the first fire's lease runs waits.
	if _, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1); !errors.Is(err, ErrFireInProgress) {
		t.Fatalf("fire during the lease: got %v, want ErrFireInProgress", err)
	}
	e.clock.Advance(DefaultFireLease + time.Second)
	res, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1)
	if err != nil || res.Action != FireDone || res.Activated != 0 || res.Enqueued != 1 {
		t.Fatalf("takeover: got %+v %v, want the queued delivery sent again", res, err)
	}
	if got := e.schedule(sch.ID); got.State != StateFired {
		t.Fatalf("after the takeover: got %s, want fired", got.State)
	}
}

func TestFireOfUnknownSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sch, _ := e.create("p1", time.Hour, "tgt_a")
	for _, c := range []struct{ site, id string }{{testSite, "sch_nope"}, {"site_b", sch.ID}} {
		if res, err := e.svc.Fire(e.ctx, c.site, c.id, 1); err != nil || res.Action != FireUnknown {
			t.Errorf("Fire(%s, %s): got %+v %v, want %s", c.site, c.id, res, err, FireUnknown)
		}
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{"sch_abc234": true, "sch_": false, "sch_ABC": false, "dlv_abc": false,
		"sch_a#b": false, "sch_" + strings.Repeat("a", 61): false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q): got %v, want %v", id, got, want)
		}
	}
}
