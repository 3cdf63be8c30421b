package dispatch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/site"
)

// fakeAdapter is the AI router.
type fakeAdapter struct {
	mu    sync.Mutex
	ins   []ai.Input
	adapt func(ai.Input) (ai.Result, error)
}

func (f *fakeAdapter) Adapt(_ context.Context, in ai.Input) (ai.Result, error) {
	f.mu.Lock()
	f.ins = append(f.ins, in)
	f.mu.Unlock()
	return f.adapt(in)
}

type fakeSnapshots struct{}

func (fakeSnapshots) Get(_ context.Context, siteID, postID, revision string) (compose.Snapshot, error) {
	return compose.Snapshot{Post: compose.Post{PostID: postID, Revision: revision, Title: "A title", Excerpt: "An excerpt", Body: "Body"}, SiteID: siteID}, nil
}

type fakeSites struct{ budgetUSD *float64 }

func (f fakeSites) Get(_ context.Context, id string) (site.Site, error) {
	return site.Site{ID: id, AI: site.AI{MonthlyBudgetUSD: f.budgetUSD, Providers: []llm.Name{llm.Gemini}}}, nil
}

// aiDelivery creates a queued delivery that asks for adaptation, with an
// image without alt text.
func (r *rig) aiDelivery(post string) (ledger.Delivery, dispatch.Record) {
	r.t.Helper()
	out, _, err := r.ledger.CreateAll(context.Background(), []ledger.NewDelivery{{
		SiteID: "site_a", PostID: post, Revision: "r1", TargetID: "tgt_1", ConnectionID: "conn_1",
		Platform: platform.Mastodon, Text: "Composed text https://blog.example/p", Link: "https://blog.example/p",
		Media: []platform.Media{{URL: "https://blog.example/a.jpg", Kind: platform.Image, AltText: "given"}, {URL: "https://blog.example/b.jpg", Kind: platform.Image}},
		AI:    &ledger.AIInfo{Source: ledger.AIPending, Settings: ai.Settings{Enabled: true, GenerateAltText: true, MaxHashtags: 2}},
	}})
	if err != nil {
		r.t.Fatal(err)
	}
	d := out[0]
	return d, dispatch.Record{MessageID: "m-" + post, ReceiptHandle: "rh-" + post, Body: ledger.DeliveryMessage(d.SiteID, d.ID).Encode(), ReceiveCount: 1}
}

func TestAdaptationIsFrozenBeforePublishing(t *testing.T) {
	t.Parallel()
	fa := &fakeAdapter{adapt: func(in ai.Input) (ai.Result, error) {
		return ai.Result{Text: "Adapted https://blog.example/p #go", AltTexts: []string{"generated alt"}, Source: ai.SourceAI,
			Provider: "gemini", Model: "flash", CostMicros: 120}, nil
	}}
	budget := 2.0
	r := newRig(t, func(c *dispatch.Config) {
		c.AI, c.Snapshots, c.Sites = fa, fakeSnapshots{}, fakeSites{budgetUSD: &budget}
	})
	var published []platform.Post
	r.pub.publish = func(_ context.Context, _ platform.Account, p platform.Post, _ platform.Journal) (platform.Result, error) {
		published = append(published, p)
		if len(published) == 1 {
			return platform.Result{}, apperr.New(apperr.KindTransient, "mastodon.5xx", "down")
		}
		return platform.Result{ID: "1", URL: "https://m.example/1"}, nil
	}
	d, rec := r.aiDelivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	got := r.get(d.ID)
	if got.State != ledger.StateRetrying || got.Text != "Adapted https://blog.example/p #go" {
		t.Fatalf("after the first attempt: got %s %q, want retrying with the adapted text", got.State, got.Text)
	}
	if got.AI == nil || got.AI.Source != ledger.AIGenerated || got.AI.Provider != "gemini" || got.AI.CostMicros != 120 || got.AI.AdaptedAt == nil {
		t.Fatalf("ai: got %+v", got.AI)
	}
	if got.Media[0].AltText != "given" || got.Media[1].AltText != "generated alt" {
		t.Fatalf("alt texts: got %q %q, want the given one kept and the generated one added", got.Media[0].AltText, got.Media[1].AltText)
	}
	r.clock.Advance(time.Hour)
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if got := r.get(d.ID); got.State != ledger.StateSent {
		t.Fatalf("after the retry: got %s, want sent", got.State)
	}
	if len(fa.ins) != 1 {
		t.Fatalf("adaptations: got %d, want 1 (the retry publishes the frozen text)", len(fa.ins))
	}
	if len(published) != 2 || published[0].Text != published[1].Text || published[1].Media[1].AltText != "generated alt" {
		t.Fatalf("published: got %+v, want the same adapted post twice", published)
	}
	in := fa.ins[0]
	if in.Budget != 2_000_000 || in.Excerpt != "An excerpt" || in.Link != "https://blog.example/p" || in.Fallback != "Composed text https://blog.example/p" ||
		len(in.ImagesNeedingAlt) != 1 || in.ImagesNeedingAlt[0].Index != 1 || in.DeliveryID != d.ID || len(in.Chain) != 1 || in.Chain[0] != llm.Gemini {
		t.Fatalf("router input: got %+v", in)
	}
	if s := r.stats.total(); s.AICostMicros != 120 {
		t.Errorf("stats AI cost: got %d, want 120", s.AICostMicros)
	}
}

func TestAdaptationStorageFailureRetriesWithoutPublishing(t *testing.T) {
	t.Parallel()
	fa := &fakeAdapter{adapt: func(ai.Input) (ai.Result, error) { return ai.Result{}, errors.New("dynamodb: throttled") }}
	r := newRig(t, func(c *dispatch.Config) { c.AI, c.Snapshots, c.Sites = fa, fakeSnapshots{}, fakeSites{} })
	d, rec := r.aiDelivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	got := r.get(d.ID)
	if got.State != ledger.StateRetrying || got.AI.Source != ledger.AIPending {
		t.Fatalf("got %s with ai %+v, want retrying, still pending", got.State, got.AI)
	}
	if n, _ := r.pub.counts(); n != 0 {
		t.Fatalf("publishes: got %d, want 0", n)
	}
}

func TestWithoutRouterThePendingDeliveryPublishesItsText(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	d, rec := r.aiDelivery("p1")
	if err := r.d.HandleRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	got := r.get(d.ID)
	if got.State != ledger.StateSent || got.AI.Source != ledger.AIFallback || got.AI.Reason != "ai_not_configured" || got.Text != d.Text {
		t.Fatalf("got %s %q ai %+v, want sent with the composed text as fallback", got.State, got.Text, got.AI)
	}
}
