package schedules

import (
	"errors"
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func TestExpressions(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	kolkata := mustLoad(t, "Asia/Kolkata")
	anchor := time.Date(2026, 3, 28, 10, 0, 30, 0, time.UTC) // a Saturday
	tests := []struct {
		name  string
		expr  string
		loc   *time.Location
		after time.Time
		want  time.Time // zero: no next fire
	}{
		{"at utc", "at(2026-03-28T12:00:00)", time.UTC, anchor, time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)},
		{"at kolkata", "at(2026-03-28T18:00:00)", kolkata, anchor, time.Date(2026, 3, 28, 12, 30, 0, 0, time.UTC)},
		{"at passed", "at(2026-03-28T09:00:00)", time.UTC, anchor, time.Time{}},
		{"rate first", "rate(5 minutes)", time.UTC, anchor, anchor.Add(5 * time.Minute)},
		{"rate later", "rate(1 hour)", time.UTC, anchor.Add(90 * time.Minute), anchor.Add(2 * time.Hour)},
		{"rate on the mark", "rate(1 day)", time.UTC, anchor.Add(24 * time.Hour), anchor.Add(48 * time.Hour)},
		{"cron daily noon", "cron(0 12 * * ? *)", time.UTC, anchor, time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)},
		{"cron every 15", "cron(*/15 * * * ? *)", time.UTC, anchor, time.Date(2026, 3, 28, 10, 15, 0, 0, time.UTC)},
		{"cron weekdays", "cron(0 8 ? * MON-FRI *)", time.UTC, anchor, time.Date(2026, 3, 30, 8, 0, 0, 0, time.UTC)},
		{"cron weekday numbers", "cron(0 8 ? * 1 *)", time.UTC, anchor, time.Date(2026, 3, 29, 8, 0, 0, 0, time.UTC)},
		{"cron months and year", "cron(30 2 1 JAN,JUL ? 2027)", time.UTC, anchor, time.Date(2027, 1, 1, 2, 30, 0, 0, time.UTC)},
		{"cron berlin across dst", "cron(30 2 * * ? *)", berlin, time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)},
		{"cron ranges with steps", "cron(10-50/20 9 * * ? *)", time.UTC, anchor, time.Date(2026, 3, 29, 9, 10, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := parseExpression(tt.expr, tt.loc, anchor)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, ok := e.next(tt.after)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("next after %v: got %v (%v), want %v", tt.after, got, ok, tt.want)
			}
		})
	}
}

func TestUnsupportedExpressions(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{
		"at(2026-13-01T00:00:00)", "at(2026-01-01 00:00)", "rate(0 minutes)", "rate(1 minutes)", "rate(2 minute)",
		"rate(5 seconds)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)", "cron(0 12 L * ? *)", "cron(0 12 ? * 6L *)",
		"cron(0 12 15W * ? *)", "cron(0 12 ? * MON#2 *)", "cron(0 25 * * ? *)", "cron(0 12 * *)", "every(5)",
	} {
		if _, err := parseExpression(expr, time.UTC, time.Now()); !errors.Is(err, errUnsupported) {
			t.Errorf("%s: got %v, want errUnsupported", expr, err)
		}
	}
	if _, err := parseExpression("cron(0 12 ? JUL WED *)", time.UTC, time.Now()); err != nil {
		t.Errorf("JUL and WED are names, not L/W forms: %v", err)
	}
}
