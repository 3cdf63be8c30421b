package text

import "unicode/utf8"

// Emoji sequences, after UTS #51: a regional-indicator pair (a flag), a
// keycap ([0-9#*] U+FE0F? U+20E3), or an Extended_Pictographic character
// with an optional U+FE0F, skin-tone modifier and tag sequence (subdivision
// flags such as England); elements may be joined by U+200D into a ZWJ
// sequence (families, professions). The scanner accepts any such sequence,
// not only the recommended (RGI) ones.

const (
	zwj         = '\u200D'
	vs16        = '\uFE0F'
	keycapMark  = '\u20E3'
	tagCancel   = '\U000E007F'
	tagFirst    = '\U000E0020'
	tagLast     = '\U000E007E'
	riFirst     = '\U0001F1E6'
	riLast      = '\U0001F1FF'
	modFirst    = '\U0001F3FB'
	modLast     = '\U0001F3FF'
	noEmojiRune = -1
)

// emojiAt returns the length in bytes and in code points of the emoji
// sequence at the start of s, or 0, 0 if s does not start with one.
func emojiAt(s string) (n, runes int) {
	n, runes = emojiElementAt(s)
	if n == 0 {
		return 0, 0
	}
	for {
		r, w := utf8.DecodeRuneInString(s[n:])
		if r != zwj {
			return n, runes
		}
		en, er := emojiElementAt(s[n+w:])
		if en == 0 {
			return n, runes
		}
		n += w + en
		runes += 1 + er
	}
}

// emojiElementAt is emojiAt for one element of a ZWJ sequence.
func emojiElementAt(s string) (n, runes int) {
	r, w := decodeRune(s)
	switch {
	case r >= riFirst && r <= riLast:
		if r2, w2 := decodeRune(s[w:]); r2 >= riFirst && r2 <= riLast {
			return w + w2, 2
		}
		return w, 1
	case r >= '0' && r <= '9' || r == '#' || r == '*':
		n, runes = w, 1
		r2, w2 := decodeRune(s[n:])
		if r2 == vs16 {
			n, runes = n+w2, runes+1
			r2, w2 = decodeRune(s[n:])
		}
		if r2 == keycapMark {
			return n + w2, runes + 1
		}
		return 0, 0
	case r >= modFirst && r <= modLast:
		return w, 1
	case r != noEmojiRune && inRanges(r, extPictRanges):
		n, runes = w, 1
		r2, w2 := decodeRune(s[n:])
		if r2 == vs16 {
			n, runes = n+w2, runes+1
			r2, w2 = decodeRune(s[n:])
		}
		if r2 >= modFirst && r2 <= modLast && inRanges(r, emojiModifierBaseRanges) {
			n, runes = n+w2, runes+1
			r2, w2 = decodeRune(s[n:])
		}
		if r2 >= tagFirst && r2 <= tagLast {
			m, k := n, runes
			for r2 >= tagFirst && r2 <= tagLast {
				m, k = m+w2, k+1
				r2, w2 = decodeRune(s[m:])
			}
			if r2 == tagCancel {
				n, runes = m+w2, k+1
			}
		}
		return n, runes
	}
	return 0, 0
}

// decodeRune decodes the first rune of s; noEmojiRune at the end of s or on
// invalid UTF-8.
func decodeRune(s string) (rune, int) {
	r, w := utf8.DecodeRuneInString(s)
	if w == 0 || r == utf8.RuneError && w == 1 {
		return noEmojiRune, w
	}
	return r, w
}
