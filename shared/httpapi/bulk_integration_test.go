package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/schedule"
)

func bulkBody(items ...string) string { return `{"items":[` + strings.Join(items, ",") + `]}` }

func bulkItemJSON(id, postID, url, targets string) string {
	t := ""
	if targets != "" {
		t = `,"targetIds":` + targets
	}
	return `{"id":"` + id + `","post":{"postId":"` + postID + `","revision":"1","url":"` + url + `"}` + t + `}`
}

// TestBulkDispatchAgainstMoto checks POST /v1/dispatch/bulk's rules
// through the real handler and stores: per-item results and problems,
// default targets, idempotency as a whole and per item, the limits.
func TestBulkDispatchAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	tx := s.target(s.keyA, "conn_xa", "X", "")
	tm := s.target(s.keyA, "conn_ma", "Mastodon", "")
	s.target(s.keyB, "conn_xb", "Beta X", "")

	body := bulkBody(
		bulkItemJSON("a", "p1", "https://alpha.example/1", `["`+tx+`"]`),
		bulkItemJSON("b", "p2", "ftp://alpha.example/2", `["`+tx+`"]`),
		bulkItemJSON("c", "p3", "https://alpha.example/3", ""), // the site's active targets
	)
	var got bulkResponse
	s.must(207, &got, "POST", "/v1/dispatch/bulk", s.keyA, body, "Idempotency-Key", "bulk-1")
	if got.Queued != 2 || got.Rejected != 1 || len(got.Items) != 3 {
		t.Fatalf("bulk: got %+v, want 2 queued and 1 rejected", got)
	}
	if it := got.Items[1]; it.Status != bulkRejected || len(it.Problems) == 0 || it.Problems[0].Field != "items[1].post.url" {
		t.Errorf("item 1: got %+v, want rejected naming items[1].post.url", it)
	}
	if it := got.Items[2]; it.Status != bulkQueued || len(it.Deliveries) != 2 || it.Created != 2 {
		t.Errorf("item 2 (default targets %s, %s): got %+v", tx, tm, it)
	}
	if n := len(s.drain(s.queueURL)); n != 3 {
		t.Errorf("messages: got %d, want 3", n)
	}
	items := notAudit(s.items())

	// The same call again: the stored answer.
	status, replayed, h := s.call("POST", "/v1/dispatch/bulk", s.keyA, body, "Idempotency-Key", "bulk-1")
	if status != 207 || h.Get(ReplayedHeader) != "true" {
		t.Errorf("replay: got %d %s", status, h.Get(ReplayedHeader))
	}
	var again bulkResponse
	_ = json.Unmarshal([]byte(replayed), &again)
	if fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("replay: got %+v, want %+v", again, got)
	}
	// The same key with another body: 409.
	status, pb, _ := s.call("POST", "/v1/dispatch/bulk", s.keyA, bulkBody(bulkItemJSON("z", "p9", "https://alpha.example/9", `["`+tx+`"]`)), "Idempotency-Key", "bulk-1")
	if status != 409 || !strings.Contains(pb, "idempotency_key_reused") {
		t.Errorf("same key, other body: got %d %s, want 409 idempotency_key_reused", status, pb)
	}
	// Without the key, each item's id answers it: nothing new.
	var items2 bulkResponse
	s.must(207, &items2, "POST", "/v1/dispatch/bulk", s.keyA, body)
	if items2.Items[0].Status != bulkQueued || !items2.Items[0].Replayed || items2.Items[0].Created != 1 || !items2.Items[2].Replayed {
		t.Errorf("per-item replay: got %+v", items2.Items)
	}
	// An id used with another item is a problem of that item.
	var other bulkResponse
	s.must(207, &other, "POST", "/v1/dispatch/bulk", s.keyA, bulkBody(bulkItemJSON("a", "p1", "https://alpha.example/other", `["`+tx+`"]`)))
	if it := other.Items[0]; it.Status != bulkRejected || it.Problems[0].Field != "items[0].id" {
		t.Errorf("id reused: got %+v, want rejected naming items[0].id", it)
	}
	if after := notAudit(s.items()); len(after) != len(items) {
		t.Errorf("replays wrote: before %d items, after %d", len(items), len(after))
	}
	s.drain(s.queueURL)

	for _, c := range []struct {
		name, body string
		status     int
		want       []string
	}{
		{"same id twice", bulkBody(bulkItemJSON("d", "p4", "https://alpha.example/4", `["`+tx+`"]`), bulkItemJSON("e", "p5", "https://alpha.example/5", `["`+tx+`"]`),
			bulkItemJSON("d", "p6", "https://alpha.example/6", `["`+tx+`"]`)), 422, []string{"items[2].id", "items[0]"}},
		{"over 100 items", bulkBody(strings.Repeat(bulkItemJSON("x", "p", "https://alpha.example/", `["`+tx+`"]`)+",", 100) + bulkItemJSON("y", "p", "https://alpha.example/", `["`+tx+`"]`)), 413, []string{"at most 100"}},
		{"no items", `{"items":[]}`, 422, []string{"items"}},
		{"another site's target", bulkBody(bulkItemJSON("f", "p7", "https://alpha.example/7", `["tgt_nope"]`)), 207, []string{"items[0].targetIds"}},
	} {
		status, b, _ := s.call("POST", "/v1/dispatch/bulk", s.keyA, c.body)
		if status != c.status {
			t.Errorf("%s: got %d %s, want %d", c.name, status, b, c.status)
		}
		for _, w := range c.want {
			if !strings.Contains(b, w) {
				t.Errorf("%s: got %s, want it to name %s", c.name, b, w)
			}
		}
	}
	if after := notAudit(s.items()); len(after) != len(items) {
		t.Errorf("rejected calls wrote: before %d items, after %d", len(items), len(after))
	}
	if n := s.depth(s.queueURL); n != 0 {
		t.Errorf("rejected calls queued %d messages", n)
	}
}

// notAudit leaves out audit entries (every bulk call that answers 207 is
// audited, writing or not).
func notAudit(items []string) []string {
	var out []string
	for _, it := range items {
		if !strings.Contains(it, "#AUDIT|") {
			out = append(out, it)
		}
	}
	return out
}

// TestBulkScheduledItemsAgainstMoto checks that a bulk item with
// scheduledFor becomes a schedule under the schedule service's rules (one
// schedule per post revision), beside a queued item, and that a bad time
// names items[i].scheduledFor.
func TestBulkScheduledItemsAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newScheduleStack(t, schedule.Limits{})
	tx := s.target(s.keyA, "conn_xa", "X", "")
	when := fmt.Sprintf("%d-06-01T09:00", s.clock.Now().Year()+1)
	item := func(id, postID, extra string) string {
		return `{"id":"` + id + `","post":{"postId":"` + postID + `","revision":"1","url":"https://alpha.example/` + postID + `"},"targetIds":["` + tx + `"]` + extra + `}`
	}
	var got bulkResponse
	s.must(207, &got, "POST", "/v1/dispatch/bulk", s.keyA, bulkBody(
		item("s1", "sp1", `,"scheduledFor":"`+when+`","timezone":"Europe/Berlin"`),
		item("s2", "sp2", ""),
		item("s3", "sp1", `,"scheduledFor":"`+when+`"`),
		item("s4", "sp4", `,"scheduledFor":"2001-01-01T00:00"`),
	))
	if it := got.Items[0]; it.Status != bulkScheduled || it.ScheduleID == "" || len(it.Deliveries) != 1 || it.Deliveries[0].State != ledger.StateScheduled {
		t.Errorf("scheduled item: got %+v", it)
	}
	if it := got.Items[1]; it.Status != bulkQueued {
		t.Errorf("queued item: got %+v", it)
	}
	if it := got.Items[2]; it.Status != bulkRejected {
		t.Errorf("a second schedule of the same revision: got %+v, want rejected", it)
	}
	if it := got.Items[3]; it.Status != bulkRejected || !strings.HasPrefix(it.Problems[0].Field, "items[3].scheduledFor") {
		t.Errorf("a time in the past: got %+v, want rejected naming items[3].scheduledFor", it)
	}
	var sch scheduleOut
	s.must(200, &sch, "GET", "/v1/schedules/"+got.Items[0].ScheduleID, s.keyA, "")
	if sch.State != "scheduled" || sch.Timezone != "Europe/Berlin" {
		t.Errorf("the scheduled item's schedule: got %+v", sch)
	}
	if _, err := s.inScheduler(sch.SchedulerName); err != nil {
		t.Errorf("the scheduled item's schedule is not in the scheduler: %v", err)
	}
	// Sent again by id: the same schedule, nothing new.
	var again bulkResponse
	s.must(207, &again, "POST", "/v1/dispatch/bulk", s.keyA, bulkBody(item("s1", "sp1", `,"scheduledFor":"`+when+`","timezone":"Europe/Berlin"`)))
	if it := again.Items[0]; !it.Replayed || it.ScheduleID != got.Items[0].ScheduleID {
		t.Errorf("scheduled item sent again: got %+v, want the first schedule replayed", it)
	}
}
