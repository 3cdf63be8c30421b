package stats_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/stats"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestIntegrationRecordAndQuery(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	s := stats.New(db, mototest.Table(t, db))
	ctx := context.Background()
	day1 := time.Date(2026, 11, 2, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	// Sequential: moto_server applies concurrent updates of one item
	// without a lock (DynamoDB itself makes each ADD atomic).
	for range 10 {
		if err := s.Record(ctx, "site_a", platform.X, day1, stats.Event{Sent: 1, Latency: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		site string
		p    platform.Name
		at   time.Time
		e    stats.Event
	}{
		{"site_a", platform.X, day1, stats.Event{Failed: 1}},
		{"site_a", platform.X, day1, stats.Event{Retries: 1}},
		{"site_a", platform.Mastodon, day2, stats.Event{Sent: 1, Latency: 4 * time.Second}},
		{"site_b", platform.Mastodon, day2, stats.Event{Sent: 5}},
		{"site_a", platform.Mastodon, day2.AddDate(0, 0, 5), stats.Event{Sent: 7}}, // outside the range
	} {
		if err := s.Record(ctx, r.site, r.p, r.at, r.e); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Query(ctx, "site_a", day1, day2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2026-11-02" || rep.To != "2026-11-03" || len(rep.Timeline) != 2 {
		t.Errorf("range: got %s..%s with %d days", rep.From, rep.To, len(rep.Timeline))
	}
	if rep.Summary.Sent != 11 || rep.Summary.Failed != 1 || rep.Summary.Retries != 1 || rep.Summary.AvgLatencyMs != 2181 {
		t.Errorf("summary: got %+v, want 11 sent, 1 failed, 1 retry, mean latency 24000/11 ms", rep.Summary)
	}
	if len(rep.ByPlatform) != 2 || rep.ByPlatform[0].Platform != platform.Mastodon || rep.ByPlatform[0].Sent != 1 || rep.ByPlatform[1].Sent != 10 {
		t.Errorf("by platform: got %+v", rep.ByPlatform)
	}
	if rep.Timeline[0].Sent != 10 || rep.Timeline[1].Sent != 1 {
		t.Errorf("timeline: got %+v", rep.Timeline)
	}
	b, _ := json.Marshal(rep)
	for _, key := range []string{`"summary":{"sent":11`, `"byPlatform":[{"platform":"mastodon"`, `"timeline":[{"date":"2026-11-02"`, `"successRate"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	empty, err := s.Query(ctx, "site_c", day1, day1)
	if err != nil || empty.Summary.Sent != 0 || len(empty.Timeline) != 1 || empty.ByPlatform == nil {
		t.Errorf("empty site: got %+v, %v", empty, err)
	}
}

func TestQueryRange(t *testing.T) {
	t.Parallel()
	s := stats.New(nil, "unused")
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ from, to time.Time }{
		{now, now.AddDate(0, 0, -1)},
		{now, now.AddDate(0, 0, stats.MaxDays)},
	} {
		if _, err := s.Query(context.Background(), "site_a", tc.from, tc.to); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("Query(%s, %s): got %v, want invalid", tc.from, tc.to, err)
		}
	}
}

func TestIntegrationAICost(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	s := stats.New(db, mototest.Table(t, db))
	ctx := context.Background()
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		p platform.Name
		e stats.Event
	}{
		{platform.X, stats.Event{Sent: 1, AICostMicros: 420}},
		{platform.X, stats.Event{AICostMicros: 80}},
		{platform.Bluesky, stats.Event{Sent: 1, AICostMicros: 1000}},
		{platform.Bluesky, stats.Event{Sent: 1}},
	} {
		if err := s.Record(ctx, "site_ai", r.p, at, r.e); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Query(ctx, "site_ai", at, at)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.TotalAICost != 0.0015 {
		t.Errorf("summary totalAiCost: got %v, want 0.0015", rep.Summary.TotalAICost)
	}
	if len(rep.ByPlatform) != 2 || rep.ByPlatform[0].TotalAICost != 0.001 || rep.ByPlatform[1].TotalAICost != 0.0005 {
		t.Errorf("by platform: got %+v, want bluesky 0.001, x 0.0005", rep.ByPlatform)
	}
	if b, _ := json.Marshal(rep.Summary); !strings.Contains(string(b), `"totalAiCost":0.0015`) {
		t.Errorf("summary JSON %s lacks totalAiCost", b)
	}
}

// oneUpdate records the UpdateItem calls Record makes.
type oneUpdate struct {
	calls []*dynamodb.UpdateItemInput
}

func (f *oneUpdate) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.calls = append(f.calls, in)
	return &dynamodb.UpdateItemOutput{}, nil
}

func (f *oneUpdate) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{}, nil
}

// TestRecordIsOneUpdate: the hourly counters, the latency histogram and
// the last error ride in the daily counters' one UpdateItem.
func TestRecordIsOneUpdate(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 2, 7, 45, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		e    stats.Event
		want string
	}{
		{"sent", stats.Event{Sent: 1, Latency: 1500 * time.Millisecond},
			"ADD sent :sent, latency_sum_ms :latency_sum_ms, latency_count :latency_count, h07s :h07s, h07l3 :h07l3"},
		{"failed", stats.Event{Failed: 1, ErrorKind: "permanent"},
			"ADD failed :failed, h07f :h07f SET last_error_kind = :lek, last_error_at_ms = :lea"},
		{"retried", stats.Event{Retries: 1, ErrorKind: "transient"},
			"ADD retries :retries SET last_error_kind = :lek, last_error_at_ms = :lea"},
		{"a long wait", stats.Event{Sent: 1, Latency: 2 * time.Hour}, "ADD sent :sent, latency_sum_ms :latency_sum_ms, latency_count :latency_count, h07s :h07s, h07l11 :h07l11"},
		{"nothing", stats.Event{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := &oneUpdate{}
			if err := stats.New(db, "t").Record(context.Background(), "site_a", platform.X, at, tc.e); err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(db.calls) != 0 {
					t.Errorf("calls: got %d, want none", len(db.calls))
				}
				return
			}
			if len(db.calls) != 1 {
				t.Fatalf("calls: got %d, want 1", len(db.calls))
			}
			if got := *db.calls[0].UpdateExpression; got != tc.want {
				t.Errorf("expression:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	n := len(stats.LatencyBounds) + 1
	hist := func(pairs ...int) []int64 {
		h := make([]int64, n)
		for i := 0; i+1 < len(pairs); i += 2 {
			h[pairs[i]] = int64(pairs[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    []int64
		want time.Duration
		ok   bool
	}{
		{"empty", hist(), 0, false},
		{"one bucket: its middle", hist(2, 4), 750 * time.Millisecond, true},    // 500ms..1s
		{"first bucket from zero", hist(0, 2), 125 * time.Millisecond, true},    // 0..250ms
		{"between buckets", hist(1, 1, 4, 1), 500 * time.Millisecond, true},     // rank 1: the top of bucket 1
		{"skewed", hist(3, 1, 4, 3), 2*time.Second + time.Second, true},         // rank 2: a third into 2s..5s
		{"the open bucket", hist(len(stats.LatencyBounds), 3), time.Hour, true}, // at least an hour
	} {
		got, ok := stats.Quantile(tc.h, 0.5)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: got %s, %v; want %s, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestIntegrationRecent records outcomes around midnight and reads the
// last hour and the last day back from moto.
func TestIntegrationRecent(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	s := stats.New(db, mototest.Table(t, db))
	ctx := context.Background()
	now := time.Date(2026, 11, 3, 0, 20, 0, 0, time.UTC) // the last hour spans two days
	rec := func(p platform.Name, at time.Time, e stats.Event) {
		t.Helper()
		if err := s.Record(ctx, "site_h", p, at, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []time.Duration{300 * time.Millisecond, 800 * time.Millisecond, 900 * time.Millisecond} {
		rec(platform.Mastodon, now.Add(-10*time.Minute), stats.Event{Sent: 1, Latency: l}) // this hour
	}
	// In the order the dispatcher would record them: the last error is the
	// one written last.
	rec(platform.Mastodon, now.Add(-30*time.Hour), stats.Event{Failed: 9, ErrorKind: "reconnect"}) // outside the day
	rec(platform.Mastodon, now.Add(-3*time.Hour), stats.Event{Sent: 4, Latency: 20 * time.Second})
	rec(platform.Mastodon, now.Add(-2*time.Hour), stats.Event{Retries: 1, ErrorKind: "transient"})
	rec(platform.Mastodon, now.Add(-55*time.Minute), stats.Event{Failed: 1, ErrorKind: "permanent"}) // 23:25, yesterday
	rec(platform.Mastodon, now.Add(-50*time.Minute), stats.Event{Sent: 1, Latency: 3 * time.Second})
	rec(platform.X, now.Add(-20*time.Hour), stats.Event{Retries: 1, ErrorKind: "rate_limited"})
	rec(platform.Bluesky, now.Add(-40*time.Hour), stats.Event{Sent: 2, Latency: time.Second}) // nothing recent
	if err := s.Record(ctx, "site_other", platform.Mastodon, now, stats.Event{Sent: 50}); err != nil {
		t.Fatal(err)
	}

	got, err := s.Recent(ctx, "site_h", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("platforms: got %v, want mastodon and x (bluesky has nothing in the last day)", got)
	}
	m := got[platform.Mastodon]
	if !m.LastHour.Since.Equal(time.Date(2026, 11, 2, 23, 0, 0, 0, time.UTC)) || !m.LastDay.Since.Equal(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("windows: hour since %s, day since %s", m.LastHour.Since, m.LastDay.Since)
	}
	if m.LastHour.Sent != 4 || m.LastHour.Failed != 1 || m.LastHour.SuccessRate == nil || *m.LastHour.SuccessRate != 0.8 {
		t.Errorf("last hour: got %+v, want 4 sent, 1 failed, 0.8", m.LastHour)
	}
	// Latencies 300, 800, 900 ms and 3 s: rank 2 of 4 is half way into
	// the 500ms..1s bucket, which holds two.
	if m.LastHour.P50LatencyMs == nil || *m.LastHour.P50LatencyMs != 750 {
		t.Errorf("last hour p50: got %v, want 750 ms", ptr(m.LastHour.P50LatencyMs))
	}
	// 300, 800, 900 ms, 3 s and four of 20 s: rank 4 of 8 tops 2s..5s.
	if m.LastDay.Sent != 8 || m.LastDay.Failed != 1 || ptr(m.LastDay.P50LatencyMs) != "5000" {
		t.Errorf("last day: got %+v (p50 %s), want 8 sent, 1 failed, p50 5000 ms", m.LastDay, ptr(m.LastDay.P50LatencyMs))
	}
	if m.LastError == nil || m.LastError.Kind != "permanent" || !m.LastError.At.Equal(now.Add(-55*time.Minute)) {
		t.Errorf("last error: got %+v, want permanent at 23:25", m.LastError)
	}
	x := got[platform.X]
	if x.LastDay.Sent != 0 || x.LastDay.SuccessRate != nil || x.LastDay.P50LatencyMs != nil || x.LastError == nil || x.LastError.Kind != "rate_limited" {
		t.Errorf("x: got %+v, want no outcomes and the last error", x)
	}
	if b, _ := json.Marshal(x.LastHour); !strings.Contains(string(b), `"successRate":null,"p50LatencyMs":null`) {
		t.Errorf("an empty window's JSON: %s", b)
	}
	// The daily counters and analytics are unchanged by the hourly ones.
	rep, err := s.Query(ctx, "site_h", now.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Sent != 8 || rep.Summary.Failed != 1 || rep.Summary.Retries != 2 {
		t.Errorf("analytics: got %+v", rep.Summary)
	}
}

func ptr(p *int64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatInt(*p, 10)
}
