package ledger

import (
	"testing"
	"time"
)

func TestMetricsKey(t *testing.T) {
	t.Parallel()
	sent := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	next := sent.Add(24 * time.Hour)
	base := Delivery{ID: "d1", SiteID: "s1", State: StateSent, SentAt: &sent}
	tests := []struct {
		name           string
		mod            func(*Delivery)
		wantPK, wantSK string
	}{
		{"sent, never read", func(*Delivery) {}, QueueMetricsFirst, sortable(sent) + "#s1#d1"},
		{"read once", func(d *Delivery) { d.MetricsReads, d.MetricsNextAt = 1, &next }, QueueMetrics, sortable(next) + "#s1#d1"},
		{"done", func(d *Delivery) { d.MetricsReads, d.MetricsStatus = 3, MetricsDone }, "", ""},
		{"deleted", func(d *Delivery) { d.MetricsStatus = MetricsDeleted }, "", ""},
		{"not sent", func(d *Delivery) { d.State = StateFailed }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := base
			tt.mod(&d)
			pk, sk := MetricsKey(d)
			if pk != tt.wantPK || sk != tt.wantSK {
				t.Errorf("MetricsKey: got %q %q, want %q %q", pk, sk, tt.wantPK, tt.wantSK)
			}
		})
	}
}
