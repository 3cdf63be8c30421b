package ai

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/text"
)

// overFitShare is how far over the limit (as a share of it, in percent) an
// answer may be and still be fitted with Limit.Fit rather than rejected.
const overFitShare = 15

// answer is the JSON object the schema asks for.
type answer struct {
	Text     *string  `json:"text"`
	AltTexts []string `json:"altTexts"`
}

// checked is a valid answer.
type checked struct {
	text     string
	altTexts []string
}

// checkAnswer parses raw, the model's answer, and checks it against in.
// On failure it returns llm.CodeMalformed (not the schema's JSON) or
// llm.CodeInvalidOutput, and the names of the problems found (for logs:
// they hold no content).
func checkAnswer(in Input, raw string) (checked, string, []string) {
	a, err := parseAnswer(raw)
	if err != nil {
		return checked{}, llm.CodeMalformed, []string{"json"}
	}
	t := cleanText(*a.Text)
	if t == "" {
		return checked{}, llm.CodeInvalidOutput, []string{"empty_text"}
	}
	var problems []string
	if !in.Limit.Fits(t) {
		var ok bool
		if t, ok = fitSlightlyOver(in, t); !ok {
			return checked{}, llm.CodeInvalidOutput, []string{"over_limit"}
		}
	}
	problems = append(problems, checkContent(in, t)...)
	if in.Validate != nil {
		for _, p := range in.Validate(t) {
			problems = append(problems, "platform:"+p.Field)
		}
	}
	alts, altProblems := checkAltTexts(in, a.AltTexts)
	problems = append(problems, altProblems...)
	if len(problems) > 0 {
		return checked{}, llm.CodeInvalidOutput, problems
	}
	return checked{text: t, altTexts: alts}, "", nil
}

// parseAnswer decodes exactly one JSON object with a string "text". A
// code fence around it, which some models add despite the instructions,
// is tolerated.
func parseAnswer(raw string) (answer, error) {
	s := strings.TrimSpace(raw)
	if strings.HasPrefix(s, "```") {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s[i+1:]), "```"))
		}
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var a answer
	if err := dec.Decode(&a); err != nil {
		return answer{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return answer{}, errors.New("more than one JSON value")
	}
	if a.Text == nil {
		return answer{}, errors.New("no text")
	}
	return a, nil
}

// cleanText normalizes line ends, drops control characters other than new
// lines and tabs, replaces invalid UTF-8 and trims.
func cleanText(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, s)
	return strings.TrimSpace(s)
}

// fitSlightlyOver fits t to the limit with Limit.Fit when it is over by at
// most overFitShare percent, and reports whether the fitted text still
// carries the link.
func fitSlightlyOver(in Input, t string) (string, bool) {
	l := in.Limit
	if over := l.Count(t) - l.Max; over*100 > l.Max*overFitShare {
		return "", false
	}
	if l.MaxBytes > 0 {
		if over := len(t) - l.MaxBytes; over*100 > l.MaxBytes*overFitShare {
			return "", false
		}
	}
	f := l.Fit(t)
	if f == "" || in.Link != "" && strings.Count(f, in.Link) != 1 {
		return "", false
	}
	return f, true
}

// checkContent checks the link, other URLs, mentions and hashtags of t.
func checkContent(in Input, t string) []string {
	var problems []string
	data := in.Title + "\n" + in.Excerpt + "\n" + in.Body
	urls := text.URLs(t)
	if in.Link != "" {
		switch n := strings.Count(t, in.Link); {
		case n == 0:
			problems = append(problems, "link_missing")
		case n > 1:
			problems = append(problems, "link_repeated")
		default:
			// The link must be found as the same URL(s) it is alone: not
			// glued to text that changes where it ends or starts.
			var ok bool
			if urls, ok = removeSeq(urls, text.URLs(in.Link)); !ok {
				problems = append(problems, "link_altered")
			}
		}
	}
	// Any other URL is refused, except a bare domain (no scheme) that the
	// post itself names, such as "ASP.NET" in its title: X would link it,
	// but the model did not invent it.
	bareInData := lowerSet(text.URLs(data))
	for _, u := range urls {
		if hasScheme(u) || !bareInData[strings.ToLower(u)] {
			problems = append(problems, "extra_url")
			break
		}
	}
	known := lowerSet(text.Mentions(data))
	for _, m := range text.Mentions(t) {
		if !known[strings.ToLower(m)] {
			problems = append(problems, "unknown_mention")
			break
		}
	}
	if len(text.Hashtags(t)) > in.Settings.MaxHashtags {
		problems = append(problems, "too_many_hashtags")
	}
	return problems
}

// checkAltTexts checks the alt texts against the images that asked for
// them; alt texts nobody asked for are dropped.
func checkAltTexts(in Input, alts []string) ([]string, []string) {
	if len(in.ImagesNeedingAlt) == 0 {
		return nil, nil
	}
	if len(alts) != len(in.ImagesNeedingAlt) {
		return nil, []string{"alt_text_count"}
	}
	out := make([]string, len(alts))
	for i, a := range alts {
		a = strings.Join(strings.Fields(cleanText(a)), " ")
		if utf8.RuneCountInString(a) > MaxAltTextLength {
			return nil, []string{"alt_text_too_long"}
		}
		out[i] = a
	}
	return out, nil
}

// removeSeq removes the first occurrence of sub, as a run, from s.
func removeSeq(s, sub []string) ([]string, bool) {
	if len(sub) == 0 {
		return s, true
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := range sub {
			if s[i+j] != sub[j] {
				match = false
				break
			}
		}
		if match {
			return append(append([]string{}, s[:i]...), s[i+len(sub):]...), true
		}
	}
	return s, false
}

func lowerSet(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[strings.ToLower(s)] = true
	}
	return m
}

func hasScheme(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}
