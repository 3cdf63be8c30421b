package instagram_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/instagram"
)

var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const igUser = "17841400000000001"

type env struct {
	sim   *simtest.Sim
	ad    *instagram.Adapter
	acct  platform.Account
	clock *platformsim.ManualClock
}

// newEnv starts the simulator behind an optional interceptor: when the
// request path ends with interceptSuffix, the interceptor answers instead.
func newEnv(t *testing.T, cfg instagram.Config, interceptSuffix string, intercept http.HandlerFunc) *env {
	t.Helper()
	clock := platformsim.NewManualClock(start)
	opts := simtest.Options{Now: clock.Now,
		Accounts: []platformsim.Account{{Platform: "instagram", ID: igUser, Handle: "posse.sim", AccessToken: "tok-ig"}}}
	if intercept != nil {
		opts.Wrap = func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, interceptSuffix) {
					intercept(w, r)
					return
				}
				sim.ServeHTTP(w, r)
			})
		}
	}
	sim := simtest.Start(t, opts)
	cfg.GraphURL = sim.URL + "/instagram"
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	return &env{sim: sim, ad: instagram.New(cfg, sim.Client(), clock), clock: clock,
		acct: platform.Account{ID: igUser, AccessToken: "tok-ig"}}
}

func (e *env) media(names ...string) []platform.Media {
	var out []platform.Media
	for _, n := range names {
		out = append(out, platform.Media{URL: e.sim.MediaURL(n), Kind: simtest.KindOf(n), AltText: "alt " + n})
	}
	return out
}

func TestPublish(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		media     []string
		wantURL   string
		wantType  string
		minWaited time.Duration
	}{
		{"one image", []string{"a.jpg"}, "https://www.instagram.com/p/", "IMAGE", time.Second},
		{"reel", []string{"v.mp4"}, "https://www.instagram.com/reel/", "REELS", 2 * time.Second},
		{"carousel of images and a video", []string{"a.jpg", "b.jpg", "v.mp4"}, "https://www.instagram.com/p/", "CAROUSEL", 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, instagram.Config{}, "", nil)
			j := &platformsim.MemJournal{}
			p := platform.Post{Text: "caption #posse", Link: "https://example.com/p/1", Media: e.media(tc.media...)}
			res, err := e.ad.Publish(context.Background(), e.acct, p, j)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			posts := e.sim.Posts("instagram")
			if len(posts) != 1 {
				t.Fatalf("got %d recorded posts, want 1", len(posts))
			}
			got := posts[0]
			if res.ID != got.ID || res.URL != got.URL || !strings.HasPrefix(res.URL, tc.wantURL) {
				t.Errorf("got result %+v, want id %s and URL %s", res, got.ID, got.URL)
			}
			if got.Text != "caption #posse" || len(got.Media) != len(tc.media) || got.Extra["media_type"] != tc.wantType {
				t.Errorf("got %q with %d media as %s, want the caption alone with %d media as %s",
					got.Text, len(got.Media), got.Extra["media_type"], len(tc.media), tc.wantType)
			}
			if cid := j.Entries()[instagram.JournalContainer]; cid == "" || cid != got.Extra["container_id"] {
				t.Errorf("got journaled container %q, want the published one %q", cid, got.Extra["container_id"])
			}
			if waited := e.clock.Now().Sub(start); waited < tc.minWaited {
				t.Errorf("got %v of polling, want at least %v (the container was IN_PROGRESS)", waited, tc.minWaited)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := instagram.New(instagram.Config{}, simtest.NoNetwork(t), nil)
	jpg := platform.Media{URL: "https://cdn.example/a.jpg", Kind: platform.Image}
	eleven := make([]platform.Media, 11)
	for i := range eleven {
		eleven[i] = jpg
	}
	cases := []struct {
		name      string
		post      platform.Post
		wantField string
		wantIn    string
	}{
		{"ok", platform.Post{Text: "fine", Media: []platform.Media{jpg}}, "", ""},
		{"no media", platform.Post{Text: "words only"}, "media", "at least one"},
		{"png", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.png", Kind: platform.Image}}}, "media[0].mimeType", "image/jpeg"},
		{"eleven items", platform.Post{Media: eleven}, "media", "at most 10"},
		{"caption too long", platform.Post{Text: strings.Repeat("a", 2201), Media: []platform.Media{jpg}}, "text", "at most 2200"},
		{"31 hashtags", platform.Post{Text: strings.Repeat("#tag ", 31), Media: []platform.Media{jpg}}, "text", "hashtags"},
		{"21 mentions", platform.Post{Text: strings.Repeat("@friend ", 21), Media: []platform.Media{jpg}}, "text", "@-mentions"},
		{"image too large", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.jpg", Kind: platform.Image, Size: 9 << 20}}}, "media[0].size", "limit"},
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
	graphError := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	cases := []struct {
		name      string
		fault     platformsim.Fault
		intercept http.HandlerFunc // answers media_publish
		media     []string
		wantKind  apperr.Kind
		wantCode  string
		wantPCode string
		wantAfter time.Duration
		wantPosts int
	}{
		{"throttled", platformsim.Fault{Kind: platformsim.FaultRateLimit, ResetSeconds: 300}, nil, nil, apperr.KindRateLimited, "instagram.throttled", "80002", 5 * time.Minute, 0},
		{"server error on a container", platformsim.Fault{Kind: platformsim.FaultServerError}, nil, nil, apperr.KindTransient, "instagram.server_error", "2", 0, 0},
		{"server error on media_publish", platformsim.Fault{}, graphError(503, `{"error":{"code":2,"is_transient":true,"message":"busy"}}`), nil, apperr.KindAmbiguous, "instagram.server_error", "2", 0, 0},
		{"garbage from media_publish", platformsim.Fault{}, graphError(200, `<html>`), nil, apperr.KindAmbiguous, "instagram.unexpected_response", "", 0, 0},
		{"expired token", platformsim.Fault{Kind: platformsim.FaultExpiredToken}, nil, nil, apperr.KindReconnect, "instagram.token", "190/463", 0, 0},
		{"spam restriction (duplicate fault)", platformsim.Fault{Kind: platformsim.FaultDuplicate}, nil, nil, apperr.KindPermanent, "instagram.spam_restricted", "4/2207051", 0, 0},
		{"image download fails", platformsim.Fault{Kind: platformsim.FaultMediaFetch}, nil, nil, apperr.KindPermanent, "instagram.rejected", "9004/2207052", 0, 0},
		{"image URL missing", platformsim.Fault{}, nil, []string{"missing.jpg"}, apperr.KindPermanent, "instagram.rejected", "9004/2207052", 0, 0},
		{"video download fails", platformsim.Fault{Kind: platformsim.FaultMediaFetch}, nil, []string{"v.mp4"}, apperr.KindPermanent, "instagram.media_failed", "2207052", 0, 0},
		{"timeout after publish", platformsim.Fault{Kind: platformsim.FaultTimeoutAfterCreate}, nil, nil, apperr.KindAmbiguous, "instagram.no_response", "", 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, instagram.Config{}, "/media_publish", tc.intercept)
			if tc.fault.Kind != "" {
				tc.fault.Platform = "instagram"
				e.sim.AddFault(tc.fault)
			}
			media := tc.media
			if media == nil {
				media = []string{"a.jpg"}
			}
			p := platform.Post{Text: "fault: " + tc.name, Media: e.media(media...)}
			_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae := simtest.WantErr(t, err, tc.wantKind, tc.wantCode)
			if ae.RetryAfter != tc.wantAfter || ae.PlatformCode != tc.wantPCode {
				t.Errorf("got RetryAfter %v code %q, want %v %q", ae.RetryAfter, ae.PlatformCode, tc.wantAfter, tc.wantPCode)
			}
			if n := len(e.sim.Posts("instagram")); n != tc.wantPosts {
				t.Errorf("got %d recorded posts, want %d", n, tc.wantPosts)
			}
		})
	}
}

func TestPublishingLimit(t *testing.T) {
	t.Parallel()
	for _, skip := range []bool{false, true} {
		t.Run("skip check "+map[bool]string{false: "off", true: "on"}[skip], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, instagram.Config{SkipLimitCheck: skip}, "", nil)
			e.sim.SetInstagramPublishingQuota(1)
			ctx := context.Background()
			if _, err := e.ad.Publish(ctx, e.acct, platform.Post{Text: "one", Media: e.media("a.jpg")}, &platformsim.MemJournal{}); err != nil {
				t.Fatalf("first Publish: %v", err)
			}
			_, err := e.ad.Publish(ctx, e.acct, platform.Post{Text: "two", Media: e.media("a.jpg")}, &platformsim.MemJournal{})
			ae := simtest.WantErr(t, err, apperr.KindRateLimited, "instagram.publishing_limit")
			if ae.RetryAfter != time.Hour {
				t.Errorf("got RetryAfter %v, want 1h", ae.RetryAfter)
			}
		})
	}
}

func TestTimeoutThenReconcileAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, instagram.Config{}, "", nil)
	ctx := context.Background()
	e.sim.AddFault(platformsim.Fault{Platform: "instagram", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{DeliveryID: "d1", Text: "lost answer", Media: e.media("a.jpg")}
	_, err := e.ad.Publish(ctx, e.acct, p, j)
	simtest.WantErr(t, err, apperr.KindAmbiguous, "instagram.no_response")

	p.Journal = j.Entries()
	res, found, err := e.ad.Reconcile(ctx, e.acct, p)
	posts := e.sim.Posts("instagram")
	if err != nil || !found || len(posts) != 1 || res.ID != posts[0].ID || res.URL != posts[0].URL {
		t.Fatalf("Reconcile: got %+v found=%v err=%v with %d posts, want the one post", res, found, err, len(posts))
	}
	// A retry of the delivery finds the published container and posts nothing.
	res, err = e.ad.Publish(ctx, e.acct, p, j)
	if err != nil || res.ID != posts[0].ID {
		t.Fatalf("retry: got %+v, %v; want the existing post %s", res, err, posts[0].ID)
	}
	if n := len(e.sim.Posts("instagram")); n != 1 {
		t.Fatalf("got %d recorded posts, want exactly 1", n)
	}
}

func TestReconcileNotPublished(t *testing.T) {
	t.Parallel()
	failPublish := func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}
	e := newEnv(t, instagram.Config{}, "/media_publish", failPublish)
	ctx := context.Background()
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "gateway ate it", Media: e.media("a.jpg")}
	if _, found, err := e.ad.Reconcile(ctx, e.acct, p); found || err != nil {
		t.Fatalf("Reconcile without a checkpoint: got found=%v err=%v, want false, nil", found, err)
	}
	_, err := e.ad.Publish(ctx, e.acct, p, j)
	simtest.WantErr(t, err, apperr.KindAmbiguous, "instagram.server_error")
	p.Journal = j.Entries()
	if _, found, err := e.ad.Reconcile(ctx, e.acct, p); found || err != nil {
		t.Fatalf("Reconcile: got found=%v err=%v, want false, nil (the container is FINISHED, not PUBLISHED)", found, err)
	}
}

func TestResumeContainerAfterPollTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, instagram.Config{PollInterval: time.Second, PollTimeout: time.Second}, "", nil)
	ctx := context.Background()
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "slow reel", Media: e.media("v.mp4")}
	_, err := e.ad.Publish(ctx, e.acct, p, j)
	simtest.WantErr(t, err, apperr.KindTransient, "instagram.container_processing")
	cid := j.Entries()[instagram.JournalContainer]
	if cid == "" {
		t.Fatal("got no journaled container, want the one being processed")
	}
	p.Journal = j.Entries()
	if _, err := e.ad.Publish(ctx, e.acct, p, j); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	posts := e.sim.Posts("instagram")
	if len(posts) != 1 || posts[0].Extra["container_id"] != cid {
		t.Fatalf("got %d posts (container %v), want 1 from the resumed container %s", len(posts), posts, cid)
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, instagram.Config{}, "", nil)
	id, err := e.ad.WhoAmI(context.Background(), e.acct)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if id.ID != igUser || id.Handle != "posse.sim" {
		t.Fatalf("got %+v, want %s posse.sim", id, igUser)
	}
	_, err = e.ad.WhoAmI(context.Background(), platform.Account{AccessToken: "nope"})
	simtest.WantErr(t, err, apperr.KindReconnect, "instagram.token")
}

func TestUnexpectedAnswers(t *testing.T) {
	t.Parallel()
	for _, status := range []int{200, 500} {
		ad := instagram.New(instagram.Config{GraphURL: simtest.Answer(t, status, "<html>?</html>").URL}, nil, nil)
		acct := platform.Account{ID: igUser, AccessToken: "t"}
		p := platform.Post{Text: "hi", Media: []platform.Media{{URL: "https://cdn.example/a.jpg", Kind: platform.Image}}}
		want := map[int]apperr.Kind{200: apperr.KindPermanent, 500: apperr.KindTransient}[status]
		_, err := ad.Publish(context.Background(), acct, p, platform.NopJournal{})
		simtest.WantErr(t, err, want, "")
		_, err = ad.WhoAmI(context.Background(), acct)
		simtest.WantErr(t, err, want, "")
		_, _, err = ad.Reconcile(context.Background(), acct, platform.Post{Journal: map[string]string{instagram.JournalContainer: "1"}})
		simtest.WantErr(t, err, map[int]apperr.Kind{200: apperr.KindAmbiguous, 500: apperr.KindTransient}[status], "")
	}
}

func TestStripCodeSuffix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"AQBx#_": "AQBx", "AQBx": "AQBx", "": ""} {
		if got := instagram.StripCodeSuffix(in); got != want {
			t.Errorf("StripCodeSuffix(%q): got %q, want %q", in, got, want)
		}
	}
}
