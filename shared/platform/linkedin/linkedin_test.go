package linkedin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/linkedin"
)

// start is where test clocks stand: noon UTC, twelve hours before LinkedIn's
// daily quotas reset.
var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const author = "urn:li:person:abc123"

type env struct {
	sim   *simtest.Sim
	ad    *linkedin.Adapter
	acct  platform.Account
	clock *platformsim.ManualClock
}

func newEnv(t *testing.T, cfg linkedin.Config) *env {
	t.Helper()
	clock := platformsim.NewManualClock(start)
	sim := simtest.Start(t, simtest.Options{Now: clock.Now,
		Accounts: []platformsim.Account{{Platform: "linkedin", ID: author, Handle: "Ada Lovelace", AccessToken: "tok-li"}}})
	cfg.BaseURL = sim.URL + "/linkedin"
	cfg.Media = sim.MediaClient()
	return &env{sim: sim, ad: linkedin.New(cfg, sim.Client(), clock), clock: clock,
		acct: platform.Account{ID: author, AccessToken: "tok-li"}}
}

func (e *env) media(name string, kind platform.MediaKind) platform.Media {
	return platform.Media{URL: e.sim.MediaURL(name), Kind: kind, AltText: "alt " + name}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	tricky := "Launch (beta) of *POSSE* for C# users: [docs] <soon> a_b ~x {y} | back\\slash @someone #posse #2026"
	cases := []struct {
		name        string
		post        func(e *env) platform.Post
		wantText    string
		wantMedia   int
		wantArticle string
	}{
		{"text with reserved characters", func(*env) platform.Post { return platform.Post{Text: tricky} }, tricky, 0, ""},
		{"text and link as an article", func(*env) platform.Post {
			return platform.Post{Text: "new post", Link: "https://example.com/p/1", Title: "Post one"}
		}, "new post", 0, "https://example.com/p/1"},
		{"one image and the link in text", func(e *env) platform.Post {
			return platform.Post{Text: "pic", Link: "https://example.com/a_b#top", Media: []platform.Media{e.media("a.jpg", platform.Image)}}
		}, "pic\n\nhttps://example.com/a_b#top", 1, ""},
		{"three images", func(e *env) platform.Post {
			m := []platform.Media{e.media("a.jpg", platform.Image), e.media("b.png", platform.Image), e.media("c.gif", platform.Image)}
			return platform.Post{Text: "pics", Media: m}
		}, "pics", 3, ""},
		{"video", func(e *env) platform.Post {
			return platform.Post{Text: "clip", Title: "A clip", Media: []platform.Media{e.media("v.mp4", platform.Video)}}
		}, "clip", 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, linkedin.Config{})
			j := &platformsim.MemJournal{}
			res, err := e.ad.Publish(context.Background(), e.acct, tc.post(e), j)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			posts := e.sim.Posts("linkedin")
			if len(posts) != 1 {
				t.Fatalf("got %d recorded posts, want 1", len(posts))
			}
			got := posts[0]
			if res.ID != got.ID || !strings.HasPrefix(res.ID, "urn:li:share:") || res.URL != "https://www.linkedin.com/feed/update/"+got.ID+"/" {
				t.Errorf("got result %+v, want the share URN %s and its feed URL", res, got.ID)
			}
			if got.Text != tc.wantText || got.Extra["truncated"] != "" {
				t.Errorf("got rendered text %q (truncated=%q), want %q in full", got.Text, got.Extra["truncated"], tc.wantText)
			}
			if len(got.Media) != tc.wantMedia || got.Extra["article"] != tc.wantArticle || got.AccountID != author {
				t.Errorf("got %d media, article %q, author %s; want %d, %q, %s", len(got.Media), got.Extra["article"], got.AccountID, tc.wantMedia, tc.wantArticle, author)
			}
			if j.Entries()[linkedin.JournalSent] == "" {
				t.Errorf("got no %s checkpoint, want one before the post", linkedin.JournalSent)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"plain words", "plain words"},
		{"(a)", `\(a\)`},
		{"#tag and C# and # alone", `#tag and C\# and \# alone`},
		{"see https://e.com/#frag_1", `see https://e.com/\#frag\_1`},
		{`back\slash`, `back\\slash`},
	}
	for _, tc := range cases {
		if got := linkedin.Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := linkedin.New(linkedin.Config{}, simtest.NoNetwork(t), platformsim.NewManualClock(start))
	img := platform.Media{URL: "https://cdn.example/a.jpg", Kind: platform.Image}
	vid := platform.Media{URL: "https://cdn.example/v.mp4", Kind: platform.Video}
	many := make([]platform.Media, 21)
	for i := range many {
		many[i] = img
	}
	cases := []struct {
		name      string
		post      platform.Post
		wantField string
		wantIn    string
	}{
		{"ok", platform.Post{Text: "fine (really)"}, "", ""},
		{"empty", platform.Post{}, "text", "needs text"},
		{"over the limit", platform.Post{Text: strings.Repeat("a", 3001)}, "text", "limit is 3000"},
		{"escapes push it over", platform.Post{Text: strings.Repeat("()", 800)}, "text", "escaped"},
		{"21 images", platform.Post{Media: many}, "media", "at most 20"},
		{"image and video", platform.Post{Media: []platform.Media{img, vid}}, "media", "not both"},
		{"two videos", platform.Post{Media: []platform.Media{vid, vid}}, "media", "1 per post"},
		{"mov video", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/v.mov", Kind: platform.Video}}}, "media[0].mimeType", "video/quicktime"},
		{"bad visibility", platform.Post{Text: "x", Options: map[string]string{"visibility": "FRIENDS"}}, "options.visibility", "PUBLIC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			simtest.WantProblem(t, ad.Validate(tc.post), tc.wantField, tc.wantIn)
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		cfg       linkedin.Config
		fault     platformsim.FaultKind
		media     string
		wantKind  apperr.Kind
		wantCode  string
		wantAfter time.Duration
		wantPosts int
	}{
		{"rate limited until midnight UTC", linkedin.Config{}, platformsim.FaultRateLimit, "", apperr.KindRateLimited, "linkedin.rate_limited", 12 * time.Hour, 0},
		{"server error on the post", linkedin.Config{}, platformsim.FaultServerError, "", apperr.KindAmbiguous, "linkedin.server_error", 0, 0},
		{"server error on an upload", linkedin.Config{}, platformsim.FaultServerError, "a.jpg", apperr.KindTransient, "linkedin.server_error", 0, 0},
		{"expired token", linkedin.Config{}, platformsim.FaultExpiredToken, "", apperr.KindReconnect, "linkedin.unauthorized", 0, 0},
		{"duplicate", linkedin.Config{}, platformsim.FaultDuplicate, "", apperr.KindPermanent, "linkedin.duplicate", 0, 0},
		{"image processing fails", linkedin.Config{}, platformsim.FaultMediaFetch, "a.jpg", apperr.KindPermanent, "linkedin.media_failed", 0, 0},
		{"video processing fails", linkedin.Config{}, platformsim.FaultMediaFetch, "v.mp4", apperr.KindPermanent, "linkedin.media_failed", 0, 0},
		{"media URL missing", linkedin.Config{}, "", "missing.jpg", apperr.KindPermanent, "media_fetch", 0, 0},
		{"sunset version", linkedin.Config{Version: "202401"}, "", "", apperr.KindPermanent, "linkedin.version_inactive", 0, 0},
		{"timeout after create", linkedin.Config{}, platformsim.FaultTimeoutAfterCreate, "", apperr.KindAmbiguous, "linkedin.no_response", 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.cfg)
			if tc.fault != "" {
				e.sim.AddFault(platformsim.Fault{Platform: "linkedin", Kind: tc.fault})
			}
			p := platform.Post{Text: "fault: " + tc.name}
			if tc.media != "" {
				kind := platform.Image
				if strings.HasSuffix(tc.media, ".mp4") {
					kind = platform.Video
				}
				p.Media = []platform.Media{e.media(tc.media, kind)}
			}
			_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae := simtest.WantErr(t, err, tc.wantKind, tc.wantCode)
			if ae.RetryAfter != tc.wantAfter {
				t.Errorf("got RetryAfter %v, want %v", ae.RetryAfter, tc.wantAfter)
			}
			if n := len(e.sim.Posts("linkedin")); n != tc.wantPosts {
				t.Errorf("got %d recorded posts, want %d", n, tc.wantPosts)
			}
		})
	}
}

func TestTimeoutThenReconcileAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, linkedin.Config{})
	ctx := context.Background()
	e.sim.AddFault(platformsim.Fault{Platform: "linkedin", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{DeliveryID: "d1", Text: "lost answer (again)"}
	_, err := e.ad.Publish(ctx, e.acct, p, j)
	simtest.WantErr(t, err, apperr.KindAmbiguous, "linkedin.no_response")

	if _, found, err := e.ad.Reconcile(ctx, e.acct, p); found || err != nil {
		t.Fatalf("Reconcile without a checkpoint: got found=%v err=%v, want false, nil", found, err)
	}
	p.Journal = j.Entries()
	_, found, err := e.ad.Reconcile(ctx, e.acct, p)
	if found {
		t.Fatal("Reconcile: got found=true, want false")
	}
	simtest.WantErr(t, err, apperr.KindAmbiguous, "linkedin.cannot_reconcile")

	// A retry meets DUPLICATE_POST, which names the post the first attempt made.
	res, err := e.ad.Publish(ctx, e.acct, p, j)
	if err != nil {
		t.Fatalf("retry: got %v, want the original post", err)
	}
	posts := e.sim.Posts("linkedin")
	if len(posts) != 1 || res.ID != posts[0].ID {
		t.Fatalf("got %d posts and result %s, want exactly 1 post and its URN", len(posts), res.ID)
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, linkedin.Config{})
	id, err := e.ad.WhoAmI(context.Background(), e.acct)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if id.ID != author || id.Name != "Ada Lovelace" {
		t.Fatalf("got %+v, want %s Ada Lovelace", id, author)
	}
	_, err = e.ad.WhoAmI(context.Background(), platform.Account{AccessToken: "nope"})
	simtest.WantErr(t, err, apperr.KindReconnect, "linkedin.unauthorized")
}

func TestUnexpectedAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		status      int
		body        string
		publishKind apperr.Kind
		whoamiKind  apperr.Kind
	}{
		{"201 without x-restli-id", 201, "", apperr.KindAmbiguous, apperr.KindPermanent},
		{"200 garbage", 200, "<html>", apperr.KindAmbiguous, apperr.KindPermanent},
		{"503 garbage", 503, "<html>busy</html>", apperr.KindAmbiguous, apperr.KindTransient},
		{"400 garbage", 400, `{"message": 12`, apperr.KindPermanent, apperr.KindPermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ad := linkedin.New(linkedin.Config{BaseURL: simtest.Answer(t, tc.status, tc.body).URL}, nil, platformsim.NewManualClock(start))
			acct := platform.Account{ID: author, AccessToken: "t"}
			_, err := ad.Publish(context.Background(), acct, platform.Post{Text: "hi"}, platform.NopJournal{})
			simtest.WantErr(t, err, tc.publishKind, "")
			_, err = ad.WhoAmI(context.Background(), acct)
			simtest.WantErr(t, err, tc.whoamiKind, "")
		})
	}
}

// TestVideoStreamsIntoParts uploads a video of several upload parts,
// streamed from the simulator's generated media; the simulator checks
// each part's length against its instruction.
func TestVideoStreamsIntoParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, linkedin.Config{})
	m := platform.Media{URL: e.sim.MediaURL("v.mp4") + "?bytes=9437191", Kind: platform.Video}
	if _, err := e.ad.Publish(context.Background(), e.acct, platform.Post{Text: "long video", Media: []platform.Media{m}}, &platformsim.MemJournal{}); err != nil {
		t.Fatalf("publish a 9 MiB video: %v", err)
	}
}
