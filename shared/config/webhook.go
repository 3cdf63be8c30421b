package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook holds the settings of the webhook function. Every one has a
// default, so none needs to be set.
type Webhook struct {
	// RetrySchedule (POSSE_WEBHOOK_RETRY_SCHEDULE, default
	// 5s,5m,30m,2h,5h,10h,10h) is the wait before each retry of a failed
	// attempt; after the last, the attempt is dead. Tests shorten it.
	RetrySchedule []time.Duration
	// DisableAfter (POSSE_WEBHOOK_DISABLE_AFTER, default 120h) disables an
	// endpoint that failed every attempt this long.
	DisableAfter time.Duration
	// Timeout (POSSE_WEBHOOK_TIMEOUT, default 5s) bounds one POST.
	Timeout time.Duration
	// Concurrency (POSSE_WEBHOOK_CONCURRENCY, default 10) bounds the
	// records of one SQS batch processed at once.
	Concurrency int
}

// DefaultRetrySchedule is POSSE_WEBHOOK_RETRY_SCHEDULE's default.
const DefaultRetrySchedule = "5s,5m,30m,2h,5h,10h,10h"

// LoadWebhook reads the webhook settings with getenv and validates each
// one that is set.
func LoadWebhook(getenv func(string) string) (Webhook, error) {
	w := Webhook{DisableAfter: 120 * time.Hour, Timeout: 5 * time.Second, Concurrency: 10}
	var errs []error
	sched := getenv("POSSE_WEBHOOK_RETRY_SCHEDULE")
	if sched == "" {
		sched = DefaultRetrySchedule
	}
	s, err := ParseRetrySchedule(sched)
	if err != nil {
		errs = append(errs, err)
	}
	w.RetrySchedule = s
	durations := []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
	}{
		{"POSSE_WEBHOOK_DISABLE_AFTER", &w.DisableAfter, time.Minute, 90 * 24 * time.Hour},
		{"POSSE_WEBHOOK_TIMEOUT", &w.Timeout, 100 * time.Millisecond, 25 * time.Second},
	}
	for _, v := range durations {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < v.min || d > v.max {
			errs = append(errs, fmt.Errorf("config: %s must be a duration from %s to %s, like 5s, got %q", v.name, v.min, v.max, s))
			continue
		}
		*v.dst = d
	}
	if v := getenv("POSSE_WEBHOOK_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10 {
			errs = append(errs, fmt.Errorf("config: POSSE_WEBHOOK_CONCURRENCY must be a whole number from 1 to 10, got %q", v))
		} else {
			w.Concurrency = n
		}
	}
	if len(errs) > 0 {
		return Webhook{}, errors.Join(errs...)
	}
	return w, nil
}

// ParseRetrySchedule reads a comma-separated list of waits ("5s,5m,30m"):
// one to 20 of them, each from 1 s to 24 h.
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	parts := strings.Split(s, ",")
	bad := fmt.Errorf("config: POSSE_WEBHOOK_RETRY_SCHEDULE must be 1 to 20 comma-separated durations from 1s to 24h, like 5s,5m,30m, got %q", s)
	if len(parts) > 20 {
		return nil, bad
	}
	out := make([]time.Duration, 0, len(parts))
	for _, p := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d < time.Second || d > 24*time.Hour {
			return nil, bad
		}
		out = append(out, d)
	}
	return out, nil
}
