package tiktok_test

import (
	"testing"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/tiktok"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.adapter(tiktok.Config{}), Acct: e.acct, Platform: "tiktok", Now: e.clk.Now,
		Fields: map[platform.Metric]string{platform.Views: "view_count", platform.Likes: "like_count", platform.Replies: "comment_count", platform.Shares: "share_count"},
		CallOp: "video_query", PostID: simtest.Digits, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "tiktok", tiktok.New(tiktok.Config{BaseURL: srv.URL}, srv.Client(), nil), platform.Account{AccessToken: "t"}, "1234")
}
