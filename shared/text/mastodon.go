package text

import (
	"regexp"
	"unicode"
	"unicode/utf8"
)

// mentionRe matches a Mastodon mention at the start of a string: @user, then
// an optional @domain (group 1). It follows the facts of Mastodon's
// Account::MENTION_RE: a user name of [a-z0-9_.-] beginning and ending with
// [a-z0-9_], a domain of word characters, dots and dashes ending with a word
// character.
var mentionRe = regexp.MustCompile(`^@(?i:[a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(@[\pL\pM\pN\p{Pc}.-]+[\pL\pM\pN\p{Pc}]+)?`)

// findRemoteMentionDomains returns the @domain parts of the remote mentions
// in s that do not overlap urls, in order. Mastodon counts a mention as
// @user only.
func findRemoteMentionDomains(s string, urls []span) []span {
	var out []span
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		if i > 0 {
			// Not after '=', '/' or a word character (Mastodon's look-behind).
			r, _ := utf8.DecodeLastRuneInString(s[:i])
			if r == '=' || r == '/' || isWordRune(r) {
				continue
			}
		}
		m := mentionRe.FindStringSubmatchIndex(s[i:])
		if m == nil {
			continue
		}
		end := i + m[1]
		// Mastodon ignores a mention followed by '@' or "://".
		if end < len(s) && (s[end] == '@' || hasPrefixFold(s[end:], "://")) {
			i = end - 1
			continue
		}
		if overlaps(urls, i, end) {
			i = end - 1
			continue
		}
		if m[2] >= 0 {
			out = append(out, span{i + m[2], i + m[3]})
		}
		i = end - 1
	}
	return out
}

// isWordRune is Ruby's [[:word:]]: letters, marks, numbers and connector
// punctuation.
func isWordRune(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.Pc)
}

// overlaps reports whether [i, j) overlaps one of spans.
func overlaps(spans []span, i, j int) bool {
	for _, u := range spans {
		if i < u.end && j > u.start {
			return true
		}
	}
	return false
}
