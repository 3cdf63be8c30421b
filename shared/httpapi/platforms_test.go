package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/stats"
)

// memRecent answers fixed recent figures per site.
type memRecent struct {
	mu    sync.Mutex
	m     map[string]map[platform.Name]stats.PlatformRecent
	asked []string
	err   error
}

func (r *memRecent) Recent(_ context.Context, siteID string, now time.Time) (map[platform.Name]stats.PlatformRecent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, siteID+"@"+now.Format(time.RFC3339))
	if r.err != nil {
		return nil, r.err
	}
	return r.m[siteID], nil
}

// memBlocks answers blocks by "site|scope"; a block that ended is none.
type memBlocks struct {
	mu    sync.Mutex
	until map[string]time.Time
	now   time.Time
	reads int
	err   error
}

func (b *memBlocks) Blocked(_ context.Context, siteID, scope string) (time.Time, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads++
	if b.err != nil {
		return time.Time{}, false, b.err
	}
	u, ok := b.until[siteID+"|"+scope]
	if !ok || !u.After(b.now) {
		return time.Time{}, false, nil
	}
	return u, true, nil
}

type healthFixture struct {
	fixture
	conns   *connMap
	recent  *memRecent
	blocks  *memBlocks
	now     time.Time
	other   string
	otherSK string
}

func newHealthFixture(t *testing.T) *healthFixture {
	t.Helper()
	f := &healthFixture{fixture: newFixture(t), now: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)}
	other, err := f.sites.Create(t.Context(), siteInput("Other"))
	if err != nil {
		t.Fatal(err)
	}
	_, f.otherSK, err = f.sites.IssueKey(t.Context(), other.ID, "cms")
	if err != nil {
		t.Fatal(err)
	}
	f.other = other.ID
	f.conns = &connMap{m: map[string]connection.Connection{
		f.siteID + "/conn_x1":   {ID: "conn_x1", Platform: platform.X, Status: connection.StatusActive},
		f.siteID + "/conn_x2":   {ID: "conn_x2", Platform: platform.X, Status: connection.StatusBroken},
		f.siteID + "/conn_bsky": {ID: "conn_bsky", Platform: platform.Bluesky, Status: connection.StatusExpiring},
		f.siteID + "/conn_li":   {ID: "conn_li", Platform: platform.LinkedIn, Status: connection.StatusActive},
		other.ID + "/conn_o":    {ID: "conn_o", Platform: platform.X, Status: connection.StatusActive},
	}}
	rate := 0.75
	p50 := int64(1800)
	hour, day := f.now.Truncate(time.Hour).Add(-time.Hour), f.now.Truncate(time.Hour).Add(-24*time.Hour)
	f.recent = &memRecent{m: map[string]map[platform.Name]stats.PlatformRecent{
		f.siteID: {
			platform.X: {Platform: platform.X,
				LastHour:  stats.Window{Since: hour, Sent: 3, Failed: 1, SuccessRate: &rate, P50LatencyMs: &p50},
				LastDay:   stats.Window{Since: day, Sent: 3, Failed: 1, SuccessRate: &rate, P50LatencyMs: &p50},
				LastError: &stats.LastError{Kind: "permanent", At: f.now.Add(-10 * time.Minute)}},
			// A platform without a connection any more, delivered to today.
			platform.Mastodon: {Platform: platform.Mastodon, LastHour: stats.Window{Since: hour}, LastDay: stats.Window{Since: day, Sent: 2}},
		},
		other.ID: {platform.X: {Platform: platform.X, LastHour: stats.Window{Since: hour, Sent: 99}, LastDay: stats.Window{Since: day, Sent: 99}}},
	}}
	f.blocks = &memBlocks{now: f.now, until: map[string]time.Time{
		f.siteID + "|x:conn_x1":        f.now.Add(7 * time.Minute),
		f.siteID + "|x:conn_x2":        f.now.Add(3 * time.Minute),
		f.siteID + "|linkedin:conn_li": f.now.Add(-time.Minute), // over
		other.ID + "|x:conn_o":         f.now.Add(time.Hour),
	}}
	f.srv = New(Deps{Sites: f.sites, AdminKeySHA256: hash(adminKey), Now: func() time.Time { return f.now },
		Connections: f.conns, RecentStats: f.recent, Blocks: f.blocks})
	return f
}

func TestPlatformsHealth(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	w := f.do("GET", "/v1/platforms/health", f.siteKey, "")
	if w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	var got PlatformsHealth
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got.Platforms {
		names = append(names, string(p.Platform))
	}
	if strings.Join(names, ",") != "bluesky,linkedin,mastodon,x" || !got.GeneratedAt.Equal(f.now) {
		t.Fatalf("platforms: got %v at %s, want bluesky, linkedin, mastodon, x at %s", names, got.GeneratedAt, f.now)
	}
	byName := map[platform.Name]PlatformHealth{}
	for _, p := range got.Platforms {
		byName[p.Platform] = p
	}
	x := byName[platform.X]
	if x.Connections != (ConnectionStates{Active: 1, Broken: 1}) || !x.RateLimit.Limited || x.RateLimit.Until == nil || !x.RateLimit.Until.Equal(f.now.Add(7*time.Minute)) {
		t.Errorf("x: got connections %+v, rate limit %+v; want 1 active, 1 broken, limited until the later block", x.Connections, x.RateLimit)
	}
	if x.LastHour.Sent != 3 || *x.LastHour.SuccessRate != 0.75 || *x.LastDay.P50LatencyMs != 1800 || x.LastError == nil || x.LastError.Kind != "permanent" {
		t.Errorf("x figures: got %+v", x)
	}
	li := byName[platform.LinkedIn]
	if li.RateLimit.Limited || li.RateLimit.Until != nil || li.Connections.Active != 1 {
		t.Errorf("linkedin: got %+v, want active and no block in force (it ended)", li)
	}
	// A connection without figures: empty windows that say where they
	// start, nulls where nothing can be computed.
	b := byName[platform.Bluesky]
	if b.Connections.Expiring != 1 || b.LastHour.Sent != 0 || !b.LastHour.Since.Equal(f.now.Truncate(time.Hour).Add(-time.Hour)) ||
		!b.LastDay.Since.Equal(f.now.Truncate(time.Hour).Add(-24*time.Hour)) {
		t.Errorf("bluesky: got %+v", b)
	}
	if m := byName[platform.Mastodon]; m.LastDay.Sent != 2 || m.Connections != (ConnectionStates{}) {
		t.Errorf("mastodon: got %+v, want its figures and no connection", m)
	}
	body := w.Body.String()
	for _, want := range []string{`"platform":"bluesky","lastHour":{"since":"2026-11-26T08:00:00Z","sent":0,"failed":0,"successRate":null,"p50LatencyMs":null}`,
		`"lastError":null`, `"rateLimit":{"limited":false,"until":null}`, `"connections":{"active":0,"expiring":1,"broken":0}`,
		`"rateLimit":{"limited":true,"until":"2026-11-26T09:37:00Z"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("the JSON lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "conn_") || strings.Contains(body, f.other) {
		t.Errorf("the answer names connections or the other site: %s", body)
	}
	if f.blocks.reads != 4 {
		t.Errorf("block reads: got %d, want one per connection of the site (4)", f.blocks.reads)
	}
}

func TestPlatformsHealthIsScopedToTheKeysSite(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	w := f.do("GET", "/v1/platforms/health", f.otherSK, "")
	if w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	var got PlatformsHealth
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Platforms) != 1 || got.Platforms[0].Platform != platform.X || got.Platforms[0].LastHour.Sent != 99 ||
		got.Platforms[0].Connections.Active != 1 || !got.Platforms[0].RateLimit.Limited {
		t.Errorf("other site: got %+v, want its own x only", got.Platforms)
	}
	if fmt.Sprint(f.recent.asked) != "["+f.other+"@2026-11-26T09:30:00Z]" {
		t.Errorf("statistics read for %v, want the other site only", f.recent.asked)
	}
}

func TestPlatformsHealthPagesThroughConnections(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	for i := range 230 {
		id := fmt.Sprintf("conn_m%03d", i)
		f.conns.m[f.siteID+"/"+id] = connection.Connection{ID: id, Platform: platform.Mastodon, Status: connection.StatusActive}
	}
	w := f.do("GET", "/v1/platforms/health", f.siteKey, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"platform":"mastodon"`) || !strings.Contains(w.Body.String(), `"connections":{"active":230,"expiring":0,"broken":0}`) {
		t.Errorf("got %d %s, want 230 active mastodon connections", w.Code, w.Body)
	}
}

func TestPlatformsHealthErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(f *healthFixture)
		key  func(f *healthFixture) string
		want int
	}{
		{"no key", nil, func(*healthFixture) string { return "" }, 401},
		{"the admin key", nil, func(*healthFixture) string { return adminKey }, 403},
		{"statistics unreadable", func(f *healthFixture) { f.recent.err = errors.New("throttled") }, nil, 500},
		{"blocks unreadable", func(f *healthFixture) { f.blocks.err = errors.New("throttled") }, nil, 500},
		{"not configured", func(f *healthFixture) {
			f.srv = New(Deps{Sites: f.sites, Connections: f.conns, RecentStats: f.recent})
		}, nil, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newHealthFixture(t)
			if tc.mod != nil {
				tc.mod(f)
			}
			key := f.siteKey
			if tc.key != nil {
				key = tc.key(f)
			}
			w := f.do("GET", "/v1/platforms/health", key, "")
			if w.Code != tc.want || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
				t.Errorf("got %d %s, want %d as a problem", w.Code, w.Body, tc.want)
			}
			if strings.Contains(w.Body.String(), "throttled") {
				t.Errorf("the problem leaks the cause: %s", w.Body)
			}
		})
	}
}
