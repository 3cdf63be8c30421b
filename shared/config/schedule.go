package config

import (
	"errors"
	"fmt"
	"strconv"
)

// Schedule holds the settings of scheduled publishing in the api function:
// how fast it calls EventBridge Scheduler. Every one has a default, so none
// needs to be set.
type Schedule struct {
	// Rate (POSSE_SCHEDULER_RATE, default 20) is the Scheduler calls per
	// second one api instance makes at most: well under Scheduler's lowest
	// default quota (50 per second for each of Create, Update and Delete).
	Rate float64
	// Burst (POSSE_SCHEDULER_BURST, default 20) is how many calls may go at
	// once after a quiet spell.
	Burst int
	// MaxAttempts (POSSE_SCHEDULER_MAX_ATTEMPTS, default 8) is how often one
	// call is tried while Scheduler answers ThrottlingException.
	MaxAttempts int
}

// LoadSchedule reads the schedule settings with getenv and validates each
// one that is set.
func LoadSchedule(getenv func(string) string) (Schedule, error) {
	s := Schedule{Rate: 20, Burst: 20, MaxAttempts: 8}
	var errs []error
	if v := getenv("POSSE_SCHEDULER_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0.1 || r > 1000 {
			errs = append(errs, fmt.Errorf("config: POSSE_SCHEDULER_RATE must be calls per second from 0.1 to 1000, got %q", v))
		} else {
			s.Rate = r
		}
	}
	ints := []struct {
		name     string
		dst      *int
		min, max int
	}{
		{"POSSE_SCHEDULER_BURST", &s.Burst, 1, 1000},
		{"POSSE_SCHEDULER_MAX_ATTEMPTS", &s.MaxAttempts, 1, 20},
	}
	for _, c := range ints {
		v := getenv(c.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < c.min || n > c.max {
			errs = append(errs, fmt.Errorf("config: %s must be a whole number from %d to %d, got %q", c.name, c.min, c.max, v))
			continue
		}
		*c.dst = n
	}
	if len(errs) > 0 {
		return Schedule{}, errors.Join(errs...)
	}
	return s, nil
}
