package bluesky_test

import (
	"testing"

	"github.com/posse-dev/posse/infra/platformsim/simtest"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
)

func TestReadMetricsContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	simtest.RunMetricsContract(t, simtest.MetricsContract{
		Sim: e.sim, Reader: e.ad, Acct: e.acct, Platform: "bluesky", Now: e.clock.Now,
		Fields: map[platform.Metric]string{platform.Likes: "likeCount", platform.Reposts: "repostCount", platform.Replies: "replyCount", platform.Quotes: "quoteCount"},
		CallOp: "get_posts", PostID: func(i int) string { return "at://" + aliceDID + "/app.bsky.feed.post/3kmet" + simtest.Digits(i) }, NoScopes: true,
	})
}

func TestReadMetricsUnexpectedShape(t *testing.T) {
	t.Parallel()
	srv := simtest.Answer(t, 200, simtest.WeirdAnswer)
	simtest.RunMetricsShape(t, "bluesky", bluesky.New(bluesky.Config{}, srv.Client(), nil), platform.Account{AccessToken: "t", BaseURL: srv.URL}, "1234")
}
