package simtest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// MetricsContract describes one adapter's engagement reader for
// RunMetricsContract.
type MetricsContract struct {
	Sim    *Sim
	Reader platform.MetricsReader
	Acct   platform.Account
	// Platform is the simulator's platform name.
	Platform string
	// Now is the adapter's clock: readings must carry it.
	Now func() time.Time
	// PostID is the platform id of the i-th seeded post.
	PostID func(i int) string
	// Fields maps each common figure the platform gives to its raw field;
	// every other figure must be absent from readings.
	Fields map[platform.Metric]string
	// CallOp is the simulator's counter of read calls ("read_posts").
	CallOp string
	// NoScopes is set for platforms without a missing-permission answer
	// (Bluesky app passwords).
	NoScopes bool
}

// RunMetricsContract checks a reader against the simulator: one call per
// MetricsBatch posts, figures equal to the simulator's and absent ones
// absent, a deleted post gone, a rate limit with its wait, and a missing
// permission as forbidden "<platform>.missing_scope".
func RunMetricsContract(t *testing.T, c MetricsContract) {
	t.Helper()
	ctx := context.Background()
	batch := c.Reader.MetricsBatch()
	n := 2*batch + 1
	if n > 7 && batch < 20 {
		n = 3
	}
	created := c.Now().Add(-10 * time.Minute)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.PostID(i)
		c.Sim.SeedPost(platformsim.Post{Platform: c.Platform, ID: ids[i], AccountID: c.Acct.ID, CreatedAt: created})
	}

	t.Run("batching and figures", func(t *testing.T) {
		before := c.Sim.Calls(c.Platform, c.CallOp)
		got, err := c.Reader.ReadMetrics(ctx, c.Acct, ids)
		if err != nil {
			t.Fatalf("ReadMetrics: got error %v, want nil", err)
		}
		calls := c.Sim.Calls(c.Platform, c.CallOp) - before
		if want := (n + batch - 1) / batch; calls != want {
			t.Errorf("read calls for %d posts with batch %d: got %d, want %d", n, batch, calls, want)
		}
		if len(got) != n {
			t.Fatalf("readings: got %d, want %d", len(got), n)
		}
		for _, id := range ids {
			r := got[id]
			raw, _ := c.Sim.Figures(c.Platform, id, c.Now())
			if r.Gone || r.PostID != id || !r.ReadAt.Equal(c.Now()) {
				t.Errorf("reading of %s: got gone=%v id=%q at %v, want live, %s at %v", id, r.Gone, r.PostID, r.ReadAt, id, c.Now())
			}
			for _, m := range platform.Metrics {
				v, has := r.Figures[m]
				field, gives := c.Fields[m]
				switch {
				case gives && (!has || v != raw[field]):
					t.Errorf("%s %s: got %d (present %v), want %d from %s", id, m, v, has, raw[field], field)
				case !gives && has:
					t.Errorf("%s %s: got %d, want absent (the platform does not give it)", id, m, v)
				}
			}
			if r.Figures[platform.Likes] == 0 {
				t.Errorf("%s likes: got 0, want the simulator's growing figure", id)
			}
		}
	})

	t.Run("deleted", func(t *testing.T) {
		if !c.Sim.DeletePost(c.Platform, ids[0]) {
			t.Fatal("DeletePost: unknown post")
		}
		got, err := c.Reader.ReadMetrics(ctx, c.Acct, ids[:1])
		if err != nil {
			t.Fatalf("ReadMetrics: got error %v, want nil", err)
		}
		if r := got[ids[0]]; !r.Gone || len(r.Figures) != 0 {
			t.Errorf("deleted post: got %+v, want gone with no figures", r)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		c.Sim.AddFault(platformsim.Fault{Platform: c.Platform, Kind: platformsim.FaultRateLimit, ResetSeconds: 120})
		_, err := c.Reader.ReadMetrics(ctx, c.Acct, ids[1:2])
		e := WantErr(t, err, apperr.KindRateLimited, "")
		if e.RetryAfter <= 0 {
			t.Errorf("RetryAfter: got %v, want > 0", e.RetryAfter)
		}
	})

	t.Run("missing scope", func(t *testing.T) {
		if c.NoScopes {
			t.Skip(c.Platform + " has no scopes")
		}
		c.Sim.AddFault(platformsim.Fault{Platform: c.Platform, Kind: platformsim.FaultMissingScope})
		_, err := c.Reader.ReadMetrics(ctx, c.Acct, ids[1:2])
		WantErr(t, err, apperr.KindForbidden, c.Platform+".missing_scope")
	})
}

// Digits is a PostID for platforms with numeric ids.
func Digits(i int) string { return strconv.Itoa(7100000000 + i) }

// WeirdAnswer is a 2xx body no read endpoint documents.
const WeirdAnswer = `{"weird":{"access_token":"secret-token-value"}}`

// RunMetricsShape checks that a reader pointed at a server answering
// WeirdAnswer fails with "<platform>.unexpected_response", a redacted copy
// of the body and no readings.
func RunMetricsShape(t *testing.T, platformName string, r platform.MetricsReader, acct platform.Account, id string) {
	t.Helper()
	got, err := r.ReadMetrics(context.Background(), acct, []string{id})
	e := WantErr(t, err, apperr.KindPermanent, platformName+".unexpected_response")
	if e.Redacted == "" || strings.Contains(e.Redacted, "secret-token-value") {
		t.Errorf("Redacted: got %q, want the body without the token", e.Redacted)
	}
	if len(got) != 0 {
		t.Errorf("readings: got %+v, want none", got)
	}
}
