package platform

import (
	"reflect"
	"testing"
	"time"
)

func TestReadingSetKeepsAbsentFiguresAbsent(t *testing.T) {
	t.Parallel()
	r := NewReading("p1", time.Unix(0, 0))
	seven, zero := int64(7), int64(0)
	r.Set(Likes, "like_count", &seven)
	r.Set(Views, "impression_count", nil)
	r.Set(Replies, "reply_count", &zero)
	if _, ok := r.Figures[Views]; ok {
		t.Errorf("views: got present, want absent when the platform does not give it")
	}
	if v, ok := r.Figures[Replies]; !ok || v != 0 {
		t.Errorf("replies: got %d (present %v), want a measured 0", v, ok)
	}
	if r.Figures[Likes] != 7 || r.Raw["like_count"] != 7 {
		t.Errorf("likes: got %d raw %d, want 7", r.Figures[Likes], r.Raw["like_count"])
	}
}

func TestBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ids  []string
		n    int
		want [][]string
	}{
		{nil, 3, nil},
		{[]string{"a", "b", "c"}, 2, [][]string{{"a", "b"}, {"c"}}},
		{[]string{"a", "b"}, 0, [][]string{{"a"}, {"b"}}},
	}
	for _, tt := range tests {
		if got := Batches(tt.ids, tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Batches(%v, %d): got %v, want %v", tt.ids, tt.n, got, tt.want)
		}
	}
}
