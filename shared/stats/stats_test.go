package stats_test

import (
	"context"
	"encoding/json"
	"os"
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
