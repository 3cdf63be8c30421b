package tiktok

import "testing"

func TestChunkPlan(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	tests := []struct {
		name       string
		size, want int64
		chunk      int64
		wantCount  int
	}{
		{name: "small file is one chunk", size: 4096, chunk: 10 * mb, want: 4096, wantCount: 1},
		{name: "under 5 MB is one chunk", size: 5*mb - 1, chunk: 10 * mb, want: 5*mb - 1, wantCount: 1},
		{name: "fits one chunk", size: 9 * mb, chunk: 10 * mb, want: 9 * mb, wantCount: 1},
		{name: "remainder joins the last chunk", size: 25 * mb, chunk: 10 * mb, want: 10 * mb, wantCount: 2},
		{name: "chunk raised to 5 MB", size: 12 * mb, chunk: 1 * mb, want: 5 * mb, wantCount: 2},
		{name: "chunk capped at 64 MB", size: 200 * mb, chunk: 100 * mb, want: 64 * mb, wantCount: 3},
		{name: "at most 1000 chunks", size: 20000 * mb, chunk: 5 * mb, want: 20 * mb, wantCount: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, n := chunkPlan(tt.size, tt.chunk)
			if got != tt.want || n != tt.wantCount {
				t.Errorf("chunkPlan(%d, %d): got %d × %d, want %d × %d", tt.size, tt.chunk, got, n, tt.want, tt.wantCount)
			}
			if last := tt.size - int64(n-1)*got; last > 128*mb || last < got && n > 1 {
				t.Errorf("last chunk: got %d bytes, want between chunk size and 128 MB", last)
			}
		})
	}
}
