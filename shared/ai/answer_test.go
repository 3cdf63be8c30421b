package ai

import (
	"slices"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func TestCheckAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       func(*Input)
		raw      string
		want     string // the checked text when valid
		code     string
		problems []string
	}{
		{name: "valid", raw: answerJSON(goodText), want: goodText},
		{name: "code fence tolerated", raw: "```json\n" + answerJSON(goodText) + "\n```", want: goodText},
		{name: "control characters and crlf cleaned", raw: answerJSON(" Go\r\nnow\x07 " + testLink + " "), want: "Go\nnow " + testLink},
		{name: "unknown fields tolerated", raw: `{"text":"Go ` + testLink + `","altTexts":[],"notes":"x"}`, want: "Go " + testLink},
		{name: "altTexts may be missing without images", raw: `{"text":"Go ` + testLink + `"}`, want: "Go " + testLink},
		{name: "bare domain named by the post", in: func(in *Input) { in.Title = "Why ASP.NET" }, raw: answerJSON("ASP.NET, revisited " + testLink), want: "ASP.NET, revisited " + testLink},
		{name: "mention from the data", raw: answerJSON("Thanks @AWSCloud " + testLink), want: "Thanks @AWSCloud " + testLink},
		{name: "email is no mention", raw: answerJSON("Write to me@blog " + testLink), want: "Write to me@blog " + testLink},
		{name: "hashtag in url fragment is no hashtag", in: func(in *Input) { in.Link = "https://blog.example.com/p#a"; in.Settings.MaxHashtags = 0 },
			raw: answerJSON("Go https://blog.example.com/p#a"), want: "Go https://blog.example.com/p#a"},
		{name: "slightly over is fitted", in: func(in *Input) { in.Limit = text.Limit{Rule: platform.CountGraphemes, Max: 100} },
			raw:  answerJSON(testLink + " " + strings.Repeat("abc ", 12)),
			want: testLink + " " + strings.TrimSpace(strings.Repeat("abc ", 9)) + "…"},
		{name: "fit would drop the link", in: func(in *Input) { in.Limit = text.Limit{Rule: platform.CountGraphemes, Max: 100} },
			raw: answerJSON(strings.Repeat("abc ", 12) + testLink), code: llm.CodeInvalidOutput, problems: []string{"over_limit"}},
		{name: "empty", raw: "", code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "null", raw: "null", code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "array", raw: "[]", code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "truncated json", raw: `{"text":"Go`, code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "two objects", raw: answerJSON(goodText) + answerJSON(goodText), code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "text null", raw: `{"text":null,"altTexts":[]}`, code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "alt texts not strings", raw: `{"text":"a","altTexts":[1]}`, code: llm.CodeMalformed, problems: []string{"json"}},
		{name: "several problems at once", raw: answerJSON("@nobody http://x.example.org #a #b #c"), code: llm.CodeInvalidOutput,
			problems: []string{"link_missing", "extra_url", "unknown_mention", "too_many_hashtags"}},
		{name: "alt texts", in: func(in *Input) { in.ImagesNeedingAlt = []Image{{0, "u0"}, {2, "u2"}} },
			raw: answerJSON(goodText, " A chart\nof costs ", ""), want: goodText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := baseInput()
			if tt.in != nil {
				tt.in(&in)
			}
			got, code, problems := checkAnswer(in, tt.raw)
			if code != tt.code || !slices.Equal(problems, tt.problems) {
				t.Fatalf("got code %q problems %q, want %q %q", code, problems, tt.code, tt.problems)
			}
			if got.text != tt.want {
				t.Errorf("text: got %q, want %q", got.text, tt.want)
			}
			if tt.name == "alt texts" && !slices.Equal(got.altTexts, []string{"A chart of costs", ""}) {
				t.Errorf("alt texts: got %q, want cleaned, in order", got.altTexts)
			}
		})
	}
}

// FuzzCheckAnswer: no answer, however malformed, panics, and a valid one
// always fits and carries the link once.
func FuzzCheckAnswer(f *testing.F) {
	for _, s := range []string{"", "{", "null", `{"text":""}`, answerJSON(goodText), "```\n{}\n```", "\xff\xfe", `{"text":"` + strings.Repeat("é", 400) + `"}`,
		strings.Repeat("[", 10000), `{"text":"a","altTexts":null}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		in := baseInput()
		got, code, _ := checkAnswer(in, raw)
		if code == "" && (!in.Limit.Fits(got.text) || strings.Count(got.text, in.Link) != 1) {
			t.Errorf("accepted %q", got.text)
		}
	})
}
