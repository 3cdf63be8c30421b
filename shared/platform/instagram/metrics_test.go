package instagram_test

import (
	"testing"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/instagram"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t, instagram.Config{}, "", nil)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "instagram", Now: e.clock.Now,
		Fields: map[platform.Metric]string{platform.Views: "views", platform.Likes: "likes", platform.Replies: "comments", platform.Shares: "shares", platform.Saves: "saved"},
		CallOp: "read_insights", PostID: simtest.Digits, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "instagram", instagram.New(instagram.Config{GraphURL: srv.URL}, srv.Client(), nil), platform.Account{AccessToken: "t"}, "1234")
}
