package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metrics configures reading the engagement of sent deliveries.
type Metrics struct {
	// ReadAfter are the ages of a sent delivery at which its figures are
	// read (POSSE_METRICS_READ_AFTER, comma-separated durations, default
	// 1h,24h,168h), increasing.
	ReadAfter []time.Duration
	// ReadsPerHour caps the read calls made per connection and platform in
	// an hour (POSSE_METRICS_READS_PER_HOUR, default 30; 0 turns reading
	// off), so reads always leave the platform's window to publishing.
	ReadsPerHour int
}

// LoadMetrics reads the engagement settings with getenv.
func LoadMetrics(getenv func(string) string) (Metrics, error) {
	m := Metrics{ReadAfter: []time.Duration{time.Hour, 24 * time.Hour, 168 * time.Hour}, ReadsPerHour: 30}
	var errs []error
	if v := getenv("POSSE_METRICS_READ_AFTER"); v != "" {
		var ds []time.Duration
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d <= 0 || (len(ds) > 0 && d <= ds[len(ds)-1]) {
				ds = nil
				break
			}
			ds = append(ds, d)
		}
		if len(ds) == 0 || len(ds) > 10 {
			errs = append(errs, fmt.Errorf("config: POSSE_METRICS_READ_AFTER must be 1 to 10 increasing positive durations like 1h,24h,168h, got %q", v))
		} else {
			m.ReadAfter = slices.Clone(ds)
		}
	}
	if v := getenv("POSSE_METRICS_READS_PER_HOUR"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("config: POSSE_METRICS_READS_PER_HOUR must be a whole number >= 0, got %q", v))
		} else {
			m.ReadsPerHour = n
		}
	}
	if len(errs) > 0 {
		return Metrics{}, errors.Join(errs...)
	}
	return m, nil
}
