package ai

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
)

// Limits of Settings.
const (
	MaxToneLength     = 200 // characters
	MaxHashtagsLimit  = 10
	MaxLanguageLength = 35
)

// Settings are a target's AI settings. They are stored on the target and
// frozen on each delivery.
type Settings struct {
	// Enabled turns AI adaptation on for the target.
	Enabled bool `json:"enabled" dynamodbav:"enabled"`
	// Tone describes the voice, e.g. "friendly, no jargon"; one line of at
	// most MaxToneLength characters.
	Tone string `json:"tone,omitempty" dynamodbav:"tone,omitempty"`
	// MaxHashtags bounds the hashtags in the text, 0 to MaxHashtagsLimit.
	MaxHashtags int `json:"maxHashtags" dynamodbav:"max_hashtags"`
	// GenerateAltText asks for alt text of the images that have none.
	GenerateAltText bool `json:"generateAltText" dynamodbav:"generate_alt_text"`
	// Language is a BCP 47 tag such as "en" or "pt-BR"; "" keeps the
	// post's language.
	Language string `json:"language,omitempty" dynamodbav:"language,omitempty"`
}

// languageRe is BCP 47's shape without its registry: a 2-8 letter primary
// subtag and alphanumeric subtags of 1-8.
var languageRe = regexp.MustCompile(`^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$`)

// Validate returns the problems of s, each naming its field under prefix
// (prefix "ai" gives "ai.tone"; "" gives "tone").
func (s Settings) Validate(prefix string) []apperr.Problem {
	name := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	var ps []apperr.Problem
	switch {
	case !utf8.ValidString(s.Tone):
		ps = append(ps, apperr.Problem{Field: name("tone"), Message: "must be valid UTF-8"})
	case utf8.RuneCountInString(s.Tone) > MaxToneLength:
		ps = append(ps, apperr.Problem{Field: name("tone"), Message: fmt.Sprintf("must be at most %d characters", MaxToneLength)})
	case strings.IndexFunc(s.Tone, unicode.IsControl) >= 0:
		ps = append(ps, apperr.Problem{Field: name("tone"), Message: "must be one line without control characters"})
	}
	if s.MaxHashtags < 0 || s.MaxHashtags > MaxHashtagsLimit {
		ps = append(ps, apperr.Problem{Field: name("maxHashtags"), Message: fmt.Sprintf("must be between 0 and %d", MaxHashtagsLimit)})
	}
	if s.Language != "" && (len(s.Language) > MaxLanguageLength || !languageRe.MatchString(s.Language)) {
		ps = append(ps, apperr.Problem{Field: name("language"), Message: fmt.Sprintf("must be a BCP 47 language tag such as \"en\" or \"pt-BR\", at most %d characters", MaxLanguageLength)})
	}
	return ps
}

// Hash is a short stable hash of the settings that change what is
// generated (tone, hashtags, alt text, language; not Enabled). It changes
// only when they do.
func (s Settings) Hash() string {
	h := sha256.New()
	for _, f := range []string{"v1", s.Tone, strconv.Itoa(s.MaxHashtags), strconv.FormatBool(s.GenerateAltText), s.Language} {
		// Length-prefixed, so no two field lists hash alike.
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
