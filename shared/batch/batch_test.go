package batch

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
)

func TestFailedReportsErrorsAndPanicsInOrder(t *testing.T) {
	t.Parallel()
	recs := []int{1, 2, 3, 4, 5, 6}
	var running, peak atomic.Int32
	got := Failed(context.Background(), slog.New(slog.DiscardHandler), "test", recs, 2,
		func(n int) string { return string(rune('a' + n - 1)) },
		func(_ context.Context, n int) error {
			if c := running.Add(1); c > peak.Load() {
				peak.Store(c)
			}
			defer running.Add(-1)
			switch n {
			case 2:
				return errors.New("failed")
			case 5:
				panic("boom")
			}
			return nil
		})
	if !slices.Equal(got, []string{"b", "e"}) {
		t.Errorf("failed: got %v, want [b e]", got)
	}
	if peak.Load() > 2 {
		t.Errorf("concurrency: got %d at once, want at most 2", peak.Load())
	}
}
