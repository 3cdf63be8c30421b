// Package simtest holds the fixtures of the adapter contract tests and the
// simulator's own tests: the simulator served on an httptest server that
// knows its public URL and is seeded with accounts, canned-answer servers,
// a stopped clock, a client that refuses the network, and the check of an
// *apperr.Error's kind and code.
//
// The clock that advances on Sleep and the in-memory journal are
// platformsim.ManualClock and platformsim.MemJournal.
package simtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// Options configure Start.
type Options struct {
	// Now is the simulator's clock (default the wall clock).
	Now func() time.Time
	// Clients are the OAuth clients the simulator accepts, by platform.
	Clients map[string]platformsim.Client
	// Wrap, when set, wraps the simulator's handler, e.g. to answer some
	// paths itself.
	Wrap func(http.Handler) http.Handler
	// Accounts are registered before Start returns.
	Accounts []platformsim.Account
}

// Sim is a simulator served on loopback until the test ends.
type Sim struct {
	*platformsim.Server
	// URL is the server's base URL, which is also the simulator's public
	// URL.
	URL string
	srv *httptest.Server
}

// Start serves a simulator on an httptest server, closed when t ends, sets
// its public URL and registers opts.Accounts.
func Start(t testing.TB, opts Options) *Sim {
	t.Helper()
	sim := platformsim.New(platformsim.Options{Now: opts.Now, Clients: opts.Clients})
	var h http.Handler = sim
	if opts.Wrap != nil {
		h = opts.Wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	sim.SetPublicURL(srv.URL)
	for _, a := range opts.Accounts {
		sim.AddAccount(a)
	}
	return &Sim{Server: sim, URL: srv.URL, srv: srv}
}

// Client is a client for the server.
func (s *Sim) Client() *http.Client { return s.srv.Client() }

// MediaClient is the client adapters download media with on the local
// stack: the outbound policy with loopback allowed (the simulator listens
// on 127.0.0.1), every other refused class still refused.
func (s *Sim) MediaClient() *http.Client { return platform.MediaClient(true) }

// NoRedirectClient is a client for the server that does not follow
// redirects, so tests can read them (OAuth authorize pages).
func (s *Sim) NoRedirectClient() *http.Client {
	c := *s.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// MediaURL is where the simulator serves generated media called name
// (a.jpg, b.png, c.gif, v.mp4; a name starting "missing" answers 404).
func (s *Sim) MediaURL(name string) string { return s.URL + "/_sim/media/" + name }

// KindOf is the media kind of a file name: video for .mp4, else image.
func KindOf(name string) platform.MediaKind {
	if strings.HasSuffix(name, ".mp4") {
		return platform.Video
	}
	return platform.Image
}

// Answer is a server that answers every request with status and body
// until t ends.
func Answer(t testing.TB, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// ClosedURL is the URL of a server that is no longer listening: every
// dial to it fails.
func ClosedURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// NoNetwork is a client that fails t on any request: for Validate, which
// must not use the network.
func NoNetwork(t testing.TB) *http.Client {
	return &http.Client{Transport: noNetwork{t}}
}

type noNetwork struct{ t testing.TB }

func (n noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.t.Errorf("Validate made a request to %s", r.URL)
	return nil, errors.New("no network")
}

// WantErr fails t unless err is an *apperr.Error of kind and, when code is
// not empty, of code; it returns the error.
func WantErr(t testing.TB, err error, kind apperr.Kind, code string) *apperr.Error {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok {
		t.Fatalf("got error %v (%T), want *apperr.Error of kind %s", err, err, kind)
	}
	if e.Kind != kind || (code != "" && e.Code != code) {
		t.Fatalf("got %s/%s (%v), want %s/%s", e.Kind, e.Code, e, kind, code)
	}
	return e
}

// WantProblem fails t unless probs is empty, when field is "", or holds a
// problem on field whose message contains in.
func WantProblem(t testing.TB, probs []apperr.Problem, field, in string) {
	t.Helper()
	if field == "" {
		if len(probs) != 0 {
			t.Fatalf("got problems %+v, want none", probs)
		}
		return
	}
	for _, p := range probs {
		if p.Field == field && strings.Contains(p.Message, in) {
			return
		}
	}
	t.Fatalf("got problems %+v, want one on %s mentioning %q", probs, field, in)
}

// WantFields fails t unless probs name exactly the fields want, in order.
func WantFields(t testing.TB, probs []apperr.Problem, want []string) {
	t.Helper()
	var got []string
	for _, p := range probs {
		got = append(got, p.Field)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("fields: got %v, want %v", got, want)
	}
}

// StoppedClock is a clock that moves only when advanced: Sleep returns at
// once (with ctx's error) and leaves the time where it is, so polls run
// without waiting and deadlines are never reached by sleeping. It
// implements platform.Clock.
type StoppedClock struct{ manual *platformsim.ManualClock }

// NewStoppedClock returns a clock standing at start.
func NewStoppedClock(start time.Time) *StoppedClock {
	return &StoppedClock{manual: platformsim.NewManualClock(start)}
}

// Now returns the clock's time.
func (c *StoppedClock) Now() time.Time { return c.manual.Now() }

// Sleep returns ctx's error at once without moving the clock.
func (c *StoppedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// Advance moves the clock forward by d.
func (c *StoppedClock) Advance(d time.Duration) { c.manual.Advance(d) }
