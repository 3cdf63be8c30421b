package mastodon_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/mastodon"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

type env struct {
	sim   *simtest.Sim
	ad    *mastodon.Adapter
	acct  platform.Account
	clock *simtest.StoppedClock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := simtest.NewStoppedClock(t0)
	sim := simtest.Start(t, simtest.Options{Now: c.Now,
		Accounts: []platformsim.Account{{Platform: "mastodon", ID: "109", Handle: "alice", AccessToken: "tok-alice"}}})
	ad := mastodon.New(mastodon.Config{MediaPollInterval: time.Millisecond, Media: sim.MediaClient()}, sim.Client(), c)
	return &env{sim: sim, ad: ad, clock: c,
		acct: platform.Account{ID: "109", Handle: "alice", AccessToken: "tok-alice", BaseURL: sim.URL + "/mastodon"}}
}

func (e *env) media(name string, kind platform.MediaKind) platform.Media {
	return platform.Media{URL: e.sim.MediaURL(name), Kind: kind, AltText: "alt " + name}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		text      string
		media     []string
		opts      map[string]string
		wantMedia int
	}{
		{name: "text", text: "Hello from POSSE"},
		{name: "text with link", text: "New post: https://example.com/posts/1"},
		{name: "one image", text: "A picture", media: []string{"a.jpg"}, wantMedia: 1},
		{name: "four images", text: "Pictures", media: []string{"a.jpg", "b.png", "c.jpg", "d.jpg"}, wantMedia: 4},
		{name: "video", text: "A film", media: []string{"v.mp4"}, wantMedia: 1},
		{name: "unlisted with spoiler", text: "Spoilers", opts: map[string]string{"visibility": "unlisted", "spoiler_text": "cw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := platform.Post{DeliveryID: "dlv-" + tt.name, Text: tt.text, Options: tt.opts}
			for _, m := range tt.media {
				p.Media = append(p.Media, e.media(m, simtest.KindOf(m)))
			}
			if probs := e.ad.Validate(p); len(probs) != 0 {
				t.Fatalf("Validate: got %v, want no problems", probs)
			}
			res, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			if err != nil {
				t.Fatalf("Publish: got error %v, want nil", err)
			}
			posts := e.sim.Posts("mastodon")
			if len(posts) != 1 {
				t.Fatalf("recorded posts: got %d, want 1", len(posts))
			}
			got := posts[0]
			if res.ID != got.ID || res.URL != got.URL || res.URL == "" {
				t.Errorf("result: got %+v, want id %q url %q", res, got.ID, got.URL)
			}
			if got.Text != tt.text || got.AccountID != "109" || len(got.Media) != tt.wantMedia {
				t.Errorf("recorded: got text %q account %q media %d, want %q 109 %d", got.Text, got.AccountID, len(got.Media), tt.text, tt.wantMedia)
			}
			if got.Extra["idempotency_key"] != p.DeliveryID {
				t.Errorf("idempotency key: got %q, want %q", got.Extra["idempotency_key"], p.DeliveryID)
			}
			if v := tt.opts["visibility"]; v != "" && got.Extra["visibility"] != v {
				t.Errorf("visibility: got %q, want %q", got.Extra["visibility"], v)
			}
		})
	}
}

func TestPublishRetryIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := platform.Post{DeliveryID: "dlv-1", Text: "once"}
	r1, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	if err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	r2, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	if err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	if r1 != r2 {
		t.Errorf("results: got %+v and %+v, want the same status", r1, r2)
	}
	if n := len(e.sim.Posts("mastodon")); n != 1 {
		t.Errorf("recorded posts: got %d, want 1", n)
	}
}

// failTransport fails the test on any request: Validate must not use the network.
func TestValidate(t *testing.T) {
	t.Parallel()
	ad := mastodon.New(mastodon.Config{}, simtest.NoNetwork(t), nil)
	img := platform.Media{URL: "http://127.0.0.1/a.jpg", Kind: platform.Image}
	vid := platform.Media{URL: "http://127.0.0.1/v.mp4", Kind: platform.Video}
	tests := []struct {
		name string
		post platform.Post
		want []string // fields
	}{
		{name: "ok", post: platform.Post{Text: "hi"}},
		{name: "empty", post: platform.Post{}, want: []string{"text"}},
		{name: "over limit", post: platform.Post{Text: strings.Repeat("a", 501)}, want: []string{"text"}},
		{name: "URL counts 23", post: platform.Post{Text: strings.Repeat("a", 470) + " https://example.com/" + strings.Repeat("x", 100)}},
		{name: "spoiler counts", post: platform.Post{Text: strings.Repeat("a", 490), Options: map[string]string{"spoiler_text": strings.Repeat("b", 20)}}, want: []string{"text"}},
		{name: "too many media", post: platform.Post{Text: "x", Media: []platform.Media{img, img, img, img, img}}, want: []string{"media"}},
		{name: "video with images", post: platform.Post{Text: "x", Media: []platform.Media{vid, img}}, want: []string{"media"}},
		{name: "bad kind", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "http://127.0.0.1/a", Kind: "audio"}}}, want: []string{"media[0].kind"}},
		{name: "unsupported type", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "http://127.0.0.1/a.tiff", Kind: platform.Image, MIMEType: "image/tiff"}}}, want: []string{"media[0].mimeType"}},
		{name: "too large", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "http://127.0.0.1/a.jpg", Kind: platform.Image, Size: 17 << 20}}}, want: []string{"media[0].size"}},
		{name: "bad visibility", post: platform.Post{Text: "x", Options: map[string]string{"visibility": "friends"}}, want: []string{"options.visibility"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			probs := ad.Validate(tt.post)
			var got []string
			for _, p := range probs {
				got = append(got, p.Field)
				if p.Message == "" {
					t.Errorf("problem %q has no message", p.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("fields: got %v, want %v (%v)", got, tt.want, probs)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     platformsim.Fault
		media     string
		wantKind  apperr.Kind
		wantRetry time.Duration
		wantHTTP  int
	}{
		{name: "rate limit", fault: platformsim.Fault{Kind: platformsim.FaultRateLimit, ResetSeconds: 90}, wantKind: apperr.KindRateLimited, wantRetry: 90 * time.Second, wantHTTP: 429},
		{name: "server error", fault: platformsim.Fault{Kind: platformsim.FaultServerError}, wantKind: apperr.KindTransient, wantHTTP: 503},
		{name: "server error on upload", fault: platformsim.Fault{Kind: platformsim.FaultServerError, Status: 502}, media: "a.jpg", wantKind: apperr.KindTransient, wantHTTP: 502},
		{name: "expired token", fault: platformsim.Fault{Kind: platformsim.FaultExpiredToken}, wantKind: apperr.KindReconnect, wantHTTP: 401},
		{name: "media processing fails (image)", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, media: "a.jpg", wantKind: apperr.KindPermanent, wantHTTP: 422},
		{name: "media processing fails (video)", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, media: "v.mp4", wantKind: apperr.KindPermanent, wantHTTP: 422},
		{name: "media URL missing", media: "missing.jpg", wantKind: apperr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.fault.Kind != "" {
				tt.fault.Platform = "mastodon"
				e.sim.AddFault(tt.fault)
			}
			p := platform.Post{DeliveryID: "d", Text: "hello"}
			if tt.media != "" {
				kind := platform.Image
				if strings.HasSuffix(tt.media, ".mp4") {
					kind = platform.Video
				}
				p.Media = []platform.Media{e.media(tt.media, kind)}
			}
			_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok {
				t.Fatalf("error: got %v, want *apperr.Error", err)
			}
			if ae.Kind != tt.wantKind || ae.RetryAfter != tt.wantRetry || ae.HTTPStatus != tt.wantHTTP {
				t.Errorf("got kind %s retry %s status %d, want %s %s %d (%v)", ae.Kind, ae.RetryAfter, ae.HTTPStatus, tt.wantKind, tt.wantRetry, tt.wantHTTP, err)
			}
			if ae.Platform != "mastodon" {
				t.Errorf("platform: got %q, want mastodon", ae.Platform)
			}
			if n := len(e.sim.Posts("mastodon")); n != 0 {
				t.Errorf("recorded posts: got %d, want 0", n)
			}
		})
	}
}

func TestTimeoutAfterCreateThenReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// net/http replays a request that carries an Idempotency-Key when a
	// reused connection drops; without keep-alives the drop surfaces.
	tr := e.sim.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	e.ad = mastodon.New(mastodon.Config{MediaPollInterval: time.Millisecond, Media: e.sim.MediaClient()}, &http.Client{Transport: tr}, e.clock)
	e.sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultTimeoutAfterCreate})
	j := &platformsim.MemJournal{}
	p := platform.Post{DeliveryID: "dlv-timeout", Text: "lost answer", Media: []platform.Media{e.media("a.jpg", platform.Image)}}
	_, err := e.ad.Publish(context.Background(), e.acct, p, j)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Fatalf("Publish: got kind %s (%v), want ambiguous", k, err)
	}
	e.clock.Advance(10 * time.Minute)
	p.Journal = j.Entries()
	res, found, err := e.ad.Reconcile(context.Background(), e.acct, p)
	if err != nil || !found {
		t.Fatalf("Reconcile: got found=%v err=%v, want found", found, err)
	}
	posts := e.sim.Posts("mastodon")
	if len(posts) != 1 {
		t.Fatalf("recorded posts: got %d, want exactly 1", len(posts))
	}
	if res.ID != posts[0].ID || len(posts[0].Media) != 1 {
		t.Errorf("reconciled: got %+v (media %d), want id %q with 1 media", res, len(posts[0].Media), posts[0].ID)
	}
	if n := e.sim.Calls("mastodon", "idempotent_replay"); n != 1 {
		t.Errorf("idempotent replays: got %d, want 1", n)
	}
}

func TestReconcileWithoutAttemptOrPastWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, found, err := e.ad.Reconcile(context.Background(), e.acct, platform.Post{DeliveryID: "d", Text: "x"})
	if err != nil || found {
		t.Errorf("no attempt: got found=%v err=%v, want not found, nil", found, err)
	}
	old := platform.Post{DeliveryID: "d", Text: "x", Journal: map[string]string{mastodon.JournalFirstSentAt: t0.Add(-2 * time.Hour).Format(time.RFC3339Nano)}}
	_, _, err = e.ad.Reconcile(context.Background(), e.acct, old)
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Errorf("past window: got kind %s, want ambiguous", k)
	}
	if n := len(e.sim.Posts("mastodon")); n != 0 {
		t.Errorf("recorded posts: got %d, want 0", n)
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := e.ad.WhoAmI(context.Background(), e.acct)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	host := strings.TrimPrefix(e.sim.URL, "http://")
	if id.ID != "109" || id.Handle != "alice@"+host {
		t.Errorf("identity: got %+v, want id 109 handle alice@%s", id, host)
	}

	bad := e.acct
	bad.AccessToken = "nope"
	if _, err := e.ad.WhoAmI(context.Background(), bad); apperr.KindOf(err) != apperr.KindReconnect {
		t.Errorf("bad token: got %v, want reconnect", err)
	}

	deadURL := simtest.ClosedURL(t)
	gone := e.acct
	gone.BaseURL = deadURL
	_, err = e.ad.WhoAmI(context.Background(), gone)
	ae, ok := apperr.As(err)
	if !ok || ae.Kind != apperr.KindInvalid || ae.Code != "mastodon.instance_unreachable" || !strings.Contains(ae.Message, strings.TrimPrefix(deadURL, "http://")) {
		t.Errorf("unreachable: got %v, want invalid mastodon.instance_unreachable naming the instance", err)
	}
}

func TestInstanceLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sim.SetMastodonMaxCharacters(1000)
	l, err := e.ad.InstanceLimits(context.Background(), e.acct.BaseURL)
	if err != nil {
		t.Fatalf("InstanceLimits: %v", err)
	}
	if l.MaxCharacters != 1000 || l.MaxMediaAttachments != 4 || l.CharactersReservedPerURL != 23 || l.ImageSizeLimit != 16<<20 {
		t.Errorf("limits: got %+v, want 1000 chars, 4 media, 23 per URL, 16 MiB images", l)
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
		{name: "garbage 200", status: 200, body: "<<<not json", wantKind: apperr.KindAmbiguous},
		{name: "200 without id", status: 200, body: `{"url":"x"}`, wantKind: apperr.KindAmbiguous},
		{name: "garbage 500", status: 500, body: "<html>oops", wantKind: apperr.KindTransient},
		{name: "odd 418", status: 418, body: `{"error":"teapot","access_token":"secret-value"}`, wantKind: apperr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := simtest.Answer(t, tt.status, tt.body)
			ad := mastodon.New(mastodon.Config{}, srv.Client(), nil)
			acct := platform.Account{ID: "1", AccessToken: "t", BaseURL: srv.URL}
			_, err := ad.Publish(context.Background(), acct, platform.Post{DeliveryID: "d", Text: "x"}, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok || ae.Kind != tt.wantKind {
				t.Fatalf("Publish: got %v, want kind %s", err, tt.wantKind)
			}
			if strings.Contains(ae.Redacted, "secret-value") {
				t.Errorf("redacted body leaks a token: %q", ae.Redacted)
			}
			if _, err := ad.WhoAmI(context.Background(), acct); apperr.KindOf(err) == apperr.KindInternal {
				t.Errorf("WhoAmI: got untyped error %v", err)
			}
		})
	}
}

// With keep-alives, net/http itself replays a request carrying an
// Idempotency-Key when the reused connection drops; the instance answers
// with the status it created, so the publish succeeds with one post.
func TestDroppedAnswerIsReplayedByTransport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.ad.WhoAmI(context.Background(), e.acct); err != nil { // warm a keep-alive connection
		t.Fatalf("WhoAmI: %v", err)
	}
	e.sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultTimeoutAfterCreate})
	res, err := e.ad.Publish(context.Background(), e.acct, platform.Post{DeliveryID: "dlv-replay", Text: "once"}, &platformsim.MemJournal{})
	posts := e.sim.Posts("mastodon")
	switch {
	case err == nil && (len(posts) != 1 || res.ID != posts[0].ID):
		t.Errorf("got %+v with %d posts, want the one recorded post", res, len(posts))
	case err != nil && apperr.KindOf(err) != apperr.KindAmbiguous:
		t.Errorf("got %v, want success (replayed) or ambiguous", err)
	case len(posts) != 1:
		t.Errorf("recorded posts: got %d, want 1", len(posts))
	}
}

// TestRateLimitWindows publishes into the instance's exhausted windows:
// the statuses family (300 per 3 h) and the media throttle (30 per
// 30 min) are fixed windows, so the delivery waits until the window's end
// the instance reports, not the adapter's 5-minute default.
func TestRateLimitWindows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits platformsim.MastodonLimits
		post   func(e *env, n int) platform.Post
		want   time.Duration
	}{
		{"statuses family", platformsim.MastodonLimits{Statuses: 1},
			func(_ *env, n int) platform.Post {
				return platform.Post{DeliveryID: fmt.Sprintf("dlv-%d", n), Text: fmt.Sprintf("status %d", n)}
			},
			time.Hour + 39*time.Minute + 30*time.Second}, // 10:20:30.25 → 12:00:00.25
		{"media throttle", platformsim.MastodonLimits{Media: 1},
			func(e *env, n int) platform.Post {
				return platform.Post{DeliveryID: fmt.Sprintf("dlv-%d", n), Text: "pic", Media: []platform.Media{e.media("a.jpg", platform.Image)}}
			},
			9*time.Minute + 30*time.Second}, // 10:20:30.25 → 10:30:00.25
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.clock.Advance(20*time.Minute + 30*time.Second + 250*time.Millisecond)
			e.sim.SetMastodonLimits(tt.limits)
			if _, err := e.ad.Publish(context.Background(), e.acct, tt.post(e, 1), &platformsim.MemJournal{}); err != nil {
				t.Fatalf("first Publish: %v", err)
			}
			_, err := e.ad.Publish(context.Background(), e.acct, tt.post(e, 2), &platformsim.MemJournal{})
			ae := simtest.WantErr(t, err, apperr.KindRateLimited, "mastodon.rate_limited")
			if ae.RetryAfter != tt.want || ae.HTTPStatus != http.StatusTooManyRequests {
				t.Errorf("got retry after %v (HTTP %d), want %v until the window's end (429)", ae.RetryAfter, ae.HTTPStatus, tt.want)
			}
			if n := len(e.sim.Posts("mastodon")); n != 1 {
				t.Errorf("got %d statuses, want 1", n)
			}
		})
	}
}

// countingTransport counts requests whose path contains part.
type countingTransport struct {
	next http.RoundTripper
	part string
	n    atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, c.part) && r.Method == http.MethodGet {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// TestFirstMediaPollReady publishes a video whose upload answers 202 and
// whose first status read already answers 200, as real instances do for
// quick uploads: one poll, then the status.
func TestFirstMediaPollReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sim.SetMastodonMediaPolls(0)
	ct := &countingTransport{next: e.sim.Client().Transport, part: "/api/v1/media/"}
	ad := mastodon.New(mastodon.Config{MediaPollInterval: time.Millisecond, Media: e.sim.MediaClient()}, &http.Client{Transport: ct}, e.clock)
	p := platform.Post{DeliveryID: "dlv-video", Text: "A film", Media: []platform.Media{e.media("v.mp4", platform.Video)}}
	if _, err := ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := ct.n.Load(); got != 1 {
		t.Errorf("got %d media polls, want 1 (the first answered 200)", got)
	}
	if posts := e.sim.Posts("mastodon"); len(posts) != 1 || len(posts[0].Media) != 1 {
		t.Errorf("got posts %+v, want one status with the video", posts)
	}
}

// TestVisibilityDefaultsToAccount checks the adapter sends no visibility
// unless the target asks for one, so the status takes the account's own
// default (verify_credentials' source.privacy) as on the instance.
func TestVisibilityDefaultsToAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "110", Handle: "quiet", AccessToken: "tok-quiet", Privacy: "private"})
	acct := platform.Account{ID: "110", Handle: "quiet", AccessToken: "tok-quiet", BaseURL: e.acct.BaseURL}
	for _, tt := range []struct {
		name string
		opts map[string]string
		want string
	}{
		{"no option", nil, "private"},
		{"explicit", map[string]string{"visibility": "public"}, "public"},
	} {
		p := platform.Post{DeliveryID: "dlv-vis-" + tt.name, Text: "vis " + tt.name, Options: tt.opts}
		res, err := e.ad.Publish(context.Background(), acct, p, &platformsim.MemJournal{})
		if err != nil {
			t.Fatalf("%s: Publish: %v", tt.name, err)
		}
		for _, got := range e.sim.Posts("mastodon") {
			if got.ID == res.ID && got.Extra["visibility"] != tt.want {
				t.Errorf("%s: got visibility %q, want %q", tt.name, got.Extra["visibility"], tt.want)
			}
		}
	}
}

// onlyHost refuses, and records, any request to a host other than host,
// so a test proves which calls left for the instance an account names.
type onlyHost struct {
	host    string
	next    http.RoundTripper
	mu      sync.Mutex
	refused []string
}

func (o *onlyHost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != o.host {
		o.mu.Lock()
		o.refused = append(o.refused, r.URL.Host)
		o.mu.Unlock()
		return nil, fmt.Errorf("request to %s refused by the test", r.URL.Host)
	}
	return o.next.RoundTrip(r)
}

func (o *onlyHost) refusedHosts() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.refused)
}

// TestInstanceOverride routes an account on https://mastodon.social to the
// simulator, as the local stack does: every call (identify, limits,
// publish, reconcile, metrics) goes to the override, and the handle still
// names the account's own instance.
func TestInstanceOverride(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, _ := url.Parse(e.sim.URL)
	guard := &onlyHost{host: sim.Host, next: e.sim.Client().Transport}
	ad := mastodon.New(mastodon.Config{InstanceOverride: e.sim.URL + "/mastodon/", MediaPollInterval: time.Millisecond, Media: e.sim.MediaClient()}, &http.Client{Transport: guard}, e.clock)
	acct := e.acct
	acct.BaseURL = "https://mastodon.social"
	ctx := context.Background()

	id, err := ad.WhoAmI(ctx, acct)
	if err != nil || id.ID != "109" || id.Handle != "alice@mastodon.social" {
		t.Fatalf("WhoAmI: got %+v %v, want id 109 handle alice@mastodon.social", id, err)
	}
	if l, err := ad.InstanceLimits(ctx, acct.BaseURL); err != nil || l.MaxCharacters != 500 {
		t.Fatalf("InstanceLimits: got %+v %v, want the simulator's 500", l, err)
	}
	j := &platformsim.MemJournal{}
	p := platform.Post{DeliveryID: "dlv-routed", Text: "from any instance", Media: []platform.Media{e.media("a.jpg", platform.Image)}}
	res, err := ad.Publish(ctx, acct, p, j)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	p.Journal = j.Entries()
	again, found, err := ad.Reconcile(ctx, acct, p)
	if err != nil || !found || again.ID != res.ID {
		t.Fatalf("Reconcile: got %+v %v %v, want the same status %s", again, found, err, res.ID)
	}
	if _, err := ad.ReadMetrics(ctx, acct, []string{res.ID}); err != nil {
		t.Fatalf("ReadMetrics: %v", err)
	}
	if posts := e.sim.Posts("mastodon"); len(posts) != 1 || posts[0].ID != res.ID {
		t.Fatalf("got posts %+v, want the one status %s", posts, res.ID)
	}
	if got := guard.refusedHosts(); len(got) != 0 {
		t.Fatalf("got requests to %v, want every call routed to the simulator", got)
	}

	// Without the override the account's own instance is called.
	plain := mastodon.New(mastodon.Config{}, &http.Client{Transport: guard}, e.clock)
	if _, err := plain.WhoAmI(ctx, acct); apperr.KindOf(err) != apperr.KindInvalid {
		t.Fatalf("no override: got %v, want mastodon.social unreachable (invalid)", err)
	}
	if got := guard.refusedHosts(); !slices.Equal(got, []string{"mastodon.social"}) {
		t.Fatalf("no override: got requests to %v, want one to mastodon.social", got)
	}
}
