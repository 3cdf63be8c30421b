package schedule

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/event"
)

type fakeEvents struct {
	mu   sync.Mutex
	sent []string
}

func (f *fakeEvents) Publish(_ context.Context, siteID, eventID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, siteID+"/"+eventID)
	return nil
}

func TestFireRecordsScheduleFiredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evs := &fakeEvents{}
	e.svc.cfg.Events = evs
	sch, _ := e.create("p1", time.Hour, "tgt_a", "tgt_b")
	e.clock.Advance(time.Hour)
	for range 2 { // the fire and a duplicate
		if _, err := e.svc.Fire(e.ctx, testSite, sch.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	id := event.ID("schedule", testSite, sch.ID, strconv.Itoa(1), string(event.ScheduleFired))
	if len(evs.sent) != 1 || evs.sent[0] != testSite+"/"+id {
		t.Fatalf("published: got %v, want schedule.fired %s once", evs.sent, id)
	}
	it := e.db.Item(event.Partition(testSite), id)
	body, _ := it["body"].(*types.AttributeValueMemberS)
	if body == nil || it["GSI2PK"] == nil {
		t.Fatalf("stored event: got %v, want the pending schedule.fired", it)
	}
	var got struct {
		Type string
		Data event.ScheduleData
	}
	if err := json.Unmarshal([]byte(body.Value), &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "schedule.fired" || got.Data.ScheduleID != sch.ID || got.Data.PostID != "p1" || got.Data.Version != 1 ||
		len(got.Data.DeliveryIDs) != 2 || !got.Data.ScheduledFor.Equal(sch.ScheduledFor) {
		t.Errorf("event: got %+v", got)
	}
	if s := e.schedule(sch.ID); s.State != StateFired {
		t.Errorf("schedule: got %s, want fired", s.State)
	}
}
