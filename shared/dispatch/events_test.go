package dispatch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// fakeEvents records what the dispatcher puts on the webhook queue, and
// serves as the outbox the sweep reads.
type fakeEvents struct {
	mu        sync.Mutex
	published []string
	err       error
	pending   []event.Ref
	before    time.Time
}

func (f *fakeEvents) Publish(_ context.Context, siteID, eventID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.published = append(f.published, siteID+"/"+eventID)
	return nil
}

func (f *fakeEvents) Pending(_ context.Context, before time.Time, _ int) ([]event.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before = before
	return f.pending, nil
}

func (f *fakeEvents) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.published...)
}

type fakeWebhookSweeper struct{ before time.Time }

func (f *fakeWebhookSweeper) Sweep(_ context.Context, before time.Time, _ int) (int, error) {
	f.before = before
	return 2, nil
}

func TestOutcomeEventIsPublishedOnce(t *testing.T) {
	t.Parallel()
	evs := &fakeEvents{}
	r := newRig(t, func(c *dispatch.Config) { c.Events = evs })
	d, rec := r.delivery("p1")
	for range 3 { // the message, a redelivery, a redrive
		if err := r.d.HandleRecord(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	want := "site_a/" + event.DeliveryEventID(d.ID, 1, event.DeliverySent)
	if got := evs.sent(); len(got) != 1 || got[0] != want {
		t.Errorf("published: got %v, want [%s] once", got, want)
	}
}

func TestRetryAndItsOutcomeEachPublishTheirEvent(t *testing.T) {
	t.Parallel()
	evs := &fakeEvents{}
	r := newRig(t, func(c *dispatch.Config) { c.Events = evs })
	calls := 0
	r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
		calls++
		if calls == 1 {
			return platform.Result{}, apperr.New(apperr.KindTransient, "mastodon.unavailable", "503")
		}
		return platform.Result{ID: "2", URL: "https://m.example/2"}, nil
	}
	d, rec := r.delivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	got := evs.sent()
	want := []string{"site_a/" + event.DeliveryEventID(d.ID, 1, event.DeliveryRetrying), "site_a/" + event.DeliveryEventID(d.ID, 2, event.DeliverySent)}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("published: got %v, want %v", got, want)
	}
}

func TestFailedEventSendDoesNotFailTheMessage(t *testing.T) {
	t.Parallel()
	evs := &fakeEvents{err: errors.New("sqs down")}
	r := newRig(t, func(c *dispatch.Config) { c.Events = evs })
	d, rec := r.delivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatalf("got %v, want the message acknowledged: the event waits in the outbox", err)
	}
	if got := r.get(d.ID); got.State != ledger.StateSent {
		t.Errorf("delivery: got %s, want sent", got.State)
	}
}

func TestSweepSendsPendingEventsAgain(t *testing.T) {
	t.Parallel()
	evs := &fakeEvents{pending: []event.Ref{{SiteID: "site_a", ID: event.ID("a")}, {SiteID: "site_b", ID: event.ID("b")}}}
	hooks := &fakeWebhookSweeper{}
	r := newRig(t, func(c *dispatch.Config) { c.Events, c.Outbox, c.Webhooks = evs, evs, hooks })
	// The fake table cannot list the ledger's work queues (Query): those
	// parts of the sweep fail here and are covered against moto. The
	// events are swept all the same.
	st, _ := r.d.Sweep(context.Background(), dispatch.SweepConfig{})
	if st.PendingEvents != 2 || len(evs.sent()) != 2 || st.WebhookAttempts != 2 {
		t.Errorf("sweep: got %+v with %v published, want 2 events and 2 webhook attempts sent again", st, evs.sent())
	}
	if want := r.clock.Now().Add(-time.Minute); !evs.before.Equal(want) || !hooks.before.Equal(want) {
		t.Errorf("looked for events pending before %v and attempts before %v, want a minute ago (%v)", evs.before, hooks.before, want)
	}
}
