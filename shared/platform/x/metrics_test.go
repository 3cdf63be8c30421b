package x_test

import (
	"testing"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/x"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "x", Now: e.clock.Now,
		Fields: map[platform.Metric]string{platform.Views: "impression_count", platform.Likes: "like_count", platform.Reposts: "retweet_count", platform.Replies: "reply_count", platform.Quotes: "quote_count", platform.Saves: "bookmark_count"},
		CallOp: "read_posts", PostID: simtest.Digits, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "x", x.New(x.Config{BaseURL: srv.URL}, srv.Client(), nil), platform.Account{AccessToken: "t"}, "1234")
}
