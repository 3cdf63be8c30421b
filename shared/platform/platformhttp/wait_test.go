package platformhttp_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"30", 30 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"Wed, 21 Oct 2026 07:28:00 GMT", 0, false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got, ok := platformhttp.RetryAfter(h); got != tc.want || ok != tc.wantOK {
			t.Errorf("Retry-After %q: got %v %v, want %v %v", tc.value, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestResetHeaders(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("RateLimit-Reset", "1795168860") // now + 60 s
	h.Set("X-RateLimit-Reset", "2026-11-20T10:05:00.000000Z")
	h.Set("Bad", "soon")
	if got, ok := platformhttp.EpochReset(h, "RateLimit-Reset"); !ok || !got.Equal(now.Add(time.Minute)) {
		t.Errorf("EpochReset: got %v %v, want %v", got, ok, now.Add(time.Minute))
	}
	if got, ok := platformhttp.ISOReset(h, "X-RateLimit-Reset"); !ok || !got.Equal(now.Add(5*time.Minute)) {
		t.Errorf("ISOReset: got %v %v, want %v", got, ok, now.Add(5*time.Minute))
	}
	for _, name := range []string{"Bad", "Missing"} {
		if _, ok := platformhttp.EpochReset(h, name); ok {
			t.Errorf("EpochReset %s: got ok, want not", name)
		}
		if _, ok := platformhttp.ISOReset(h, name); ok {
			t.Errorf("ISOReset %s: got ok, want not", name)
		}
	}
}

func TestUntilReset(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		reset time.Time
		want  time.Duration
	}{
		{now.Add(90*time.Second + 400*time.Millisecond), 91 * time.Second}, // rounded up: never before the reset
		{now.Add(90*time.Second + 600*time.Millisecond), 91 * time.Second},
		{now.Add(90 * time.Second), 90 * time.Second},
		{now, time.Second},
		{now.Add(-time.Hour), time.Second},
	}
	for _, tc := range cases {
		if got := platformhttp.UntilReset(tc.reset, now); got != tc.want {
			t.Errorf("UntilReset(now%+v): got %v, want %v", tc.reset.Sub(now), got, tc.want)
		}
	}
}

// Mastodon's X-RateLimit-Reset carries microseconds: the wait must end at
// or after it, never up to half a second before.
func TestUntilResetMicroseconds(t *testing.T) {
	t.Parallel()
	reset, err := time.Parse(time.RFC3339Nano, "2026-11-20T10:05:00.290597Z")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	got := platformhttp.UntilReset(reset, now)
	if now.Add(got).Before(reset) {
		t.Errorf("UntilReset: got %v, which ends %v before the reset", got, reset.Sub(now.Add(got)))
	}
	if got != 301*time.Second {
		t.Errorf("UntilReset: got %v, want 5m1s", got)
	}
}

func TestRegainWait(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"absent", "", 0, false},
		{"not JSON", "busy", 0, false},
		{"no estimate", `{"1":[{"estimated_time_to_regain_access":0}]}`, 0, false},
		{"longest of all entries", `{"1":[{"estimated_time_to_regain_access":3}],"2":[{"estimated_time_to_regain_access":7},{"estimated_time_to_regain_access":1}]}`, 7 * time.Minute, true},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.value != "" {
			h.Set("X-Business-Use-Case-Usage", tc.value)
		}
		if got, ok := platformhttp.RegainWait(h); got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestRateLimitWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	withRetry := http.Header{"Retry-After": {"30"}}
	cases := []struct {
		name     string
		h        http.Header
		reset    time.Time
		hasReset bool
		want     time.Duration
	}{
		{"reset header wins", withRetry, now.Add(2 * time.Minute), true, 2 * time.Minute},
		{"then Retry-After", withRetry, time.Time{}, false, 30 * time.Second},
		{"else the default", http.Header{}, time.Time{}, false, 5 * time.Minute},
	}
	for _, tc := range cases {
		if got := platformhttp.RateLimitWait(tc.h, tc.reset, tc.hasReset, now, 5*time.Minute); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
