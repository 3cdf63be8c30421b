package text

import (
	"strings"
	"unicode"
)

// URLs returns the URLs in s, in order, as X finds them: URLs with an
// http(s) scheme and bare domains such as example.com/path (see the rules
// at the top of url.go). It is the strictest detection the package has, so
// a text without URLs here carries no link on any platform.
func URLs(s string) []string {
	return spanStrings(s, findURLs(s, true))
}

// SchemeURLs returns only the http(s) URLs in s, in order: what Mastodon
// and Fit's URL protection treat as URLs.
func SchemeURLs(s string) []string {
	return spanStrings(s, findURLs(s, false))
}

// Mentions returns the @mentions in s, in order, as written: @user,
// @user@domain (Mastodon) or @handle.example.social (Bluesky). An e-mail
// address (a @ after a word character) and an @ inside a URL are not
// mentions.
func Mentions(s string) []string {
	return tagStrings(s, func(r rune) bool { return r == '@' || r == '＠' })
}

// Hashtags returns the #hashtags in s, in order, as written. A tag of
// digits only (#1) is not a hashtag, nor is a # inside a URL (a fragment).
func Hashtags(s string) []string {
	var out []string
	for _, h := range tagStrings(s, func(r rune) bool { return r == '#' || r == '＃' }) {
		if strings.IndexFunc(h, unicode.IsLetter) >= 0 {
			out = append(out, h)
		}
	}
	return out
}

// tagStrings returns the tags of findTags whose sigil satisfies sigil and
// that do not overlap a URL.
func tagStrings(s string, sigil func(rune) bool) []string {
	urls := findURLs(s, true)
	var out []string
	for _, t := range findTags(s) {
		r := []rune(s[t.start:t.end])
		if len(r) == 0 || !sigil(r[0]) || overlaps(urls, t.start, t.end) {
			continue
		}
		out = append(out, s[t.start:t.end])
	}
	return out
}

func spanStrings(s string, spans []span) []string {
	if len(spans) == 0 {
		return nil
	}
	out := make([]string, len(spans))
	for i, sp := range spans {
		out[i] = s[sp.start:sp.end]
	}
	return out
}
