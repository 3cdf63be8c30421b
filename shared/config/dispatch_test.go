package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadDispatch(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	d, err := LoadDispatch(env(nil))
	if err != nil || d.Concurrency != 5 || d.MaxAttempts != 5 || d.Lease != 2*time.Minute || d.QueuedAfter != 10*time.Minute {
		t.Errorf("defaults: got %+v, %v", d, err)
	}
	d, err = LoadDispatch(env(map[string]string{"POSSE_DISPATCH_CONCURRENCY": "8", "POSSE_DISPATCH_MAX_ATTEMPTS": "3", "POSSE_DISPATCH_LEASE": "90s"}))
	if err != nil || d.Concurrency != 8 || d.MaxAttempts != 3 || d.Lease != 90*time.Second {
		t.Errorf("set: got %+v, %v", d, err)
	}
	for name, v := range map[string]string{
		"POSSE_DISPATCH_CONCURRENCY":  "0",
		"POSSE_DISPATCH_MAX_ATTEMPTS": "many",
		"POSSE_DISPATCH_LEASE":        "1s",
		"POSSE_DISPATCH_BACKOFF_BASE": "soon",
		"POSSE_SWEEP_QUEUED_AFTER":    "10",
	} {
		if _, err := LoadDispatch(env(map[string]string{name: v})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: got %v, want an error naming it", name, v, err)
		}
	}
	if _, err := LoadDispatch(env(map[string]string{"POSSE_DISPATCH_BACKOFF_BASE": "10m", "POSSE_DISPATCH_BACKOFF_MAX": "1m"})); err == nil {
		t.Error("max below base: got nil, want an error")
	}
}
