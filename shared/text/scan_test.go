package text

import (
	"slices"
	"testing"
)

func TestScan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		in                     string
		urls, scheme, mentions []string
		hashtags               []string
	}{
		{name: "empty", in: ""},
		{name: "plain text", in: "Nothing to see here."},
		{
			name: "scheme and bare", in: "Read https://example.com/a?b=1. Also posse.dev and foo.de.",
			urls: []string{"https://example.com/a?b=1", "posse.dev"}, scheme: []string{"https://example.com/a?b=1"},
		},
		{
			name: "mentions", in: "Thanks @alice, @bob@mastodon.social and @carol.bsky.social! mail me: dave@example.com",
			mentions: []string{"@alice", "@bob@mastodon.social", "@carol.bsky.social"},
		},
		{
			name: "hashtags", in: "#Go #2026 #serverless_rocks and a#b",
			hashtags: []string{"#Go", "#serverless_rocks"},
		},
		{
			name: "fragment and at inside url are not tags", in: "https://example.com/p#section https://example.com/@user",
			urls:   []string{"https://example.com/p#section", "https://example.com/@user"},
			scheme: []string{"https://example.com/p#section", "https://example.com/@user"},
		},
		{name: "fullwidth sigils", in: "＃タグ ＠ユーザー", hashtags: []string{"＃タグ"}, mentions: []string{"＠ユーザー"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check := func(what string, got, want []string) {
				t.Helper()
				if !slices.Equal(got, want) {
					t.Errorf("%s(%q): got %q, want %q", what, tt.in, got, want)
				}
			}
			check("URLs", URLs(tt.in), tt.urls)
			check("SchemeURLs", SchemeURLs(tt.in), tt.scheme)
			check("Mentions", Mentions(tt.in), tt.mentions)
			check("Hashtags", Hashtags(tt.in), tt.hashtags)
		})
	}
}
