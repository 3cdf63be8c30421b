package config

import (
	"strings"
	"testing"
)

func TestLoadSchedule(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want Schedule
		err  string
	}{
		{env: map[string]string{}, want: Schedule{Rate: 20, Burst: 20, MaxAttempts: 8}},
		{env: map[string]string{"POSSE_SCHEDULER_RATE": "5.5", "POSSE_SCHEDULER_BURST": "10", "POSSE_SCHEDULER_MAX_ATTEMPTS": "3"},
			want: Schedule{Rate: 5.5, Burst: 10, MaxAttempts: 3}},
		{env: map[string]string{"POSSE_SCHEDULER_RATE": "fast"}, err: "POSSE_SCHEDULER_RATE"},
		{env: map[string]string{"POSSE_SCHEDULER_RATE": "0"}, err: "POSSE_SCHEDULER_RATE"},
		{env: map[string]string{"POSSE_SCHEDULER_BURST": "0"}, err: "POSSE_SCHEDULER_BURST"},
		{env: map[string]string{"POSSE_SCHEDULER_MAX_ATTEMPTS": "99"}, err: "POSSE_SCHEDULER_MAX_ATTEMPTS"},
	} {
		got, err := LoadSchedule(func(k string) string { return c.env[k] })
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("LoadSchedule(%v): got %v, want an error naming %s", c.env, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("LoadSchedule(%v): got %+v %v, want %+v", c.env, got, err, c.want)
		}
	}
}
