package threads_test

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
	"github.com/posse-dev/posse/shared/platform/threads"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

type env struct {
	sim  *simtest.Sim
	ad   *threads.Adapter
	acct platform.Account
}

const uid = "17841400000000001"

// newEnv starts the simulator behind wrap (nil: as is).
func newEnv(t *testing.T, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	sim := simtest.Start(t, simtest.Options{Now: func() time.Time { return t0 }, Wrap: wrap,
		Accounts: []platformsim.Account{{Platform: "threads", ID: uid, Handle: "alice_th", AccessToken: "tok-th"}}})
	ad := threads.New(threads.Config{BaseURL: sim.URL + "/threads", PollInterval: time.Millisecond}, sim.Client(), simtest.NewStoppedClock(t0))
	return &env{sim: sim, ad: ad, acct: platform.Account{ID: uid, Handle: "alice_th", AccessToken: "tok-th"}}
}

func (e *env) media(name string) platform.Media {
	return platform.Media{URL: e.sim.MediaURL(name), Kind: simtest.KindOf(name), AltText: "alt"}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		post     platform.Post
		media    []string
		wantType string
	}{
		{name: "text", post: platform.Post{Text: "Hello Threads"}, wantType: "TEXT"},
		{name: "text with link", post: platform.Post{Text: "New post", Link: "https://example.com/p/1"}, wantType: "TEXT"},
		{name: "emoji text at the limit", post: platform.Post{Text: strings.Repeat("😀", 125)}, wantType: "TEXT"},
		{name: "image", post: platform.Post{Text: "pic"}, media: []string{"a.jpg"}, wantType: "IMAGE"},
		{name: "video", post: platform.Post{Text: "film"}, media: []string{"v.mp4"}, wantType: "VIDEO"},
		{name: "carousel", post: platform.Post{Text: "album"}, media: []string{"a.jpg", "b.png", "v.mp4"}, wantType: "CAROUSEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			p := tt.post
			for _, m := range tt.media {
				p.Media = append(p.Media, e.media(m))
			}
			if probs := e.ad.Validate(p); len(probs) != 0 {
				t.Fatalf("Validate: got %v, want none", probs)
			}
			j := &platformsim.MemJournal{}
			res, err := e.ad.Publish(context.Background(), e.acct, p, j)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			posts := e.sim.Posts("threads")
			if len(posts) != 1 {
				t.Fatalf("recorded posts: got %d, want 1", len(posts))
			}
			got := posts[0]
			if res.ID != got.ID || res.URL != got.URL || !strings.Contains(res.URL, "/@alice_th/post/") {
				t.Errorf("result: got %+v, want id %s url %s", res, got.ID, got.URL)
			}
			if got.Text != p.Text || got.AccountID != uid || len(got.Media) != len(tt.media) || got.Extra["media_type"] != tt.wantType {
				t.Errorf("recorded: got %+v, want text %q, %d media, type %s", got, p.Text, len(tt.media), tt.wantType)
			}
			if got.Extra["link_attachment"] != p.Link {
				t.Errorf("link_attachment: got %q, want %q", got.Extra["link_attachment"], p.Link)
			}
			if c := j.Entries()[threads.JournalContainerID]; c == "" || c != got.Extra["container_id"] {
				t.Errorf("journaled container: got %q, want %q", c, got.Extra["container_id"])
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := threads.New(threads.Config{}, simtest.NoNetwork(t), nil)
	img := platform.Media{URL: "https://example.com/a.jpg", Kind: platform.Image}
	many := make([]platform.Media, 21)
	for i := range many {
		many[i] = img
	}
	sixLinks := "a https://a.example b https://b.example c https://c.example d https://d.example e https://e.example f https://f.example"
	tests := []struct {
		name string
		post platform.Post
		want []string
	}{
		{name: "ok", post: platform.Post{Text: strings.Repeat("a", 500)}},
		{name: "empty", post: platform.Post{}, want: []string{"text"}},
		{name: "501 chars", post: platform.Post{Text: strings.Repeat("a", 501)}, want: []string{"text"}},
		{name: "emoji count as bytes", post: platform.Post{Text: strings.Repeat("😀", 126)}, want: []string{"text"}},
		{name: "six links", post: platform.Post{Text: sixLinks}, want: []string{"text"}},
		{name: "five links plus attachment", post: platform.Post{Text: "https://a.example https://b.example https://c.example https://d.example https://e.example", Link: "https://f.example"}, want: []string{"text"}},
		{name: "21 media", post: platform.Post{Text: "x", Media: many}, want: []string{"media"}},
		{name: "gif", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "https://example.com/a.gif", Kind: platform.Image, MIMEType: "image/gif"}}}, want: []string{"media[0].mimeType"}},
		{name: "bad kind", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "https://example.com/a", Kind: "doc"}}}, want: []string{"media[0].kind"}},
		{name: "not a URL", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "/local/a.jpg", Kind: platform.Image}}}, want: []string{"media[0].url"}},
		{name: "too large", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "https://example.com/a.jpg", Kind: platform.Image, Size: 9 << 20}}}, want: []string{"media[0].size"}},
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
	sixLinks := "https://a.example https://b.example https://c.example https://d.example https://e.example https://f.example"
	tests := []struct {
		name      string
		fault     platformsim.Fault
		text      string
		media     string
		wantKind  apperr.Kind
		wantCode  string
		wantRetry time.Duration
	}{
		{name: "rate limit", fault: platformsim.Fault{Kind: platformsim.FaultRateLimit, ResetSeconds: 120}, wantKind: apperr.KindRateLimited, wantCode: "17", wantRetry: 2 * time.Minute},
		{name: "server error before publish", fault: platformsim.Fault{Kind: platformsim.FaultServerError}, wantKind: apperr.KindTransient, wantCode: "2"},
		{name: "expired token", fault: platformsim.Fault{Kind: platformsim.FaultExpiredToken}, wantKind: apperr.KindReconnect, wantCode: "190/463"},
		{name: "duplicate", fault: platformsim.Fault{Kind: platformsim.FaultDuplicate}, wantKind: apperr.KindPermanent, wantCode: "506"},
		{name: "media download fails", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, media: "v.mp4", wantKind: apperr.KindTransient, wantCode: "FAILED_DOWNLOADING_VIDEO"},
		{name: "media URL missing", media: "missing.jpg", wantKind: apperr.KindTransient, wantCode: "UNKNOWN"},
		{name: "link limit", text: sixLinks, wantKind: apperr.KindPermanent, wantCode: threads.LinkLimitCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			if tt.fault.Kind != "" {
				tt.fault.Platform = "threads"
				e.sim.AddFault(tt.fault)
			}
			p := platform.Post{Text: "hello"}
			if tt.text != "" {
				p.Text = tt.text
			}
			if tt.media != "" {
				p.Media = []platform.Media{e.media(tt.media)}
			}
			_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok {
				t.Fatalf("error: got %v, want *apperr.Error", err)
			}
			if ae.Kind != tt.wantKind || ae.PlatformCode != tt.wantCode || ae.RetryAfter != tt.wantRetry || ae.Platform != "threads" {
				t.Errorf("got kind %s code %q retry %s, want %s %q %s (%v)", ae.Kind, ae.PlatformCode, ae.RetryAfter, tt.wantKind, tt.wantCode, tt.wantRetry, err)
			}
			if n := len(e.sim.Posts("threads")); n != 0 {
				t.Errorf("recorded posts: got %d, want 0", n)
			}
		})
	}
}

func TestTimeoutAfterPublishThenReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.sim.AddFault(platformsim.Fault{Platform: "threads", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "lost answer", Media: []platform.Media{e.media("a.jpg")}}
	_, err := e.ad.Publish(context.Background(), e.acct, p, j)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Fatalf("Publish: got kind %s (%v), want ambiguous", k, err)
	}
	p.Journal = j.Entries()
	res, found, err := e.ad.Reconcile(context.Background(), e.acct, p)
	if err != nil || !found {
		t.Fatalf("Reconcile: got found=%v err=%v, want found", found, err)
	}
	posts := e.sim.Posts("threads")
	if len(posts) != 1 {
		t.Fatalf("recorded posts: got %d, want exactly 1", len(posts))
	}
	if res.ID != posts[0].ID || res.URL != posts[0].URL {
		t.Errorf("reconciled: got %+v, want id %s url %s", res, posts[0].ID, posts[0].URL)
	}
}

func TestServerErrorOnPublishIsAmbiguousAndReconcilesNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/threads_publish") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"error":{"message":"An unknown error occurred","type":"OAuthException","code":1,"is_transient":true}}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	j := &platformsim.MemJournal{}
	p := platform.Post{Text: "maybe"}
	_, err := e.ad.Publish(context.Background(), e.acct, p, j)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Fatalf("Publish: got kind %s (%v), want ambiguous", k, err)
	}
	p.Journal = j.Entries()
	if _, found, err := e.ad.Reconcile(context.Background(), e.acct, p); err != nil || found {
		t.Errorf("Reconcile: got found=%v err=%v, want not found (container still FINISHED)", found, err)
	}
	if _, found, err := e.ad.Reconcile(context.Background(), e.acct, platform.Post{Text: "never sent"}); err != nil || found {
		t.Errorf("Reconcile without container: got found=%v err=%v, want not found", found, err)
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id, err := e.ad.WhoAmI(context.Background(), e.acct)
	if err != nil || id.ID != uid || id.Handle != "alice_th" {
		t.Errorf("WhoAmI: got %+v %v, want %s alice_th", id, err, uid)
	}
	bad := e.acct
	bad.AccessToken = "nope"
	if _, err := e.ad.WhoAmI(context.Background(), bad); apperr.KindOf(err) != apperr.KindReconnect {
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
		{name: "garbage 200", status: 200, body: "not json at all", wantKind: apperr.KindPermanent},
		{name: "200 without id", status: 200, body: `{"data":[]}`, wantKind: apperr.KindPermanent},
		{name: "html 503", status: 503, body: "<html>down</html>", wantKind: apperr.KindTransient},
		{name: "unknown graph code", status: 400, body: `{"error":{"message":"odd","code":99999},"access_token":"EAAB-secret"}`, wantKind: apperr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := simtest.Answer(t, tt.status, tt.body)
			ad := threads.New(threads.Config{BaseURL: srv.URL}, srv.Client(), simtest.NewStoppedClock(t0))
			acct := platform.Account{ID: "1", AccessToken: "t"}
			_, err := ad.Publish(context.Background(), acct, platform.Post{Text: "x"}, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok || ae.Kind != tt.wantKind {
				t.Fatalf("Publish: got %v, want kind %s", err, tt.wantKind)
			}
			if strings.Contains(ae.Redacted, "EAAB-secret") {
				t.Errorf("redacted body leaks a token: %q", ae.Redacted)
			}
			if _, err := ad.WhoAmI(context.Background(), acct); err == nil || apperr.KindOf(err) == apperr.KindInternal {
				t.Errorf("WhoAmI: got %v, want a typed error", err)
			}
			_, _, err = ad.Reconcile(context.Background(), acct, platform.Post{Journal: map[string]string{threads.JournalContainerID: "1"}})
			if err == nil || apperr.KindOf(err) == apperr.KindInternal {
				t.Errorf("Reconcile: got %v, want a typed error", err)
			}
		})
	}
}
