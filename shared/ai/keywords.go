package ai

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/text"
)

// Bounds of a keyword, in characters.
const (
	minKeyword = 3
	maxKeyword = 30
)

// stopwords are words never made into hashtags: English and the most common
// words of German, French, Spanish, Portuguese, Italian and Dutch.
var stopwords = toSet(`
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each even ever every few for from further
get gets got had has have having he her here hers herself him himself his how however i if in into is
it its itself just let like made make many may me might more most much must my myself new no nor not
now of off often on once one only or other our ours ourselves out over own per really same she should
since so some such than that the their theirs them themselves then there these they this those though
through to too under until up upon us use used using very via was we well were what when where which
while who whom whose why will with within without would yet you your yours yourself yourselves
today day days week weeks year years time way ways thing things part read post blog article
heres whats its dont cant wont isnt arent doesnt didnt youre theyre were weve ive

der die das den dem des ein eine einer eines einem einen und oder aber auch auf aus bei mit nach von
vor zu zum zur für über unter ist sind war waren wird werden hat haben nicht noch nur wie was wer
wir ihr sie ich du er es im ins am vom als an
le la les un une des du de et ou mais avec pour par sur sous dans est sont été être avoir pas plus
que qui quoi ce cet cette ces nous vous ils elles au aux
el los las una unos unas y o pero con para por sobre en es son fue ser estar no más que quien este
esta estos estas del al
os um uma e ou mas com para por em é são foi não mais que este esta isso
il lo gli uno e o ma con per su nel della delle degli è sono non più che chi questo questa
het een en of maar met voor door op in is zijn was niet meer dat wie dit deze
`)

func toSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// Keywords returns up to n keywords of a post for hashtags, deterministic:
// the longest words of title and excerpt that are not stop words (nor
// parts of links or @mentions), longest
// first (ties in order of appearance, title first), each once whatever its
// case, made of letters and digits only (at least one letter) and written
// in CamelCase: "serverless" becomes "Serverless", "open-source"
// "OpenSource"; a word already holding capitals ("iPhone", "AWS") keeps
// them.
func Keywords(title, excerpt string, n int) []string {
	if n <= 0 {
		return nil
	}
	type kw struct {
		word   string
		length int
	}
	var all []kw
	seen := map[string]bool{}
	s := title + "\n" + excerpt
	// Links and accounts are not topics.
	for _, u := range append(text.URLs(s), text.Mentions(s)...) {
		s = strings.Replace(s, u, " ", 1)
	}
	for _, w := range words(s) {
		lower := strings.ToLower(w)
		if stopwords[lower] || seen[lower] {
			continue
		}
		parts := strings.FieldsFunc(w, func(r rune) bool { return r == '-' })
		var b strings.Builder
		letters := false
		for _, p := range parts {
			b.WriteString(camel(p))
			letters = letters || strings.IndexFunc(p, unicode.IsLetter) >= 0
		}
		k := b.String()
		l := utf8.RuneCountInString(k)
		if !letters || l < minKeyword || l > maxKeyword {
			continue
		}
		seen[lower] = true
		all = append(all, kw{k, l})
	}
	slices.SortStableFunc(all, func(a, b kw) int { return b.length - a.length })
	out := make([]string, 0, min(n, len(all)))
	for _, k := range all[:min(n, len(all))] {
		out = append(out, k.word)
	}
	return out
}

// words splits s into runs of letters, marks and digits, keeping inner
// hyphens ("open-source") and dropping apostrophes ("don't" is "dont").
func words(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		w := strings.Trim(string(cur), "-")
		if w != "" {
			out = append(out, w)
		}
		cur = cur[:0]
	}
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			cur = append(cur, r)
		case r == '-' && len(cur) > 0:
			cur = append(cur, r)
		case r == '\'' || r == '’':
			// inside a word: drop it, keep the word going
		default:
			flush()
		}
	}
	flush()
	return out
}

// camel capitalizes the first letter of a word written in lower case.
func camel(w string) string {
	if strings.IndexFunc(w, unicode.IsUpper) >= 0 {
		return w
	}
	r, size := utf8.DecodeRuneInString(w)
	return string(unicode.ToUpper(r)) + w[size:]
}

// fallbackText is the caller's text plus keyword hashtags when AI was
// wanted: at most Settings.MaxHashtags hashtags in all, only ones not
// already there, and only while the text still fits the limit and passes
// Validate.
func fallbackText(in Input, withTags bool) string {
	t := in.Fallback
	if !withTags || in.Settings.MaxHashtags <= 0 {
		return t
	}
	present := text.Hashtags(t)
	room := in.Settings.MaxHashtags - len(present)
	if room <= 0 {
		return t
	}
	have := lowerSet(present)
	sep := "\n\n"
	if strings.TrimSpace(t) == "" {
		sep = ""
	}
	var tags []string
	for _, k := range Keywords(in.Title, in.Excerpt, in.Settings.MaxHashtags+len(present)+3) {
		if len(tags) == room {
			break
		}
		tag := "#" + k
		if have[strings.ToLower(tag)] {
			continue
		}
		if !in.Limit.Fits(t + sep + strings.Join(append(slices.Clone(tags), tag), " ")) {
			continue // a shorter keyword may still fit
		}
		tags = append(tags, tag)
	}
	if len(tags) == 0 {
		return t
	}
	out := t + sep + strings.Join(tags, " ")
	if in.Validate != nil && len(in.Validate(out)) > 0 {
		return t
	}
	return out
}
