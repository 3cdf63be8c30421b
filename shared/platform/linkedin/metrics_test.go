package linkedin_test

import (
	"testing"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/linkedin"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t, linkedin.Config{})
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "linkedin", Now: e.clock.Now,
		Fields: map[platform.Metric]string{platform.Likes: "likesSummary.totalLikes", platform.Replies: "commentsSummary.aggregatedTotalComments"},
		CallOp: "read_social_actions", PostID: func(i int) string { return "urn:li:share:" + simtest.Digits(i) }, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "linkedin", linkedin.New(linkedin.Config{BaseURL: srv.URL}, srv.Client(), nil), platform.Account{AccessToken: "t"}, "1234")
}
