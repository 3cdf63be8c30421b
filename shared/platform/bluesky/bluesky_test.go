package bluesky_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

type env struct {
	sim   *simtest.Sim
	ad    *bluesky.Adapter
	acct  platform.Account
	clock *simtest.StoppedClock
}

const (
	aliceDID  = "did:plc:alice234567"
	alicePass = "abcd-efgh-ijkl-mnop"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	c := simtest.NewStoppedClock(t0)
	sim := simtest.Start(t, simtest.Options{Now: c.Now, Accounts: []platformsim.Account{
		{Platform: "bluesky", ID: aliceDID, Handle: "alice.test", AccessToken: "tok-alice", Password: alicePass},
		{Platform: "bluesky", ID: "did:plc:bob234567", Handle: "bob.test"},
	}})
	ad := bluesky.New(bluesky.Config{BaseURL: sim.URL + "/bluesky", VideoBaseURL: sim.URL + "/bluesky/video", VideoPollInterval: time.Millisecond, Media: sim.MediaClient()}, sim.Client(), c)
	return &env{sim: sim, ad: ad, clock: c,
		acct: platform.Account{ID: aliceDID, Handle: "alice.test", AccessToken: "tok-alice", BaseURL: sim.URL + "/bluesky"}}
}

func (e *env) media(name string) platform.Media {
	return platform.Media{URL: e.sim.MediaURL(name), Kind: simtest.KindOf(name), AltText: "alt " + name}
}

type recordedFacet struct {
	Index struct {
		ByteStart int `json:"byteStart"`
		ByteEnd   int `json:"byteEnd"`
	} `json:"index"`
	Features []map[string]any `json:"features"`
}

func TestPublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		post       platform.Post
		media      []string
		wantEmbed  string
		wantFacets map[string]string // covered text → feature type
	}{
		{name: "text", post: platform.Post{Text: "Hello from POSSE"}},
		{name: "text with link", post: platform.Post{Text: "Read https://example.com/a?b=1.", Link: "https://example.com/a?b=1", Title: "A post"},
			wantEmbed: "app.bsky.embed.external", wantFacets: map[string]string{"https://example.com/a?b=1": "link"}},
		{name: "mention, tag and emoji offsets", post: platform.Post{Text: "🎉 café with @bob.test about #golang, see https://go.dev"},
			wantFacets: map[string]string{"@bob.test": "mention", "#golang": "tag", "https://go.dev": "link"}},
		{name: "unknown mention stays text", post: platform.Post{Text: "hi @nobody.test"}},
		{name: "two images", post: platform.Post{Text: "pics", Link: "https://example.com"}, media: []string{"a.jpg", "b.png"}, wantEmbed: "app.bsky.embed.images"},
		{name: "video", post: platform.Post{Text: "film"}, media: []string{"v.mp4"}, wantEmbed: "app.bsky.embed.video"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := tt.post
			p.DeliveryID = "dlv-" + tt.name
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
			rkey := bluesky.RecordKey(p.DeliveryID)
			if j.Entries()[bluesky.JournalRKey] != rkey {
				t.Errorf("journal rkey: got %q, want %q", j.Entries()[bluesky.JournalRKey], rkey)
			}
			wantID := "at://" + aliceDID + "/app.bsky.feed.post/" + rkey
			if res.ID != wantID || res.URL != "https://bsky.app/profile/alice.test/post/"+rkey {
				t.Errorf("result: got %+v, want id %s", res, wantID)
			}
			posts := e.sim.Posts("bluesky")
			if len(posts) != 1 {
				t.Fatalf("recorded posts: got %d, want 1", len(posts))
			}
			got := posts[0]
			if got.Text != p.Text || got.AccountID != aliceDID || got.Extra["rkey"] != rkey || len(got.Media) != len(tt.media) {
				t.Errorf("recorded: got %+v, want text %q rkey %s media %d", got, p.Text, rkey, len(tt.media))
			}
			if got.Extra["embed"] != tt.wantEmbed {
				t.Errorf("embed: got %q, want %q", got.Extra["embed"], tt.wantEmbed)
			}
			var facets []recordedFacet
			if s := got.Extra["facets"]; s != "" {
				if err := json.Unmarshal([]byte(s), &facets); err != nil {
					t.Fatalf("facets: %v", err)
				}
			}
			gotFacets := map[string]string{}
			for _, f := range facets {
				covered := p.Text[f.Index.ByteStart:f.Index.ByteEnd]
				typ, _ := f.Features[0]["$type"].(string)
				gotFacets[covered] = strings.TrimPrefix(typ, "app.bsky.richtext.facet#")
			}
			if len(gotFacets) != len(tt.wantFacets) {
				t.Errorf("facets: got %v, want %v", gotFacets, tt.wantFacets)
			}
			for k, v := range tt.wantFacets {
				if gotFacets[k] != v {
					t.Errorf("facet %q: got %q, want %q (all: %v)", k, gotFacets[k], v, gotFacets)
				}
			}
		})
	}
}

func TestRecordKey(t *testing.T) {
	t.Parallel()
	tid := regexp.MustCompile(`^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$`)
	seen := map[string]bool{}
	for _, id := range []string{"", "a", "b", "dlv_01J9ZK", strings.Repeat("x", 500)} {
		k := bluesky.RecordKey(id)
		if !tid.MatchString(k) {
			t.Errorf("RecordKey(%q): got %q, want a TID", id, k)
		}
		if k != bluesky.RecordKey(id) {
			t.Errorf("RecordKey(%q): not deterministic", id)
		}
		if seen[k] {
			t.Errorf("RecordKey(%q): got duplicate %q", id, k)
		}
		seen[k] = true
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ad := bluesky.New(bluesky.Config{}, simtest.NoNetwork(t), nil)
	img := platform.Media{URL: "http://127.0.0.1/a.jpg", Kind: platform.Image}
	vid := platform.Media{URL: "http://127.0.0.1/v.mp4", Kind: platform.Video}
	tests := []struct {
		name string
		post platform.Post
		want []string
	}{
		{name: "ok", post: platform.Post{Text: strings.Repeat("a", 300)}},
		{name: "image only", post: platform.Post{Media: []platform.Media{img}}},
		{name: "empty", post: platform.Post{}, want: []string{"text"}},
		{name: "over 300", post: platform.Post{Text: strings.Repeat("a", 301)}, want: []string{"text"}},
		{name: "over 3000 bytes", post: platform.Post{Text: strings.Repeat("👨‍👩‍👧‍👦", 130)}, want: []string{"text"}},
		{name: "five images", post: platform.Post{Text: "x", Media: []platform.Media{img, img, img, img, img}}, want: []string{"media"}},
		{name: "two videos", post: platform.Post{Text: "x", Media: []platform.Media{vid, vid}}, want: []string{"media"}},
		{name: "image and video", post: platform.Post{Text: "x", Media: []platform.Media{img, vid}}, want: []string{"media"}},
		{name: "bad kind", post: platform.Post{Text: "x", Media: []platform.Media{img, {URL: "http://127.0.0.1/x", Kind: "gif"}}}, want: []string{"media[1].kind"}},
		{name: "image too big", post: platform.Post{Text: "x", Media: []platform.Media{{URL: "http://127.0.0.1/a.jpg", Kind: platform.Image, Size: 2_000_001}}}, want: []string{"media[0].size"}},
		{name: "four langs", post: platform.Post{Text: "x", Options: map[string]string{"langs": "en,de,fr,it"}}, want: []string{"options.langs"}},
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
		media     string
		wantKind  apperr.Kind
		wantCode  string
		wantRetry time.Duration
		wantPosts int
	}{
		{name: "rate limit", fault: platformsim.Fault{Kind: platformsim.FaultRateLimit, ResetSeconds: 120}, wantKind: apperr.KindRateLimited, wantCode: "RateLimitExceeded", wantRetry: 120 * time.Second},
		{name: "server error on upload", fault: platformsim.Fault{Kind: platformsim.FaultServerError}, media: "a.jpg", wantKind: apperr.KindTransient, wantCode: "InternalServerError"},
		{name: "server error on create", fault: platformsim.Fault{Kind: platformsim.FaultServerError, Status: 502}, wantKind: apperr.KindAmbiguous, wantCode: "InternalServerError"},
		{name: "expired token", fault: platformsim.Fault{Kind: platformsim.FaultExpiredToken}, wantKind: apperr.KindReconnect, wantCode: "ExpiredToken"},
		{name: "duplicate rkey", fault: platformsim.Fault{Kind: platformsim.FaultDuplicate}, wantKind: apperr.KindAmbiguous, wantCode: "InternalServerError"},
		{name: "blob processing fails", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, media: "a.jpg", wantKind: apperr.KindPermanent, wantCode: "InvalidRequest"},
		{name: "video processing fails", fault: platformsim.Fault{Kind: platformsim.FaultMediaFetch}, media: "v.mp4", wantKind: apperr.KindPermanent},
		{name: "media URL missing", media: "missing.jpg", wantKind: apperr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.fault.Kind != "" {
				tt.fault.Platform = "bluesky"
				e.sim.AddFault(tt.fault)
			}
			p := platform.Post{DeliveryID: "d1", Text: "hello"}
			if tt.media != "" {
				p.Media = []platform.Media{e.media(tt.media)}
			}
			_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok {
				t.Fatalf("error: got %v, want *apperr.Error", err)
			}
			if ae.Kind != tt.wantKind || ae.RetryAfter != tt.wantRetry || (tt.wantCode != "" && ae.PlatformCode != tt.wantCode) {
				t.Errorf("got kind %s retry %s code %q, want %s %s %q (%v)", ae.Kind, ae.RetryAfter, ae.PlatformCode, tt.wantKind, tt.wantRetry, tt.wantCode, err)
			}
			if ae.Platform != "bluesky" {
				t.Errorf("platform: got %q, want bluesky", ae.Platform)
			}
			if n := len(e.sim.Posts("bluesky")); n != tt.wantPosts {
				t.Errorf("recorded posts: got %d, want %d", n, tt.wantPosts)
			}
		})
	}
}

func TestTimeoutAfterCreateThenReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sim.AddFault(platformsim.Fault{Platform: "bluesky", Kind: platformsim.FaultTimeoutAfterCreate})
	p := platform.Post{DeliveryID: "dlv-t", Text: "lost answer"}
	_, err := e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Fatalf("Publish: got kind %s (%v), want ambiguous", k, err)
	}
	res, found, err := e.ad.Reconcile(context.Background(), e.acct, p)
	if err != nil || !found || !strings.HasSuffix(res.ID, "/"+bluesky.RecordKey("dlv-t")) {
		t.Fatalf("Reconcile: got %+v found=%v err=%v, want the post", res, found, err)
	}

	// A blind retry hits the existing rkey: the PDS answers 500, which is
	// ambiguous, and Reconcile still finds the one post.
	_, err = e.ad.Publish(context.Background(), e.acct, p, &platformsim.MemJournal{})
	if k := apperr.KindOf(err); k != apperr.KindAmbiguous {
		t.Errorf("retry: got kind %s (%v), want ambiguous", k, err)
	}
	if _, found, _ := e.ad.Reconcile(context.Background(), e.acct, p); !found {
		t.Errorf("Reconcile after retry: got not found, want found")
	}
	if n := len(e.sim.Posts("bluesky")); n != 1 {
		t.Errorf("recorded posts: got %d, want exactly 1", n)
	}
}

func TestReconcileNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, found, err := e.ad.Reconcile(context.Background(), e.acct, platform.Post{DeliveryID: "never"})
	if err != nil || found {
		t.Errorf("got found=%v err=%v, want not found, nil", found, err)
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	if _, err := e.ad.Login(ctx, "alice.test", "wrong-pass"); !isCode(err, apperr.KindInvalid, "bluesky.bad_credentials") {
		t.Errorf("wrong password: got %v, want invalid bluesky.bad_credentials", err)
	}
	s1, err := e.ad.Login(ctx, "alice.test", alicePass)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if s1.DID != aliceDID || s1.Handle != "alice.test" || s1.AccessJwt == "" || s1.RefreshJwt == "" || s1.PDS != e.sim.URL+"/bluesky" {
		t.Errorf("session: got %+v, want alice's DID, handle, tokens and PDS", s1)
	}
	acct := platform.Account{ID: s1.DID, Handle: s1.Handle, AccessToken: s1.AccessJwt, BaseURL: s1.PDS}
	if id, err := e.ad.WhoAmI(ctx, acct); err != nil || id.ID != aliceDID || id.Handle != "alice.test" {
		t.Errorf("WhoAmI: got %+v %v, want alice", id, err)
	}

	s2, err := e.ad.Refresh(ctx, s1.RefreshJwt)
	if err != nil || s2.RefreshJwt == s1.RefreshJwt || s2.AccessJwt == "" {
		t.Fatalf("Refresh: got %+v %v, want a new pair", s2, err)
	}
	if n := e.sim.Calls("bluesky", "token_refresh"); n != 1 {
		t.Errorf("token_refresh calls: got %d, want 1", n)
	}
	if _, err := e.ad.Refresh(ctx, s1.RefreshJwt); apperr.KindOf(err) != apperr.KindReconnect {
		t.Errorf("old refresh token: got %v, want reconnect", err)
	}

	// The access JWT lives 2 hours; after that the PDS answers 400 ExpiredToken.
	e.clock.Advance(3 * time.Hour)
	acct.AccessToken = s2.AccessJwt
	_, err = e.ad.Publish(ctx, acct, platform.Post{DeliveryID: "late", Text: "x"}, &platformsim.MemJournal{})
	if ae, ok := apperr.As(err); !ok || ae.Kind != apperr.KindReconnect || ae.HTTPStatus != 400 || ae.Code != "bluesky.expired_token" {
		t.Errorf("expired access: got %v, want reconnect bluesky.expired_token (HTTP 400)", err)
	}
	s3, err := e.ad.Refresh(ctx, s2.RefreshJwt)
	if err != nil {
		t.Fatalf("Refresh after expiry: %v", err)
	}
	acct.AccessToken = s3.AccessJwt
	if _, err := e.ad.Publish(ctx, acct, platform.Post{DeliveryID: "late", Text: "x"}, &platformsim.MemJournal{}); err != nil {
		t.Errorf("Publish after refresh: %v", err)
	}
}

func isCode(err error, k apperr.Kind, code string) bool {
	ae, ok := apperr.As(err)
	return ok && ae.Kind == k && ae.Code == code
}

func TestUnexpectedResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind apperr.Kind
	}{
		{name: "garbage 200", status: 200, body: "\x00\x01garbage", wantKind: apperr.KindAmbiguous},
		{name: "200 without uri", status: 200, body: `{"cid":"x"}`, wantKind: apperr.KindAmbiguous},
		{name: "html 502", status: 502, body: "<html>bad gateway</html>", wantKind: apperr.KindAmbiguous},
		{name: "odd 400", status: 400, body: `{"error":"Weird","message":"x","accessJwt":"eyJhbGciOi.eyJzdWIiOi.sig"}`, wantKind: apperr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := simtest.Answer(t, tt.status, tt.body)
			ad := bluesky.New(bluesky.Config{BaseURL: srv.URL}, srv.Client(), nil)
			acct := platform.Account{ID: "did:plc:x", AccessToken: "t"}
			_, err := ad.Publish(context.Background(), acct, platform.Post{DeliveryID: "d", Text: "x"}, &platformsim.MemJournal{})
			ae, ok := apperr.As(err)
			if !ok || ae.Kind != tt.wantKind {
				t.Fatalf("Publish: got %v, want kind %s", err, tt.wantKind)
			}
			if strings.Contains(ae.Redacted, "eyJhbGciOi") {
				t.Errorf("redacted body leaks a token: %q", ae.Redacted)
			}
			for name, f := range map[string]func() error{
				"WhoAmI":  func() error { _, err := ad.WhoAmI(context.Background(), acct); return err },
				"Login":   func() error { _, err := ad.Login(context.Background(), "a", "b"); return err },
				"Refresh": func() error { _, err := ad.Refresh(context.Background(), "r"); return err },
				"Reconcile": func() error {
					_, _, err := ad.Reconcile(context.Background(), acct, platform.Post{DeliveryID: "d"})
					return err
				},
			} {
				if err := f(); err != nil && apperr.KindOf(err) == apperr.KindInternal {
					t.Errorf("%s: got untyped error %v", name, err)
				}
			}
		})
	}
}

// createSession is limited to ten a day per account (a recorded answer's
// RateLimit-Policy: 10;w=86400): the eleventh login is rate limited until
// the day's reset, so nothing may log in per post or per refresh.
func TestLoginIsLimitedToTenADay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for i := range 10 {
		if _, err := e.ad.Login(ctx, "alice.test", alicePass); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	_, err := e.ad.Login(ctx, "alice.test", alicePass)
	ae, ok := apperr.As(err)
	if !ok || ae.Kind != apperr.KindRateLimited {
		t.Fatalf("eleventh login: got %v, want rate limited", err)
	}
	dayEnd := t0.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if want := dayEnd.Sub(t0); ae.RetryAfter < want-time.Second || ae.RetryAfter > want+time.Second {
		t.Errorf("eleventh login: RetryAfter %v, want about %v (the day's reset)", ae.RetryAfter, want)
	}
}

// TestVideoStreamsFromItsURL uploads a video larger than any buffer,
// streamed from the simulator's generated media into the video service.
func TestVideoStreamsFromItsURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := platform.Media{URL: e.sim.MediaURL("v.mp4") + "?bytes=20000017", Kind: platform.Video, AltText: "big"}
	if _, err := e.ad.Publish(context.Background(), e.acct, platform.Post{DeliveryID: "dlv-big", Text: "big film", Media: []platform.Media{m}}, &platformsim.MemJournal{}); err != nil {
		t.Fatalf("publish a 20 MB video: %v", err)
	}
}
