package x_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/x"
)

// start is where test clocks stand: a whole second, so epoch reset headers
// convert to exact waits.
var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type env struct {
	sim   *simtest.Sim
	ad    *x.Adapter
	acct  platform.Account
	clock *platformsim.ManualClock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := platformsim.NewManualClock(start)
	sim := simtest.Start(t, simtest.Options{Now: clock.Now,
		Accounts: []platformsim.Account{{Platform: "x", ID: "1001", Handle: "posse_sim", AccessToken: "tok-x"}}})
	ad := x.New(x.Config{BaseURL: sim.URL + "/x", ChunkSize: 1000, Media: sim.MediaClient()}, sim.Client(), clock)
	return &env{sim: sim, ad: ad, clock: clock,
		acct: platform.Account{ID: "1001", Handle: "posse_sim", AccessToken: "tok-x"}}
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
	}{
		{"text", func(*env) platform.Post { return platform.Post{Text: "hello from POSSE"} }, "hello from POSSE", 0},
		{"text and link", func(*env) platform.Post {
			return platform.Post{Text: "new post", Link: "https://example.com/p/1"}
		}, "new post\n\nhttps://example.com/p/1", 0},
		{"link already in text", func(*env) platform.Post {
			return platform.Post{Text: "read https://example.com/p/1", Link: "https://example.com/p/1"}
		}, "read https://example.com/p/1", 0},
		{"one image", func(e *env) platform.Post {
			return platform.Post{Text: "pic", Media: []platform.Media{e.media("a.jpg", platform.Image)}}
		}, "pic", 1},
		{"four images", func(e *env) platform.Post {
			m := []platform.Media{e.media("a.jpg", platform.Image), e.media("b.png", platform.Image),
				e.media("c.jpg", platform.Image), e.media("d.png", platform.Image)}
			return platform.Post{Text: "pics", Media: m}
		}, "pics", 4},
		{"gif in chunks", func(e *env) platform.Post {
			return platform.Post{Text: "gif", Media: []platform.Media{e.media("a.gif", platform.Image)}}
		}, "gif", 1},
		{"video in chunks with processing", func(e *env) platform.Post {
			return platform.Post{Media: []platform.Media{e.media("v.mp4", platform.Video)}}
		}, "", 1},
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
			posts := e.sim.Posts("x")
			if len(posts) != 1 {
				t.Fatalf("got %d recorded posts, want 1", len(posts))
			}
			got := posts[0]
			if res.ID != got.ID || res.URL != "https://x.com/posse_sim/status/"+got.ID {
				t.Errorf("got result %+v, want id %s and its x.com URL", res, got.ID)
			}
			if got.Text != tc.wantText || len(got.Media) != tc.wantMedia || got.AccountID != "1001" {
				t.Errorf("got post %q with %d media as %s, want %q with %d media as 1001", got.Text, len(got.Media), got.AccountID, tc.wantText, tc.wantMedia)
			}
			if strings.HasSuffix(tc.name, "with processing") && e.clock.Now().Sub(start) < 2*time.Second {
				t.Errorf("got %v waited, want the STATUS polls to wait check_after_secs (2 s in all)", e.clock.Now().Sub(start))
			}
			if j.Entries()[x.JournalSent] == "" {
				t.Errorf("got no %s checkpoint, want one before the post", x.JournalSent)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := x.New(x.Config{}, simtest.NoNetwork(t), platformsim.NewManualClock(start))
	img := func(u string) platform.Media {
		return platform.Media{URL: "https://cdn.example/" + u, Kind: platform.Image}
	}
	vid := platform.Media{URL: "https://cdn.example/v.mp4", Kind: platform.Video}
	cases := []struct {
		name      string
		post      platform.Post
		wantField string
		wantIn    string
	}{
		{"ok", platform.Post{Text: "fine"}, "", ""},
		{"empty", platform.Post{}, "text", "needs text or media"},
		{"over the limit", platform.Post{Text: strings.Repeat("a", 281)}, "text", "limit is 280"},
		{"link pushes it over", platform.Post{Text: strings.Repeat("a", 270), Link: "https://example.com/x"}, "text", "limit is 280"},
		{"five images", platform.Post{Media: []platform.Media{img("1.jpg"), img("2.jpg"), img("3.jpg"), img("4.jpg"), img("5.jpg")}}, "media", "at most 4"},
		{"video with an image", platform.Post{Media: []platform.Media{vid, img("1.jpg")}}, "media", "only media item"},
		{"gif with an image", platform.Post{Media: []platform.Media{img("a.gif"), img("1.jpg")}}, "media", "only media item"},
		{"unsupported type", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a", Kind: platform.Image, MIMEType: "image/bmp"}}}, "media[0].mimeType", "image/bmp"},
		{"image too large", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.jpg", Kind: platform.Image, Size: 6 << 20}}}, "media[0].size", "limit"},
		{"unknown kind", platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.mp3", Kind: "audio"}}}, "media[0].kind", "image or video"},
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
		media     string
		wantKind  apperr.Kind
		wantCode  string
		wantAfter time.Duration
		wantPosts int
	}{
		{"rate limited", platformsim.Fault{Kind: platformsim.FaultRateLimit, ResetSeconds: 120}, "", apperr.KindRateLimited, "x.rate_limited", 120 * time.Second, 0},
		{"credits depleted", platformsim.Fault{Kind: platformsim.FaultCreditsDepleted}, "", apperr.KindRateLimited, "x.credits_depleted", time.Hour, 0},
		// X sends the 15-minute window's headers on every answer; the
		// user's 24-hour cap is what is used up here.
		{"24-hour user cap", platformsim.Fault{Kind: platformsim.FaultUserCap24h, ResetSeconds: 20_000}, "", apperr.KindRateLimited, "x.daily_cap", 20_000 * time.Second, 0},
		{"server error on the post", platformsim.Fault{Kind: platformsim.FaultServerError}, "", apperr.KindAmbiguous, "x.server_error", 0, 0},
		{"server error on an upload", platformsim.Fault{Kind: platformsim.FaultServerError}, "a.jpg", apperr.KindTransient, "x.server_error", 0, 0},
		{"expired token", platformsim.Fault{Kind: platformsim.FaultExpiredToken}, "", apperr.KindReconnect, "x.unauthorized", 0, 0},
		{"duplicate", platformsim.Fault{Kind: platformsim.FaultDuplicate}, "", apperr.KindPermanent, "x.duplicate", 0, 0},
		{"video processing fails", platformsim.Fault{Kind: platformsim.FaultMediaFetch}, "v.mp4", apperr.KindPermanent, "x.media_failed", 0, 0},
		{"media URL missing", platformsim.Fault{}, "missing.jpg", apperr.KindPermanent, "media_fetch", 0, 0},
		{"timeout after create", platformsim.Fault{Kind: platformsim.FaultTimeoutAfterCreate}, "", apperr.KindAmbiguous, "x.no_response", 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.fault.Kind != "" {
				tc.fault.Platform = "x"
				e.sim.AddFault(tc.fault)
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
			if ae.Platform != "x" && tc.wantCode != "media_fetch" {
				t.Errorf("got Platform %q, want x", ae.Platform)
			}
			if n := len(e.sim.Posts("x")); n != tc.wantPosts {
				t.Errorf("got %d recorded posts, want %d", n, tc.wantPosts)
			}
		})
	}
}

func TestTimeoutThenReconcileAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.sim.AddFault(platformsim.Fault{Platform: "x", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{DeliveryID: "d1", Text: "lost answer"}
	_, err := e.ad.Publish(ctx, e.acct, p, j)
	simtest.WantErr(t, err, apperr.KindAmbiguous, "x.no_response")

	// Before anything was sent, Reconcile can say "not published".
	if _, found, err := e.ad.Reconcile(ctx, e.acct, p); found || err != nil {
		t.Fatalf("Reconcile without a checkpoint: got found=%v err=%v, want false, nil", found, err)
	}
	// After the send, X cannot tell.
	p.Journal = j.Entries()
	_, found, err := e.ad.Reconcile(ctx, e.acct, p)
	if found {
		t.Fatal("Reconcile: got found=true, want false")
	}
	simtest.WantErr(t, err, apperr.KindAmbiguous, "x.cannot_reconcile")

	// A person retries: X calls it a duplicate, which means it was posted.
	_, err = e.ad.Publish(ctx, e.acct, p, j)
	simtest.WantErr(t, err, apperr.KindAmbiguous, "x.probably_posted")
	if n := len(e.sim.Posts("x")); n != 1 {
		t.Fatalf("got %d recorded posts, want exactly 1", n)
	}
}

func TestJournalFailureStopsBeforeSending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.ad.Publish(context.Background(), e.acct, platform.Post{Text: "hi"}, &platformsim.MemJournal{Fail: errors.New("ddb down")})
	simtest.WantErr(t, err, apperr.KindTransient, "x.journal")
	if n := len(e.sim.Posts("x")); n != 0 {
		t.Fatalf("got %d recorded posts, want 0", n)
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := e.ad.WhoAmI(context.Background(), e.acct)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if id.ID != "1001" || id.Handle != "posse_sim" {
		t.Fatalf("got %+v, want id 1001 handle posse_sim", id)
	}
	_, err = e.ad.WhoAmI(context.Background(), platform.Account{AccessToken: "nope"})
	simtest.WantErr(t, err, apperr.KindReconnect, "x.unauthorized")
}

func TestUnexpectedAnswers(t *testing.T) {
	t.Parallel()
	const garbage = "<html>not json access_token=abcdefgh12345</html>"
	closedURL := simtest.ClosedURL(t)
	cases := []struct {
		name        string
		url         func(t *testing.T) string
		publishKind apperr.Kind
		whoamiKind  apperr.Kind
	}{
		{"200 garbage", func(t *testing.T) string { return simtest.Answer(t, 200, garbage).URL }, apperr.KindAmbiguous, apperr.KindPermanent},
		{"502 garbage", func(t *testing.T) string { return simtest.Answer(t, 502, garbage).URL }, apperr.KindAmbiguous, apperr.KindTransient},
		{"418 garbage", func(t *testing.T) string { return simtest.Answer(t, 418, garbage).URL }, apperr.KindPermanent, apperr.KindPermanent},
		{"connection refused", func(*testing.T) string { return closedURL }, apperr.KindTransient, apperr.KindTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ad := x.New(x.Config{BaseURL: tc.url(t)}, nil, platformsim.NewManualClock(start))
			acct := platform.Account{ID: "1", AccessToken: "t"}
			_, err := ad.Publish(context.Background(), acct, platform.Post{Text: "hi"}, platform.NopJournal{})
			e := simtest.WantErr(t, err, tc.publishKind, "")
			if strings.Contains(e.Redacted, "abcdefgh12345") {
				t.Errorf("got Redacted %q, want the token removed", e.Redacted)
			}
			_, err = ad.WhoAmI(context.Background(), acct)
			simtest.WantErr(t, err, tc.whoamiKind, "")
		})
	}
}

// gzipSeen records whether the answer to POST /2/tweets came gzip-encoded
// and was decoded by the transport.
type gzipSeen struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen bool
}

func (g *gzipSeen) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/2/tweets") {
		g.mu.Lock()
		g.seen = resp.Uncompressed
		g.mu.Unlock()
	}
	return resp, err
}

// TestPublishGzipAnswer publishes against the simulator answering the
// create call gzip-encoded with Location and edit_history_tweet_ids, as the
// recorded exchanges do: Go's client asks for gzip and decodes it, and the
// adapter reads the id from the decoded body.
func TestPublishGzipAnswer(t *testing.T) {
	t.Parallel()
	clock := platformsim.NewManualClock(start)
	sim := simtest.Start(t, simtest.Options{Now: clock.Now,
		Accounts: []platformsim.Account{{Platform: "x", ID: "1001", Handle: "posse_sim", AccessToken: "tok-x"}}})
	rt := &gzipSeen{next: sim.Client().Transport}
	ad := x.New(x.Config{BaseURL: sim.URL + "/x"}, &http.Client{Transport: rt}, clock)
	res, err := ad.Publish(context.Background(), platform.Account{ID: "1001", Handle: "posse_sim", AccessToken: "tok-x"},
		platform.Post{Text: "compressed"}, &platformsim.MemJournal{})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	rt.mu.Lock()
	seen := rt.seen
	rt.mu.Unlock()
	if !seen {
		t.Fatalf("got a plain answer to POST /2/tweets, want the simulator to gzip it as X does")
	}
	posts := sim.Posts("x")
	if len(posts) != 1 || res.ID != posts[0].ID || res.URL != "https://x.com/posse_sim/status/"+posts[0].ID {
		t.Fatalf("got result %+v with posts %+v, want the one recorded post's id and URL", res, posts)
	}
}

// TestVideoStreamsInChunks publishes a video larger than several chunks,
// served by the simulator as a stream: the segments must add up to the
// file (the simulator refuses FINALIZE otherwise).
func TestVideoStreamsInChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ad := x.New(x.Config{BaseURL: e.sim.URL + "/x", ChunkSize: 1 << 20, Media: e.sim.MediaClient()}, e.sim.Client(), e.clock)
	for _, q := range []string{"?bytes=5242897", "?bytes=5242897&unsized=1"} {
		p := platform.Post{Text: "big video " + q, Media: []platform.Media{{URL: e.sim.MediaURL("v.mp4") + q, Kind: platform.Video}}}
		if _, err := ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{}); err != nil {
			t.Fatalf("publish %s: %v", q, err)
		}
	}
	if n := len(e.sim.Posts("x")); n != 2 {
		t.Errorf("posts: got %d, want 2", n)
	}
}

// TestMediaURLOutsideThePolicyIsRefused: with the default media client
// (public addresses only) a media URL on loopback is refused before
// anything is uploaded to X.
func TestMediaURLOutsideThePolicyIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ad := x.New(x.Config{BaseURL: e.sim.URL + "/x"}, e.sim.Client(), e.clock)
	p := platform.Post{Text: "v", Media: []platform.Media{e.media("v.mp4", platform.Video)}}
	_, err := ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	simtest.WantErr(t, err, apperr.KindPermanent, "media_blocked")
	if n := len(e.sim.Posts("x")); n != 0 {
		t.Errorf("posts: got %d, want 0", n)
	}
}

// TestRefusedTokenNamesTheError: X's 401 is a problem of type
// "about:blank" (RFC 7807's "no type"); the platform code a broken
// connection records must be its title, not "about:blank" (found by the
// fault soak).
func TestRefusedTokenNamesTheError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sim.AddFault(platformsim.Fault{Platform: "x", Kind: platformsim.FaultExpiredToken})
	_, err := e.ad.Publish(context.Background(), e.acct, platform.Post{Text: "refused"}, &platformsim.MemJournal{})
	ae := simtest.WantErr(t, err, apperr.KindReconnect, "x.unauthorized")
	if ae.PlatformCode == "" || ae.PlatformCode == "about:blank" {
		t.Errorf("platform code: got %q, want X's title", ae.PlatformCode)
	}
}
