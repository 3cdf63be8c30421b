package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadWebhook(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	w, err := LoadWebhook(env(nil))
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if err != nil || len(w.RetrySchedule) != len(want) || w.DisableAfter != 120*time.Hour || w.Timeout != 5*time.Second || w.Concurrency != 10 {
		t.Fatalf("defaults: got %+v, %v", w, err)
	}
	for i := range want {
		if w.RetrySchedule[i] != want[i] {
			t.Errorf("default schedule[%d]: got %v, want %v", i, w.RetrySchedule[i], want[i])
		}
	}
	w, err = LoadWebhook(env(map[string]string{"POSSE_WEBHOOK_RETRY_SCHEDULE": "1s, 1s,1s", "POSSE_WEBHOOK_DISABLE_AFTER": "1h", "POSSE_WEBHOOK_TIMEOUT": "2s"}))
	if err != nil || len(w.RetrySchedule) != 3 || w.RetrySchedule[2] != time.Second || w.DisableAfter != time.Hour || w.Timeout != 2*time.Second {
		t.Errorf("set: got %+v, %v", w, err)
	}
	for name, v := range map[string]string{
		"POSSE_WEBHOOK_RETRY_SCHEDULE": "1s,,1s",
		"POSSE_WEBHOOK_DISABLE_AFTER":  "forever",
		"POSSE_WEBHOOK_TIMEOUT":        "1m",
		"POSSE_WEBHOOK_CONCURRENCY":    "11",
	} {
		if _, err := LoadWebhook(env(map[string]string{name: v})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: got %v, want an error naming it", name, v, err)
		}
	}
	for _, bad := range []string{"500ms", "25h", strings.Repeat("1s,", 20) + "1s"} {
		if _, err := ParseRetrySchedule(bad); err == nil {
			t.Errorf("ParseRetrySchedule(%q): got nil, want an error", bad)
		}
	}
}
