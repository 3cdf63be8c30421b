package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the same zone data in every test environment

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/schedule"
	"github.com/posse-dev/posse/shared/site"
)

// scheduleStack is the moto stack of the publishing tests with the
// schedule routes on a real Service: moto's Scheduler, a schedule group of
// its own, and a third site in Europe/Berlin.
type scheduleStack struct {
	*motoStack
	svc      *schedule.Service
	sched    *scheduler.Client
	group    string
	queueARN string
	berlin   site.Site
	keyC     string
}

func newScheduleStack(t *testing.T, limits schedule.Limits) *scheduleStack {
	t.Helper()
	s := &scheduleStack{motoStack: newMotoStack(t), sched: scheduler.NewFromConfig(mototest.Config(t))}
	s.group = "posse-" + randomName(t)
	if _, err := s.sched.CreateScheduleGroup(s.ctx, &scheduler.CreateScheduleGroupInput{Name: &s.group}); err != nil {
		t.Fatal(err)
	}
	arnOf := func(url string) string {
		out, err := s.sqs.GetQueueAttributes(s.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes["QueueArn"]
	}
	s.queueARN = arnOf(s.queueURL)
	svc, err := schedule.New(schedule.Config{
		DB: s.db, Table: s.table, Ledger: s.ledger, Snapshots: compose.NewSnapshots(s.db, s.table, s.clock.Now),
		Scheduler: s.sched, Group: s.group, QueueARN: s.queueARN, RoleARN: "arn:aws:iam::123456789012:role/posse-test-scheduler",
		DLQARN: arnOf(s.dlqURL), SQS: s.sqs, QueueURL: s.queueURL,
		Queue:  queue.New(queue.Config{SQS: s.sqs, DispatchURL: s.queueURL}),
		Limits: limits, Now: s.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.svc = svc
	d := s.srv.d
	d.Schedules = svc
	d.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s.srv = New(d)
	s.berlin, err = s.sites.Create(s.ctx, site.NewSite{Name: "Gamma", Timezone: "Europe/Berlin", ReturnURL: "https://gamma.example/back"})
	if err != nil {
		t.Fatal(err)
	}
	if _, s.keyC, err = s.sites.IssueKey(s.ctx, s.berlin.ID, "cms"); err != nil {
		t.Fatal(err)
	}
	s.putConn(s.berlin.ID, "conn_mc", platform.Mastodon, connection.StatusActive)
	return s
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// scheduleOut is the part of a schedule answer the tests read.
type scheduleOut struct {
	ID, State, PostID, Revision             string
	Version                                 int
	ScheduledFor, ScheduledForUTC, Timezone string
	LocalTime, SchedulerName                string
	TargetIDs, DeliveryIDs                  []string
	Deliveries                              []ledger.Delivery
	Resolution                              *struct {
		Input, Note   string
		Chosen, Other time.Time
	}
}

func scheduleBody(postID string, targets []string, when, zone, extra string) string {
	ids, _ := json.Marshal(targets)
	b := `{"post":{"postId":"` + postID + `","revision":"1","title":"Hello","url":"https://blog.example/` + postID + `"},"targetIds":` + string(ids) +
		`,"scheduledFor":"` + when + `"`
	if zone != "" {
		b += `,"timezone":"` + zone + `"`
	}
	return b + extra + `}`
}

// lastSunday is the last Sunday of a month, the EU's DST change day.
func lastSunday(year int, m time.Month) time.Time {
	d := time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Sunday {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

func (s *scheduleStack) inScheduler(name string) (*scheduler.GetScheduleOutput, error) {
	return s.sched.GetSchedule(s.ctx, &scheduler.GetScheduleInput{Name: &name, GroupName: &s.group})
}

func TestSchedulesAPIAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newScheduleStack(t, schedule.Limits{})
	tx := s.target(s.keyA, "conn_xa", "X", "")
	tm := s.target(s.keyA, "conn_ma", "Mastodon", "")
	year := s.clock.Now().Year() + 1

	// Create, as a local time in a given zone.
	var sch scheduleOut
	status, body, hdr := s.call("POST", "/v1/schedules", s.keyA, scheduleBody("p1", []string{tx, tm}, fmt.Sprintf("%d-07-01T09:30:00", year), "Europe/Berlin", `,"customMessage":"Soon"`))
	if status != 201 || json.Unmarshal([]byte(body), &sch) != nil {
		t.Fatalf("create: got %d %s", status, body)
	}
	if sch.State != "scheduled" || sch.Version != 1 || sch.ScheduledFor != fmt.Sprintf("%d-07-01T09:30:00+02:00", year) ||
		sch.ScheduledForUTC != fmt.Sprintf("%d-07-01T07:30:00Z", year) || sch.Timezone != "Europe/Berlin" || hdr.Get("Location") != "/v1/schedules/"+sch.ID {
		t.Fatalf("create: got %+v (Location %q)", sch, hdr.Get("Location"))
	}
	if len(sch.Deliveries) != 2 || sch.Deliveries[0].State != ledger.StateScheduled || sch.Deliveries[0].TargetID != tx ||
		!strings.Contains(sch.Deliveries[0].Text, "Soon") || sch.Deliveries[1].State != ledger.StateScheduled {
		t.Fatalf("create: deliveries %+v, want 2 scheduled, composed with the custom message", sch.Deliveries)
	}
	got, err := s.inScheduler(sch.SchedulerName)
	if err != nil || aws.ToString(got.ScheduleExpression) != fmt.Sprintf("at(%d-07-01T09:30:00)", year) ||
		aws.ToString(got.ScheduleExpressionTimezone) != "Europe/Berlin" || got.ActionAfterCompletion != schedtypes.ActionAfterCompletionDelete ||
		aws.ToString(got.Target.Arn) != s.queueARN {
		t.Fatalf("Scheduler schedule: got %+v %v", got, err)
	}
	if s.depth(s.queueURL) != 0 {
		t.Errorf("a schedule put messages on the dispatch queue before it fired")
	}
	var one scheduleOut
	s.must(200, &one, "GET", "/v1/schedules/"+sch.ID, s.keyA, "")
	if one.ID != sch.ID || len(one.Deliveries) != 2 {
		t.Errorf("get: got %+v", one)
	}
	for _, path := range []string{"/v1/schedules/" + sch.ID, "/v1/schedules/not-an-id"} {
		if status, body, _ := s.call("GET", path, s.keyB, ""); status != 404 {
			t.Errorf("GET %s as another site: got %d %s, want 404", path, status, body)
		}
	}
	var dlv ledger.Delivery
	s.must(200, &dlv, "GET", "/v1/deliveries/"+sch.DeliveryIDs[0], s.keyA, "")
	if dlv.State != ledger.StateScheduled || dlv.ScheduleID != sch.ID {
		t.Errorf("the delivery: got %s under %q, want scheduled under %s", dlv.State, dlv.ScheduleID, sch.ID)
	}

	// Bad input: nothing is written.
	gap := lastSunday(year, time.March).Format("2006-01-02") + "T02:30:00"
	before := s.items()
	for _, c := range []struct {
		name, key, body string
		status          int
		code, detail    string
	}{
		{"malformed time", s.keyA, scheduleBody("p2", []string{tx}, "tomorrow at nine", "", ""), 400, "invalid_request", "scheduledFor"},
		{"unknown zone", s.keyA, scheduleBody("p2", []string{tx}, fmt.Sprintf("%d-07-01T09:30:00", year), "Mars/Olympus", ""), 400, "invalid_request", "timezone"},
		{"in the past", s.keyA, scheduleBody("p2", []string{tx}, "2020-01-01T09:30:00Z", "", ""), 422, "scheduled_in_past", "in the past"},
		{"spring-forward gap", s.keyC, scheduleBody("p2", []string{"tgt_x"}, gap, "", ""), 400, "invalid_request", ""}, // checked below with a real target
		{"unknown target", s.keyA, scheduleBody("p2", []string{tx, "tgt_nope"}, fmt.Sprintf("%d-07-01T09:30:00Z", year), "", ""), 422, "schedule_rejected", "unknown targets"},
		{"another site's target", s.keyB, scheduleBody("p2", []string{tx}, fmt.Sprintf("%d-07-01T09:30:00Z", year), "", ""), 422, "schedule_rejected", "unknown targets"},
		{"no post", s.keyA, `{"targetIds":["` + tx + `"],"scheduledFor":"` + fmt.Sprintf("%d-07-01T09:30:00Z", year) + `"}`, 422, "schedule_rejected", "post"},
		{"the same revision again", s.keyA, scheduleBody("p1", []string{tm}, fmt.Sprintf("%d-08-01T09:30:00Z", year), "", ""), 409, "already_dispatched", sch.ID},
	} {
		if c.name == "spring-forward gap" {
			continue
		}
		status, body, _ := s.call("POST", "/v1/schedules", c.key, c.body)
		p := problemOf(t, body)
		if status != c.status || p.Code != c.code || !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: got %d %s, want %d %s saying %q", c.name, status, body, c.status, c.code, c.detail)
		}
	}
	if after := s.items(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused requests wrote: before %d items, after %d", len(before), len(after))
	}

	// The site's own zone (Europe/Berlin) reads local times: a gap is 422
	// saying so, an overlap resolves to the first occurrence and says so.
	tc := s.target(s.keyC, "conn_mc", "Berlin Mastodon", "")
	status, body, _ = s.call("POST", "/v1/schedules", s.keyC, scheduleBody("p3", []string{tc}, gap, "", ""))
	if p := problemOf(t, body); status != 422 || p.Code != "nonexistent_local_time" || !strings.Contains(p.Detail, "does not exist in Europe/Berlin") ||
		!strings.Contains(p.Detail, "from 02:00 to 03:00") {
		t.Errorf("gap: got %d %s, want 422 nonexistent_local_time saying the clocks jump", status, body)
	}
	overlap := lastSunday(year, time.October).Format("2006-01-02") + "T02:30:00"
	var amb scheduleOut
	s.must(201, &amb, "POST", "/v1/schedules", s.keyC, scheduleBody("p3", []string{tc}, overlap, "", ""))
	if amb.Timezone != "Europe/Berlin" || amb.ScheduledFor != overlap+"+02:00" || amb.Resolution == nil ||
		!strings.Contains(amb.Resolution.Note, "first occurrence") || amb.Resolution.Other.Sub(amb.Resolution.Chosen) != time.Hour {
		t.Fatalf("overlap: got %+v (resolution %+v), want the first occurrence, +02:00, explained", amb, amb.Resolution)
	}
	if got, err := s.inScheduler(amb.SchedulerName); err != nil || aws.ToString(got.ScheduleExpressionTimezone) != "UTC" ||
		aws.ToString(got.ScheduleExpression) != "at("+strings.TrimSuffix(amb.ScheduledForUTC, "Z")+")" {
		t.Errorf("overlap in Scheduler: got %+v %v, want the instant in UTC", got, err)
	}

	// Change: time, then targets and text.
	var up scheduleOut
	s.must(200, &up, "PATCH", "/v1/schedules/"+sch.ID, s.keyA, fmt.Sprintf(`{"scheduledFor":"%d-07-02T10:00:00"}`, year))
	if up.Version != 2 || up.ScheduledFor != fmt.Sprintf("%d-07-02T10:00:00+02:00", year) {
		t.Fatalf("reschedule: got %+v, want version 2 at 10:00 Berlin time", up)
	}
	if got, _ := s.inScheduler(sch.SchedulerName); aws.ToString(got.ScheduleExpression) != fmt.Sprintf("at(%d-07-02T10:00:00)", year) ||
		aws.ToString(got.Target.Input) != ledger.ScheduleMessage(s.a.ID, sch.ID, 2).Encode() {
		t.Errorf("Scheduler after reschedule: %s %s", aws.ToString(got.ScheduleExpression), aws.ToString(got.Target.Input))
	}
	s.must(200, &up, "PATCH", "/v1/schedules/"+sch.ID, s.keyA, `{"targetIds":["`+tm+`"],"customMessage":"Later"}`)
	if up.Version != 3 || len(up.Deliveries) != 1 || up.Deliveries[0].TargetID != tm || !strings.Contains(up.Deliveries[0].Text, "Later") {
		t.Fatalf("retarget: got %+v", up)
	}
	if status, _, _ := s.call("GET", "/v1/deliveries/"+sch.DeliveryIDs[0], s.keyA, ""); status != 404 {
		t.Errorf("the delivery of the target taken out: got %d, want 404", status)
	}
	for _, c := range []struct{ body, field string }{
		{`{"timezone":"America/New_York"}`, "timezone"},
		{`{}`, "body"},
		{`{"scheduledFor":"soon"}`, "scheduledFor"},
	} {
		if status, body, _ := s.call("PATCH", "/v1/schedules/"+sch.ID, s.keyA, c.body); status != 400 || !hasField(problemOf(t, body), c.field) {
			t.Errorf("PATCH %s: got %d %s, want 400 naming %s", c.body, status, body, c.field)
		}
	}

	// Fire (as the dispatcher does), then changing or cancelling is a 409.
	if res, err := s.svc.Fire(s.ctx, s.a.ID, sch.ID, 2); err != nil || res.Action != schedule.FireStale {
		t.Fatalf("stale fire: %+v %v", res, err)
	}
	if res, err := s.svc.Fire(s.ctx, s.a.ID, sch.ID, 3); err != nil || res.Enqueued != 1 {
		t.Fatalf("fire: %+v %v", res, err)
	}
	for _, c := range []struct{ method, body string }{{"PATCH", `{"customMessage":"too late"}`}, {"DELETE", ""}} {
		if status, body, _ := s.call(c.method, "/v1/schedules/"+sch.ID, s.keyA, c.body); status != 409 || problemOf(t, body).Code != "already_fired" {
			t.Errorf("%s after the fire: got %d %s, want 409 already_fired", c.method, status, body)
		}
	}
	s.must(200, &dlv, "GET", "/v1/deliveries/"+up.DeliveryIDs[0], s.keyA, "")
	if dlv.State != ledger.StateQueued {
		t.Errorf("after the fire the delivery is %s, want queued", dlv.State)
	}

	// Cancel, with an Idempotency-Key.
	var c1, c2 scheduleOut
	s.must(200, &c1, "DELETE", "/v1/schedules/"+amb.ID, s.keyC, "", "Idempotency-Key", "cancel-1")
	_, body, hdr = s.call("DELETE", "/v1/schedules/"+amb.ID, s.keyC, "", "Idempotency-Key", "cancel-1")
	_ = json.Unmarshal([]byte(body), &c2)
	if c1.State != "cancelled" || len(c1.Deliveries) != 1 || c1.Deliveries[0].State != ledger.StateCancelled || hdr.Get(ReplayedHeader) != "true" || c2.ID != c1.ID {
		t.Fatalf("cancel: got %+v then %+v (replayed %q)", c1, c2, hdr.Get(ReplayedHeader))
	}
	var nf *schedtypes.ResourceNotFoundException
	if _, err := s.inScheduler(amb.SchedulerName); !errors.As(err, &nf) {
		t.Errorf("the cancelled schedule is still in Scheduler: %v", err)
	}

	// Listing: the site's own, by state.
	var list struct {
		Items      []scheduleOut
		NextCursor string
	}
	s.must(200, &list, "GET", "/v1/schedules?state=fired", s.keyA, "")
	if len(list.Items) != 1 || list.Items[0].ID != sch.ID || list.Items[0].Deliveries != nil {
		t.Errorf("list fired: got %+v", list)
	}
	if status, body, _ := s.call("GET", "/v1/schedules?state=bogus", s.keyA, ""); status != 400 || !hasField(problemOf(t, body), "state") {
		t.Errorf("list with a bad state: got %d %s", status, body)
	}
}

// TestThousandSchedulesAgainstMoto creates 1,000 schedules through the API,
// concurrently, and lists them back page by page.
func TestThousandSchedulesAgainstMoto(t *testing.T) {
	t.Parallel()
	const n = 1000
	s := newScheduleStack(t, schedule.Limits{Rate: 400, Burst: 50})
	tx := s.target(s.keyA, "conn_xa", "X", "")
	start := s.clock.Now().Add(24 * time.Hour).Truncate(time.Minute)
	began := time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails []string
		ids   = map[string]bool{}
		jobs  = make(chan int)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				at := start.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
				r := httptest.NewRequest("POST", "/v1/schedules", strings.NewReader(scheduleBody(fmt.Sprintf("post-%04d", i), []string{tx}, at, "", "")))
				r.Header.Set("Authorization", "Bearer "+s.keyA)
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				s.srv.ServeHTTP(w, r)
				var out scheduleOut
				_ = json.Unmarshal(w.Body.Bytes(), &out)
				mu.Lock()
				if w.Code != http.StatusCreated {
					fails = append(fails, fmt.Sprintf("%d: %d %s", i, w.Code, w.Body.String()))
				}
				ids[out.ID] = true
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	created := time.Since(began)
	if len(fails) > 0 {
		t.Fatalf("%d of %d creates failed, first: %s", len(fails), n, fails[0])
	}

	var listed []scheduleOut
	cursor, pages := "", 0
	for {
		var page struct {
			Items      []scheduleOut
			NextCursor string
		}
		s.must(200, &page, "GET", "/v1/schedules?limit=100&cursor="+cursor, s.keyA, "")
		listed, cursor, pages = append(listed, page.Items...), page.NextCursor, pages+1
		if cursor == "" || pages > n {
			break
		}
	}
	if len(listed) != n || pages != n/100 {
		t.Fatalf("listed %d schedules in %d pages, want %d in %d", len(listed), pages, n, n/100)
	}
	for i, sch := range listed {
		if want := start.Add(time.Duration(i) * time.Minute).UTC().Format(time.RFC3339); sch.ScheduledForUTC != want || !ids[sch.ID] {
			t.Fatalf("listing item %d: %s at %s, want one of ours at %s", i, sch.ID, sch.ScheduledForUTC, want)
		}
	}
	inScheduler := 0
	for p := scheduler.NewListSchedulesPaginator(s.sched, &scheduler.ListSchedulesInput{GroupName: &s.group}); p.HasMorePages(); {
		page, err := p.NextPage(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		inScheduler += len(page.Schedules)
	}
	if inScheduler != n {
		t.Fatalf("Scheduler holds %d schedules in the group, want %d", inScheduler, n)
	}
	t.Logf("%d schedules created through the API in %s, listed in %d pages", n, created.Round(time.Millisecond), pages)
}

func TestScheduleWithVariantsAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newScheduleStack(t, schedule.Limits{})
	tx := s.target(s.keyA, "conn_xa", "X", "")
	tm := s.target(s.keyA, "conn_ma", "Mastodon", "")
	when := fmt.Sprintf("%d-07-01T09:30:00Z", s.clock.Now().Year()+1)
	var sch scheduleOut
	status, body, _ := s.call("POST", "/v1/schedules", s.keyA, scheduleBody("pv", []string{tx, tm}, when, "",
		`,"variants":[{"customMessage":"Wording one"},{"customMessage":"Wording two"}]`))
	if status != 201 || json.Unmarshal([]byte(body), &sch) != nil {
		t.Fatalf("create: got %d %s", status, body)
	}
	labels := map[string]string{}
	for _, d := range sch.Deliveries {
		labels[d.Variant] = d.Text
	}
	if !strings.Contains(labels["a"], "Wording one") || !strings.Contains(labels["b"], "Wording two") {
		t.Fatalf("deliveries: got %v, want variant a with wording one and b with wording two", labels)
	}
	before := s.items()
	status, body, _ = s.call("PATCH", "/v1/schedules/"+sch.ID, s.keyA, `{"customMessage":"Something else"}`)
	if p := problemOf(t, body); status != 422 || !hasField(p, "customMessage") {
		t.Errorf("PATCH the text of a schedule with variants: got %d %s, want 422 naming customMessage", status, body)
	}
	if after := s.items(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused PATCH wrote: before %d items, after %d", len(before), len(after))
	}
}
