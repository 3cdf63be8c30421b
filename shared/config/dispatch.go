package config

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Dispatch holds the settings of the dispatch and sweep functions. Every
// one has a default, so none needs to be set.
type Dispatch struct {
	// Concurrency (POSSE_DISPATCH_CONCURRENCY, default 5) bounds the records
	// of one SQS batch published at once.
	Concurrency int
	// MaxAttempts (POSSE_DISPATCH_MAX_ATTEMPTS, default 5) is how many publish
	// attempts a delivery gets before it is dead.
	MaxAttempts int
	// Lease (POSSE_DISPATCH_LEASE, default 2m) is how long a claim holds a
	// delivery; keep it above the dispatch function's timeout.
	Lease time.Duration
	// BackoffBase and BackoffMax (POSSE_DISPATCH_BACKOFF_BASE, default 30s;
	// POSSE_DISPATCH_BACKOFF_MAX, default 30m) shape retry backoff.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Heartbeat (POSSE_DISPATCH_HEARTBEAT, default 20s) is how often a long
	// publish extends its message's visibility and its lease.
	Heartbeat time.Duration
	// QueuedAfter (POSSE_SWEEP_QUEUED_AFTER, default 10m): the sweep
	// re-enqueues deliveries queued longer than this.
	QueuedAfter time.Duration
}

// LoadDispatch reads the dispatch settings with getenv and validates each
// one that is set.
func LoadDispatch(getenv func(string) string) (Dispatch, error) {
	d := Dispatch{Concurrency: 5, MaxAttempts: 5, Lease: 2 * time.Minute, BackoffBase: 30 * time.Second,
		BackoffMax: 30 * time.Minute, Heartbeat: 20 * time.Second, QueuedAfter: 10 * time.Minute}
	var errs []error
	ints := []struct {
		name     string
		dst      *int
		min, max int
	}{
		{"POSSE_DISPATCH_CONCURRENCY", &d.Concurrency, 1, 10},
		{"POSSE_DISPATCH_MAX_ATTEMPTS", &d.MaxAttempts, 1, 50},
	}
	for _, v := range ints {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < v.min || n > v.max {
			errs = append(errs, fmt.Errorf("config: %s must be a whole number from %d to %d, got %q", v.name, v.min, v.max, s))
			continue
		}
		*v.dst = n
	}
	durations := []struct {
		name string
		dst  *time.Duration
		min  time.Duration
	}{
		{"POSSE_DISPATCH_LEASE", &d.Lease, 10 * time.Second},
		{"POSSE_DISPATCH_BACKOFF_BASE", &d.BackoffBase, time.Second},
		{"POSSE_DISPATCH_BACKOFF_MAX", &d.BackoffMax, time.Second},
		{"POSSE_DISPATCH_HEARTBEAT", &d.Heartbeat, time.Second},
		{"POSSE_SWEEP_QUEUED_AFTER", &d.QueuedAfter, time.Minute},
	}
	for _, v := range durations {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		t, err := time.ParseDuration(s)
		if err != nil || t < v.min {
			errs = append(errs, fmt.Errorf("config: %s must be a duration of at least %s, like 30s, got %q", v.name, v.min, s))
			continue
		}
		*v.dst = t
	}
	if d.BackoffMax < d.BackoffBase {
		errs = append(errs, errors.New("config: POSSE_DISPATCH_BACKOFF_MAX must not be below POSSE_DISPATCH_BACKOFF_BASE"))
	}
	if len(errs) > 0 {
		return Dispatch{}, errors.Join(errs...)
	}
	return d, nil
}
