package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/llmsim"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/shared/ai"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
)

// typicalLatency is what the LLM simulator waits before answering, per
// provider: the order of a small structured completion (a few hundred
// tokens out) from each provider's cheap model. Assumptions, not
// measurements; the ratios below do not depend on them.
var typicalLatency = map[llm.Name]time.Duration{
	llm.OpenAI: 700 * time.Millisecond, llm.Anthropic: 900 * time.Millisecond,
	llm.Gemini: 500 * time.Millisecond, llm.Cohere: 600 * time.Millisecond,
}

// typicalPost is a typical blog post: a title, a two-sentence excerpt, a
// 2,000-character body and one image without alt text.
func typicalPost(id string) (title, excerpt, body, link string) {
	body = ""
	for len(body) < 2000 {
		body += "Publishing on your own site first and syndicating elsewhere keeps the canonical copy yours. "
	}
	return "Why we publish on our own site first (" + id + ")",
		"Owning the canonical copy of every post keeps links stable. Here is how our CMS syndicates to eight networks.",
		body, "https://blog.example/posts/" + id
}

// aiAdaptation measures the AI router against the LLM simulator with each
// provider's typical latency and a DynamoDB table in moto: adaptation
// latency p50/p95 through the router vs a direct provider call (the
// router's overhead), LLM calls per delivery for a post to eight
// platforms (first time, and again as a retry would), and the AI cost of
// one distribution at list prices.
func aiAdaptation(ctx context.Context, srv *moto.Server) ([]result, error) {
	db := dynamodb.NewFromConfig(moto.Config(srv.Endpoint()))
	table := "bench-ai"
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("PK"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("PK"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: types.KeyTypeRange}},
	})
	if err != nil {
		return nil, fmt.Errorf("create the AI bench table: %w", err)
	}
	sim := llmsim.New(llmsim.Options{Latency: typicalLatency})
	hs := httptest.NewServer(sim)
	defer hs.Close()
	base := map[llm.Name]string{llm.OpenAI: "/openai/v1", llm.Anthropic: "/anthropic", llm.Gemini: "/gemini", llm.Cohere: "/cohere"}
	var providers []config.AIProvider
	for _, n := range llm.All {
		providers = append(providers, config.AIProvider{Name: string(n), APIKey: "bench-" + string(n), BaseURL: hs.URL + base[n]})
	}
	cfg, err := config.LoadAI(func(string) string { return "" }, nil)
	if err != nil {
		return nil, err
	}
	cfg.Providers = providers
	router, err := ai.FromConfig(cfg, db, table, nil, nil)
	if err != nil {
		return nil, err
	}
	adapters := registry.New(registry.Config{})
	input := func(postID string, p platform.Name) ai.Input {
		pub, _ := adapters.Publisher(p)
		title, excerpt, body, link := typicalPost(postID)
		settings := ai.Settings{Enabled: true, MaxHashtags: 3, GenerateAltText: true}
		return ai.InputFor(ai.Request{SiteID: "site_bench", PostID: postID, Revision: "1", Platform: p,
			Limit: compose.LimitOf(pub.Capabilities()), Title: title, Excerpt: excerpt, Body: body, Link: link,
			Media: []platform.Media{{URL: "https://blog.example/cover.jpg", Kind: platform.Image}}, Settings: settings,
			Fallback: title + " " + link, Validate: ai.ValidateWith(pub, platform.Post{Link: link}), BudgetMicros: 1_000_000_000})
	}

	// Latency through the router: distinct posts (no cache hit), one at a
	// time, to X (moto serialises DynamoDB requests, so concurrent
	// adaptations would measure moto's queue, not the router).
	const n = 20
	lat := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		res, err := router.Adapt(ctx, input(fmt.Sprintf("lat-%d", i), platform.X))
		lat[i] = time.Since(start)
		if err != nil {
			return nil, err
		}
		if res.Source != ai.SourceAI {
			return nil, fmt.Errorf("adaptation %d fell back: %s", i, res.Reason)
		}
	}
	// The same provider the cost strategy picks, called directly.
	direct := make([]time.Duration, n)
	first := router.Chain(input("direct", platform.X))[0]
	for i := range n {
		in := input(fmt.Sprintf("direct-%d", i), platform.X)
		req, err := router.Request(in)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := first.Generate(ctx, req); err != nil {
			return nil, fmt.Errorf("direct %s call: %w", first.Name(), err)
		}
		direct[i] = time.Since(start)
	}

	// LLM calls per delivery: one post to eight platforms, then again as a
	// retry of every delivery would ask.
	before := len(sim.Calls())
	var distribution int64
	for _, p := range platform.All {
		res, err := router.Adapt(ctx, input("eight", p))
		if err != nil {
			return nil, err
		}
		distribution += res.CostMicros
	}
	firstCalls := len(sim.Calls()) - before
	for _, p := range platform.All {
		if _, err := router.Adapt(ctx, input("eight", p)); err != nil {
			return nil, err
		}
	}
	retryCalls := len(sim.Calls()) - before - firstCalls

	routerP50, routerP95 := pct(lat, 50), pct(lat, 95)
	directP50 := pct(direct, 50)
	return []result{
		{Name: "AI adaptation p50 through the router", Value: ms(routerP50), Unit: "ms", Note: fmt.Sprintf("simulated %s latency %v; cost strategy picks %s", first.Name(), typicalLatency[first.Name()], first.Name())},
		{Name: "AI adaptation p95 through the router", Value: ms(routerP95), Unit: "ms", Note: "spec: p95 <= 2,000 ms"},
		withFloor(result{Name: "AI router overhead (p50)", Value: ms(routerP50), Unit: "ms", Note: "floor = the same provider called directly; goal <= 1.1x"}, ms(directP50)),
		{Name: "LLM calls per delivery, post to 8 platforms", Value: float64(firstCalls) / float64(len(platform.All)), Unit: "calls", Note: "goal <= 1"},
		{Name: "LLM calls per delivery, again (retries)", Value: float64(retryCalls) / float64(len(platform.All)), Unit: "calls", Note: "goal 0; a delivery also freezes its text, so a retry never reaches the router"},
		{Name: "AI cost of one distribution (8 platforms)", Value: float64(distribution), Unit: "µUSD",
			Note: fmt.Sprintf("= $%.6f at list prices, typical post; spec <= $0.01, goal <= $0.001", float64(distribution)/1e6)},
	}, nil
}
