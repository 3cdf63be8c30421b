package connection_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/connection/connectiontest"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/platform"
)

type publishedEvents struct {
	mu  sync.Mutex
	ids []string
}

func (p *publishedEvents) Publish(_ context.Context, siteID, eventID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, eventID)
	return nil
}

func (p *publishedEvents) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...)
}

// TestStatusChangesRecordTheirEvents, against moto: a connection going
// expiring and then broken records connection.expiring and
// connection.broken with the change, once each; marking a broken
// connection broken again records nothing.
func TestStatusChangesRecordTheirEvents(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{})
	pub := &publishedEvents{}
	e.Refresher.PublishEvents(pub)
	outbox := event.NewStore(e.DB, e.Table)
	li := e.Connect(platform.LinkedIn)

	e.Clock.Advance(55 * 24 * time.Hour) // under 7 days left and no refresh token: expiring
	if _, err := e.Refresher.Run(e.Ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Refresher.Run(e.Ctx); err != nil { // nothing changes: no second event
		t.Fatal(err)
	}
	ids := pub.all()
	if len(ids) != 1 {
		t.Fatalf("after expiring: published %v, want one event", ids)
	}
	ev, err := outbox.Get(e.Ctx, e.Site.ID, ids[0])
	if err != nil || ev.Type != event.ConnectionExpiring || !ev.Pending ||
		!strings.Contains(string(ev.Data), `"connectionId":"`+li+`"`) || !strings.Contains(string(ev.Data), `"platform":"linkedin"`) ||
		!strings.Contains(string(ev.Data), `"expiresAt"`) {
		t.Fatalf("connection.expiring: got %+v (%s), %v", ev, ev.Data, err)
	}

	if err := e.Refresher.MarkBroken(e.Ctx, e.Site.ID, li, "linkedin.401"); err != nil {
		t.Fatal(err)
	}
	if err := e.Refresher.MarkBroken(e.Ctx, e.Site.ID, li, "linkedin.401"); err != nil {
		t.Fatal(err)
	}
	ids = pub.all()
	if len(ids) != 2 {
		t.Fatalf("after two MarkBroken: published %v, want one more event", ids)
	}
	ev, err = outbox.Get(e.Ctx, e.Site.ID, ids[1])
	if err != nil || ev.Type != event.ConnectionBroken || !strings.Contains(string(ev.Data), `"reason":"linkedin.401"`) {
		t.Errorf("connection.broken: got %+v (%s), %v", ev, ev.Data, err)
	}
	c, _ := e.Service.Get(e.Ctx, e.Site.ID, li)
	if c.Status != connection.StatusBroken || c.StatusReason != "linkedin.401" {
		t.Errorf("connection: got %s (%s), want broken", c.Status, c.StatusReason)
	}
	e.AssertLogsClean()
}
