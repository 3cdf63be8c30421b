package compose

import (
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/target"
	"github.com/posse-dev/posse/shared/text"
)

var (
	xLimit       = text.Limit{Rule: platform.CountXWeighted, Max: 280}
	blueskyLimit = text.Limit{Rule: platform.CountGraphemes, Max: 300, MaxBytes: 3000}
	bigLimit     = text.Limit{Rule: platform.CountUTF16, Max: 3000}
)

func post() Post {
	return Post{PostID: "42", Revision: "3", Title: "Hello world", Excerpt: "A short excerpt.", URL: "https://blog.example/hello"}
}

func TestCompose(t *testing.T) {
	t.Parallel()
	withLink := target.Defaults{IncludeLink: true}
	tests := []struct {
		name     string
		in       Input
		wantText string
		wantLink string
	}{
		{"default template", Input{Post: post(), Defaults: target.Defaults{IncludeLink: true, Hashtags: []string{"go", "posse"}}},
			"Hello world\n\nA short excerpt.\n\nhttps://blog.example/hello\n\n#go #posse", "https://blog.example/hello"},
		{"custom message replaces the excerpt", Input{Post: post(), CustomMessage: "  Read this!  ", Defaults: withLink},
			"Hello world\n\nRead this!\n\nhttps://blog.example/hello", "https://blog.example/hello"},
		{"without the link", Input{Post: post(), Defaults: target.Defaults{}},
			"Hello world\n\nA short excerpt.", ""},
		{"{url} without the link is empty", Input{Post: post(), Defaults: target.Defaults{MessageTemplate: "{title} {url}"}},
			"Hello world", ""},
		{"template places everything", Input{Post: post(), CustomMessage: "Hi", Defaults: target.Defaults{IncludeLink: true, Hashtags: []string{"a"}, MessageTemplate: "{hashtags} {message}: {title} → {url}"}},
			"#a Hi: Hello world → https://blog.example/hello", "https://blog.example/hello"},
		{"custom message a template does not place goes first", Input{Post: post(), CustomMessage: "Hi", Defaults: target.Defaults{MessageTemplate: "{title}"}},
			"Hi\n\nHello world", ""},
		{"link and hashtags a template does not place are appended", Input{Post: post(), Defaults: target.Defaults{IncludeLink: true, Hashtags: []string{"x"}, MessageTemplate: "{title}"}},
			"Hello world\n\nhttps://blog.example/hello\n\n#x", "https://blog.example/hello"},
		{"utm parameters", Input{Post: post(), Defaults: target.Defaults{IncludeLink: true, MessageTemplate: "{url}", UTM: target.UTM{Source: "posse", Medium: "social", Campaign: "launch day"}}},
			"https://blog.example/hello?utm_campaign=launch+day&utm_medium=social&utm_source=posse", "https://blog.example/hello?utm_campaign=launch+day&utm_medium=social&utm_source=posse"},
		{"blank parts collapse", Input{Post: Post{URL: "https://blog.example/x"}, Defaults: withLink},
			"https://blog.example/x", "https://blog.example/x"},
		{"a value holding a placeholder is not filled in", Input{Post: Post{Title: "{url} {hashtags}", URL: "https://b.example/"}, Defaults: target.Defaults{Hashtags: []string{"t"}}},
			"{url} {hashtags}\n\n#t", ""},
		{"control characters are dropped", Input{Post: Post{Title: "a\x00b\x07c"}, Defaults: target.Defaults{MessageTemplate: "{title}"}},
			"abc", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Compose(tt.in, bigLimit)
			if got.Text != tt.wantText || got.Link != tt.wantLink {
				t.Errorf("Compose: got text %q link %q, want %q and %q", got.Text, got.Link, tt.wantText, tt.wantLink)
			}
		})
	}
}

func TestComposeFitsWithoutCuttingTheLink(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 200)
	link := "https://blog.example/a/very/long/path/that/would/be/cut/if/the/fitter/did/not/protect/it?x=1"
	tests := []struct {
		name string
		lim  text.Limit
		in   Input
	}{
		{"x: prose before the link", xLimit, Input{Post: Post{Title: "Title", Excerpt: long, URL: link}, Defaults: target.Defaults{IncludeLink: true, Hashtags: []string{"one", "two"}}}},
		{"bluesky graphemes", blueskyLimit, Input{Post: Post{Title: strings.Repeat("日本語 ", 200), URL: link}, Defaults: target.Defaults{IncludeLink: true}}},
		{"bluesky bytes", text.Limit{Rule: platform.CountGraphemes, Max: 300, MaxBytes: 200}, Input{Post: Post{Title: strings.Repeat("😀 ", 150), URL: link}, Defaults: target.Defaults{IncludeLink: true}}},
		{"mastodon", text.Limit{Rule: platform.CountMastodon, Max: 500}, Input{Post: Post{Excerpt: long, URL: link}, Defaults: target.Defaults{IncludeLink: true}}},
		{"link first, text after it is cut", xLimit, Input{Post: Post{Title: long, URL: link}, Defaults: target.Defaults{IncludeLink: true, MessageTemplate: "{url}\n{title}"}}},
		{"threads", text.Limit{Rule: platform.CountThreads, Max: 500}, Input{Post: Post{Excerpt: strings.Repeat("🇩🇪 flag ", 200), URL: link}, Defaults: target.Defaults{IncludeLink: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Compose(tt.in, tt.lim)
			if !tt.lim.Fits(got.Text) {
				t.Errorf("text does not fit: count %d bytes %d, limit %+v", tt.lim.Count(got.Text), len(got.Text), tt.lim)
			}
			if !strings.Contains(got.Text, link) {
				t.Errorf("the link was cut: %q", got.Text)
			}
			if !strings.Contains(got.Text, text.Ellipsis) {
				t.Errorf("the shortened text has no ellipsis: %q", got.Text)
			}
			if again := Compose(tt.in, tt.lim); again != got {
				t.Errorf("not deterministic: %q then %q", got.Text, again.Text)
			}
		})
	}
}

func TestComposeKeepsHashtagsAfterTheLink(t *testing.T) {
	t.Parallel()
	in := Input{Post: Post{Title: strings.Repeat("lorem ipsum ", 50), URL: "https://blog.example/p"}, Defaults: target.Defaults{IncludeLink: true, Hashtags: []string{"go"}}}
	got := Compose(in, xLimit)
	if !strings.HasSuffix(got.Text, "https://blog.example/p\n\n#go") || !xLimit.Fits(got.Text) {
		t.Errorf("got %q, want the prose cut and the link and hashtags kept", got.Text)
	}
}

func TestComposeLinkAloneOverTheLimit(t *testing.T) {
	t.Parallel()
	lim := text.Limit{Rule: platform.CountGraphemes, Max: 20}
	in := Input{Post: Post{Title: "Title", URL: "https://blog.example/a-path-longer-than-twenty"}, Defaults: target.Defaults{IncludeLink: true}}
	got := Compose(in, lim)
	if got.Text != in.Post.URL {
		t.Errorf("got %q, want the link alone (the adapter's Validate rejects it)", got.Text)
	}
}

func FuzzCompose(f *testing.F) {
	f.Add("Title", "Excerpt", "custom", "{title} {url}", 50)
	f.Add(strings.Repeat("ab ", 100), "", "", "", 30)
	f.Fuzz(func(t *testing.T, title, excerpt, custom, tpl string, max int) {
		if max < 1 || max > 1000 {
			return
		}
		link := "https://b.example/p"
		for _, rule := range []platform.CountRule{platform.CountXWeighted, platform.CountGraphemes, platform.CountMastodon, platform.CountThreads, platform.CountUTF16} {
			lim := text.Limit{Rule: rule, Max: max + 40}
			got := Compose(Input{Post: Post{Title: title, Excerpt: excerpt, URL: link}, CustomMessage: custom,
				Defaults: target.Defaults{IncludeLink: true, MessageTemplate: tpl}}, lim)
			if !strings.Contains(got.Text, link) {
				t.Fatalf("%s: the link is missing from %q", rule, got.Text)
			}
			if !lim.Fits(got.Text) && got.Text != link {
				t.Fatalf("%s: %q does not fit %d", rule, got.Text, lim.Max)
			}
		}
	})
}
