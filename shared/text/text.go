// Package text counts text the way each platform counts it and fits text to
// a platform's limit.
//
// Count implements the platform.CountRule rules: X's weighted count
// (twitter-text v3), extended grapheme clusters (Bluesky), Mastodon's count,
// Threads' count and UTF-16 code units. A Limit pairs a rule with a maximum
// count and an optional byte cap; Limit.Fit shortens text to fit it at a
// word boundary, with an ellipsis, without ever splitting a URL, a grapheme
// cluster or a UTF-8 sequence.
package text

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rivo/uniseg"

	"github.com/posse-dev/posse/shared/platform"
)

// Ellipsis is what Fit appends to shortened text: U+2026, counted under the
// limit's rule like any other character (2 on X, 1 elsewhere).
const Ellipsis = "…"

// urlLength is what a URL counts on X and Mastodon, whatever its length
// (twitter-text's transformedURLLength, Mastodon's characters_reserved_per_url).
const urlLength = 23

// Limit is a platform's text limit: the counting rule, the maximum count and
// an optional byte cap.
type Limit struct {
	Rule     platform.CountRule
	Max      int // the largest count allowed
	MaxBytes int // the largest UTF-8 length allowed; 0 means no byte cap
}

// Count returns the platform's count of s: Count(l.Rule, s).
func (l Limit) Count(s string) int { return Count(l.Rule, s) }

// Fits reports whether s is within the limit: Count(s) <= Max and, when
// MaxBytes is set, len(s) <= MaxBytes.
func (l Limit) Fits(s string) bool {
	if l.MaxBytes > 0 && len(s) > l.MaxBytes {
		return false
	}
	return l.Count(s) <= l.Max
}

// Count returns the count of s under rule:
//
//   - platform.CountXWeighted: twitter-text v3. s is NFC-normalized; every URL
//     counts 23; every emoji sequence of two or more code points (ZWJ
//     sequences, flags, keycaps, skin tones, VS16 presentation) counts 2;
//     any other code point counts 1 in U+0000–U+10FF, U+2000–U+200D,
//     U+2010–U+201F and U+2032–U+2037, and 2 otherwise.
//   - platform.CountGraphemes: extended grapheme clusters.
//   - platform.CountMastodon: grapheme clusters, with every http(s) URL
//     counted as 23 and remote mentions @user@domain counted as @user.
//   - platform.CountThreads: code points, except that an emoji sequence
//     counts its UTF-8 length in bytes (4 for 😀, 8 for 🇩🇪, 25 for 👨‍👩‍👧‍👦).
//     A lone Extended_Pictographic character such as © or ™ counts as an
//     emoji too (2 and 3), the safe side where Meta does not say.
//     URLs count their code points.
//   - platform.CountUTF16: UTF-16 code units.
//
// An unknown rule counts UTF-8 bytes. Invalid UTF-8 counts as U+FFFD.
func Count(rule platform.CountRule, s string) int {
	switch rule {
	case platform.CountXWeighted:
		return countX(s)
	case platform.CountGraphemes:
		return uniseg.GraphemeClusterCount(s)
	case platform.CountMastodon:
		return countMastodon(s)
	case platform.CountThreads:
		return countThreads(s)
	case platform.CountUTF16:
		return utf16Len(s)
	default:
		return len(s)
	}
}

// countX is twitter-text v3's weighted length.
func countX(s string) int {
	s = nfc(s)
	urls := findURLs(s, true)
	n := 0
	for i := 0; i < len(s); {
		for len(urls) > 0 && urls[0].start < i {
			urls = urls[1:] // cannot happen; keeps the loop safe
		}
		if len(urls) > 0 && urls[0].start == i {
			n += urlLength
			i = urls[0].end
			urls = urls[1:]
			continue
		}
		if w, runes := emojiAt(s[i:]); runes > 1 && (len(urls) == 0 || i+w <= urls[0].start) {
			n += 2
			i += w
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		n += xWeight(r)
		i += w
	}
	return n
}

// xWeight is the weight of one code point in twitter-text v3's config,
// divided by its scale of 100.
func xWeight(r rune) int {
	switch {
	case r <= 0x10FF, r >= 0x2000 && r <= 0x200D, r >= 0x2010 && r <= 0x201F, r >= 0x2032 && r <= 0x2037:
		return 1
	}
	return 2
}

// countThreads counts code points, and emoji by their UTF-8 length.
func countThreads(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if w, _ := emojiAt(s[i:]); w > 0 {
			n += w
			i += w
			continue
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		n++
		i += w
	}
	return n
}

// countMastodon counts graphemes of s as Mastodon's StatusLengthValidator
// does: each http(s) URL is replaced by 23 characters and each mention
// @user@domain by @user first.
func countMastodon(s string) int {
	urls := findURLs(s, false)
	mentions := findRemoteMentionDomains(s, urls)
	if len(urls) == 0 && len(mentions) == 0 {
		return uniseg.GraphemeClusterCount(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for len(urls) > 0 || len(mentions) > 0 {
		if len(mentions) == 0 || len(urls) > 0 && urls[0].start < mentions[0].start {
			b.WriteString(s[last:urls[0].start])
			b.WriteString(strings.Repeat("x", urlLength))
			last = urls[0].end
			urls = urls[1:]
			continue
		}
		b.WriteString(s[last:mentions[0].start])
		last = mentions[0].end
		mentions = mentions[1:]
	}
	b.WriteString(s[last:])
	return uniseg.GraphemeClusterCount(b.String())
}

// utf16Len is the length of s in UTF-16 code units.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// Fit returns s if it fits. Otherwise it returns the longest prefix of s
// that fits with Ellipsis appended, cut at the last word boundary (white
// space) before the limit, and with trailing white space and punctuation
// removed before the ellipsis. The cut never falls inside a URL (a URL that
// does not fit is dropped whole), an @mention or #hashtag (cutting one would
// name another account or tag), a grapheme cluster or a UTF-8 sequence.
// If the last word boundary would lose more than half the text that fits
// (one long word, or text without spaces such as Chinese), the cut falls at
// the last grapheme cluster that fits instead. Invalid UTF-8 in shortened
// text becomes U+FFFD. If not even Ellipsis fits, Fit returns "".
func (l Limit) Fit(s string) string {
	if l.Fits(s) {
		return s
	}
	if !l.Fits(Ellipsis) {
		return ""
	}
	f := newFitter(l, strings.ToValidUTF8(s, "\uFFFD"))
	return f.fit()
}

// fitter holds what Fit computes once per text.
type fitter struct {
	l      Limit
	s      string
	bounds []int  // byte offsets of the grapheme cluster boundaries, 0 and len(s) included
	space  []bool // space[k]: cluster k (bounds[k]:bounds[k+1]) is white space
	inURL  []bool // inURL[i]: byte i is part of a URL, which trimming keeps
	noCut  []bool // noCut[i]: a cut at byte i would split a URL, mention or hashtag
}

func newFitter(l Limit, s string) *fitter {
	f := &fitter{l: l, s: s, inURL: make([]bool, len(s)), noCut: make([]bool, len(s)+1)}
	urls := findURLs(s, l.Rule == platform.CountXWeighted)
	for _, u := range urls {
		for i := u.start; i < u.end; i++ {
			f.inURL[i] = true
		}
	}
	for _, u := range append(findTags(s), urls...) {
		for i := u.start + 1; i < u.end; i++ {
			f.noCut[i] = true
		}
	}
	f.bounds = append(f.bounds, 0)
	state := -1
	for rest, off := s, 0; rest != ""; {
		var c string
		c, rest, _, state = uniseg.FirstGraphemeClusterInString(rest, state)
		off += len(c)
		f.bounds = append(f.bounds, off)
		f.space = append(f.space, strings.TrimSpace(c) == "")
	}
	return f
}

// fit shortens f.s; f.l.Fits(Ellipsis) must hold.
func (f *fitter) fit() string {
	// Cuts at cluster boundaries outside URLs, mentions and hashtags,
	// ascending; 0 is always one.
	var cuts []int
	for k := range f.bounds {
		if !f.noCut[f.bounds[k]] {
			cuts = append(cuts, k)
		}
	}
	// The longest cut that fits. Counts grow with the text almost always,
	// so a binary search finds it; every answer is checked with Fits, and
	// cut 0 ("…") fits, so the result fits even where they do not.
	lo, hi := 0, len(cuts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if f.l.Fits(f.candidate(cuts[mid])) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	best := cuts[lo]
	// Prefer the last word boundary, unless it loses more than half.
	for i := lo; i >= 0; i-- {
		k := cuts[i]
		if !f.wordBoundary(k) {
			continue
		}
		if 2*k >= best && k != best {
			if c := f.candidate(k); f.l.Fits(c) {
				return c
			}
		}
		break
	}
	return f.candidate(best)
}

// candidate is the text cut before cluster k, trimmed, with Ellipsis.
func (f *fitter) candidate(k int) string {
	for k > 0 && f.trimmable(k-1) {
		k--
	}
	return f.s[:f.bounds[k]] + Ellipsis
}

// trimmable reports whether cluster k may be dropped before the ellipsis:
// white space, or a single dash, opening bracket or quote, or separating
// punctuation, outside a URL.
func (f *fitter) trimmable(k int) bool {
	for i := f.bounds[k]; i < f.bounds[k+1]; i++ {
		if f.inURL[i] {
			return false
		}
	}
	if f.space[k] {
		return true
	}
	c := f.s[f.bounds[k]:f.bounds[k+1]]
	r, w := utf8.DecodeRuneInString(c)
	if w != len(c) {
		return false
	}
	return unicode.In(r, unicode.Pd, unicode.Ps, unicode.Pi) || strings.ContainsRune(",;:.!?…、。，；：·", r)
}

// wordBoundary reports whether cutting before cluster k cuts between words.
func (f *fitter) wordBoundary(k int) bool {
	return k == 0 || k == len(f.space) || f.space[k] || f.space[k-1]
}

// tagRe matches an @mention (@user, @user@domain, @handle.bsky.social) or a
// #hashtag.
var tagRe = regexp.MustCompile(`[@＠#＃][\pL\pM\pN_]+(?:[.\-@][\pL\pM\pN_]+)*`)

// findTags returns the mentions and hashtags in s that do not follow a word
// character.
func findTags(s string) []span {
	var out []span
	for _, m := range tagRe.FindAllStringIndex(s, -1) {
		if m[0] > 0 {
			if r, _ := utf8.DecodeLastRuneInString(s[:m[0]]); isWordRune(r) {
				continue
			}
		}
		out = append(out, span{m[0], m[1]})
	}
	return out
}
