package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    Metrics
		wantErr string
	}{
		{"defaults", nil, Metrics{ReadAfter: []time.Duration{time.Hour, 24 * time.Hour, 168 * time.Hour}, ReadsPerHour: 30}, ""},
		{"seconds for tests", map[string]string{"POSSE_METRICS_READ_AFTER": "2s, 4s,6s", "POSSE_METRICS_READS_PER_HOUR": "0"},
			Metrics{ReadAfter: []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second}, ReadsPerHour: 0}, ""},
		{"not increasing", map[string]string{"POSSE_METRICS_READ_AFTER": "24h,1h"}, Metrics{}, "POSSE_METRICS_READ_AFTER"},
		{"not a duration", map[string]string{"POSSE_METRICS_READ_AFTER": "soon"}, Metrics{}, "POSSE_METRICS_READ_AFTER"},
		{"negative budget", map[string]string{"POSSE_METRICS_READS_PER_HOUR": "-1"}, Metrics{}, "POSSE_METRICS_READS_PER_HOUR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LoadMetrics(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}
