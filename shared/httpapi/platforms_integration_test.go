package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
)

// TestPlatformsHealthAgainstMoto: outcomes recorded as the dispatcher
// records them, a block the platform asked for, and the connections in
// moto, read back through GET /v1/platforms/health.
func TestPlatformsHealthAgainstMoto(t *testing.T) {
	t.Parallel()
	s := newMotoStack(t)
	st := stats.New(s.db, s.table)
	now := s.clock.Now()
	for _, r := range []struct {
		site string
		p    platform.Name
		ago  time.Duration
		e    stats.Event
	}{
		{s.a.ID, platform.X, 3 * time.Hour, stats.Event{Sent: 1, Latency: 4 * time.Second}},
		{s.a.ID, platform.X, 20 * time.Minute, stats.Event{Retries: 1, ErrorKind: "transient"}},
		{s.a.ID, platform.X, 10 * time.Minute, stats.Event{Sent: 1, Latency: 900 * time.Millisecond}},
		{s.a.ID, platform.X, 5 * time.Minute, stats.Event{Failed: 1, ErrorKind: "permanent"}},
		{s.b.ID, platform.X, 5 * time.Minute, stats.Event{Failed: 7, ErrorKind: "reconnect"}},
	} {
		if err := st.Record(s.ctx, r.site, r.p, now.Add(-r.ago), r.e); err != nil {
			t.Fatal(err)
		}
	}
	lim := ratelimit.New(s.db, s.table, s.clock.Now)
	if err := lim.Block(s.ctx, s.a.ID, ratelimit.BlockScope("x", "conn_xa"), now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := lim.Block(s.ctx, s.b.ID, ratelimit.BlockScope("mastodon", "conn_ma"), now.Add(time.Hour)); err != nil { // another site's
		t.Fatal(err)
	}

	code, body, _ := s.call("GET", "/v1/platforms/health", s.keyA, "")
	if code != 200 {
		t.Fatalf("got %d %s", code, body)
	}
	var got PlatformsHealth
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	by := map[platform.Name]PlatformHealth{}
	var names []string
	for _, p := range got.Platforms {
		by[p.Platform] = p
		names = append(names, string(p.Platform))
	}
	if strings.Join(names, ",") != "linkedin,mastodon,x" {
		t.Fatalf("platforms: got %v, want site A's three", names)
	}
	x := by[platform.X]
	// The last hour (this clock hour and the one before) holds the 900 ms
	// publication and the failure, whatever minute the clock is at; the
	// day adds the one of 4 s three hours ago.
	if x.LastHour.Sent != 1 || x.LastHour.Failed != 1 || x.LastHour.SuccessRate == nil || *x.LastHour.SuccessRate != 0.5 {
		t.Errorf("x last hour: got %+v", x.LastHour)
	}
	if x.LastDay.Sent != 2 || x.LastDay.Failed != 1 || x.LastDay.P50LatencyMs == nil || *x.LastDay.P50LatencyMs != 1000 {
		t.Errorf("x last day: got %+v, want 2 sent, 1 failed, p50 1000 ms (rank 1 of 2 tops 500ms..1s)", x.LastDay)
	}
	if x.LastError == nil || x.LastError.Kind != "permanent" || !x.LastError.At.Equal(now.Add(-5*time.Minute).Truncate(time.Millisecond)) {
		t.Errorf("x last error: got %+v", x.LastError)
	}
	if !x.RateLimit.Limited || !x.RateLimit.Until.Equal(now.Add(10*time.Minute).Truncate(time.Millisecond)) || x.Connections.Active != 1 {
		t.Errorf("x: got rate limit %+v, connections %+v", x.RateLimit, x.Connections)
	}
	if m := by[platform.Mastodon]; m.RateLimit.Limited || m.LastDay.Sent != 0 || m.Connections.Active != 1 {
		t.Errorf("mastodon: got %+v, want quiet, not limited by the other site's block", m)
	}
	if li := by[platform.LinkedIn]; li.Connections.Broken != 1 {
		t.Errorf("linkedin: got %+v, want one broken connection", li)
	}
}
