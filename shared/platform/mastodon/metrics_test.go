package mastodon_test

import (
	"testing"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/mastodon"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "mastodon", Now: e.clock.Now,
		Fields: map[platform.Metric]string{platform.Likes: "favourites_count", platform.Reposts: "reblogs_count", platform.Replies: "replies_count"},
		CallOp: "read_status", PostID: simtest.Digits, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "mastodon", mastodon.New(mastodon.Config{}, srv.Client(), nil), platform.Account{AccessToken: "t", BaseURL: srv.URL}, "1234")
}
