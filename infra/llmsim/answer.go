package llmsim

// The deterministic "model": it reads the post the router put between the
// POST_DATA markers of the user message and writes the adaptation a
// well-behaved model would, fitted to the platform's limit.

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The lines around the post's JSON object in the user message.
const (
	BeginMarker = "<<<POST_DATA"
	EndMarker   = "POST_DATA>>>"
)

// URLWeight is what any URL counts towards MaxCharacters.
const URLWeight = 23

// PostData is the JSON object between the markers: the keys the simulator
// reads (others are ignored).
type PostData struct {
	Platform             string  `json:"platform"`
	MaxCharacters        int     `json:"maxCharacters"`
	Link                 string  `json:"link"`
	MaxHashtags          int     `json:"maxHashtags"`
	Title                string  `json:"title"`
	Excerpt              string  `json:"excerpt"`
	ImagesNeedingAltText []Image `json:"imagesNeedingAltText"`
	// Variant > 0 asks for different wording (a retry or an A/B variant).
	Variant int `json:"variant,omitempty"`
}

// Image is an image that needs an alt text.
type Image struct {
	Index int    `json:"index"`
	URL   string `json:"url"`
}

// Adaptation is the answer's content.
type Adaptation struct {
	Text     string   `json:"text"`
	AltTexts []string `json:"altTexts"`
}

// ParsePostData finds the post in a user message: the JSON object on the
// lines between a line BeginMarker and a line EndMarker. ok is false when
// the block is missing or is not a JSON object.
func ParsePostData(user string) (p PostData, ok bool) {
	lines := strings.Split(user, "\n")
	start := -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case BeginMarker:
			start = i + 1
		case EndMarker:
			if start < 0 {
				continue
			}
			block := bytes.TrimSpace([]byte(strings.Join(lines[start:i], "\n")))
			if len(block) == 0 || block[0] != '{' || json.Unmarshal(block, &p) != nil {
				return PostData{}, false
			}
			return p, true
		}
	}
	return PostData{}, false
}

// Answer is the simulator's answer content to a user message: the JSON of
// Adapt of its post, or {"text":"","altTexts":[]} when it has none. The same
// message always gets byte-identical answers.
func Answer(user string) string {
	p, ok := ParsePostData(user)
	if !ok {
		return encode(Adaptation{AltTexts: []string{}})
	}
	return encode(Adapt(p))
}

// encode is a's JSON without HTML escaping, so that titles keep their &.
func encode(a Adaptation) string {
	if a.AltTexts == nil {
		a.AltTexts = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(a) // strings and a slice of strings cannot fail
	return strings.TrimSuffix(buf.String(), "\n")
}

// variantPrefixes reword the title of variants 1, 2, 3, 4...
var variantPrefixes = []string{"New: ", "Just published: ", "Fresh read: "}

// Adapt writes the post for its platform: the title, ": " and the
// excerpt's first sentence, the link (when there is one) exactly once, then
// up to MaxHashtags hashtags made of the title's longest words. It is
// shortened to MaxCharacters (see Count) by cutting the excerpt at a word
// boundary, then the title, then dropping hashtags; a MaxCharacters of 0 or
// less is no limit. Variant > 0 prefixes the title ("New: "...). AltTexts
// has "Image <index> for: <title>" for each image needing one.
func Adapt(p PostData) Adaptation {
	link := strings.TrimSpace(p.Link)
	title := clean(p.Title, link)
	if p.Variant > 0 {
		title = variantPrefixes[(p.Variant-1)%len(variantPrefixes)] + title
	}
	excerpt := firstSentence(clean(p.Excerpt, link))
	tags := hashtags(clean(p.Title, link), p.MaxHashtags)
	alts := make([]string, 0, len(p.ImagesNeedingAltText))
	for _, im := range p.ImagesNeedingAltText {
		alts = append(alts, "Image "+strconv.Itoa(im.Index)+" for: "+strings.TrimSpace(p.Title))
	}
	return Adaptation{Text: fit(title, excerpt, link, tags, p.MaxCharacters), AltTexts: alts}
}

// fit composes the text and shortens it to max.
func fit(title, excerpt, link string, tags []string, max int) string {
	fits := func(s string) bool { return max <= 0 || Count(s) <= max }
	if s := compose(title, excerpt, link, tags); fits(s) {
		return s
	}
	ex := strings.Fields(excerpt)
	for n := len(ex) - 1; n >= 0; n-- {
		if s := compose(title, cutWords(ex, n), link, tags); fits(s) {
			return s
		}
	}
	tw := strings.Fields(title)
	for n := len(tw) - 1; n >= 0; n-- {
		if s := compose(cutWords(tw, n), "", link, tags); fits(s) {
			return s
		}
	}
	for n := len(tags) - 1; n >= 0; n-- {
		if s := compose("", "", link, tags[:n]); fits(s) {
			return s
		}
	}
	return link // the link alone is longer than max: nothing shorter keeps it
}

// compose joins the parts: "title: excerpt link #Tag #Tag".
func compose(title, excerpt, link string, tags []string) string {
	head := title
	if excerpt != "" {
		if head != "" {
			head += ": " + excerpt
		} else {
			head = excerpt
		}
	}
	parts := make([]string, 0, 2+len(tags))
	if head != "" {
		parts = append(parts, head)
	}
	if link != "" {
		parts = append(parts, link)
	}
	return strings.Join(append(parts, tags...), " ")
}

// cutWords is the first n words, with an ellipsis when some were cut.
func cutWords(words []string, n int) string {
	if n <= 0 {
		return ""
	}
	s := strings.Join(words[:n], " ")
	if n < len(words) {
		s = strings.TrimRight(s, ",;:-–—") + "…"
	}
	return s
}

// clean trims s, removes the link from it (the text carries it once, at
// its own place) and collapses white space.
func clean(s, link string) string {
	if link != "" {
		s = strings.ReplaceAll(s, link, "")
	}
	return strings.Join(strings.Fields(s), " ")
}

// firstSentence is s up to its first '.', '!' or '?' that ends a sentence
// (followed by white space or the end).
func firstSentence(s string) string {
	for i, r := range s {
		if r != '.' && r != '!' && r != '?' {
			continue
		}
		next, _ := utf8.DecodeRuneInString(s[i+1:])
		if i+1 == len(s) || unicode.IsSpace(next) {
			return s[:i+1]
		}
	}
	return s
}

// hashtags are up to max hashtags made of the longest words of title
// (three letters or more, not only digits), longest first, ties in title
// order, each once, capitalised: "#Serverless".
func hashtags(title string, max int) []string {
	if max <= 0 {
		return nil
	}
	words := strings.FieldsFunc(title, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	type word struct {
		w   string
		n   int
		pos int
	}
	var ws []word
	seen := map[string]bool{}
	for i, w := range words {
		n := utf8.RuneCountInString(w)
		key := strings.ToLower(w)
		if n < 3 || seen[key] || strings.IndexFunc(w, unicode.IsLetter) < 0 {
			continue
		}
		seen[key] = true
		ws = append(ws, word{w, n, i})
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].n > ws[j].n })
	var tags []string
	for _, w := range ws {
		if len(tags) == max {
			break
		}
		r, size := utf8.DecodeRuneInString(w.w)
		tags = append(tags, "#"+string(unicode.ToUpper(r))+w.w[size:])
	}
	return tags
}

// urlPattern finds the URLs Count weighs.
var urlPattern = regexp.MustCompile(`https?://\S+`)

// Count is the length MaxCharacters bounds: Unicode code points, with any
// http(s) URL counted as URLWeight.
func Count(s string) int {
	n := 0
	last := 0
	for _, m := range urlPattern.FindAllStringIndex(s, -1) {
		n += utf8.RuneCountInString(s[last:m[0]]) + URLWeight
		last = m[1]
	}
	return n + utf8.RuneCountInString(s[last:])
}

// overLength is text repeated and cut to three times max code points (three
// times its own length when max is 0 or less).
func overLength(text string, max int) string {
	if text == "" {
		text = "overlong"
	}
	target := 3 * max
	if max <= 0 {
		target = 3 * utf8.RuneCountInString(text)
	}
	var b strings.Builder
	for utf8.RuneCountInString(b.String()) < target {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(text)
	}
	return string([]rune(b.String())[:target])
}
