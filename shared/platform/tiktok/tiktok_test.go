package tiktok_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/tiktok"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

const openID = "-000a1b2c3d"

type env struct {
	sim  *simtest.Sim
	acct platform.Account
	clk  *platformsim.ManualClock
}

func newEnv(t *testing.T, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	sim := simtest.Start(t, simtest.Options{Now: func() time.Time { return t0 }, Wrap: wrap,
		Accounts: []platformsim.Account{{Platform: "tiktok", ID: openID, Handle: "creator1", AccessToken: "act.tok"}}})
	return &env{sim: sim, clk: platformsim.NewManualClock(t0), acct: platform.Account{ID: openID, Handle: "creator1", AccessToken: "act.tok"}}
}

func (e *env) adapter(cfg tiktok.Config) *tiktok.Adapter {
	cfg.BaseURL = e.sim.URL + "/tiktok"
	cfg.PollInterval = time.Second
	cfg.Media = e.sim.MediaClient()
	return tiktok.New(cfg, e.sim.Client(), e.clk)
}

func (e *env) media(names ...string) []platform.Media {
	var out []platform.Media
	for _, n := range names {
		out = append(out, platform.Media{URL: e.sim.MediaURL(n), Kind: simtest.KindOf(n)})
	}
	return out
}

func opts(level string) map[string]string { return map[string]string{"privacy_level": level} }

func TestPublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        tiktok.Config
		post       platform.Post
		media      []string
		wantPostID bool // a public post gets its post id
		wantKind   string
		wantSource string
	}{
		{name: "public video by URL", post: platform.Post{Text: "my video #fyp", Options: opts("PUBLIC_TO_EVERYONE")}, media: []string{"v.mp4"}, wantPostID: true, wantKind: "video", wantSource: "PULL_FROM_URL"},
		{name: "private video by URL", post: platform.Post{Text: "just me", Options: opts("SELF_ONLY")}, media: []string{"v.mp4"}, wantKind: "video", wantSource: "PULL_FROM_URL"},
		{name: "video by file upload", cfg: tiktok.Config{VideoSource: tiktok.SourceFileUpload}, post: platform.Post{Text: "uploaded", Options: opts("PUBLIC_TO_EVERYONE")}, media: []string{"v.mp4"}, wantPostID: true, wantKind: "video", wantSource: "FILE_UPLOAD"},
		{name: "photos", post: platform.Post{Title: "Trip", Text: "Three photos", Options: map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE", "disable_comment": "true"}}, media: []string{"a.jpg", "b.jpg", "c.jpg"}, wantPostID: true, wantKind: "photo", wantSource: "PULL_FROM_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			ad := e.adapter(tt.cfg)
			p := tt.post
			p.Media = e.media(tt.media...)
			if probs := ad.Validate(p); len(probs) != 0 {
				t.Fatalf("Validate: got %v, want none", probs)
			}
			j := &platformsim.MemJournal{}
			res, err := ad.Publish(context.Background(), e.acct, p, j)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			posts := e.sim.Posts("tiktok")
			if len(posts) != 1 {
				t.Fatalf("recorded posts: got %d, want 1", len(posts))
			}
			got := posts[0]
			if pid := j.Entries()[tiktok.JournalPublishID]; pid == "" || pid != got.Extra["publish_id"] {
				t.Errorf("journaled publish_id: got %q, want %q", pid, got.Extra["publish_id"])
			}
			if tt.wantPostID {
				if res.ID != got.ID || res.URL != "https://www.tiktok.com/@creator1/"+tt.wantKind+"/"+got.ID {
					t.Errorf("result: got %+v, want post %s as a %s", res, got.ID, tt.wantKind)
				}
			} else if res.ID != got.Extra["publish_id"] || res.URL != "" {
				t.Errorf("result: got %+v, want the publish_id and no URL (private posts have no public id)", res)
			}
			wantText := p.Text
			if got.Text != wantText || got.AccountID != openID || len(got.Media) != len(tt.media) || got.Extra["source"] != tt.wantSource ||
				got.Extra["privacy_level"] != p.Options["privacy_level"] || got.Extra["title"] != map[bool]string{true: p.Title, false: p.Text}[tt.wantKind == "photo"] {
				t.Errorf("recorded: got %+v, want text %q, %d media, source %s", got, wantText, len(tt.media), tt.wantSource)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := tiktok.New(tiktok.Config{}, simtest.NoNetwork(t), nil)
	vid := platform.Media{URL: "https://cdn.example/v.mp4", Kind: platform.Video}
	img := platform.Media{URL: "https://cdn.example/a.jpg", Kind: platform.Image}
	photos := make([]platform.Media, 36)
	for i := range photos {
		photos[i] = img
	}
	pub := opts("PUBLIC_TO_EVERYONE")
	tests := []struct {
		name string
		post platform.Post
		want []string
	}{
		{name: "ok video", post: platform.Post{Text: strings.Repeat("a", 2200), Media: []platform.Media{vid}, Options: pub}},
		{name: "ok photo description", post: platform.Post{Text: strings.Repeat("a", 4000), Title: strings.Repeat("t", 90), Media: []platform.Media{img}, Options: pub}},
		{name: "privacy_level missing", post: platform.Post{Media: []platform.Media{vid}}, want: []string{"options.privacy_level"}},
		{name: "privacy_level unknown", post: platform.Post{Media: []platform.Media{vid}, Options: opts("public")}, want: []string{"options.privacy_level"}},
		{name: "text only", post: platform.Post{Text: "hi", Options: pub}, want: []string{"media"}},
		{name: "caption over 2200 UTF-16", post: platform.Post{Text: strings.Repeat("😀", 1101), Media: []platform.Media{vid}, Options: pub}, want: []string{"text"}},
		{name: "photo title over 90", post: platform.Post{Title: strings.Repeat("t", 91), Media: []platform.Media{img}, Options: pub}, want: []string{"title"}},
		{name: "photo description over 4000", post: platform.Post{Text: strings.Repeat("a", 4001), Media: []platform.Media{img}, Options: pub}, want: []string{"text"}},
		{name: "36 photos", post: platform.Post{Media: photos, Options: pub}, want: []string{"media"}},
		{name: "video and photo", post: platform.Post{Media: []platform.Media{vid, img}, Options: pub}, want: []string{"media"}},
		{name: "two videos", post: platform.Post{Media: []platform.Media{vid, vid}, Options: pub}, want: []string{"media"}},
		{name: "png photo", post: platform.Post{Media: []platform.Media{{URL: "https://cdn.example/a.png", Kind: platform.Image, MIMEType: "image/png"}}, Options: pub}, want: []string{"media[0].mimeType"}},
		{name: "bad switch", post: platform.Post{Media: []platform.Media{vid}, Options: map[string]string{"privacy_level": "SELF_ONLY", "disable_duet": "yes"}}, want: []string{"options.disable_duet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			simtest.WantFields(t, ad.Validate(tt.post), tt.want)
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     platformsim.Fault
		privacy   []string
		media     []string
		mediaURL  string
		wantKind  apperr.Kind
		wantCode  string
		wantRetry time.Duration
	}{
		{name: "rate limit", fault: platformsim.Fault{Kind: platformsim.FaultRateLimit}, wantKind: apperr.KindRateLimited, wantCode: "rate_limit_exceeded", wantRetry: time.Minute},
		{name: "server error before init", fault: platformsim.Fault{Kind: platformsim.FaultServerError}, wantKind: apperr.KindTransient, wantCode: "internal_error"},
		{name: "expired token", fault: platformsim.Fault{Kind: platformsim.FaultExpiredToken}, wantKind: apperr.KindReconnect, wantCode: "access_token_invalid"},
		{name: "video pull fails", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, wantKind: apperr.KindTransient, wantCode: "video_pull_failed"},
		{name: "photo pull fails", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, media: []string{"a.jpg", "b.jpg"}, wantKind: apperr.KindTransient, wantCode: "photo_pull_failed"},
		{name: "video URL missing", media: []string{"missing.mp4"}, wantKind: apperr.KindTransient, wantCode: "video_pull_failed"},
		{name: "privacy option mismatch", privacy: []string{"SELF_ONLY"}, wantKind: apperr.KindPermanent, wantCode: "privacy_level_option_mismatch"},
		{name: "unverified URL", mediaURL: "https://unverified.example/v.mp4", wantKind: apperr.KindPermanent, wantCode: "url_ownership_unverified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			if tt.fault.Kind != "" {
				tt.fault.Platform = "tiktok"
				e.sim.AddFault(tt.fault)
			}
			if tt.privacy != nil {
				e.sim.SetTikTokPrivacyOptions(openID, tt.privacy...)
			}
			media := tt.media
			if media == nil {
				media = []string{"v.mp4"}
			}
			p := platform.Post{Text: "x", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media(media...)}
			if tt.mediaURL != "" {
				p.Media[0].URL = tt.mediaURL
			}
			_, err := e.adapter(tiktok.Config{}).Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok {
				t.Fatalf("error: got %v, want *apperr.Error", err)
			}
			if ae.Kind != tt.wantKind || ae.PlatformCode != tt.wantCode || ae.RetryAfter != tt.wantRetry || ae.Platform != "tiktok" {
				t.Errorf("got kind %s code %q retry %s, want %s %q %s (%v)", ae.Kind, ae.PlatformCode, ae.RetryAfter, tt.wantKind, tt.wantCode, tt.wantRetry, err)
			}
			if n := len(e.sim.Posts("tiktok")); n != 0 {
				t.Errorf("recorded posts: got %d, want 0", n)
			}
		})
	}
}

func TestTimeoutAfterInitThenReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ad := e.adapter(tiktok.Config{})
	e.sim.AddFault(platformsim.Fault{Platform: "tiktok", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "lost answer", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media("v.mp4")}
	_, err := ad.Publish(context.Background(), e.acct, p, j)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Fatalf("Publish: got kind %s (%v), want ambiguous", k, err)
	}
	p.Journal = j.Entries()
	if p.Journal[tiktok.JournalPublishID] != "" || p.Journal[tiktok.JournalInitSent] == "" {
		t.Fatalf("journal: got %v, want init_sent and no publish_id", p.Journal)
	}
	res, found, err := ad.Reconcile(context.Background(), e.acct, p)
	if err != nil || !found {
		t.Fatalf("Reconcile: got found=%v err=%v, want found", found, err)
	}
	posts := e.sim.Posts("tiktok")
	if len(posts) != 1 || res.ID != posts[0].ID {
		t.Errorf("posts: got %d (result %+v), want exactly 1 with the reconciled id", len(posts), res)
	}
}

func TestTimeoutOnLastChunkThenReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ad := e.adapter(tiktok.Config{VideoSource: tiktok.SourceFileUpload})
	e.sim.AddFault(platformsim.Fault{Platform: "tiktok", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "uploaded", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media("v.mp4")}
	_, err := ad.Publish(context.Background(), e.acct, p, j)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Fatalf("Publish: got kind %s (%v), want ambiguous", k, err)
	}
	p.Journal = j.Entries()
	var res platform.Result
	found := false
	for i := 0; i < 5 && !found; i++ { // the status moves on with each fetch
		res, found, err = ad.Reconcile(context.Background(), e.acct, p)
		if err != nil && apperr.KindOf(err) != apperr.KindTransient {
			t.Fatalf("Reconcile: %v", err)
		}
	}
	posts := e.sim.Posts("tiktok")
	// Complete without a public id yet gives the publish_id.
	if !found || len(posts) != 1 || (res.ID != posts[0].ID && res.ID != posts[0].Extra["publish_id"]) {
		t.Errorf("got found=%v result %+v, %d posts; want the one post", found, res, len(posts))
	}
}

func TestServerErrorOnInitAndStatus(t *testing.T) {
	t.Parallel()
	var failInit, failStatus atomic.Bool
	e := newEnv(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if (failInit.Load() && strings.HasSuffix(r.URL.Path, "/video/init/")) || (failStatus.Load() && strings.HasSuffix(r.URL.Path, "/status/fetch/")) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"data":{},"error":{"code":"internal_error","message":"oops","log_id":"1"}}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ad := e.adapter(tiktok.Config{})

	failInit.Store(true)
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "init 500", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media("v.mp4")}
	_, err := ad.Publish(context.Background(), e.acct, p, j)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Errorf("init 500: got kind %s (%v), want ambiguous", k, err)
	}
	p.Journal = j.Entries()
	if _, found, err := ad.Reconcile(context.Background(), e.acct, p); found || apperr.KindOf(err) != apperr.KindAmbiguous {
		t.Errorf("Reconcile after init 500: got found=%v err=%v, want ambiguous (nothing visible)", found, err)
	}
	failInit.Store(false)

	failStatus.Store(true)
	j = &platformsim.MemJournal{}
	p = platform.Post{Text: "status 500", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media("v.mp4")}
	_, err = ad.Publish(context.Background(), e.acct, p, j)
	if ae, ok := apperr.As(err); !ok || ae.Kind != apperr.KindAmbiguous || ae.PlatformCode != "internal_error" {
		t.Errorf("status 500 after init: got %v, want ambiguous internal_error", err)
	}
	failStatus.Store(false)
	p.Journal = j.Entries()
	var found bool
	for i := 0; i < 5 && !found; i++ {
		_, found, _ = ad.Reconcile(context.Background(), e.acct, p)
	}
	if !found {
		t.Errorf("Reconcile after status 500: got not found, want found")
	}
	if n := len(e.sim.Posts("tiktok")); n != 1 {
		t.Errorf("recorded posts: got %d, want 1", n)
	}
}

func TestReconcileNeverSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, found, err := e.adapter(tiktok.Config{}).Reconcile(context.Background(), e.acct, platform.Post{Text: "x"})
	if err != nil || found {
		t.Errorf("got found=%v err=%v, want not found, nil", found, err)
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id, err := e.adapter(tiktok.Config{}).WhoAmI(context.Background(), e.acct)
	if err != nil || id.ID != openID || id.Handle != "creator1" {
		t.Errorf("WhoAmI: got %+v %v, want %s creator1", id, err, openID)
	}
	bad := e.acct
	bad.AccessToken = "act.nope"
	if _, err := e.adapter(tiktok.Config{}).WhoAmI(context.Background(), bad); apperr.KindOf(err) != apperr.KindReconnect {
		t.Errorf("bad token: got %v, want reconnect", err)
	}
}

func TestUnexpectedResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind apperr.Kind
	}{
		{name: "garbage 200", status: 200, body: "]]]", wantKind: apperr.KindPermanent},
		{name: "200 without envelope", status: 200, body: `{"hello":"world"}`, wantKind: apperr.KindPermanent},
		{name: "html 502", status: 502, body: "<html>bad gateway</html>", wantKind: apperr.KindTransient},
		{name: "unknown code", status: 400, body: `{"data":{},"error":{"code":"brand_new_error","message":"?","log_id":"1"},"access_token":"act.secret"}`, wantKind: apperr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := simtest.Answer(t, tt.status, tt.body)
			ad := tiktok.New(tiktok.Config{BaseURL: srv.URL}, srv.Client(), platformsim.NewManualClock(t0))
			acct := platform.Account{ID: "x", AccessToken: "t"}
			p := platform.Post{Options: opts("SELF_ONLY"), Media: []platform.Media{{URL: srv.URL + "/v.mp4", Kind: platform.Video}}}
			_, err := ad.Publish(context.Background(), acct, p, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok || ae.Kind != tt.wantKind {
				t.Fatalf("Publish: got %v, want kind %s", err, tt.wantKind)
			}
			if strings.Contains(ae.Redacted, "act.secret") {
				t.Errorf("redacted body leaks a token: %q", ae.Redacted)
			}
			if _, err := ad.WhoAmI(context.Background(), acct); err == nil || apperr.KindOf(err) == apperr.KindInternal {
				t.Errorf("WhoAmI: got %v, want a typed error", err)
			}
			p.Journal = map[string]string{tiktok.JournalPublishID: "v_pub_url~1"}
			if _, _, err := ad.Reconcile(context.Background(), acct, p); err == nil || apperr.KindOf(err) == apperr.KindInternal {
				t.Errorf("Reconcile: got %v, want a typed error", err)
			}
		})
	}
}

// TestFileUploadStreamsChunks uploads a video of several chunks streamed
// from the simulator's generated media; the simulator checks every
// Content-Range and body length.
func TestFileUploadStreamsChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ad := e.adapter(tiktok.Config{VideoSource: tiktok.SourceFileUpload, ChunkSize: 5 << 20})
	m := platform.Media{URL: e.sim.MediaURL("v.mp4") + "?bytes=27262979", Kind: platform.Video}
	if _, err := ad.Publish(context.Background(), e.acct, platform.Post{Text: "long", Options: opts("PUBLIC_TO_EVERYONE"), Media: []platform.Media{m}}, &platformsim.MemJournal{}); err != nil {
		t.Fatalf("publish a 26 MiB video in 5 MiB chunks: %v", err)
	}
}

// TestCutDownloadOnTheLastChunkIsNotAmbiguous: when the media download
// breaks during the last chunk, that chunk never completed, so TikTok
// cannot have taken it: the failure is the download's (transient), not an
// ambiguous publish.
func TestCutDownloadOnTheLastChunkIsNotAmbiguous(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/_sim/media/cut.mp4" {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "video/mp4")
			w.Header().Set("Content-Length", strconv.Itoa(12<<20))
			_, _ = w.Write(make([]byte, 6<<20)) // then the connection ends short
		})
	})
	ad := e.adapter(tiktok.Config{VideoSource: tiktok.SourceFileUpload, ChunkSize: 5 << 20})
	p := platform.Post{Text: "cut", Options: opts("PUBLIC_TO_EVERYONE"), Media: e.media("cut.mp4")}
	_, err := ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	simtest.WantErr(t, err, apperr.KindTransient, "media_fetch")
	if n := len(e.sim.Posts("tiktok")); n != 0 {
		t.Errorf("posts: got %d, want 0", n)
	}
}
