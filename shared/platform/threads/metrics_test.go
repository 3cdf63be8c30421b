package threads_test

import (
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/threads"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "threads", Now: func() time.Time { return t0 },
		Fields: map[platform.Metric]string{platform.Views: "views", platform.Likes: "likes", platform.Replies: "replies", platform.Reposts: "reposts", platform.Quotes: "quotes", platform.Shares: "shares"},
		CallOp: "read_insights", PostID: simtest.Digits, NoScopes: false,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "threads", threads.New(threads.Config{BaseURL: srv.URL}, srv.Client(), nil), platform.Account{AccessToken: "t"}, "1234")
}
