package simtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// recorder is a testing.TB that records failures instead of failing; a
// fatal one stops the helper with a panic that check recovers.
type recorder struct {
	testing.TB
	msgs []string
}

type fatal struct{}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(fatal{})
}

// check runs f against a recorder and returns what it reported.
func check(t *testing.T, f func(tb testing.TB)) []string {
	t.Helper()
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(fatal); !ok {
					panic(p)
				}
			}
		}()
		f(r)
	}()
	return r.msgs
}

func TestStart(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	wrapped := false
	sim := simtest.Start(t, simtest.Options{
		Now:      func() time.Time { return at },
		Accounts: []platformsim.Account{{Platform: "mastodon", ID: "7", Handle: "ann", AccessToken: "tok"}},
		Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wrapped = true; h.ServeHTTP(w, r) })
		},
	})
	if sim.PublicURL() != sim.URL || !strings.HasPrefix(sim.URL, "http://127.0.0.1:") {
		t.Errorf("got public URL %q and URL %q, want the same loopback URL", sim.PublicURL(), sim.URL)
	}
	req, _ := http.NewRequest(http.MethodGet, sim.URL+"/mastodon/api/v1/accounts/verify_credentials", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := sim.Client().Do(req)
	if err != nil {
		t.Fatalf("verify_credentials: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !wrapped {
		t.Errorf("got HTTP %d (wrapped: %v), want 200 through the wrapper for the seeded account", resp.StatusCode, wrapped)
	}
	resp, err = sim.Client().Get(sim.MediaURL("a.png"))
	if err != nil {
		t.Fatalf("media: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("media: got HTTP %d %q, want 200 image/png", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, err = sim.NoRedirectClient().Get(sim.URL + "/mastodon/oauth/authorize?response_type=code&client_id=c&redirect_uri=https://cb.example/")
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("authorize: got HTTP %d, want the 302 itself", resp.StatusCode)
	}
	if sim.Client().CheckRedirect != nil {
		t.Errorf("Client: got a redirect policy, want NoRedirectClient to leave the shared client alone")
	}
}

func TestAnswerAndClosedURL(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, http.StatusTeapot, "short and stout")
	resp, err := srv.Client().Get(srv.URL + "/any")
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(b) != "short and stout" {
		t.Errorf("Answer: got %d %q, want 418 and the body", resp.StatusCode, b)
	}
	if _, err := http.Get(simtest.ClosedURL(t)); err == nil {
		t.Errorf("ClosedURL: got an answer, want the dial to fail")
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]platform.MediaKind{"v.mp4": platform.Video, "a.jpg": platform.Image, "b": platform.Image} {
		if got := simtest.KindOf(name); got != want {
			t.Errorf("KindOf(%q): got %s, want %s", name, got, want)
		}
	}
}

func TestNoNetwork(t *testing.T) {
	t.Parallel()
	msgs := check(t, func(tb testing.TB) {
		if _, err := simtest.NoNetwork(tb).Get("http://127.0.0.1:1/x"); err == nil {
			tb.Errorf("got no error")
		}
	})
	if len(msgs) != 1 || !strings.Contains(msgs[0], "made a request to http://127.0.0.1:1/x") {
		t.Errorf("got %q, want one failure naming the request", msgs)
	}
}

func TestWantErr(t *testing.T) {
	t.Parallel()
	e := apperr.New(apperr.KindTransient, "p.x", "m")
	cases := []struct {
		name     string
		err      error
		kind     apperr.Kind
		code     string
		wantFail string
	}{
		{"match", fmt.Errorf("wrapped: %w", e), apperr.KindTransient, "p.x", ""},
		{"any code", e, apperr.KindTransient, "", ""},
		{"other kind", e, apperr.KindPermanent, "", "want permanent/"},
		{"other code", e, apperr.KindTransient, "p.y", "want transient/p.y"},
		{"untyped", errors.New("plain"), apperr.KindTransient, "", "want *apperr.Error of kind transient"},
	}
	for _, tc := range cases {
		var got *apperr.Error
		msgs := check(t, func(tb testing.TB) { got = simtest.WantErr(tb, tc.err, tc.kind, tc.code) })
		switch {
		case tc.wantFail == "" && (len(msgs) != 0 || got != e):
			t.Errorf("%s: got failures %q and %v, want none and the error", tc.name, msgs, got)
		case tc.wantFail != "" && (len(msgs) != 1 || !strings.Contains(msgs[0], tc.wantFail)):
			t.Errorf("%s: got failures %q, want one mentioning %q", tc.name, msgs, tc.wantFail)
		}
	}
}

func TestWantProblemAndFields(t *testing.T) {
	t.Parallel()
	probs := []apperr.Problem{{Field: "text", Message: "is too long"}, {Field: "media[0].size", Message: "over the limit"}}
	cases := []struct {
		name     string
		f        func(tb testing.TB)
		wantFail string
	}{
		{"problem found", func(tb testing.TB) { simtest.WantProblem(tb, probs, "media[0].size", "limit") }, ""},
		{"no problems wanted", func(tb testing.TB) { simtest.WantProblem(tb, nil, "", "") }, ""},
		{"problems not wanted", func(tb testing.TB) { simtest.WantProblem(tb, probs, "", "") }, "want none"},
		{"message differs", func(tb testing.TB) { simtest.WantProblem(tb, probs, "text", "short") }, `want one on text mentioning "short"`},
		{"fields match", func(tb testing.TB) { simtest.WantFields(tb, probs, []string{"text", "media[0].size"}) }, ""},
		{"no fields", func(tb testing.TB) { simtest.WantFields(tb, nil, nil) }, ""},
		{"fields out of order", func(tb testing.TB) { simtest.WantFields(tb, probs, []string{"media[0].size", "text"}) }, "fields: got"},
	}
	for _, tc := range cases {
		msgs := check(t, tc.f)
		if (tc.wantFail == "") != (len(msgs) == 0) || (tc.wantFail != "" && !strings.Contains(msgs[0], tc.wantFail)) {
			t.Errorf("%s: got failures %q, want %q", tc.name, msgs, tc.wantFail)
		}
	}
}

func TestStoppedClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	c := simtest.NewStoppedClock(at)
	if err := c.Sleep(context.Background(), time.Hour); err != nil || !c.Now().Equal(at) {
		t.Errorf("Sleep: got %v and %v, want no error and the time unmoved", err, c.Now())
	}
	c.Advance(time.Minute)
	if !c.Now().Equal(at.Add(time.Minute)) {
		t.Errorf("Advance: got %v, want %v", c.Now(), at.Add(time.Minute))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a done context: got %v, want context.Canceled", err)
	}
	var _ platform.Clock = c
}
