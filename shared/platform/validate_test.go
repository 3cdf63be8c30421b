package platform_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

func TestGuessMIME(t *testing.T) {
	t.Parallel()
	extra := map[string]string{".heic": "image/heic", ".png": "image/x-custom"}
	cases := []struct {
		name string
		m    platform.Media
		want string
	}{
		{"given type wins", platform.Media{URL: "https://c/a.jpg", MIMEType: "image/png"}, "image/png"},
		{"common extension, any case", platform.Media{URL: "https://c/A.JPEG?x=1"}, "image/jpeg"},
		{"video extension", platform.Media{URL: "https://c/v.mov"}, "video/quicktime"},
		{"adapter's extension", platform.Media{URL: "https://c/a.heic"}, "image/heic"},
		{"adapter's overrides common", platform.Media{URL: "https://c/a.png"}, "image/x-custom"},
		{"unknown extension", platform.Media{URL: "https://c/a.bmp"}, ""},
		{"no extension", platform.Media{URL: "https://c/a"}, ""},
		{"bad URL", platform.Media{URL: "http://a b/c.jpg"}, ""},
	}
	for _, tc := range cases {
		if got := platform.GuessMIME(tc.m, extra); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := platform.GuessMIME(platform.Media{URL: "https://c/a.heic"}, nil); got != "" {
		t.Errorf("without extras: got %q, want unknown", got)
	}
}

func TestCountKinds(t *testing.T) {
	t.Parallel()
	media := []platform.Media{{Kind: platform.Image}, {Kind: platform.Video}, {Kind: "audio"}, {Kind: platform.Image}}
	if images, videos := platform.CountKinds(media); images != 2 || videos != 1 {
		t.Errorf("got %d images %d videos, want 2 and 1", images, videos)
	}
}

func TestMediaLimitsProblems(t *testing.T) {
	t.Parallel()
	l := platform.MediaLimits{ImageTypes: []string{"image/jpeg", "image/png"}, VideoTypes: []string{"video/mp4"}, MaxImageBytes: 10, MaxVideoBytes: 100}
	media := []platform.Media{
		{URL: "https://c/ok.jpg", Kind: platform.Image, Size: 10},
		{URL: "https://c/a.gif", Kind: platform.Image, Size: 11},
		{URL: "https://c/v", Kind: platform.Video, MIMEType: "video/webm"},
		{URL: "https://c/a.mp3", Kind: "audio"},
		{URL: "https://c/v.mp4", Kind: platform.Video, Size: 101},
	}
	want := []apperr.Problem{
		{Field: "media[1].mimeType", Message: "image/gif is not accepted; Sim takes image/jpeg, image/png"},
		{Field: "media[1].size", Message: "is 11 bytes; the limit is 10"},
		{Field: "media[2].mimeType", Message: "video/webm is not accepted; Sim takes video/mp4"},
		{Field: "media[3].kind", Message: "must be image or video"},
		{Field: "media[4].size", Message: "is 101 bytes; the limit is 100"},
	}
	if got := l.Problems(media, "Sim", nil); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := l.Problems(media[:1], "Sim", nil); len(got) != 0 {
		t.Errorf("acceptable media: got %+v, want no problems", got)
	}
}

func TestKindProblems(t *testing.T) {
	t.Parallel()
	image := platform.KindRule{Types: []string{"image/jpeg"}, MaxBytes: 10, Noun: "photo", TypeProblem: "photos must be JPEG"}
	video := platform.KindRule{Types: []string{"video/mp4"}, MaxBytes: 100, Noun: "video"}
	cases := []struct {
		name string
		m    platform.Media
		want []apperr.Problem
	}{
		{"fine", platform.Media{Kind: platform.Image, MIMEType: "image/jpeg", Size: 10}, nil},
		{"type not guessed from the URL", platform.Media{URL: "https://c/a.png", Kind: platform.Image}, nil},
		{"own type problem and size", platform.Media{Kind: platform.Image, MIMEType: "image/png", Size: 11}, []apperr.Problem{
			{Field: "media[2].mimeType", Message: "photos must be JPEG"},
			{Field: "media[2].size", Message: "over the photo limit of 10 bytes"},
		}},
		{"default type problem", platform.Media{Kind: platform.Video, MIMEType: "video/webm"}, []apperr.Problem{
			{Field: "media[2].mimeType", Message: "unsupported video type video/webm"},
		}},
		{"unknown kind", platform.Media{Kind: "audio", Size: 1000}, []apperr.Problem{
			{Field: "media[2].kind", Message: `must be "image" or "video"`},
		}},
	}
	for _, tc := range cases {
		if got := platform.KindProblems("media[2]", tc.m, image, video); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	type cfg struct {
		Name    string
		N       int
		Neg     int64
		Wait    time.Duration
		BaseURL string
	}
	c := cfg{Neg: -1, BaseURL: ""}
	platform.Default(&c.Name, "def")
	platform.Default(&c.N, 5)
	platform.DefaultPositive(&c.Neg, 7)
	platform.DefaultPositive(&c.Wait, time.Minute)
	platform.DefaultURL(&c.BaseURL, "https://api.example//")
	want := cfg{Name: "def", N: 5, Neg: 7, Wait: time.Minute, BaseURL: "https://api.example"}
	if c != want {
		t.Errorf("zero values: got %+v, want %+v", c, want)
	}
	set := cfg{Name: "n", N: -3, Neg: 2, Wait: time.Second, BaseURL: "https://mine/"}
	c = set
	platform.Default(&c.Name, "def")
	platform.Default(&c.N, 5)
	platform.DefaultPositive(&c.Neg, 7)
	platform.DefaultPositive(&c.Wait, time.Minute)
	platform.DefaultURL(&c.BaseURL, "https://api.example")
	set.BaseURL = "https://mine"
	if c != set {
		t.Errorf("set values: got %+v, want %+v", c, set)
	}
	if _, ok := platform.ClockOrReal(nil).(platform.RealClock); !ok {
		t.Errorf("ClockOrReal(nil): want the real clock")
	}
	mine := platform.RealClock{}
	if got := platform.ClockOrReal(mine); got != platform.Clock(mine) {
		t.Errorf("ClockOrReal(c): got %v, want c", got)
	}
}
