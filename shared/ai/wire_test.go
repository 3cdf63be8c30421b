package ai

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func TestFromConfig(t *testing.T) {
	t.Parallel()
	a := config.AI{
		Providers: []config.AIProvider{
			{Name: "anthropic", APIKey: "sk-ant-test"},
			{Name: "openai", APIKey: "sk-test", Model: "gpt-5-nano", BaseURL: "http://127.0.0.1:9/v1"},
		},
		Strategy: "quality", ChainBudget: 8 * time.Second, CallTimeout: 5 * time.Second, MaxOutputTokens: 600,
		Prices: `[{"provider":"openai","model":"gpt-5-nano","inputPerMTok":0.06,"outputPerMTok":0.5}]`,
	}
	r, err := FromConfig(a, nopDB{}, "t", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.chain(baseInput()) {
		got = append(got, string(p.Name())+"/"+p.Model())
	}
	if want := []string{"anthropic/claude-haiku-4-5", "openai/gpt-5-nano"}; !slices.Equal(got, want) {
		t.Errorf("chain: got %v, want %v (quality: the configured order)", got, want)
	}
	if c, _ := r.prices.Cost(llm.OpenAI, "gpt-5-nano", 1_000_000, 0); c != 60_000 || r.maxOut != 600 || r.callTimeout != 5*time.Second {
		t.Errorf("got price %d, cap %d, timeout %s", c, r.maxOut, r.callTimeout)
	}
	for _, bad := range []config.AI{
		{Prices: "[{"},
		{Providers: []config.AIProvider{{Name: "openai", APIKey: "has space"}}},
		{Strategy: "fastest"},
	} {
		if _, err := FromConfig(bad, nopDB{}, "t", nil, nil); err == nil {
			t.Errorf("FromConfig(%+v): got no error", bad)
		} else if strings.Contains(err.Error(), "has space") {
			t.Errorf("the error shows the key: %v", err)
		}
	}
	none, err := FromConfig(config.AI{}, nopDB{}, "t", nil, nil)
	if err != nil || none == nil {
		t.Fatalf("no providers: got %v, %v; want a router", none, err)
	}
	res, err := none.Adapt(context.Background(), baseInput())
	if err != nil || res.Reason != ReasonNoProviders {
		t.Errorf("no providers: got %q, %v; want a no_providers fallback", res.Reason, err)
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		max, imgs int
		cap       int
		ask, out  int
	}{
		{"x", 280, 0, 0, 280, 340},
		{"x with two images", 280, 2, 0, 280, 840},
		{"linkedin", 3000, 0, 0, 3000, 1700},
		{"facebook is asked for a post, not an article", 63206, 0, 0, 3000, 1700},
		{"short limits get 256 tokens", 100, 0, 0, 100, 256},
		{"a cap shortens what is asked", 3000, 0, 600, 800, 600},
		{"a cap under the images' share", 3000, 2, 600, 100, 600},
		{"a cap above the bound changes nothing", 280, 0, 600, 280, 340},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := baseInput()
			in.Limit.Max = tt.max
			for i := range tt.imgs {
				in.ImagesNeedingAlt = append(in.ImagesNeedingAlt, Image{Index: i, URL: "u"})
			}
			if ask, out := sizes(in, tt.cap); ask != tt.ask || out != tt.out {
				t.Errorf("got %d characters, %d tokens; want %d, %d", ask, out, tt.ask, tt.out)
			}
		})
	}
}

func TestInputFor(t *testing.T) {
	t.Parallel()
	r := Request{
		SiteID: "s", PostID: "p", Revision: "1", Platform: platform.Instagram, Limit: text.Limit{Rule: platform.CountUTF16, Max: 2200},
		Media: []platform.Media{
			{URL: "https://cdn.example.com/0.jpg", Kind: platform.Image, AltText: "given"},
			{URL: "https://cdn.example.com/1.mp4", Kind: platform.Video},
			{URL: "https://cdn.example.com/2.jpg", Kind: platform.Image, AltText: "  "},
		},
		Settings: Settings{Enabled: true, GenerateAltText: true}, BudgetMicros: 5, Chain: []llm.Name{llm.Gemini}, Strategy: "latency",
	}
	in := InputFor(r)
	if !slices.Equal(in.ImagesNeedingAlt, []Image{{Index: 2, URL: "https://cdn.example.com/2.jpg"}}) || in.Budget != 5 ||
		in.Strategy != StrategyLatency || in.Chain[0] != llm.Gemini || in.Limit.Max != 2200 {
		t.Errorf("got %+v", in)
	}
	r.Settings.GenerateAltText = false
	if in := InputFor(r); in.ImagesNeedingAlt != nil {
		t.Errorf("without GenerateAltText: got %v, want no images", in.ImagesNeedingAlt)
	}
}

// fakeValidator reports a text over 10 characters and always a media
// problem.
type fakeValidator struct{}

func (fakeValidator) Validate(p platform.Post) []apperr.Problem {
	ps := []apperr.Problem{{Field: "media[0].size", Message: "too big"}}
	if len(p.Text) > 10 {
		ps = append(ps, apperr.Problem{Field: "text", Message: "too long"})
	}
	return ps
}

func TestValidateWith(t *testing.T) {
	t.Parallel()
	v := ValidateWith(fakeValidator{}, platform.Post{Text: "composed", Link: testLink})
	if ps := v("short"); len(ps) != 0 {
		t.Errorf("short text: got %v, want no problem (media problems are not the text's)", ps)
	}
	if ps := v("a text that is too long"); len(ps) != 1 || ps[0].Field != "text" {
		t.Errorf("long text: got %v, want the text problem", ps)
	}
	if ValidateWith(nil, platform.Post{}) != nil {
		t.Error("a nil validator: got a check")
	}
}
