package facebook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/facebook"
)

var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const pageID = "555000111"

type env struct {
	sim  *simtest.Sim
	ad   *facebook.Adapter
	acct platform.Account
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := platformsim.NewManualClock(start)
	sim := simtest.Start(t, simtest.Options{Now: clock.Now,
		Accounts: []platformsim.Account{{Platform: "facebook", ID: pageID, Handle: "Sim Page", AccessToken: "tok-page"}}})
	ad := facebook.New(facebook.Config{GraphURL: sim.URL + "/facebook"}, sim.Client(), clock)
	return &env{sim: sim, ad: ad, acct: platform.Account{ID: pageID, AccessToken: "tok-page"}}
}

func (e *env) media(name string, kind platform.MediaKind) platform.Media {
	return platform.Media{URL: e.sim.MediaURL(name), Kind: kind}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		post      func(e *env) platform.Post
		wantText  string
		wantMedia int
		wantLink  string
		wantURL   string // prefix
	}{
		{"text", func(*env) platform.Post { return platform.Post{Text: "hello Page"} }, "hello Page", 0, "", "https://www.facebook.com/" + pageID + "/posts/"},
		{"text and link card", func(*env) platform.Post {
			return platform.Post{Text: "new post", Link: "https://example.com/p/1"}
		}, "new post", 0, "https://example.com/p/1", "https://www.facebook.com/" + pageID + "/posts/"},
		{"one photo, link into the caption", func(e *env) platform.Post {
			return platform.Post{Text: "pic", Link: "https://example.com/p/2", Media: []platform.Media{e.media("a.jpg", platform.Image)}}
		}, "pic\n\nhttps://example.com/p/2", 1, "", "https://www.facebook.com/" + pageID + "/posts/"},
		{"three photos", func(e *env) platform.Post {
			m := []platform.Media{e.media("a.jpg", platform.Image), e.media("b.png", platform.Image), e.media("c.jpg", platform.Image)}
			return platform.Post{Text: "album", Media: m}
		}, "album", 3, "", "https://www.facebook.com/" + pageID + "/posts/"},
		{"video", func(e *env) platform.Post {
			return platform.Post{Text: "clip", Title: "A clip", Media: []platform.Media{e.media("v.mp4", platform.Video)}}
		}, "clip", 1, "", "https://www.facebook.com/" + pageID + "/videos/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			j := &platformsim.MemJournal{}
			res, err := e.ad.Publish(context.Background(), e.acct, tc.post(e), j)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			posts := e.sim.Posts("facebook")
			if len(posts) != 1 {
				t.Fatalf("got %d recorded posts, want 1", len(posts))
			}
			got := posts[0]
			if res.ID == "" || !strings.HasPrefix(res.URL, tc.wantURL) {
				t.Errorf("got result %+v, want an id and a URL starting %s", res, tc.wantURL)
			}
			if got.Text != tc.wantText || len(got.Media) != tc.wantMedia || got.Extra["link"] != tc.wantLink || got.AccountID != pageID {
				t.Errorf("got post %q, %d media, link %q, page %s; want %q, %d, %q, %s",
					got.Text, len(got.Media), got.Extra["link"], got.AccountID, tc.wantText, tc.wantMedia, tc.wantLink, pageID)
			}
			if j.Entries()[facebook.JournalSentAt] == "" {
				t.Errorf("got no %s checkpoint, want one before the publishing call", facebook.JournalSentAt)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := facebook.New(facebook.Config{}, simtest.NoNetwork(t), nil)
	img := platform.Media{URL: "https://cdn.example/a.jpg", Kind: platform.Image}
	vid := platform.Media{URL: "https://cdn.example/v.mp4", Kind: platform.Video}
	many := make([]platform.Media, 11)
	for i := range many {
		many[i] = img
	}
	cases := []struct {
		name      string
		post      platform.Post
		wantField string
		wantIn    string
	}{
		{"ok", platform.Post{Text: "fine"}, "", ""},
		{"link only", platform.Post{Link: "https://example.com"}, "", ""},
		{"empty", platform.Post{}, "text", "needs text"},
		{"over the limit", platform.Post{Text: strings.Repeat("a", 63207)}, "text", "at most 63206"},
		{"eleven photos", platform.Post{Media: many}, "media", "limit is 10"},
		{"photo and video", platform.Post{Media: []platform.Media{img, vid}}, "media", "not both"},
		{"two videos", platform.Post{Media: []platform.Media{vid, vid}}, "media", "1 per post"},
		{"webp photo", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.webp", Kind: platform.Image}}}, "media[0].mimeType", "image/webp"},
		{"photo too large", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.jpg", Kind: platform.Image, Size: 5 << 20}}}, "media[0].size", "limit"},
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
		fault     platformsim.Fault
		media     []string
		wantKind  apperr.Kind
		wantCode  string
		wantPCode string
		wantAfter time.Duration
		wantPosts int
	}{
		{"throttled", platformsim.Fault{Kind: platformsim.FaultRateLimit, ResetSeconds: 90}, nil, apperr.KindRateLimited, "facebook.throttled", "80001", 2 * time.Minute, 0},
		{"server error on the post", platformsim.Fault{Kind: platformsim.FaultServerError}, nil, apperr.KindAmbiguous, "facebook.server_error", "2", 0, 0},
		{"server error on an album upload", platformsim.Fault{Kind: platformsim.FaultServerError}, []string{"a.jpg", "b.jpg"}, apperr.KindTransient, "facebook.server_error", "2", 0, 0},
		{"expired token", platformsim.Fault{Kind: platformsim.FaultExpiredToken}, nil, apperr.KindReconnect, "facebook.token", "190/463", 0, 0},
		{"duplicate", platformsim.Fault{Kind: platformsim.FaultDuplicate}, nil, apperr.KindPermanent, "facebook.duplicate", "506", 0, 0},
		{"photo fetch fails", platformsim.Fault{Kind: platformsim.FaultMediaFetch}, []string{"a.jpg"}, apperr.KindPermanent, "facebook.rejected", "324", 0, 0},
		{"photo URL missing", platformsim.Fault{}, []string{"missing.jpg"}, apperr.KindPermanent, "facebook.rejected", "324", 0, 0},
		{"video fetch fails", platformsim.Fault{Kind: platformsim.FaultMediaFetch}, []string{"v.mp4"}, apperr.KindPermanent, "facebook.rejected", "389", 0, 0},
		{"timeout after create", platformsim.Fault{Kind: platformsim.FaultTimeoutAfterCreate}, nil, apperr.KindAmbiguous, "facebook.no_response", "", 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.fault.Kind != "" {
				tc.fault.Platform = "facebook"
				e.sim.AddFault(tc.fault)
			}
			p := platform.Post{Text: "fault: " + tc.name}
			for _, name := range tc.media {
				kind := platform.Image
				if strings.HasSuffix(name, ".mp4") {
					kind = platform.Video
				}
				p.Media = append(p.Media, e.media(name, kind))
			}
			_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae := simtest.WantErr(t, err, tc.wantKind, tc.wantCode)
			if ae.RetryAfter != tc.wantAfter || ae.PlatformCode != tc.wantPCode {
				t.Errorf("got RetryAfter %v code %q, want %v %q", ae.RetryAfter, ae.PlatformCode, tc.wantAfter, tc.wantPCode)
			}
			if n := len(e.sim.Posts("facebook")); n != tc.wantPosts {
				t.Errorf("got %d recorded posts, want %d", n, tc.wantPosts)
			}
		})
	}
}

func TestDuplicateOfPreviousPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := platform.Post{Text: "same words"}
	if _, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{}); err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	simtest.WantErr(t, err, apperr.KindPermanent, "facebook.duplicate")
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fault     platformsim.FaultKind
		media     string
		wantFound bool
	}{
		{"timeout after the feed post", platformsim.FaultTimeoutAfterCreate, "", true},
		{"timeout after a photo", platformsim.FaultTimeoutAfterCreate, "a.jpg", true},
		{"timeout after a video", platformsim.FaultTimeoutAfterCreate, "v.mp4", true},
		{"server error: nothing posted", platformsim.FaultServerError, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			e.sim.AddFault(platformsim.Fault{Platform: "facebook", Kind: tc.fault})
			p := platform.Post{DeliveryID: "d1", Text: "reconcile me"}
			if tc.media != "" {
				kind := platform.Image
				if strings.HasSuffix(tc.media, ".mp4") {
					kind = platform.Video
				}
				p.Media = []platform.Media{e.media(tc.media, kind)}
			}
			j := &platformsim.MemJournal{}
			_, err := e.ad.Publish(ctx, e.acct, p, j)
			simtest.WantErr(t, err, apperr.KindAmbiguous, "")
			if _, found, err := e.ad.Reconcile(ctx, e.acct, p); found || err != nil {
				t.Fatalf("Reconcile without a checkpoint: got found=%v err=%v, want false, nil", found, err)
			}
			p.Journal = j.Entries()
			res, found, err := e.ad.Reconcile(ctx, e.acct, p)
			if err != nil || found != tc.wantFound {
				t.Fatalf("Reconcile: got found=%v err=%v, want found=%v", found, err, tc.wantFound)
			}
			posts := e.sim.Posts("facebook")
			if tc.wantFound && (len(posts) != 1 || res.ID != posts[0].ID || res.URL != posts[0].URL) {
				t.Fatalf("got %d posts and result %+v, want exactly 1 post, found by id and URL", len(posts), res)
			}
			if !tc.wantFound && len(posts) != 0 {
				t.Fatalf("got %d posts, want 0", len(posts))
			}
		})
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := e.ad.WhoAmI(context.Background(), e.acct)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if id.ID != pageID || id.Name != "Sim Page" {
		t.Fatalf("got %+v, want %s Sim Page", id, pageID)
	}
	_, err = e.ad.WhoAmI(context.Background(), platform.Account{AccessToken: "nope"})
	simtest.WantErr(t, err, apperr.KindReconnect, "facebook.token")
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
		{"200 garbage", 200, "<html>", apperr.KindAmbiguous, apperr.KindPermanent},
		{"200 without id", 200, `{"ok": true}`, apperr.KindAmbiguous, apperr.KindPermanent},
		{"500 garbage", 500, "<html>oops</html>", apperr.KindAmbiguous, apperr.KindTransient},
		{"400 without error object", 400, `{"nope": 1}`, apperr.KindPermanent, apperr.KindPermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ad := facebook.New(facebook.Config{GraphURL: simtest.Answer(t, tc.status, tc.body).URL}, nil, nil)
			acct := platform.Account{ID: pageID, AccessToken: "t"}
			_, err := ad.Publish(context.Background(), acct, platform.Post{Text: "hi"}, platform.NopJournal{})
			simtest.WantErr(t, err, tc.publishKind, "")
			_, err = ad.WhoAmI(context.Background(), acct)
			simtest.WantErr(t, err, tc.whoamiKind, "")
		})
	}
}
