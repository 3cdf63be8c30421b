package text

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rivo/uniseg"

	"github.com/posse-dev/posse/shared/platform"
)

// Tricky strings, spelled out so the test does not depend on how an editor
// stores them.
const (
	family     = "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466" // 👨‍👩‍👧‍👦, 25 bytes
	flagDE     = "\U0001F1E9\U0001F1EA"                                       // 🇩🇪
	flagEngl   = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"
	keycap1    = "1\uFE0F\u20E3"                    // 1️⃣
	keycapBare = "#\u20E3"                          // #⃣ without VS16
	thumbsTone = "\U0001F44D\U0001F3FD"             // 👍🏽
	grinning   = "\U0001F600"                       // 😀
	heartEmoji = "\u2764\uFE0F"                     // ❤️ (emoji presentation)
	heartText  = "\u2764\uFE0E"                     // ❤︎ (text presentation)
	rainbowFlg = "\U0001F3F3\uFE0F\u200D\U0001F308" // 🏳️‍🌈
	cjk        = "日本語"
	eNFC       = "\u00E9"             // é
	eNFD       = "e\u0301"            // e + combining acute
	hangulNFD  = "\u1112\u1161\u11AB" // 한 decomposed into jamo
	shinDagesh = "\uFB2C"             // NFC expands it to 3 code points
	astralCJK  = "\U00020000"         // 𠀀, outside the BMP
	longURL    = "https://example.com/articles/2026/11/a-very-long-slug-that-goes-on-and-on-and-on?utm_source=posse&utm_medium=social"
)

func TestCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule platform.CountRule
		name string
		in   string
		want int
	}{
		{platform.CountXWeighted, "empty", "", 0},
		{platform.CountXWeighted, "ascii", "hello", 5},
		{platform.CountXWeighted, "zwj family", family, 2},
		{platform.CountXWeighted, "flag", flagDE, 2},
		{platform.CountXWeighted, "two flags", flagDE + flagDE, 4},
		{platform.CountXWeighted, "subdivision flag", flagEngl, 2},
		{platform.CountXWeighted, "keycap", keycap1, 2},
		{platform.CountXWeighted, "keycap without VS16", keycapBare, 2},
		{platform.CountXWeighted, "skin tone", thumbsTone, 2},
		{platform.CountXWeighted, "single emoji", grinning, 2},
		{platform.CountXWeighted, "emoji presentation", heartEmoji, 2},
		{platform.CountXWeighted, "text presentation is two code points", heartText, 4},
		{platform.CountXWeighted, "zwj with VS16", rainbowFlg, 2},
		{platform.CountXWeighted, "copyright without VS16 is text", "\u00A9", 1},
		{platform.CountXWeighted, "copyright with VS16 is emoji", "\u00A9\uFE0F", 2},
		{platform.CountXWeighted, "cjk", cjk, 6},
		{platform.CountXWeighted, "astral cjk", astralCJK, 2},
		{platform.CountXWeighted, "nfc e acute", eNFC, 1},
		{platform.CountXWeighted, "nfd e acute normalizes to one", eNFD, 1},
		{platform.CountXWeighted, "nfd hangul composes", hangulNFD, 2},
		{platform.CountXWeighted, "nfc expands presentation form", "A" + shinDagesh, 4},
		{platform.CountXWeighted, "weight-1 punctuation ranges", "\u2000\u200D\u2010\u201F\u2032\u2037", 6},
		{platform.CountXWeighted, "weight-2 neighbours", "\u200E\u2020\u2038", 6},
		{platform.CountXWeighted, "ellipsis weighs 2", Ellipsis, 2},
		{platform.CountXWeighted, "emoji mix", "Emoji 10: \U0001F92A; \U0001F9D5; \U0001F9D5\U0001F3FE; " + flagEngl, 24},
		{platform.CountXWeighted, "short url", "Hi http://test.co", 26},
		{platform.CountXWeighted, "long url", longURL, 23},
		{platform.CountXWeighted, "url in text", "Read " + longURL + " now", 5 + 23 + 4},
		{platform.CountXWeighted, "two urls", "https://a.example.com https://b.example.com/x", 23 + 1 + 23},
		{platform.CountXWeighted, "upper-case scheme", "HTTPS://EXAMPLE.COM/INDEX.HTML", 23},
		{platform.CountXWeighted, "url trailing period", "see https://example.com/a.", 4 + 23 + 1},
		{platform.CountXWeighted, "url balanced parens", "https://en.wikipedia.org/wiki/Go_(language)", 23},
		{platform.CountXWeighted, "url unbalanced paren", "(https://example.com/x)", 1 + 23 + 1},
		{platform.CountXWeighted, "bare gTLD domain", "posse.dev", 23},
		{platform.CountXWeighted, "bare domain with path", "example.com/path/to/resource?search=foo&lang=en", 23},
		{platform.CountXWeighted, "bare ccTLD without path is text", "foo.de", 6},
		{platform.CountXWeighted, "bare ccTLD with path", "foo.de/x", 23},
		{platform.CountXWeighted, "bare ccTLD with subdomain", "www.foo.de", 23},
		{platform.CountXWeighted, "bare .co is a url", "t.co", 23},
		{platform.CountXWeighted, "bare co.uk", "bbc.co.uk", 23},
		{platform.CountXWeighted, "bare unknown gTLD is text", "foo.notatld", 11},
		{platform.CountXWeighted, "email is not a url", "me@example.com", 14},
		{platform.CountXWeighted, "64-char label is not a domain", strings.Repeat("a", 64) + ".com", 68},
		{platform.CountXWeighted, "63-char label is a domain", strings.Repeat("a", 63) + ".com", 23},
		{platform.CountXWeighted, "localhost is not a url", "http://localhost/x", 18},
		{platform.CountXWeighted, "idn domain", "http://\u2603.net/", 23},
		{platform.CountXWeighted, "url runs into japanese", "http://example.comをご覧", 23 + 6},
		{platform.CountXWeighted, "url path ends at japanese", "詳細はhttp://example.com/をご覧", 6 + 23 + 6},
		{platform.CountXWeighted, "idn tld", "http://example.みんな/x", 23},
		{platform.CountXWeighted, "idn label of 63 punycode characters", "http://" + strings.Repeat("あいうえおかきくけこ", 5) + "あい.com", 23},
		{platform.CountXWeighted, "idn label of 64 punycode characters is text", "http://" + strings.Repeat("あいうえおかきくけこ", 5) + "あいう.com", 7 + 53*2 + 4},
		{platform.CountXWeighted, "mixed idn label", "https://bücher.de/x", 23},
		{platform.CountXWeighted, "url ends before accented letters", "http://example.comédie", 23 + 4},
		{platform.CountXWeighted, "file name is not a url", "main.go", 7},
		{platform.CountXWeighted, "280 at the limit", strings.Repeat("a", 280), 280},
		{platform.CountXWeighted, "140 families", strings.Repeat(family, 140), 280},

		{platform.CountGraphemes, "empty", "", 0},
		{platform.CountGraphemes, "ascii", "hello", 5},
		{platform.CountGraphemes, "zwj family", family, 1},
		{platform.CountGraphemes, "flag", flagDE, 1},
		{platform.CountGraphemes, "two flags", flagDE + flagDE, 2},
		{platform.CountGraphemes, "subdivision flag", flagEngl, 1},
		{platform.CountGraphemes, "keycap", keycap1, 1},
		{platform.CountGraphemes, "skin tone", thumbsTone, 1},
		{platform.CountGraphemes, "cjk", cjk, 3},
		{platform.CountGraphemes, "nfc e acute", eNFC, 1},
		{platform.CountGraphemes, "nfd e acute", eNFD, 1},
		{platform.CountGraphemes, "hangul jamo", hangulNFD, 1},
		{platform.CountGraphemes, "crlf", "a\r\nb", 3},
		{platform.CountGraphemes, "url counts its characters", longURL, len(longURL)},

		{platform.CountMastodon, "empty", "", 0},
		{platform.CountMastodon, "ascii", "hello", 5},
		{platform.CountMastodon, "zwj family", family, 1},
		{platform.CountMastodon, "flag", flagDE, 1},
		{platform.CountMastodon, "keycap", keycap1, 1},
		{platform.CountMastodon, "skin tone", thumbsTone, 1},
		{platform.CountMastodon, "cjk", cjk, 3},
		{platform.CountMastodon, "nfd e acute", eNFD, 1},
		{platform.CountMastodon, "long url", longURL, 23},
		{platform.CountMastodon, "short url", "see https://a.co", 4 + 23},
		{platform.CountMastodon, "bare domain is text", "example.com", 11},
		{platform.CountMastodon, "local mention", "hi @alice", 9},
		{platform.CountMastodon, "remote mention domain is free", "hi @alice@example.social", 9},
		{platform.CountMastodon, "remote mention then dot", "cc @alice@example.social.", 10},
		{platform.CountMastodon, "email is not a mention", "bob@example.com", 15},
		{platform.CountMastodon, "mention inside url", "https://example.social/@alice@other.social", 23},
		{platform.CountMastodon, "url and mention", "@bob@mastodon.social read " + longURL, 4 + 6 + 23},

		{platform.CountThreads, "empty", "", 0},
		{platform.CountThreads, "ascii", "hello", 5},
		{platform.CountThreads, "single emoji is 4 bytes", grinning, 4},
		{platform.CountThreads, "zwj family is 25 bytes", family, 25},
		{platform.CountThreads, "flag is 8 bytes", flagDE, 8},
		{platform.CountThreads, "keycap is 7 bytes", keycap1, 7},
		{platform.CountThreads, "skin tone is 8 bytes", thumbsTone, 8},
		{platform.CountThreads, "emoji presentation is 6 bytes", heartEmoji, 6},
		{platform.CountThreads, "cjk is code points", cjk, 3},
		{platform.CountThreads, "nfd is code points", eNFD, 2},
		{platform.CountThreads, "nfc", eNFC, 1},
		{platform.CountThreads, "digit alone is not emoji", "1", 1},
		{platform.CountThreads, "lone pictographic counts its bytes", "\u00A9\u2122", 2 + 3},
		{platform.CountThreads, "url counts its characters", longURL, len(longURL)},
		{platform.CountThreads, "text and emoji", "hi " + grinning, 3 + 4},

		{platform.CountUTF16, "empty", "", 0},
		{platform.CountUTF16, "ascii", "hello", 5},
		{platform.CountUTF16, "single emoji is a surrogate pair", grinning, 2},
		{platform.CountUTF16, "zwj family", family, 11},
		{platform.CountUTF16, "flag", flagDE, 4},
		{platform.CountUTF16, "keycap", keycap1, 3},
		{platform.CountUTF16, "skin tone", thumbsTone, 4},
		{platform.CountUTF16, "cjk", cjk, 3},
		{platform.CountUTF16, "astral cjk", astralCJK, 2},
		{platform.CountUTF16, "nfd", eNFD, 2},
		{platform.CountUTF16, "url counts its characters", longURL, len(longURL)},

		{platform.CountRule("unknown"), "unknown rule counts bytes", cjk, 9},
	}
	for _, tt := range tests {
		t.Run(string(tt.rule)+"/"+tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Count(tt.rule, tt.in); got != tt.want {
				t.Errorf("Count(%s, %q) = %d, want %d", tt.rule, tt.in, got, tt.want)
			}
		})
	}
}

func TestPunycodeLen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
	}{
		{"bücher", len("bcher-kva")},
		{"München", len("mnchen-3ya")},
		{"\u2603", len("n3h")},
		{"みんな", len("q9jyb4c")},
		{strings.Repeat("あいうえおかきくけこ", 5) + "あい", 59},
		{strings.Repeat("あいうえおかきくけこ", 5) + "あいう", 60},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := punycodeLen(tt.in); got != tt.want {
				t.Errorf("punycodeLen(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestFitsAtTheLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		limit     Limit
		atLimit   string
		overByOne string
	}{
		{"x ascii", Limit{Rule: platform.CountXWeighted, Max: 280}, strings.Repeat("a", 280), strings.Repeat("a", 281)},
		{"x cjk", Limit{Rule: platform.CountXWeighted, Max: 280}, strings.Repeat("語", 140), strings.Repeat("語", 140) + "a"},
		{"x emoji", Limit{Rule: platform.CountXWeighted, Max: 280}, strings.Repeat(family, 140), strings.Repeat(family, 140) + "a"},
		{"x url", Limit{Rule: platform.CountXWeighted, Max: 280}, strings.Repeat("a", 256) + " " + longURL, strings.Repeat("a", 257) + " " + longURL},
		{"x nfd", Limit{Rule: platform.CountXWeighted, Max: 280}, strings.Repeat(eNFD, 280), strings.Repeat(eNFD, 281)},
		{"bluesky graphemes", Limit{Rule: platform.CountGraphemes, Max: 300, MaxBytes: 3000}, strings.Repeat(flagDE, 300), strings.Repeat(flagDE, 301)},
		{"bluesky bytes", Limit{Rule: platform.CountGraphemes, Max: 300, MaxBytes: 3000}, strings.Repeat(family, 120), strings.Repeat(family, 120) + "a"},
		{"mastodon", Limit{Rule: platform.CountMastodon, Max: 500}, strings.Repeat("a", 473) + " @a@example.social " + longURL, strings.Repeat("a", 474) + " @a@example.social " + longURL},
		{"threads", Limit{Rule: platform.CountThreads, Max: 500}, strings.Repeat("a", 475) + family, strings.Repeat("a", 476) + family},
		{"utf16", Limit{Rule: platform.CountUTF16, Max: 2200}, strings.Repeat(grinning, 1100), strings.Repeat(grinning, 1100) + "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.limit.Fits(tt.atLimit); !got {
				t.Errorf("Fits(at limit, count %d) = false, want true", tt.limit.Count(tt.atLimit))
			}
			if got := tt.limit.Fits(tt.overByOne); got {
				t.Errorf("Fits(one over, count %d) = true, want false", tt.limit.Count(tt.overByOne))
			}
		})
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	x := Limit{Rule: platform.CountXWeighted, Max: 280}
	words := strings.Repeat("lorem ipsum dolor sit amet, ", 20) // 560 characters
	tests := []struct {
		name  string
		limit Limit
		in    string
		want  string // "" means: only check the invariants
	}{
		{"fits unchanged", x, "hello world", "hello world"},
		{"fits unchanged with url", x, "hi " + longURL, "hi " + longURL},
		{"word boundary", Limit{Rule: platform.CountUTF16, Max: 16}, "hello brave new world", "hello brave new…"},
		{"trims punctuation", Limit{Rule: platform.CountUTF16, Max: 14}, "Hello, world, this is long", "Hello, world…"},
		{"ellipsis counts 2 on x", Limit{Rule: platform.CountXWeighted, Max: 7}, "hello world again", "hello…"},
		{"drops a url that does not fit", Limit{Rule: platform.CountUTF16, Max: 30}, "Read this: " + longURL + " today", "Read this…"},
		{"keeps a url that fits", Limit{Rule: platform.CountXWeighted, Max: 50}, "Read this: " + longURL + " today and tomorrow and later", "Read this: " + longURL + " today and…"},
		{"grapheme not split", Limit{Rule: platform.CountGraphemes, Max: 2}, family + family + family, family + Ellipsis},
		{"family does not fit with ellipsis", Limit{Rule: platform.CountUTF16, Max: 11}, family + family, Ellipsis},
		{"surrogate pair not split", Limit{Rule: platform.CountUTF16, Max: 4}, grinning + grinning + grinning, grinning + Ellipsis},
		{"cjk without spaces", Limit{Rule: platform.CountXWeighted, Max: 10}, "日本語の文章はとても長いです", "日本語の…"},
		{"mention not split", Limit{Rule: platform.CountUTF16, Max: 20}, "Hi @someone_with_a_long_name and more", "Hi…"},
		{"hashtag not split", Limit{Rule: platform.CountGraphemes, Max: 20}, "Hi #averyveryverylonghashtag", "Hi…"},
		{"long word cut mid-word", Limit{Rule: platform.CountUTF16, Max: 12}, "a " + strings.Repeat("x", 40), "a " + strings.Repeat("x", 9) + Ellipsis},
		{"too small for ellipsis on x", Limit{Rule: platform.CountXWeighted, Max: 1}, "hello", ""},
		{"too small for ellipsis bytes", Limit{Rule: platform.CountGraphemes, Max: 300, MaxBytes: 2}, "hello", ""},
		{"only ellipsis fits", Limit{Rule: platform.CountUTF16, Max: 1}, "hello", Ellipsis},
		{"byte cap", Limit{Rule: platform.CountGraphemes, Max: 300, MaxBytes: 3000}, strings.Repeat(family+" ", 200), ""},
		{"x long text", x, words, ""},
		{"mastodon", Limit{Rule: platform.CountMastodon, Max: 50}, "@alice@example.social " + longURL + " " + words, ""},
		{"threads emoji", Limit{Rule: platform.CountThreads, Max: 30}, strings.Repeat(family+" ", 5), family + Ellipsis},
		{"nfd on x", Limit{Rule: platform.CountXWeighted, Max: 5}, strings.Repeat(eNFD, 10), eNFD + eNFD + eNFD + Ellipsis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.limit.Fit(tt.in)
			if tt.want != "" && got != tt.want {
				t.Errorf("Fit(%q) = %q, want %q", tt.in, got, tt.want)
			}
			checkFit(t, tt.limit, tt.in, got)
		})
	}
}

// checkFit asserts what holds for every result of Fit.
func checkFit(t *testing.T, l Limit, in, got string) {
	t.Helper()
	if l.Fits(in) {
		if got != in {
			t.Errorf("Fit(%q) = %q, want the input unchanged as it fits", in, got)
		}
		return
	}
	if got == "" {
		if l.Fits(Ellipsis) {
			t.Errorf("Fit(%q) = \"\", want a shortened text as %q fits", in, Ellipsis)
		}
		return
	}
	if !l.Fits(got) {
		t.Errorf("Fit(%q) = %q (count %d, %d bytes), want it to fit %+v", in, got, l.Count(got), len(got), l)
	}
	if !utf8.ValidString(got) {
		t.Errorf("Fit(%q) = %q, want valid UTF-8", in, got)
	}
	if !strings.HasSuffix(got, Ellipsis) {
		t.Errorf("Fit(%q) = %q, want it to end with %q", in, got, Ellipsis)
	}
	clean := strings.ToValidUTF8(in, "\uFFFD")
	kept := strings.TrimSuffix(got, Ellipsis)
	if !strings.HasPrefix(clean, kept) {
		t.Errorf("Fit(%q) = %q, want a prefix of the input", in, got)
		return
	}
	cut := len(kept)
	for _, u := range findURLs(clean, l.Rule == platform.CountXWeighted) {
		if u.start < cut && cut < u.end {
			t.Errorf("Fit(%q) = %q splits the URL %q", in, got, clean[u.start:u.end])
		}
	}
	for _, u := range findTags(clean) {
		if u.start < cut && cut < u.end {
			t.Errorf("Fit(%q) = %q splits the mention or hashtag %q", in, got, clean[u.start:u.end])
		}
	}
	if !isClusterBoundary(clean, cut) {
		t.Errorf("Fit(%q) = %q splits a grapheme cluster", in, got)
	}
	if again := l.Fit(in); again != got {
		t.Errorf("Fit(%q) = %q then %q, want the same twice", in, got, again)
	}
}

// isClusterBoundary reports whether byte offset i of s is a grapheme cluster
// boundary.
func isClusterBoundary(s string, i int) bool {
	off := 0
	state := -1
	for rest := s; off < i && rest != ""; {
		var c string
		c, rest, _, state = uniseg.FirstGraphemeClusterInString(rest, state)
		off += len(c)
	}
	return off == i
}

// fuzzLimits are the limits FuzzFit tries every input against: every rule,
// tiny limits (1 and 2 hold at most an ellipsis, 23 and 24 exactly a URL
// and a URL plus one) and real ones.
var fuzzLimits = func() []Limit {
	rules := []platform.CountRule{
		platform.CountXWeighted, platform.CountGraphemes, platform.CountMastodon,
		platform.CountThreads, platform.CountUTF16,
	}
	var ls []Limit
	for _, r := range rules {
		for _, max := range []int{0, 1, 2, 3, 23, 24, 50, 280} {
			ls = append(ls, Limit{Rule: r, Max: max})
		}
		ls = append(ls, Limit{Rule: r, Max: 300, MaxBytes: 3}, Limit{Rule: r, Max: 300, MaxBytes: 40})
	}
	return ls
}()

func FuzzFit(f *testing.F) {
	for _, s := range []string{
		"", "hello world", "a", Ellipsis, family, flagDE + flagDE + flagDE, keycap1 + keycap1, thumbsTone,
		cjk + cjk + cjk, eNFD + eNFD + eNFD, hangulNFD, shinDagesh + shinDagesh, heartText,
		"Read this: " + longURL + " today, then " + longURL,
		"see example.com/path and foo.de and www.foo.de, ok?",
		"@alice@example.social says hi to @bob@mastodon.social! https://x.example.com/@c@d",
		"Hello, world, this is long. Really long; very long — indeed…",
		strings.Repeat("word ", 100),
		"\xff\xfe invalid \xc3 utf-8 \xe2\x80",
		"e\u0301\u0323\u0302 \u1100\u1161\u11a8 \u0958\u0959",
		"   \t\n  ",
		"(https://en.wikipedia.org/wiki/Go_(language)) ...",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range fuzzLimits {
			got := l.Fit(s)
			if got != s && got != "" && !strings.HasSuffix(got, Ellipsis) {
				t.Fatalf("%+v: Fit(%q) = %q, want the input, \"\" or a text ending with %q", l, s, got, Ellipsis)
			}
			if got != s && !utf8.ValidString(got) {
				t.Fatalf("%+v: Fit(%q) = %q, want valid UTF-8", l, s, got)
			}
			if !l.Fits(got) && l.Max >= 0 {
				t.Fatalf("%+v: Fit(%q) = %q (count %d, %d bytes), want it to fit", l, s, got, l.Count(got), len(got))
			}
			checkFit(t, l, s, got)
		}
	})
}
