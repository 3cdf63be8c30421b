package engagement

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

type fakeWork struct{ refs map[string][]ledger.Ref }

func (f *fakeWork) Due(_ context.Context, q string, _ time.Time, _ int) ([]ledger.Ref, error) {
	return f.refs[q], nil
}

type fakeStore struct {
	mu      sync.Mutex
	dues    map[string]Due
	applied map[string]Outcome
}

func (f *fakeStore) Load(_ context.Context, refs []ledger.Ref) ([]Due, error) {
	var out []Due
	for _, r := range refs {
		out = append(out, f.dues[r.ID])
	}
	return out, nil
}

func (f *fakeStore) Apply(_ context.Context, d Due, o Outcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied[d.ID] = o
	return nil
}

type fakeReader struct {
	batch  int
	scopes []string
	calls  [][]string
	answer func(ids []string) (map[string]platform.Reading, error)
}

func (f *fakeReader) MetricsBatch() int                                          { return f.batch }
func (f *fakeReader) MetricsScopes() []string                                    { return f.scopes }
func (f *fakeReader) MetricsReader(platform.Name) (platform.MetricsReader, bool) { return f, true }
func (f *fakeReader) ReadMetrics(_ context.Context, _ platform.Account, ids []string) (map[string]platform.Reading, error) {
	f.calls = append(f.calls, ids)
	return f.answer(ids)
}

type fakeAccounts struct{ err error }

func (f fakeAccounts) Ensure(context.Context, string, string) (platform.Account, error) {
	return platform.Account{ID: "acct", AccessToken: "tok"}, f.err
}

type fakeConns struct{ c connection.Connection }

func (f fakeConns) Get(context.Context, string, string) (connection.Connection, error) {
	return f.c, nil
}

type fakeLimiter struct {
	blocks  map[string]time.Time
	budget  int
	blocked []string
}

func (f *fakeLimiter) Blocked(_ context.Context, _, scope string) (time.Time, bool, error) {
	u, ok := f.blocks[scope]
	return u, ok, nil
}
func (f *fakeLimiter) Block(_ context.Context, _, scope string, until time.Time) error {
	f.blocked = append(f.blocked, scope)
	return nil
}
func (f *fakeLimiter) Take(context.Context, string, string, int, time.Duration) (bool, time.Time, error) {
	if f.budget <= 0 {
		return false, now.Add(30 * time.Minute), nil
	}
	f.budget--
	return true, time.Time{}, nil
}

func figures(ids []string) map[string]platform.Reading {
	out := map[string]platform.Reading{}
	for _, id := range ids {
		r := platform.NewReading(id, now)
		v := int64(10)
		r.Set(platform.Likes, "like_count", &v)
		out[id] = r
	}
	return out
}

type env struct {
	c     *Collector
	store *fakeStore
	rd    *fakeReader
	lim   *fakeLimiter
}

// newEnv has three sent X deliveries of one connection, d1 and d2 never
// read, d3 read twice of three.
func newEnv(t *testing.T, mod func(*Config, *fakeReader, *fakeLimiter)) *env {
	t.Helper()
	sent := now.Add(-2 * time.Hour)
	mk := func(id, post string, reads int) Due {
		d := Due{Delivery: ledger.Delivery{ID: id, SiteID: "s1", PostID: "p1", Revision: "r1", ConnectionID: "c1", Platform: platform.X,
			State: ledger.StateSent, SentAt: &sent, PlatformPostID: post, MetricsReads: reads}, Version: 3}
		if reads > 0 {
			d.MetricsNextAt = &now
		}
		return d
	}
	st := &fakeStore{dues: map[string]Due{"d1": mk("d1", "x1", 0), "d2": mk("d2", "x2", 0), "d3": mk("d3", "x3", 2)}, applied: map[string]Outcome{}}
	w := &fakeWork{refs: map[string][]ledger.Ref{
		ledger.QueueMetricsFirst: {{SiteID: "s1", ID: "d1"}, {SiteID: "s1", ID: "d2"}},
		ledger.QueueMetrics:      {{SiteID: "s1", ID: "d3"}},
	}}
	rd := &fakeReader{batch: 100, scopes: []string{"tweet.read"}, answer: func(ids []string) (map[string]platform.Reading, error) { return figures(ids), nil }}
	lim := &fakeLimiter{blocks: map[string]time.Time{}, budget: 10}
	cfg := Config{Work: w, Store: st, Readers: rd, Accounts: fakeAccounts{}, Limiter: lim,
		Connections: fakeConns{connection.Connection{Status: connection.StatusActive, Scopes: []string{"tweet.read", "tweet.write"}}},
		ReadAfter:   []time.Duration{time.Hour, 24 * time.Hour, 168 * time.Hour}, ReadsPerHour: 10, Now: func() time.Time { return now }}
	if mod != nil {
		mod(&cfg, rd, lim)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{c: c, store: st, rd: rd, lim: lim}
}

func TestRunReadsInBatchesAndSchedulesTheNext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	st, err := e.c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(e.rd.calls) != 1 || len(e.rd.calls[0]) != 3 {
		t.Fatalf("read calls: got %v, want one call with 3 ids", e.rd.calls)
	}
	if st.Read != 3 || st.Calls != 1 {
		t.Errorf("stats: got %+v, want 3 read in 1 call", st)
	}
	sent := now.Add(-2 * time.Hour)
	if o := e.store.applied["d1"]; o.Reading == nil || o.Reading.Figures["likes"] != 10 || !o.Next.Equal(sent.Add(24*time.Hour)) || !o.Advance {
		t.Errorf("d1: got %+v, want a reading and the next at sent+24h", o)
	}
	if o := e.store.applied["d3"]; o.Reading == nil || !o.Next.IsZero() || o.Status != "" {
		t.Errorf("d3 (third reading): got %+v, want a reading and no next (done)", o)
	}
	if _, has := e.store.applied["d1"].Reading.Figures["views"]; has {
		t.Errorf("views: got present, want absent")
	}
}

func TestRunStopsDefersAndSkips(t *testing.T) {
	t.Parallel()
	gone := func(ids []string) (map[string]platform.Reading, error) {
		out := figures(ids)
		r := out["x2"]
		r.Gone, r.Figures = true, map[platform.Metric]int64{}
		out["x2"] = r
		return out, nil
	}
	tests := []struct {
		name      string
		mod       func(*Config, *fakeReader, *fakeLimiter)
		wantCalls int
		check     func(t *testing.T, e *env)
	}{
		{"deleted post", func(_ *Config, r *fakeReader, _ *fakeLimiter) { r.answer = gone }, 1, func(t *testing.T, e *env) {
			if o := e.store.applied["d2"]; o.Status != ledger.MetricsDeleted || o.Reading != nil {
				t.Errorf("d2: got %+v, want deleted without a reading", o)
			}
		}},
		{"broken connection", func(c *Config, _ *fakeReader, _ *fakeLimiter) {
			c.Connections = fakeConns{connection.Connection{Status: connection.StatusBroken}}
		}, 0, func(t *testing.T, e *env) {
			if o := e.store.applied["d1"]; o.Status != ledger.MetricsStopped {
				t.Errorf("d1: got %+v, want stopped", o)
			}
		}},
		{"missing read scope", func(_ *Config, r *fakeReader, _ *fakeLimiter) { r.scopes = []string{"tweet.read", "users.read"} }, 0, func(t *testing.T, e *env) {
			if o := e.store.applied["d3"]; o.Status != ledger.MetricsStopped || o.Reason == "" {
				t.Errorf("d3: got %+v, want stopped with the reason", o)
			}
		}},
		{"publishing block in force", func(_ *Config, _ *fakeReader, l *fakeLimiter) { l.blocks["x:c1"] = now.Add(5 * time.Minute) }, 0, func(t *testing.T, e *env) {
			if o := e.store.applied["d1"]; !o.Next.Equal(now.Add(5*time.Minute)) || o.Advance {
				t.Errorf("d1: got %+v, want deferred past the block", o)
			}
		}},
		{"read budget used up", func(_ *Config, _ *fakeReader, l *fakeLimiter) { l.budget = 0 }, 0, func(t *testing.T, e *env) {
			if o := e.store.applied["d2"]; !o.Next.Equal(now.Add(30*time.Minute)) || o.Advance {
				t.Errorf("d2: got %+v, want deferred to the window's end", o)
			}
		}},
		{"rate limited by the platform", func(_ *Config, r *fakeReader, _ *fakeLimiter) {
			r.answer = func([]string) (map[string]platform.Reading, error) {
				e := apperr.New(apperr.KindRateLimited, "x.rate_limited", "slow down")
				e.RetryAfter = 2 * time.Minute
				return nil, e
			}
		}, 1, func(t *testing.T, e *env) {
			if o := e.store.applied["d1"]; !o.Next.Equal(now.Add(2 * time.Minute)) {
				t.Errorf("d1: got %+v, want deferred to the reset", o)
			}
			if len(e.lim.blocked) != 1 || e.lim.blocked[0] != ReadScope(platform.X, "c1") {
				t.Errorf("blocks: got %v, want only the read scope (publishing is never blocked by a read)", e.lim.blocked)
			}
		}},
		{"missing scope answer", func(_ *Config, r *fakeReader, _ *fakeLimiter) {
			r.answer = func([]string) (map[string]platform.Reading, error) {
				return nil, apperr.New(apperr.KindForbidden, "x.missing_scope", "reconnect")
			}
		}, 1, func(t *testing.T, e *env) {
			if o := e.store.applied["d1"]; o.Status != ledger.MetricsStopped {
				t.Errorf("d1: got %+v, want stopped", o)
			}
		}},
		{"unexpected shape", func(_ *Config, r *fakeReader, _ *fakeLimiter) {
			r.answer = func([]string) (map[string]platform.Reading, error) {
				return nil, apperr.New(apperr.KindPermanent, "x.unexpected_response", "odd")
			}
		}, 1, func(t *testing.T, e *env) {
			if o := e.store.applied["d1"]; o.Reading != nil || !o.Advance {
				t.Errorf("d1: got %+v, want taken without a reading (no zeroes)", o)
			}
		}},
		{"transient failure", func(_ *Config, r *fakeReader, _ *fakeLimiter) {
			r.answer = func([]string) (map[string]platform.Reading, error) { return nil, errors.New("boom") }
		}, 1, func(t *testing.T, e *env) {
			if len(e.store.applied) != 0 {
				t.Errorf("writes: got %v, want none (left due)", e.store.applied)
			}
		}},
		{"dead token", func(c *Config, _ *fakeReader, _ *fakeLimiter) {
			c.Accounts = fakeAccounts{err: apperr.New(apperr.KindReconnect, "x.unauthorized", "dead")}
		}, 0, func(t *testing.T, e *env) {
			if o := e.store.applied["d1"]; o.Status != ledger.MetricsStopped {
				t.Errorf("d1: got %+v, want stopped", o)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.mod)
			if _, err := e.c.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(e.rd.calls) != tt.wantCalls {
				t.Errorf("read calls: got %d, want %d", len(e.rd.calls), tt.wantCalls)
			}
			tt.check(t, e)
		})
	}
}

func TestBatchOfOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *Config, r *fakeReader, _ *fakeLimiter) { r.batch = 1 })
	if _, err := e.c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.rd.calls) != 3 {
		t.Errorf("read calls: got %d, want 3", len(e.rd.calls))
	}
}
