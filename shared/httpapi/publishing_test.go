package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/engagement"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/target"
)

// pubFixture is the API over in-memory fakes of every publishing
// dependency, with a second site to prove scoping.
type pubFixture struct {
	fixture
	w         *writes
	conns     *connMap
	targets   *memTargets
	ledger    *memLedger
	snaps     *memSnapshots
	queue     *memQueue
	idem      *memIdem
	audit     *memAudit
	analytics *memAnalytics
	readings  *memReadings
	now       time.Time

	otherSite, otherKey string
	// Targets of the main site by platform, and one of the other site.
	tx, tbsky, ttiktok, tinactive, tbroken, tgone, tforeign string
}

func newPubFixture(t *testing.T) *pubFixture {
	t.Helper()
	f := &pubFixture{fixture: newFixture(t), w: &writes{}, now: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)}
	other, err := f.sites.Create(t.Context(), siteInput("Other"))
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := f.sites.IssueKey(t.Context(), other.ID, "cms")
	if err != nil {
		t.Fatal(err)
	}
	f.otherSite, f.otherKey = other.ID, otherKey
	f.conns = &connMap{m: map[string]connection.Connection{
		f.siteID + "/conn_x":      {ID: "conn_x", Platform: platform.X, Status: connection.StatusActive},
		f.siteID + "/conn_bsky":   {ID: "conn_bsky", Platform: platform.Bluesky, Status: connection.StatusExpiring},
		f.siteID + "/conn_tiktok": {ID: "conn_tiktok", Platform: platform.TikTok, Status: connection.StatusActive},
		f.siteID + "/conn_broken": {ID: "conn_broken", Platform: platform.LinkedIn, Status: connection.StatusBroken, StatusReason: "oauth.invalid_grant"},
		f.siteID + "/conn_gone":   {ID: "conn_gone", Platform: platform.Threads, Status: connection.StatusActive},
		other.ID + "/conn_o":      {ID: "conn_o", Platform: platform.Mastodon, Status: connection.StatusActive},
	}}
	f.targets = &memTargets{w: f.w, conns: f.conns, m: map[string]target.Target{}}
	f.ledger = &memLedger{w: f.w, m: map[string]ledger.Delivery{}}
	f.snaps = &memSnapshots{w: f.w}
	f.queue = &memQueue{w: f.w}
	f.idem = &memIdem{w: f.w, keys: map[string]*memIdemKey{}}
	f.audit = &memAudit{}
	f.analytics = &memAnalytics{}
	f.readings = &memReadings{m: map[string][]engagement.Reading{}}
	f.srv = New(Deps{
		Sites: f.sites, AdminKeySHA256: hash(adminKey), MaxBodyBytes: 1 << 20, Now: func() time.Time { return f.now },
		Connections: f.conns, Targets: f.targets, Deliveries: f.ledger, Snapshots: f.snaps, Publishers: registry.New(registry.Config{}),
		Queue: f.queue, Idempotency: f.idem, Audit: f.audit, Analytics: f.analytics, Readings: f.readings,
	})
	mk := func(site, conn, name string, extra string) string {
		in := target.Input{}
		if err := json.Unmarshal([]byte(`{"connectionId":"`+conn+`","name":"`+name+`"`+extra+`}`), &in); err != nil {
			t.Fatal(err)
		}
		tg, err := f.targets.Create(t.Context(), site, in)
		if err != nil {
			t.Fatalf("target %s: %v", name, err)
		}
		return tg.ID
	}
	f.tx = mk(f.siteID, "conn_x", "X", `,"defaults":{"hashtags":["go"]}`)
	f.tbsky = mk(f.siteID, "conn_bsky", "Bluesky", "")
	f.ttiktok = mk(f.siteID, "conn_tiktok", "TikTok", "")
	f.tinactive = mk(f.siteID, "conn_x", "Paused", `,"active":false`)
	f.tbroken = mk(f.siteID, "conn_broken", "LinkedIn", "")
	f.tgone = mk(f.siteID, "conn_gone", "Threads", "")
	f.tforeign = mk(other.ID, "conn_o", "Other's Mastodon", "")
	delete(f.conns.m, f.siteID+"/conn_gone")
	f.w.n = nil // setting up is not what the tests count
	return f
}

func siteInput(name string) site.NewSite {
	return site.NewSite{Name: name, Timezone: "UTC", ReturnURL: "https://other.example/back"}
}

func problemOf(t *testing.T, body string) problemBody {
	t.Helper()
	var p problemBody
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	return p
}

func hasField(p problemBody, field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

func dispatchBody(post string, targets []string, extra string) string {
	ids, _ := json.Marshal(targets)
	return `{"post":` + post + `,"targetIds":` + string(ids) + extra + `}`
}

const goodPost = `{"postId":"42","revision":"3","title":"Hello","excerpt":"An excerpt","url":"https://blog.example/hello","body":"<p>hi</p>"}`

func TestDispatchRejectsBadInputAndWritesNothing(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	many := make([]string, 26)
	for i := range many {
		many[i] = fmt.Sprintf("tgt_%c", 'a'+i)
	}
	media := func(url, kind string) string {
		return `{"postId":"42","revision":"3","url":"https://blog.example/hello","media":[{"url":"` + url + `","kind":"` + kind + `"}]}`
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantFields []string
		wantText   string
	}{
		{"unknown target", dispatchBody(goodPost, []string{f.tx, "tgt_nope"}, ""), 422, []string{"targetIds", "targetIds[1]"}, "tgt_nope"},
		{"another site's target", dispatchBody(goodPost, []string{f.tforeign}, ""), 422, []string{"targetIds", "targetIds[0]"}, f.tforeign},
		{"more than 25 targets", dispatchBody(goodPost, many, ""), 422, []string{"targetIds"}, "at most 25"},
		{"no targets", dispatchBody(goodPost, []string{}, ""), 422, []string{"targetIds"}, ""},
		{"a repeated target", dispatchBody(goodPost, []string{f.tx, f.tx}, ""), 422, []string{"targetIds[1]"}, ""},
		{"custom message over 2000 characters", dispatchBody(goodPost, []string{f.tx}, `,"customMessage":"`+strings.Repeat("é", 2001)+`"`), 422, []string{"customMessage"}, "2000"},
		{"media url not http(s)", dispatchBody(media("ftp://files.example/a.jpg", "image"), []string{f.tx}, ""), 422, []string{"post.media[0].url"}, ""},
		{"media url relative", dispatchBody(media("/a.jpg", "image"), []string{f.tx}, ""), 422, []string{"post.media[0].url"}, ""},
		{"media kind", dispatchBody(media("https://b.example/a.jpg", "gif"), []string{f.tx}, ""), 422, []string{"post.media[0].kind"}, ""},
		{"inactive target", dispatchBody(goodPost, []string{f.tinactive}, ""), 422, []string{"targets[" + f.tinactive + "].active"}, "inactive"},
		{"broken connection", dispatchBody(goodPost, []string{f.tx, f.tbroken}, ""), 422, []string{"targets[" + f.tbroken + "]"}, "/v1/connections/linkedin/authorize"},
		{"connection deleted", dispatchBody(goodPost, []string{f.tgone}, ""), 422, []string{"targets[" + f.tgone + "].connectionId"}, ""},
		{"adapter validation", dispatchBody(goodPost, []string{f.ttiktok}, ""), 422, []string{"targets[" + f.ttiktok + "].options.privacy_level", "targets[" + f.ttiktok + "].media"}, ""},
		{"no post", `{"targetIds":["` + f.tx + `"]}`, 422, []string{"post"}, ""},
		{"no post id", dispatchBody(`{"revision":"1","url":"https://b.example/p"}`, []string{f.tx}, ""), 422, []string{"post.postId"}, ""},
		{"post id with #", dispatchBody(`{"postId":"a#b","revision":"1","url":"https://b.example/p"}`, []string{f.tx}, ""), 422, []string{"post.postId"}, ""},
		{"no revision", dispatchBody(`{"postId":"1","url":"https://b.example/p"}`, []string{f.tx}, ""), 422, []string{"post.revision"}, ""},
		{"bad post url", dispatchBody(`{"postId":"1","revision":"1","url":"javascript:alert(1)"}`, []string{f.tx}, ""), 422, []string{"post.url"}, ""},
		{"revision of the wrong type", dispatchBody(`{"postId":"1","revision":true,"url":"https://b.example/p"}`, []string{f.tx}, ""), 400, []string{"post.revision"}, ""},
		{"unknown field", dispatchBody(goodPost, []string{f.tx}, `,"schedule":"now"`), 400, []string{"schedule"}, ""},
		{"not json", `{"post":`, 400, []string{"body"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do("POST", "/v1/dispatch", f.siteKey, tt.body, "Idempotency-Key", "k-"+strings.ReplaceAll(tt.name, " ", "-"))
			if w.Code != tt.wantStatus {
				t.Fatalf("status: got %d %s, want %d", w.Code, w.Body, tt.wantStatus)
			}
			p := problemOf(t, w.Body.String())
			for _, field := range tt.wantFields {
				if !hasField(p, field) {
					t.Errorf("problems: got %+v, want one naming %s", p.Errors, field)
				}
			}
			if tt.wantText != "" && !strings.Contains(w.Body.String(), tt.wantText) {
				t.Errorf("problem: got %s, want it to mention %q", w.Body, tt.wantText)
			}
			if tt.wantStatus == 422 && p.Code != "dispatch_rejected" {
				t.Errorf("code: got %q, want dispatch_rejected", p.Code)
			}
		})
	}
	if n := f.w.total(); n != 0 {
		t.Errorf("rejected dispatches wrote %v", f.w.n)
	}
	if len(f.audit.all()) != 0 || len(f.idem.keys) != 0 {
		t.Errorf("rejected dispatches left audit entries %v or idempotency keys %v", f.audit.all(), f.idem.keys)
	}
}

func TestDispatchListsEveryTargetsProblemsAtOnce(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tinactive, "tgt_zz", f.tbroken, f.ttiktok, f.tx}, ""))
	p := problemOf(t, w.Body.String())
	for _, field := range []string{"targetIds", "targetIds[1]", "targets[" + f.tinactive + "].active", "targets[" + f.tbroken + "]", "targets[" + f.ttiktok + "].options.privacy_level"} {
		if !hasField(p, field) {
			t.Errorf("got %+v, want a problem naming %s", p.Errors, field)
		}
	}
	if w.Code != 422 || f.w.total() != 0 {
		t.Errorf("got %d and %v written, want 422 and nothing", w.Code, f.w.n)
	}
}

func TestDispatchCreatesDeliveriesAndMessages(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	body := dispatchBody(`{"postId":"42","revision":7,"title":"Hello","excerpt":"An excerpt","url":"https://blog.example/hello",
		"media":[{"url":"https://blog.example/a.jpg","kind":"image","altText":"a cat"}]}`, []string{f.tx, f.tbsky}, `,"customMessage":"New post!"`)
	w := f.do("POST", "/v1/dispatch", f.siteKey, body, SourceIPHeader, "203.0.113.9")
	if w.Code != http.StatusAccepted {
		t.Fatalf("dispatch: got %d %s, want 202", w.Code, w.Body)
	}
	var got dispatchResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Revision != "7" || got.Created != 2 || len(got.Deliveries) != 2 {
		t.Fatalf("answer: got %+v, want revision 7 and two new deliveries", got)
	}
	x := got.Deliveries[0]
	if x.TargetID != f.tx || x.Platform != platform.X || x.State != ledger.StateQueued || x.ID != ledger.DeliveryID(f.siteID, "42", "7", f.tx) {
		t.Errorf("X delivery: got %+v", x)
	}
	if x.Text != "Hello\n\nNew post!\n\nhttps://blog.example/hello\n\n#go" || x.Link != "https://blog.example/hello" || len(x.Media) != 1 || x.Media[0].AltText != "a cat" {
		t.Errorf("X text: got %q link %q media %+v", x.Text, x.Link, x.Media)
	}
	if len(f.queue.sent) != 2 {
		t.Fatalf("messages: got %d, want 2", len(f.queue.sent))
	}
	for i, m := range f.queue.sent {
		msg, err := ledger.DecodeMessage(m.Body)
		if err != nil || msg.SiteID != f.siteID || msg.DeliveryID != got.Deliveries[i].ID || msg.Type != ledger.MessageDelivery {
			t.Errorf("message %d: got %+v, %v", i, msg, err)
		}
	}
	if len(f.snaps.posts) != 1 || f.snaps.posts[0].Revision != "7" || f.snaps.posts[0].Body != "" {
		t.Errorf("snapshot: got %+v", f.snaps.posts)
	}
	entries := f.audit.all()
	if len(entries) != 1 || entries[0].Action != "post.dispatch" || entries[0].EntityID != "42@7" || entries[0].SourceIP != "203.0.113.9" ||
		entries[0].SiteID != f.siteID || entries[0].KeyID == "" || entries[0].Status != 202 || !entries[0].At.Equal(f.now) {
		t.Errorf("audit: got %+v", entries)
	}

	// The same revision again: the same deliveries, none created, and the
	// still-queued ones are enqueued again.
	w = f.do("POST", "/v1/dispatch", f.siteKey, body)
	var again dispatchResponse
	_ = json.Unmarshal(w.Body.Bytes(), &again)
	if w.Code != 202 || again.Created != 0 || again.Deliveries[0].ID != x.ID || f.w.get("delivery") != 2 {
		t.Errorf("second dispatch: got %d %+v and %d deliveries written, want the existing two", w.Code, again, f.w.get("delivery"))
	}
	if len(f.queue.sent) != 4 {
		t.Errorf("messages after the second dispatch: got %d, want 4", len(f.queue.sent))
	}
}

func TestDispatchAnswers503WhenMessagesCannotBeSent(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	f.queue.failSends = true
	w := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tx}, ""), "Idempotency-Key", "k1")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %s, want 503 with Retry-After", w.Code, w.Body)
	}
	p := problemOf(t, w.Body.String())
	if p.Code != "enqueue_failed" || !strings.Contains(p.Detail, "sweep") || !strings.Contains(p.Detail, "stay queued") {
		t.Errorf("problem: got %+v, want enqueue_failed saying the deliveries stay queued for the sweep", p)
	}
	if f.w.get("delivery") != 1 || len(f.idem.keys) != 0 {
		t.Errorf("got %v written and keys %v; want the delivery kept and the key released", f.w.n, f.idem.keys)
	}
	// Retrying with the same key runs again and enqueues the queued delivery.
	f.queue.failSends = false
	w = f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tx}, ""), "Idempotency-Key", "k1")
	if w.Code != 202 || len(f.queue.sent) != 1 {
		t.Errorf("retry: got %d and %d messages, want 202 and 1", w.Code, len(f.queue.sent))
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	body := dispatchBody(goodPost, []string{f.tx}, "")
	first := f.do("POST", "/v1/dispatch", f.siteKey, body, "Idempotency-Key", "order-1")
	if first.Code != 202 || first.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("first: got %d %s", first.Code, first.Body)
	}
	replay := f.do("POST", "/v1/dispatch", f.siteKey, body, "Idempotency-Key", "order-1")
	if replay.Code != 202 || replay.Body.String() != first.Body.String() || replay.Header().Get(ReplayedHeader) != "true" ||
		replay.Header().Get("Content-Type") != "application/json" {
		t.Errorf("replay: got %d %q (%v), want the stored answer", replay.Code, replay.Body, replay.Header())
	}
	if len(f.queue.sent) != 1 || len(f.audit.all()) != 1 {
		t.Errorf("the replay ran again: %d messages, %d audit entries", len(f.queue.sent), len(f.audit.all()))
	}
	other := f.do("POST", "/v1/dispatch", f.siteKey, dispatchBody(goodPost, []string{f.tbsky}, ""), "Idempotency-Key", "order-1")
	if p := problemOf(t, other.Body.String()); other.Code != 422 || p.Code != "idempotency_key_reused" || !hasField(p, "Idempotency-Key") {
		t.Errorf("same key, other body: got %d %s, want 422 idempotency_key_reused", other.Code, other.Body)
	}
	// Another site's key space is its own.
	f.otherKeyDispatch(t)

	busyBody := `{"connectionId":"conn_x","name":"n"}`
	f.idem.inFlight(f.siteID, "busy", idempotency.Fingerprint("POST", "/v1/targets", []byte(busyBody)))
	busy := f.do("POST", "/v1/targets", f.siteKey, busyBody, "Idempotency-Key", "busy")
	if busy.Code != 409 || problemOf(t, busy.Body.String()).Code != "idempotency_key_in_flight" {
		t.Errorf("in flight: got %d %s, want 409", busy.Code, busy.Body)
	}
	bad := f.do("POST", "/v1/targets", f.siteKey, `{}`, "Idempotency-Key", "has space")
	if bad.Code != 400 || !hasField(problemOf(t, bad.Body.String()), "Idempotency-Key") {
		t.Errorf("bad key: got %d %s, want 400 naming Idempotency-Key", bad.Code, bad.Body)
	}
}

func (f *pubFixture) otherKeyDispatch(t *testing.T) {
	t.Helper()
	w := f.do("POST", "/v1/dispatch", f.otherKey, dispatchBody(goodPost, []string{f.tforeign}, ""), "Idempotency-Key", "order-1")
	// The other site's Mastodon target: a fresh key there, so it runs.
	if w.Code != 202 || w.Header().Get(ReplayedHeader) != "" {
		t.Errorf("the same key on another site: got %d %s, want a fresh 202", w.Code, w.Body)
	}
}

func TestTargetRoutes(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	w := f.do("POST", "/v1/targets", f.siteKey, `{"connectionId":"conn_x","name":"Second X"}`)
	if w.Code != 201 || !strings.HasPrefix(w.Header().Get("Location"), "/v1/targets/tgt_") {
		t.Fatalf("create: got %d %s (Location %q)", w.Code, w.Body, w.Header().Get("Location"))
	}
	var tg target.Target
	_ = json.Unmarshal(w.Body.Bytes(), &tg)
	for _, c := range []struct {
		method, path, key, body string
		want                    int
		field                   string
	}{
		{"POST", "/v1/targets", f.siteKey, `{"connectionId":"conn_o","name":"x"}`, 422, "connectionId"},
		{"POST", "/v1/targets", f.siteKey, `{"connectionId":"conn_x","name":"x","colour":"red"}`, 400, "colour"},
		{"POST", "/v1/targets", f.siteKey, `{"connectionId":"conn_x","name":"x","hourlyRateLimit":"ten"}`, 400, "hourlyRateLimit"},
		{"POST", "/v1/targets", f.siteKey, `{"connectionId":"conn_x","defaults":{"hashtags":"go"}}`, 400, "defaults.hashtags"},
		{"GET", "/v1/targets/" + tg.ID, f.otherKey, "", 404, ""},
		{"PATCH", "/v1/targets/" + tg.ID, f.otherKey, `{"name":"stolen"}`, 404, ""},
		{"DELETE", "/v1/targets/" + tg.ID, f.otherKey, "", 404, ""},
		{"GET", "/v1/targets/" + tg.ID, "", "", 401, ""},
		{"GET", "/v1/targets", adminKey, "", 403, ""},
	} {
		w := f.do(c.method, c.path, c.key, c.body)
		if w.Code != c.want {
			t.Errorf("%s %s: got %d %s, want %d", c.method, c.path, w.Code, w.Body, c.want)
			continue
		}
		if c.field != "" && !hasField(problemOf(t, w.Body.String()), c.field) {
			t.Errorf("%s %s: got %s, want a problem naming %s", c.method, c.path, w.Body, c.field)
		}
	}
	if w := f.do("PATCH", "/v1/targets/"+tg.ID, f.siteKey, `{"active":false}`); w.Code != 200 || !strings.Contains(w.Body.String(), `"active":false`) {
		t.Errorf("patch: got %d %s", w.Code, w.Body)
	}
	if w := f.do("GET", "/v1/targets", f.siteKey, ""); w.Code != 200 || !strings.Contains(w.Body.String(), tg.ID) || strings.Contains(w.Body.String(), f.tforeign) {
		t.Errorf("list: got %d %s, want this site's targets only", w.Code, w.Body)
	}
	if w := f.do("DELETE", "/v1/targets/"+tg.ID, f.siteKey, ""); w.Code != 204 {
		t.Errorf("delete: got %d", w.Code)
	}
	var actions []string
	for _, e := range f.audit.all() {
		actions = append(actions, e.Action+" "+e.EntityType+" "+e.EntityID)
	}
	want := []string{"target.create target " + tg.ID, "target.update target " + tg.ID, "target.delete target " + tg.ID}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Errorf("audit: got %v, want %v (only what succeeded)", actions, want)
	}
}

func TestDeliveryRoutes(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	put := func(id string, st ledger.State) {
		f.ledger.m[f.siteID+"/"+id] = ledger.Delivery{ID: id, SiteID: f.siteID, PostID: "42", State: st, Platform: platform.X}
	}
	put("dlv_sent", ledger.StateSent)
	put("dlv_failed", ledger.StateFailed)
	put("dlv_unknown", ledger.StateUnknown)
	put("dlv_unknown2", ledger.StateUnknown)
	put("dlv_queued", ledger.StateQueued)
	put("dlv_publishing", ledger.StatePublishing)
	f.ledger.m[f.otherSite+"/dlv_other"] = ledger.Delivery{ID: "dlv_other", SiteID: f.otherSite, State: ledger.StateFailed}
	tests := []struct {
		name, method, path, body string
		want                     int
		field, code              string
		wantSent                 int
	}{
		{"list bad status", "GET", "/v1/deliveries?status=done", "", 400, "status", "", 0},
		{"list since without offset", "GET", "/v1/deliveries?since=2026-11-01T10:00:00", "", 400, "since", "", 0},
		{"list until before since", "GET", "/v1/deliveries?since=2026-11-02T10:00:00Z&until=2026-11-01T10:00:00%2B02:00", "", 400, "until", "", 0},
		{"get another site's", "GET", "/v1/deliveries/dlv_other", "", 404, "", "not_found", 0},
		{"get a malformed id", "GET", "/v1/deliveries/x", "", 404, "", "not_found", 0},
		{"retry another site's", "POST", "/v1/deliveries/dlv_other/retry", "", 404, "", "", 0},
		{"retry sent", "POST", "/v1/deliveries/dlv_sent/retry", "", 409, "", "already_sent", 0},
		{"retry unknown without confirmation", "POST", "/v1/deliveries/dlv_unknown/retry", "", 409, "", "confirmation_required", 0},
		{"retry with a bad confirmation", "POST", "/v1/deliveries/dlv_unknown/retry", `{"confirm":"yes"}`, 400, "confirm", "", 0},
		{"retry failed", "POST", "/v1/deliveries/dlv_failed/retry", "", 202, "", "", 1},
		{"retry unknown confirmed", "POST", "/v1/deliveries/dlv_unknown/retry", `{"confirm":"not_published"}`, 202, "", "", 2},
		{"cancel publishing", "POST", "/v1/deliveries/dlv_publishing/cancel", "", 409, "", "not_cancellable", 2},
		{"cancel queued", "POST", "/v1/deliveries/dlv_queued/cancel", "", 200, "", "", 2},
		{"resolve without url", "POST", "/v1/deliveries/dlv_unknown2/resolve", `{}`, 400, "url", "", 2},
		{"resolve with a bad url", "POST", "/v1/deliveries/dlv_unknown2/resolve", `{"url":"x.example/1"}`, 400, "url", "", 2},
		{"resolve a sent one", "POST", "/v1/deliveries/dlv_sent/resolve", `{"url":"https://x.example/1"}`, 409, "", "not_unknown", 2},
		{"resolve", "POST", "/v1/deliveries/dlv_unknown2/resolve", `{"url":"https://x.example/s/1","platformPostId":"1"}`, 200, "", "", 2},
	}
	for _, tt := range tests {
		w := f.do(tt.method, tt.path, f.siteKey, tt.body)
		if w.Code != tt.want {
			t.Errorf("%s: got %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
			continue
		}
		if tt.field != "" && !hasField(problemOf(t, w.Body.String()), tt.field) {
			t.Errorf("%s: got %s, want a problem naming %s", tt.name, w.Body, tt.field)
		}
		if tt.code != "" && problemOf(t, w.Body.String()).Code != tt.code {
			t.Errorf("%s: got %s, want code %s", tt.name, w.Body, tt.code)
		}
		if len(f.queue.sent) != tt.wantSent {
			t.Errorf("%s: %d messages sent, want %d", tt.name, len(f.queue.sent), tt.wantSent)
		}
	}
	if d := f.ledger.m[f.siteID+"/dlv_unknown2"]; d.State != ledger.StateSent || d.PlatformURL != "https://x.example/s/1" {
		t.Errorf("resolved: got %+v", d)
	}
	w := f.do("GET", "/v1/deliveries?postId=42&status=failed&targetId=tgt_a&since=2026-11-01T10:00:00%2B01:00&until=2026-11-30T00:00:00Z&limit=10", f.siteKey, "")
	if w.Code != 200 {
		t.Fatalf("list: got %d %s", w.Code, w.Body)
	}
	got := f.ledger.filters[len(f.ledger.filters)-1]
	if got.PostID != "42" || got.State != ledger.StateFailed || got.TargetID != "tgt_a" || !got.Since.Equal(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)) || got.Until.IsZero() {
		t.Errorf("filter: got %+v", got)
	}
	w = f.do("GET", "/v1/deliveries", f.otherKey, "")
	if strings.Contains(w.Body.String(), "dlv_failed") || !strings.Contains(w.Body.String(), "dlv_other") {
		t.Errorf("another site's list: got %s", w.Body)
	}
}

func TestQueueRoutes(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	old := f.now.Add(-90 * time.Second)
	f.queue.status = queue.Status{Dispatch: queue.Depth{Visible: 4, InFlight: 1}, DLQ: queue.Depth{Visible: 2}, OldestDeadLetter: f.now.Add(-time.Hour)}
	f.ledger.m[f.siteID+"/dlv_q"] = ledger.Delivery{ID: "dlv_q", SiteID: f.siteID, State: ledger.StateQueued, CreatedAt: old}
	f.ledger.m[f.siteID+"/dlv_q2"] = ledger.Delivery{ID: "dlv_q2", SiteID: f.siteID, State: ledger.StateQueued, CreatedAt: f.now}
	f.ledger.m[f.otherSite+"/dlv_o"] = ledger.Delivery{ID: "dlv_o", SiteID: f.otherSite, State: ledger.StateQueued, CreatedAt: f.now.Add(-time.Hour)}
	w := f.do("GET", "/v1/queue/status", f.siteKey, "")
	var st struct {
		CheckedAt       time.Time `json:"checkedAt"`
		DispatchQueue   map[string]int
		DeadLetterQueue map[string]int
		Deliveries      map[string]int
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != 200 {
		t.Fatalf("status: got %d %s", w.Code, w.Body)
	}
	if st.DispatchQueue["visible"] != 4 || st.DispatchQueue["inFlight"] != 1 || st.DispatchQueue["oldestAgeSeconds"] != 90 ||
		st.DeadLetterQueue["visible"] != 2 || st.DeadLetterQueue["oldestAgeSeconds"] != 3600 ||
		st.Deliveries["queued"] != 2 || len(st.Deliveries) != len(ledger.States) || !st.CheckedAt.Equal(f.now) {
		t.Errorf("status: got %+v", st)
	}

	for _, c := range []struct {
		method, path, body string
		want               int
		field              string
	}{
		{"GET", "/v1/queue/dead-letters?scan=0", "", 400, "scan"},
		{"GET", "/v1/queue/dead-letters?scan=25", "", 200, ""},
		{"POST", "/v1/queue/redrive", `{"filter":{"platform":"myspace"}}`, 400, "filter.platform"},
		{"POST", "/v1/queue/redrive", `{"filter":{"status":"lost"}}`, 400, "filter.status"},
		{"POST", "/v1/queue/redrive", `{"filter":{"since":"2026-11-01"}}`, 400, "filter.since"},
		{"POST", "/v1/queue/redrive", `{"filter":{"targetId":"conn_x"}}`, 400, "filter.targetId"},
		{"POST", "/v1/queue/redrive", `{"filter":{"nope":1}}`, 400, "nope"},
		{"POST", "/v1/queue/redrive", `{"scan":5000}`, 400, "scan"},
	} {
		w := f.do(c.method, c.path, f.siteKey, c.body)
		if w.Code != c.want || c.field != "" && !hasField(problemOf(t, w.Body.String()), c.field) {
			t.Errorf("%s %s %s: got %d %s, want %d naming %q", c.method, c.path, c.body, w.Code, w.Body, c.want, c.field)
		}
	}
	if len(f.queue.redrives) != 0 {
		t.Fatalf("rejected redrives reached the queue: %v", f.queue.redrives)
	}
	w = f.do("POST", "/v1/queue/redrive", f.siteKey, `{"filter":{"platform":"x","status":"failed","since":"2026-11-01T00:00:00+01:00","targetId":"tgt_abc"},"dryRun":true}`)
	want := queue.RedriveFilter{Platform: platform.X, State: ledger.StateFailed, TargetID: "tgt_abc", Since: time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)}
	if w.Code != 200 || len(f.queue.redrives) != 1 || !f.queue.redrives[0].Since.Equal(want.Since) || f.queue.redrives[0].Platform != want.Platform ||
		f.queue.redrives[0].State != want.State || f.queue.redrives[0].TargetID != want.TargetID || !f.queue.dryRuns[0] {
		t.Errorf("dry run: got %d %s with %+v", w.Code, w.Body, f.queue.redrives)
	}
	if w := f.do("POST", "/v1/queue/redrive", f.siteKey, ""); w.Code != 200 || f.queue.dryRuns[1] {
		t.Errorf("redrive without a body: got %d %s, want a real redrive of everything", w.Code, w.Body)
	}
	var actions []string
	for _, e := range f.audit.all() {
		actions = append(actions, e.Action)
	}
	if fmt.Sprint(actions) != "[queue.redrive_dry_run queue.redrive]" {
		t.Errorf("audit: got %v", actions)
	}
}

func TestQueueMoveTaskRoutes(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	for _, c := range []struct {
		name, method, path, key, body string
		want                          int
		code, field                   string
	}{
		{"site key may not start", "POST", "/v1/queue/move-task", f.siteKey, "", 403, "admin_only", ""},
		{"site key may not list", "GET", "/v1/queue/move-task", f.siteKey, "", 403, "admin_only", ""},
		{"site key may not cancel", "DELETE", "/v1/queue/move-task", f.siteKey, "", 403, "admin_only", ""},
		{"no key", "POST", "/v1/queue/move-task", "", "", 401, "missing_key", ""},
		{"admin key keeps off the per-site redrive", "POST", "/v1/queue/redrive", adminKey, "", 403, "admin_key_not_site_key", ""},
		{"rate 0", "POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":0}`, 400, "invalid_request", "maxMessagesPerSecond"},
		{"rate 501", "POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":501}`, 400, "invalid_request", "maxMessagesPerSecond"},
		{"rate not a number", "POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":"fast"}`, 400, "invalid_request", "maxMessagesPerSecond"},
		{"unknown field", "POST", "/v1/queue/move-task", adminKey, `{"destinationArn":"arn:aws:sqs:us-east-1:1:x"}`, 400, "invalid_request", "destinationArn"},
		{"cancel with nothing running", "DELETE", "/v1/queue/move-task", adminKey, "", 404, "no_running_move_task", ""},
	} {
		w := f.do(c.method, c.path, c.key, c.body)
		p := problemOf(t, w.Body.String())
		if w.Code != c.want || p.Code != c.code || c.field != "" && !hasField(p, c.field) {
			t.Errorf("%s: got %d %s, want %d %s naming %q", c.name, w.Code, w.Body, c.want, c.code, c.field)
		}
	}
	if len(f.queue.moveRates) != 0 {
		t.Fatalf("refused starts reached SQS: %v", f.queue.moveRates)
	}

	// Start without a body: SQS chooses the rate; 202 with the handle.
	w := f.do("POST", "/v1/queue/move-task", adminKey, "")
	var started struct {
		TaskHandle           string `json:"taskHandle"`
		MaxMessagesPerSecond *int   `json:"maxMessagesPerSecond"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &started); err != nil || w.Code != 202 || started.TaskHandle != "handle-1" ||
		started.MaxMessagesPerSecond != nil || w.Header().Get("Location") != "/v1/queue/move-task" || fmt.Sprint(f.queue.moveRates) != "[0]" {
		t.Fatalf("start: got %d %s (Location %q, rates %v), want 202 with handle-1", w.Code, w.Body, w.Header().Get("Location"), f.queue.moveRates)
	}
	// A second start while it runs: 409 naming the running task.
	f.queue.moveTasks[0].MessagesMoved, f.queue.moveTasks[0].MessagesToMove, f.queue.moveTasks[0].StartedAt = 3, 40, f.now
	w = f.do("POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":100}`)
	if p := problemOf(t, w.Body.String()); w.Code != 409 || p.Code != "move_task_running" || !strings.Contains(p.Detail, "handle-1") ||
		!strings.Contains(p.Detail, "3 of 40") || !strings.Contains(p.Detail, "2026-11-26T09:30:00Z") {
		t.Errorf("second start: got %d %s, want 409 move_task_running naming handle-1, its start and progress", w.Code, w.Body)
	}
	w = f.do("GET", "/v1/queue/move-task", adminKey, "")
	var list struct{ Items []queue.MoveTask }
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 || len(list.Items) != 1 ||
		list.Items[0].Status != "RUNNING" || list.Items[0].TaskHandle != "handle-1" {
		t.Errorf("list: got %d %s, want the running task", w.Code, w.Body)
	}
	w = f.do("DELETE", "/v1/queue/move-task", adminKey, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"status":"CANCELLING"`) || !strings.Contains(w.Body.String(), `"approximateMessagesMoved":3`) ||
		!strings.Contains(w.Body.String(), `"taskHandle":"handle-1"`) {
		t.Errorf("cancel: got %d %s, want 200 CANCELLING with 3 moved", w.Code, w.Body)
	}
	if w := f.do("DELETE", "/v1/queue/move-task", adminKey, ""); w.Code != 404 {
		t.Errorf("cancel again: got %d %s, want 404", w.Code, w.Body)
	}
	// Once it has stopped, a new task may start, at a capped rate.
	f.queue.moveTasks[0].Status = queue.TaskCancelled
	w = f.do("POST", "/v1/queue/move-task", adminKey, `{"maxMessagesPerSecond":100}`)
	if w.Code != 202 || !strings.Contains(w.Body.String(), `"maxMessagesPerSecond":100`) || fmt.Sprint(f.queue.moveRates) != "[0 100 100]" {
		t.Errorf("start after cancel: got %d %s (rates %v), want 202 at 100 a second", w.Code, w.Body, f.queue.moveRates)
	}
}

func TestAnalyticsRoute(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	for _, c := range []struct {
		query    string
		want     int
		field    string
		from, to time.Time
	}{
		{"", 200, "", day("2026-10-28"), day("2026-11-26")},
		{"?from=2026-11-01&to=2026-11-07", 200, "", day("2026-11-01"), day("2026-11-07")},
		{"?to=2026-01-31", 200, "", day("2026-01-02"), day("2026-01-31")},
		{"?from=2026-11-01T00:00:00Z", 400, "from", time.Time{}, time.Time{}},
		{"?to=yesterday", 400, "to", time.Time{}, time.Time{}},
		{"?from=2026-11-08&to=2026-11-07", 400, "to", time.Time{}, time.Time{}},
		{"?from=2024-01-01&to=2026-01-01", 400, "from", time.Time{}, time.Time{}},
	} {
		f.analytics.from, f.analytics.to = time.Time{}, time.Time{}
		w := f.do("GET", "/v1/analytics"+c.query, f.siteKey, "")
		if w.Code != c.want {
			t.Errorf("%s: got %d %s, want %d", c.query, w.Code, w.Body, c.want)
			continue
		}
		if c.field != "" && !hasField(problemOf(t, w.Body.String()), c.field) {
			t.Errorf("%s: got %s, want a problem naming %s", c.query, w.Body, c.field)
		}
		if !f.analytics.from.Equal(c.from) || !f.analytics.to.Equal(c.to) {
			t.Errorf("%s: queried %v..%v, want %v..%v", c.query, f.analytics.from, f.analytics.to, c.from, c.to)
		}
	}
}

func TestAuditRecordsAdminCallsAndSourceIP(t *testing.T) {
	t.Parallel()
	f := newPubFixture(t)
	w := f.do("POST", "/v1/sites/"+f.siteID+"/keys", adminKey, `{"name":"ci"}`, "X-Forwarded-For", "198.51.100.7, 10.0.0.1")
	if w.Code != 201 {
		t.Fatalf("issue key: got %d", w.Code)
	}
	w = f.do("POST", "/v1/sites", adminKey, `{"name":"New","timezone":"UTC","returnUrl":"https://n.example/"}`)
	var st struct{ ID string }
	_ = json.Unmarshal(w.Body.Bytes(), &st)
	entries := f.audit.all()
	if len(entries) != 2 || entries[0].SiteID != f.siteID || entries[0].KeyID != "admin" || entries[0].Action != "key.issue" || entries[0].SourceIP != "198.51.100.7" {
		t.Fatalf("admin audit: got %+v", entries)
	}
	if entries[1].SiteID != st.ID || entries[1].Action != "site.create" || entries[1].EntityID != st.ID {
		t.Errorf("site creation audit: got %+v, want it under the new site %s", entries[1], st.ID)
	}
	w = f.do("GET", "/v1/audit", f.siteKey, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "key.issue") || strings.Contains(w.Body.String(), "site.create") {
		t.Errorf("GET /v1/audit: got %d %s, want this site's entries only", w.Code, w.Body)
	}
	// A GET is not audited.
	if n := len(f.audit.all()); n != 2 {
		t.Errorf("entries after a GET: got %d, want 2", n)
	}
}
