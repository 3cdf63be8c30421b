package facebook_test

import (
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/facebook"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "facebook", Now: func() time.Time { return start },
		Fields: map[platform.Metric]string{platform.Views: "post_impressions", platform.Clicks: "post_clicks", platform.Likes: "post_reactions_like_total"},
		CallOp: "read_insights", PostID: func(i int) string { return pageID + "_" + simtest.Digits(i) }, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "facebook", facebook.New(facebook.Config{GraphURL: srv.URL}, srv.Client(), nil), platform.Account{AccessToken: "t"}, "1234")
}
