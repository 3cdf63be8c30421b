package text

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// URL detection, shared by the X and Mastodon rules and by Fit, which never
// cuts a URL.
//
// This is a hand-written scanner modelled on the facts of twitter-text's URL
// extraction (which Mastodon also uses), not a port of its regular
// expressions:
//
//   - A URL starts with http:// or https:// (any case), or, for X only, is a
//     bare domain such as example.com/path.
//   - It must not follow an ASCII letter or digit, '@', '$' or '#' (nor, for a
//     bare domain, '-', '_', '.' or '/').
//   - The host is two or more dot-separated labels of letters, digits, marks
//     and symbols, with inner '-' (and '_' in subdomains only). A label is at
//     most 63 characters, measured in punycode for non-ASCII labels. After a
//     scheme, the top-level domain is any run of two or more letters (or an
//     xn-- label); IP addresses and single-label hosts such as localhost are
//     not URLs, as on X. A last label that runs from ASCII into other
//     letters ends with its ASCII part: in "example.comをご覧" the host is
//     example.com.
//   - A bare domain is ASCII and its top-level domain must be known: a
//     two-letter country code (any pair of letters), or one of knownGTLDs (a
//     list of common generic domains, not IANA's full list: foo.photography
//     is not recognised and counts by its characters). As on X, a bare
//     name.cc domain with a country code and no path is not a URL (foo.de is
//     text, foo.de/x and www.foo.de are URLs), except for .co and .tv.
//   - An optional :port, then an optional path or query (starting with '/'
//     or '?') of ASCII URL characters, Latin letters with accents and
//     Cyrillic. Trailing punctuation is not part of the URL, except a ')'
//     that closes a '(' inside it.
//   - A URL longer than 4,096 characters is not a URL.

// span is a byte range [start, end) of a string.
type span struct{ start, end int }

// maxURLLength is the longest text X treats as a URL.
const maxURLLength = 4096

// knownGTLDs are the generic top-level domains a bare domain may end with.
var knownGTLDs = toSet(`com org net edu gov mil int info biz name pro aero coop museum mobi asia tel
	travel jobs cat post app dev page blog shop store online site website tech space xyz club live
	news media social link cloud digital design art studio agency email network systems solutions
	software tools games video photo photos gallery music events today world life love wiki zone
	guru ninja rocks expert academy center company consulting services global group team work works
	business finance capital money bank insurance legal law health care clinic fitness city top vip
	one win fun run fyi lol pub cafe restaurant pizza kitchen food coffee wine beer tours host
	hosting domains marketing press review reviews community foundation charity church ngo school
	college university education courses training institute science engineering energy solar green
	eco earth farm garden house homes property estate build chat codes computer google
	amazon microsoft apple youtube android chrome gmail`)

func toSet(words string) map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// findURLs returns the URLs in s in order. bare also finds URLs without a
// scheme (X's rule).
func findURLs(s string, bare bool) []span {
	if !strings.Contains(s, ".") {
		return nil
	}
	var urls []span
	for i := 0; i < len(s); {
		if s[i] == 'h' || s[i] == 'H' {
			if end := urlWithSchemeAt(s, i); end > i {
				urls = append(urls, span{i, end})
				i = end
				continue
			}
		}
		if bare && isASCIIAlnum(s[i]) && bareStartOK(s, i) {
			if end := bareURLAt(s, i); end > i {
				urls = append(urls, span{i, end})
				i = end
				continue
			}
			// Skip the rest of this run of domain characters: a bare
			// domain cannot start inside it.
			for i < len(s) && (isASCIIAlnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.') {
				i++
			}
			continue
		}
		i++
	}
	return urls
}

// urlWithSchemeAt returns the end of the http(s) URL starting at s[i], or i.
func urlWithSchemeAt(s string, i int) int {
	var n int
	switch {
	case hasPrefixFold(s[i:], "https://"):
		n = len("https://")
	case hasPrefixFold(s[i:], "http://"):
		n = len("http://")
	default:
		return i
	}
	if i > 0 {
		if r, _ := utf8.DecodeLastRuneInString(s[:i]); invalidBeforeURL(r) {
			return i
		}
	}
	hostEnd, _, _ := hostAt(s, i+n, false)
	if hostEnd < 0 {
		return i
	}
	end := restAt(s, hostEnd, true)
	if utf16Len(s[i:end]) > maxURLLength {
		return i
	}
	return end
}

// bareURLAt returns the end of the bare-domain URL starting at s[i], or i.
func bareURLAt(s string, i int) int {
	hostEnd, labels, tld := hostAt(s, i, true)
	if hostEnd < 0 {
		return i
	}
	end := restAt(s, hostEnd, false)
	if end == hostEnd && labels == 2 && len(tld) == 2 && tld != "co" && tld != "tv" {
		return i // name.cc without a path is not a URL on X
	}
	if utf16Len(s[i:end]) > maxURLLength {
		return i
	}
	return end
}

// bareStartOK reports whether a bare domain may start at s[i].
func bareStartOK(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !invalidBeforeURL(r) && !strings.ContainsRune("-_./", r)
}

// invalidBeforeURL reports whether a URL may not directly follow r.
func invalidBeforeURL(r rune) bool {
	return r < utf8.RuneSelf && isASCIIAlnum(byte(r)) || strings.ContainsRune("@$#＠＃", r)
}

// hostAt parses a host name starting at s[i]. It returns the end of the host
// (-1 if there is none), its number of labels and its lower-cased top-level
// domain. ascii restricts labels to ASCII and the top-level domain to the
// known ones (bare domains).
func hostAt(s string, i int, ascii bool) (end, labels int, tld string) {
	type label struct{ start, end int }
	var ls []label
	for j := i; ; {
		k := labelEnd(s, j, ascii)
		if k == j {
			break
		}
		if k+1 < len(s) && s[k] == '.' && labelEnd(s, k+1, ascii) > k+1 {
			ls = append(ls, label{j, k})
			j = k + 1
			continue
		}
		// The last label. One that runs from ASCII into other letters, as
		// in "example.comをご覧", ends with its ASCII part.
		if m := asciiLetterPrefix(s[j:k]); m > 0 {
			k = j + m
		}
		ls = append(ls, label{j, k})
		break
	}
	// Drop trailing labels until the last one is a valid top-level domain
	// (example.com.x is example.com followed by ".x").
	for ; len(ls) >= 2; ls = ls[:len(ls)-1] {
		last := ls[len(ls)-1]
		tld = strings.ToLower(s[last.start:last.end])
		if !validTLD(tld, ascii) {
			continue
		}
		if last.end < len(s) {
			if r, _ := utf8.DecodeRuneInString(s[last.end:]); r == '@' || r == '+' {
				continue // an e-mail address or similar, not a URL
			}
		}
		ok := true
		for n, l := range ls {
			sub := n < len(ls)-2
			if !validLabel(s[l.start:l.end], sub) {
				ok = false
				break
			}
		}
		if ok {
			return last.end, len(ls), tld
		}
	}
	return -1, 0, ""
}

// asciiLetterPrefix returns the length of the run of ASCII letters, digits
// and dashes that starts l, if it is followed by a non-ASCII character;
// otherwise 0.
func asciiLetterPrefix(l string) int {
	for i := 0; i < len(l); i++ {
		if l[i] >= utf8.RuneSelf {
			if i > 0 && isASCIILetter(l[i-1]) {
				return i
			}
			return 0
		}
		if !isASCIIAlnum(l[i]) && l[i] != '-' {
			return 0
		}
	}
	return 0
}

// labelEnd returns the end of the run of host-label characters at s[i].
func labelEnd(s string, i int, ascii bool) int {
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !isLabelRune(r) || ascii && r >= utf8.RuneSelf {
			break
		}
		i += w
	}
	return i
}

// isLabelRune reports whether r may appear in a host label.
func isLabelRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isASCIIAlnum(byte(r)) || r == '-' || r == '_'
	}
	if r == utf8.RuneError || r == '\u2026' {
		return false
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.So)
}

// validLabel applies the per-label rules: no leading or trailing '-' or
// '_', '_' only in subdomains, at most 63 characters (in punycode).
func validLabel(l string, subdomain bool) bool {
	if l == "" || strings.ContainsAny(l[:1], "-_") || strings.ContainsAny(l[len(l)-1:], "-_") {
		return false
	}
	if !subdomain && strings.Contains(l, "_") {
		return false
	}
	for i := 0; i < len(l); i++ {
		if l[i] >= utf8.RuneSelf {
			return len("xn--")+punycodeLen(l) <= 63
		}
	}
	return len(l) <= 63
}

// validTLD reports whether tld (lower case) may end a host.
func validTLD(tld string, bare bool) bool {
	if bare {
		if len(tld) == 2 {
			return isASCIILetter(tld[0]) && isASCIILetter(tld[1])
		}
		return knownGTLDs[tld] || strings.HasPrefix(tld, "xn--") && len(tld) > 4
	}
	if strings.HasPrefix(tld, "xn--") && len(tld) > 4 {
		return true
	}
	n := 0
	for _, r := range tld {
		if !unicode.IsLetter(r) && !unicode.Is(unicode.M, r) {
			return false
		}
		n++
	}
	return n >= 2
}

// restAt returns the end of the optional port, path and query at s[i].
// withPort allows a port (URLs with a scheme).
func restAt(s string, i int, withPort bool) int {
	if withPort && i+1 < len(s) && s[i] == ':' && isASCIIDigit(s[i+1]) {
		j := i + 1
		for j < len(s) && isASCIIDigit(s[j]) {
			j++
		}
		i = j
	}
	if i >= len(s) || s[i] != '/' && s[i] != '?' {
		return i
	}
	start := i
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !isPathRune(r) {
			break
		}
		i += w
	}
	// Trim characters that may not end a URL; a ')' may if it is balanced.
	open, closing := strings.Count(s[start:i], "("), strings.Count(s[start:i], ")")
	for i > start {
		r, w := utf8.DecodeLastRuneInString(s[:i])
		if isPathEndRune(r) || r == ')' && open >= closing {
			break
		}
		switch r {
		case '(':
			open--
		case ')':
			closing--
		}
		i -= w
	}
	return i
}

// isPathRune reports whether r may appear in a URL path or query.
func isPathRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isASCIIAlnum(byte(r)) || strings.ContainsRune("!*';:=+,.$/%#[]-_~|&@?()", r)
	}
	return isAccentedLatin(r) || r >= 0x0400 && r <= 0x04FF
}

// isPathEndRune reports whether r may end a URL path or query.
func isPathEndRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isASCIIAlnum(byte(r)) || strings.ContainsRune("=_#/+-", r)
	}
	return isAccentedLatin(r) || r >= 0x0400 && r <= 0x04FF
}

// isAccentedLatin reports whether r is a Latin letter with an accent or a
// combining accent, as URL paths may contain.
func isAccentedLatin(r rune) bool {
	switch {
	case r >= 0xC0 && r <= 0x24F:
		return r != 0xD7 && r != 0xF7
	case r >= 0x300 && r <= 0x36F, r >= 0x1E00 && r <= 0x1EFF:
		return true
	}
	return false
}

func isASCIIAlnum(b byte) bool { return isASCIILetter(b) || isASCIIDigit(b) }
func isASCIILetter(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
func isASCIIDigit(b byte) bool { return b >= '0' && b <= '9' }

// hasPrefixFold is strings.HasPrefix ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// punycodeLen returns the length of the punycode encoding (RFC 3492, without
// the "xn--" prefix) of the lower-cased label l. It stops counting past 64.
func punycodeLen(l string) int {
	const (
		base        = 36
		tmin        = 1
		tmax        = 26
		skew        = 38
		damp        = 700
		initialBias = 72
		initialN    = 128
		stop        = 64
	)
	rs := []rune(strings.ToLower(l))
	if len(rs) > stop {
		return stop + 1
	}
	adapt := func(delta, points int, first bool) int {
		if first {
			delta /= damp
		} else {
			delta /= 2
		}
		delta += delta / points
		k := 0
		for delta > ((base-tmin)*tmax)/2 {
			delta /= base - tmin
			k += base
		}
		return k + (base-tmin+1)*delta/(delta+skew)
	}
	basic := 0
	for _, r := range rs {
		if r < initialN {
			basic++
		}
	}
	out := basic
	if basic > 0 {
		out++ // the delimiter
	}
	n, delta, bias, h := rune(initialN), 0, initialBias, basic
	for h < len(rs) {
		m := rune(unicode.MaxRune + 1)
		for _, r := range rs {
			if r >= n && r < m {
				m = r
			}
		}
		delta += int(m-n) * (h + 1)
		n = m
		for _, r := range rs {
			if r < n {
				delta++
			}
			if r != n {
				continue
			}
			q := delta
			for k := base; ; k += base {
				t := k - bias
				if t < tmin {
					t = tmin
				} else if t > tmax {
					t = tmax
				}
				if q < t {
					break
				}
				out++
				q = (q - t) / (base - t)
			}
			out++
			if out > stop {
				return out
			}
			bias = adapt(delta, h+1, h == basic)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return out
}
