package ai

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/llm"
	"github.com/posse-dev/posse/shared/metrics"
)

// Defaults of Config.
const (
	DefaultChainBudget    = 8 * time.Second
	DefaultCallTimeout    = 5 * time.Second
	DefaultTypicalLatency = 2 * time.Second
)

// DefaultCooldown is the CooldownPolicy of a Config that sets none.
var DefaultCooldown = CooldownPolicy{Failures: 3, Window: time.Minute, Duration: time.Minute}

const (
	// minCallTime is the least chain budget worth starting a call with.
	minCallTime = 100 * time.Millisecond
	// maxRetryAfterWait is the longest Retry-After the router waits out to
	// call the same provider again (once).
	maxRetryAfterWait = 2 * time.Second
	// maxRetryAfterBlock caps how long a Retry-After blocks a provider.
	maxRetryAfterBlock = 10 * time.Minute
	// cooldownReadTTL is how long an instance trusts its read of the
	// cooldown items.
	cooldownReadTTL = 2 * time.Second
	// pollInterval is how often a waiter reads a generation another
	// instance is making.
	pollInterval = 150 * time.Millisecond
	// leaseMargin is added to the chain budget for a generation lease.
	leaseMargin = 2 * time.Second
	// writeTimeout bounds the writes made after the chain budget (ledger,
	// budget settlement, cache), which must not be cut short by it.
	writeTimeout = 3 * time.Second
	// warnPercent is the share of the budget whose crossing sets
	// Result.BudgetWarning.
	warnPercent = 80
	// latencyWeight is the weight of a new sample in the latency average.
	latencyWeight = 0.3
	// typicalIn and typicalOut are the tokens of the typical call the cost
	// strategy compares providers by.
	typicalIn, typicalOut = 1000, 300
)

// CooldownPolicy says when a failing provider is skipped: after Failures
// consecutive failures within Window, for Duration, on every instance.
type CooldownPolicy struct {
	Failures int
	Window   time.Duration
	Duration time.Duration
}

// Config configures a Router. Only DB and Table are required.
type Config struct {
	// Providers are the configured providers, in the operator's ranking
	// (StrategyQuality's order). None is fine: every Adapt falls back.
	Providers []llm.Provider
	// DB is the DynamoDB client (*dynamodb.Client); Table the table.
	DB    dynamoAPI
	Table string
	// Prices defaults to DefaultPrices().
	Prices PriceTable
	// ChainBudget bounds one Adapt from start to result (default 8 s);
	// CallTimeout one provider call (default 5 s): each call gets the
	// smaller of CallTimeout and what is left of the chain budget.
	ChainBudget time.Duration
	CallTimeout time.Duration
	// Cooldown defaults to DefaultCooldown.
	Cooldown CooldownPolicy
	// Strategy orders the providers of a site that chose neither a chain
	// nor a strategy (default StrategyCost).
	Strategy Strategy
	// MaxOutputTokens caps an answer's tokens (0: the router's own bound,
	// at most 4,096, from the platform's limit and the images). A cap
	// below that bound makes the prompt ask for a shorter text.
	MaxOutputTokens int
	// TypicalLatency is the latency StrategyLatency assumes of a provider
	// this instance has not measured yet (default 2 s).
	TypicalLatency time.Duration
	// Metrics counts the calls (AICalls) and what they cost (AICostMicros)
	// per provider; the function flushes it. Nil records nothing.
	Metrics *metrics.Recorder
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the wall clock for recorded times (ledger, months, leases,
	// cooldowns); durations use the monotonic clock. Default time.Now.
	Now func() time.Time
	// Random fills ids; default crypto/rand.Read.
	Random func([]byte) (int, error)
}

// Router adapts posts with the configured providers. It is safe for
// concurrent use; one per warm instance keeps latency averages, the
// cooldown read and in-flight generations.
type Router struct {
	providers   []llm.Provider
	byName      map[llm.Name]llm.Provider
	st          store
	prices      PriceTable
	chainBudget time.Duration
	callTimeout time.Duration
	strategy    Strategy
	maxOut      int
	cool        CooldownPolicy
	typical     time.Duration
	metrics     *metrics.Recorder
	log         *slog.Logger
	now         func() time.Time
	random      func([]byte) (int, error)

	mu      sync.Mutex
	latency map[llm.Name]float64 // milliseconds, moving average
	flights map[string]*flight

	coolMu   sync.Mutex
	coolRead time.Time // when coolSeen was read (monotonic)
	coolSeen map[llm.Name]coolState
}

// New returns a Router. It checks c and does no I/O.
func New(c Config) (*Router, error) {
	if c.DB == nil {
		return nil, errors.New("ai: Config.DB is required")
	}
	if c.Table == "" {
		return nil, errors.New("ai: Config.Table is required")
	}
	return newRouter(c, &dynamoStore{db: c.DB, table: c.Table})
}

func newRouter(c Config, st store) (*Router, error) {
	r := &Router{
		byName: map[llm.Name]llm.Provider{}, st: st, prices: c.Prices,
		chainBudget: c.ChainBudget, callTimeout: c.CallTimeout, strategy: c.Strategy, maxOut: c.MaxOutputTokens,
		cool: c.Cooldown, typical: c.TypicalLatency, metrics: c.Metrics,
		log: c.Logger, now: c.Now, random: c.Random,
		latency: map[llm.Name]float64{}, flights: map[string]*flight{},
	}
	for i, p := range c.Providers {
		if p == nil {
			return nil, fmt.Errorf("ai: Config.Providers[%d] is nil", i)
		}
		if !p.Name().Valid() {
			return nil, fmt.Errorf("ai: Config.Providers[%d]: unknown provider %q", i, p.Name())
		}
		if r.byName[p.Name()] != nil {
			return nil, fmt.Errorf("ai: Config.Providers[%d]: %s is configured twice", i, p.Name())
		}
		r.byName[p.Name()] = p
		r.providers = append(r.providers, p)
	}
	if len(r.prices.prices) == 0 {
		r.prices = DefaultPrices()
	}
	switch {
	case r.chainBudget < 0 || r.callTimeout < 0 || r.typical < 0:
		return nil, errors.New("ai: Config durations must not be negative")
	case r.chainBudget == 0:
		r.chainBudget = DefaultChainBudget
	}
	if r.callTimeout == 0 {
		r.callTimeout = min(DefaultCallTimeout, r.chainBudget)
	}
	if r.callTimeout > r.chainBudget {
		return nil, fmt.Errorf("ai: Config.CallTimeout %s is longer than ChainBudget %s", r.callTimeout, r.chainBudget)
	}
	switch {
	case !r.strategy.Valid():
		return nil, fmt.Errorf("ai: Config.Strategy %q is not cost, latency or quality", r.strategy)
	case r.strategy == "":
		r.strategy = StrategyCost
	}
	if r.maxOut < 0 {
		return nil, errors.New("ai: Config.MaxOutputTokens must not be negative")
	}
	if r.cool == (CooldownPolicy{}) {
		r.cool = DefaultCooldown
	}
	if r.cool.Failures < 1 || r.cool.Window <= 0 || r.cool.Duration <= 0 {
		return nil, errors.New("ai: Config.Cooldown needs Failures >= 1 and a positive Window and Duration")
	}
	if r.typical == 0 {
		r.typical = DefaultTypicalLatency
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.random == nil {
		r.random = rand.Read
	}
	return r, nil
}

// Adapt returns the text of in for its platform. Every LLM failure
// (errors, timeouts, invalid answers, cooldowns, an exhausted budget) ends
// in a fallback Result, within the chain budget. The error is only for
// failures of our own infrastructure that must fail the attempt (a
// DynamoDB error before a call was made) or an Input the caller built
// wrong.
func (r *Router) Adapt(ctx context.Context, in Input) (Result, error) {
	if err := checkInput(in); err != nil {
		return Result{}, err
	}
	switch {
	case !in.Settings.Enabled:
		return gen{reason: ReasonAIDisabled}.result(in), nil
	case in.Budget <= 0:
		return gen{reason: ReasonBudgetZero}.result(in), nil
	}
	chain := r.chain(in)
	if len(chain) == 0 {
		return gen{reason: ReasonNoProviders}.result(in), nil
	}
	req, err := buildRequest(in, r.maxOut)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.chainBudget)
	defer cancel()
	k := genKey(in)
	g, err := r.flight(ctx, in.SiteID+"\x00"+k, func() (gen, error) {
		return r.generateCached(ctx, in, chain, req, k)
	})
	if err != nil {
		return Result{}, err
	}
	res := g.result(in)
	r.log.LogAttrs(ctx, slog.LevelInfo, "ai adapt",
		slog.String("site_id", in.SiteID), slog.String("post_id", in.PostID), slog.String("platform", string(in.Platform)),
		slog.String("source", string(res.Source)), slog.Bool("cached", res.Cached), slog.String("reason", res.Reason),
		slog.String("provider", res.Provider), slog.Int64("cost_micros", res.CostMicros),
		slog.Int("text_chars", utf8.RuneCountInString(res.Text)), slog.String("text_sha256", sha(res.Text)))
	return res, nil
}

// checkInput rejects an Input the caller built wrong.
func checkInput(in Input) error {
	var ps []apperr.Problem
	add := func(field, msg string) { ps = append(ps, apperr.Problem{Field: field, Message: msg}) }
	if in.SiteID == "" {
		add("siteId", "is required")
	}
	if in.PostID == "" {
		add("postId", "is required")
	}
	if !in.Platform.Valid() {
		add("platform", "is not a supported platform")
	}
	if in.Limit.Max <= 0 {
		add("limit", "must have a positive maximum")
	}
	if !in.Strategy.Valid() {
		add("strategy", `must be "cost", "latency" or "quality"`)
	}
	if in.Variant < 0 {
		add("variant", "must not be negative")
	}
	ps = append(ps, in.Settings.Validate("settings")...)
	if len(ps) > 0 {
		return apperr.InvalidProblems(ps)
	}
	return nil
}

// chain returns the providers to try, in order: the site's chain as it
// is, or every configured provider in the order of the strategy.
func (r *Router) chain(in Input) []llm.Provider {
	if len(in.Chain) > 0 {
		var ps []llm.Provider
		seen := map[llm.Name]bool{}
		for _, n := range in.Chain {
			if p := r.byName[n]; p != nil && !seen[n] {
				ps = append(ps, p)
				seen[n] = true
			}
		}
		return ps
	}
	ps := slices.Clone(r.providers)
	s := in.Strategy
	if s == "" {
		s = r.strategy
	}
	switch s {
	case StrategyCost:
		cost := map[llm.Name]int64{}
		for _, p := range ps {
			cost[p.Name()], _ = r.prices.Cost(p.Name(), p.Model(), typicalIn, typicalOut)
		}
		slices.SortStableFunc(ps, func(a, b llm.Provider) int { return cmp64(cost[a.Name()], cost[b.Name()]) })
	case StrategyLatency:
		lat := map[llm.Name]float64{}
		r.mu.Lock()
		for _, p := range ps {
			l, ok := r.latency[p.Name()]
			if !ok {
				l = float64(r.typical.Milliseconds())
			}
			lat[p.Name()] = l
		}
		r.mu.Unlock()
		slices.SortStableFunc(ps, func(a, b llm.Provider) int {
			switch la, lb := lat[a.Name()], lat[b.Name()]; {
			case la < lb:
				return -1
			case la > lb:
				return 1
			}
			return 0
		})
	}
	return ps
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// genKey is the generation cache's sort key: one generation per post
// revision, platform, settings and variant — and link and limit, since
// two targets on one platform may carry different (UTM-tagged) links.
func genKey(in Input) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1|%s|%d:%s|%s|%d|%d|", in.Settings.Hash(), len(in.Link), in.Link, in.Limit.Rule, in.Limit.Max, in.Limit.MaxBytes)
	for _, im := range in.ImagesNeedingAlt {
		fmt.Fprintf(h, "%d:%d:%s|", im.Index, len(im.URL), im.URL)
	}
	inputHash := hex.EncodeToString(h.Sum(nil))[:16]
	return keyPart.Replace(in.PostID) + "#" + keyPart.Replace(in.Revision) + "#" + string(in.Platform) + "#" + inputHash + "#" + strconv.Itoa(in.Variant)
}

// gen is the outcome of a generation, before the caller's fallback text
// is applied.
type gen struct {
	ok        bool
	text      string
	altTexts  []string
	provider  llm.Name
	model     string
	cost      int64
	estimated bool
	warning   bool
	reason    string
	cached    bool
	attempts  []AttemptInfo
}

// shared is g as another caller of the same generation sees it: the text
// without the cost (the first caller paid it).
func (g gen) shared() gen {
	g.cost, g.estimated, g.warning, g.attempts = 0, false, false, nil
	if g.ok {
		g.cached = true
	}
	return g
}

// result turns g into the Result for in: a failed generation gets in's
// fallback text.
func (g gen) result(in Input) Result {
	res := Result{
		CostMicros: g.cost, Estimated: g.estimated, BudgetWarning: g.warning, Attempts: g.attempts,
	}
	if g.ok {
		res.Text, res.AltTexts, res.Source, res.Cached = g.text, g.altTexts, SourceAI, g.cached
		res.Provider, res.Model = string(g.provider), g.model
		return res
	}
	res.Source, res.Reason = SourceFallback, g.reason
	// Keyword hashtags only where AI was wanted and allowed.
	res.Text = fallbackText(in, g.reason != ReasonAIDisabled && g.reason != ReasonBudgetZero)
	return res
}

// flight is one in-process generation others may join.
type flight struct {
	done chan struct{}
	g    gen
	err  error
}

// flight runs fn once for concurrent callers with the same key in this
// process; the others wait for its outcome (within their own context).
func (r *Router) flight(ctx context.Context, k string, fn func() (gen, error)) (gen, error) {
	r.mu.Lock()
	if f := r.flights[k]; f != nil {
		r.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil {
				return gen{}, f.err
			}
			return f.g.shared(), nil
		case <-ctx.Done():
			return gen{reason: ctxReason(ctx)}, nil
		}
	}
	f := &flight{done: make(chan struct{}), err: errors.New("ai: generation did not finish")}
	r.flights[k] = f
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.flights, k)
		r.mu.Unlock()
		close(f.done)
	}()
	f.g, f.err = fn()
	return f.g, f.err
}

// ctxReason is the fallback reason of a context that ended.
func ctxReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ReasonCanceled
	}
	return ReasonDeadline
}

// generateCached serves a generation from the cache, waits for another
// instance making it, or makes it under a lease.
func (r *Router) generateCached(ctx context.Context, in Input, chain []llm.Provider, req llm.Request, k string) (gen, error) {
	it, err := r.st.getGen(ctx, in.SiteID, k)
	if err != nil {
		return r.infraFailure(ctx, err)
	}
	switch {
	case it.State == stateDone:
		if g, ok := fromCache(in, it); ok {
			return g, nil
		}
		// It does not pass this caller's checks (its Validate changed):
		// generate afresh, leaving the cached one alone.
		return r.generate(ctx, in, chain, req)
	case it.State == stateGenerating && it.LeaseUntil.After(r.now()):
		return r.wait(ctx, in, chain, req, k)
	}
	g, took, err := r.leaseAndGenerate(ctx, in, chain, req, k)
	if err != nil || took {
		return g, err
	}
	return r.wait(ctx, in, chain, req, k)
}

// infraFailure is the outcome of a DynamoDB error: an error that fails
// the attempt, unless the chain budget ran out first (then it is only a
// slow read, and the post falls back in time).
func (r *Router) infraFailure(ctx context.Context, err error) (gen, error) {
	if ctx.Err() != nil {
		return gen{reason: ctxReason(ctx)}, nil
	}
	return gen{}, err
}

// leaseAndGenerate takes the lease and generates; took is false when
// another instance holds it.
func (r *Router) leaseAndGenerate(ctx context.Context, in Input, chain []llm.Provider, req llm.Request, k string) (gen, bool, error) {
	leaseID, err := r.newID()
	if err != nil {
		return gen{}, false, err
	}
	now := r.now()
	took, err := r.st.leaseGen(ctx, in.SiteID, k, leaseID, now, now.Add(r.chainBudget+leaseMargin))
	if err != nil {
		g, err := r.infraFailure(ctx, err)
		return g, true, err
	}
	if !took {
		return gen{}, false, nil
	}
	g, err := r.generate(ctx, in, chain, req)
	if err != nil {
		return gen{}, true, err // the lease runs out; waiters then generate themselves
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if g.ok {
		err = r.st.putGen(wctx, in.SiteID, k, leaseID, genItem{Text: g.text, AltTexts: g.altTexts, Provider: g.provider, Model: g.model, CostMicros: g.cost}, r.now())
	} else {
		err = r.st.failGen(wctx, in.SiteID, k, leaseID, g.reason, r.now())
	}
	if err != nil {
		// The text is good; only a later Adapt loses the cache.
		r.log.LogAttrs(ctx, slog.LevelWarn, "ai cache write failed", slog.String("site_id", in.SiteID), slog.String("error", err.Error()))
	}
	return g, true, nil
}

// wait polls a generation another instance holds the lease on, and uses
// its outcome. It takes over a lease that ran out, and generates itself
// (without caching) when waiting longer would leave too little of the
// chain budget to do so.
func (r *Router) wait(ctx context.Context, in Input, chain []llm.Provider, req llm.Request, k string) (gen, error) {
	deadline, _ := ctx.Deadline()
	giveUp := deadline.Add(-min(r.callTimeout, r.chainBudget/2))
	for time.Until(giveUp) >= pollInterval && sleep(ctx, pollInterval) {
		it, err := r.st.getGen(ctx, in.SiteID, k)
		if err != nil {
			return r.infraFailure(ctx, err)
		}
		switch {
		case it.State == stateDone:
			if g, ok := fromCache(in, it); ok {
				return g, nil
			}
			return r.generate(ctx, in, chain, req)
		case it.State == stateFailed:
			// The holder fell back a moment ago, in this same burst:
			// fall back too rather than call the same failing chain.
			return gen{reason: it.Reason}, nil
		case it.State == "" || !it.LeaseUntil.After(r.now()):
			g, took, err := r.leaseAndGenerate(ctx, in, chain, req, k)
			if err != nil || took {
				return g, err
			}
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return gen{reason: ReasonCanceled}, nil
	}
	return r.generate(ctx, in, chain, req)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fromCache returns a cached generation if it still passes in's checks.
func fromCache(in Input, it genItem) (gen, bool) {
	t := it.Text
	if t == "" || !in.Limit.Fits(t) || len(checkContent(in, t)) > 0 {
		return gen{}, false
	}
	if in.Validate != nil && len(in.Validate(t)) > 0 {
		return gen{}, false
	}
	alts := it.AltTexts
	if len(in.ImagesNeedingAlt) == 0 {
		alts = nil
	} else if len(alts) != len(in.ImagesNeedingAlt) {
		return gen{}, false
	}
	return gen{ok: true, cached: true, text: t, altTexts: alts, provider: it.Provider, model: it.Model}, true
}

// generate runs the chain: per provider, skip it if cooling down, reserve
// the budget, call it, check the answer, settle and record the call; the
// first valid answer wins.
func (r *Router) generate(ctx context.Context, in Input, chain []llm.Provider, req llm.Request) (gen, error) {
	var bg sync.WaitGroup
	defer bg.Wait() // the ledger, settlement and cooldown writes finish before Adapt returns
	deadline, _ := ctx.Deadline()
	month := r.now().UTC().Format(monthLayout)
	cool := r.cooldowns(ctx)
	promptHash := sha(req.System + "\x00" + req.User)
	promptChars := utf8.RuneCountInString(req.System) + utf8.RuneCountInString(req.User)
	var g gen
	var reasons []string
	retried := map[llm.Name]bool{}
	for i := 0; i < len(chain); i++ {
		p := chain[i]
		name, model := p.Name(), p.Model()
		skip := func(code string) {
			reasons = append(reasons, string(name)+"="+code)
			g.attempts = append(g.attempts, AttemptInfo{Provider: string(name), Model: model, Code: code})
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			g.reason = ReasonCanceled
			return g, nil
		}
		if cool[name].Until.After(r.now()) {
			skip(CodeCooldown)
			continue
		}
		remaining := time.Until(deadline)
		if remaining < minCallTime {
			skip(CodeDeadline)
			continue
		}
		est := r.estimate(name, model, req)
		ok, committed, err := r.st.reserve(ctx, in.SiteID, month, est, in.Budget, r.now())
		if err != nil {
			if ctx.Err() != nil {
				skip(CodeDeadline)
				continue
			}
			return gen{}, err
		}
		if !ok {
			g.reason = ReasonBudgetExhausted
			return g, nil
		}
		if before := committed - est; before*100 < in.Budget*warnPercent && committed*100 >= in.Budget*warnPercent {
			g.warning = true
		}

		callCtx, cancel := context.WithTimeout(ctx, min(r.callTimeout, remaining))
		fullTime := r.callTimeout <= remaining
		start := time.Now()
		resp, callErr := p.Generate(callCtx, req)
		lat := time.Since(start)
		timedOut := errors.Is(callCtx.Err(), context.DeadlineExceeded)
		cancel()
		callerGone := errors.Is(ctx.Err(), context.Canceled)

		code, retryAfter := classify(callErr, timedOut)
		var ans checked
		var problems []string
		if code == "" {
			ans, code, problems = checkAnswer(in, resp.Text)
		}
		respModel := resp.Model
		if respModel == "" {
			respModel = model
		}
		inTok, outTok, estimated := usageOf(resp, code, req)
		cost, unknown := r.prices.Cost(name, respModel, inTok, outTok)
		estimated = estimated || unknown && cost > 0
		outcome := code
		if outcome == "" {
			outcome = CodeOK
		}
		id, err := r.newID()
		if err != nil {
			return gen{}, err
		}
		rec := callRecord{
			At: r.now(), ID: id, SiteID: in.SiteID, PostID: in.PostID, Revision: in.Revision, DeliveryID: in.DeliveryID,
			Platform: in.Platform, Provider: name, Model: respModel, InputTokens: inTok, OutputTokens: outTok,
			CostMicros: cost, Estimated: estimated, LatencyMS: lat.Milliseconds(), Outcome: outcome,
			PromptSHA256: promptHash, PromptChars: promptChars, AnswerChars: utf8.RuneCountInString(resp.Text),
		}
		bg.Go(func() { r.account(ctx, rec, month, cost-est) })
		g.attempts = append(g.attempts, AttemptInfo{Provider: string(name), Model: respModel, Code: outcome, LatencyMS: lat.Milliseconds(), CostMicros: cost})
		g.cost += cost
		g.estimated = g.estimated || estimated
		level := slog.LevelInfo
		if code != "" {
			level = slog.LevelWarn
		}
		r.log.LogAttrs(ctx, level, "ai call", slog.String("site_id", in.SiteID), slog.String("post_id", in.PostID),
			slog.String("provider", string(name)), slog.String("model", respModel), slog.String("outcome", outcome),
			slog.String("problems", strings.Join(problems, ",")), slog.Int64("latency_ms", lat.Milliseconds()),
			slog.Int64("cost_micros", cost), slog.Bool("estimated", estimated), slog.Int("usage_in", inTok), slog.Int("usage_out", outTok),
			slog.Int("prompt_chars", promptChars), slog.Int("answer_chars", rec.AnswerChars), slog.String("answer_sha256", sha(resp.Text)))

		if code == "" {
			r.observe(name, lat)
			if cool[name].Failures > 0 {
				bg.Go(func() { r.succeeded(ctx, name) })
			}
			g.ok, g.text, g.altTexts, g.provider, g.model = true, ans.text, ans.altTexts, name, respModel
			return g, nil
		}
		if code == llm.CodeTimeout {
			r.observe(name, lat)
		}
		if code == llm.CodeRateLimited && !retried[name] && retryAfter > 0 && retryAfter <= maxRetryAfterWait &&
			retryAfter+minCallTime < time.Until(deadline) {
			retried[name] = true
			if sleep(ctx, retryAfter) {
				i-- // the same provider, once more
				continue
			}
		}
		if !callerGone && countsTowardCooldown(code, fullTime) {
			minUntil := time.Time{}
			if code == llm.CodeRateLimited && retryAfter > 0 {
				minUntil = r.now().Add(min(retryAfter, maxRetryAfterBlock))
			}
			bg.Go(func() { r.failed(ctx, name, minUntil) })
		}
		reasons = append(reasons, string(name)+"="+code)
	}
	g.reason = ReasonAllFailed + ": " + strings.Join(reasons, ",")
	return g, nil
}

// estimate is the reservation of a call: an upper bound of its cost, with
// input tokens from the prompt's bytes (at most a token per two bytes, plus
// the messages' framing) and the answer's token limit, at the model's price.
func (r *Router) estimate(name llm.Name, model string, req llm.Request) int64 {
	in := (len(req.System)+len(req.User))/2 + 64
	pr, _ := r.prices.priceFor(name, model)
	return costOf(pr, in, req.MaxOutputTokens)
}

// classify returns the llm code of a call's error ("" for none) and the
// provider's Retry-After.
func classify(err error, timedOut bool) (string, time.Duration) {
	if err == nil {
		return "", 0
	}
	if timedOut {
		return llm.CodeTimeout, 0
	}
	if e, ok := apperr.As(err); ok && strings.HasPrefix(e.Code, "llm.") {
		return e.Code, e.RetryAfter
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return llm.CodeTimeout, 0
	}
	return llm.CodeTransport, 0
}

// countsTowardCooldown reports whether a failure says something about the
// provider rather than about this post: refusals, truncations and invalid
// answers do not count, nor a timeout of a call that had less than the full
// call timeout.
func countsTowardCooldown(code string, fullTime bool) bool {
	switch code {
	case llm.CodeRefusal, llm.CodeTruncated, llm.CodeInvalidOutput:
		return false
	case llm.CodeTimeout:
		return fullTime
	}
	return true
}

// usageOf returns the tokens a call is charged: the reported usage, or an
// estimate from the lengths (a token per 4 characters) when the model
// produced an answer; a call that produced none (429, 5xx, timeout...)
// and reported nothing is charged nothing.
func usageOf(resp llm.Response, code string, req llm.Request) (in, out int, estimated bool) {
	if resp.Usage.Reported {
		return resp.Usage.InputTokens, resp.Usage.OutputTokens, false
	}
	switch code {
	case "", llm.CodeInvalidOutput, llm.CodeMalformed, llm.CodeRefusal, llm.CodeTruncated:
		in = (utf8.RuneCountInString(req.System)+utf8.RuneCountInString(req.User))/4 + 1
		out = utf8.RuneCountInString(resp.Text)/4 + 1
		if code == llm.CodeTruncated {
			out = max(out, req.MaxOutputTokens)
		}
		return in, out, true
	}
	return 0, 0, false
}

// account settles the reservation and records the call, in the ledger and
// as metrics (by provider and outcome, never by site). It runs after the
// call, so it must not be cut short by the chain budget; a failure is
// logged (the reservation already bounded the spend).
func (r *Router) account(ctx context.Context, rec callRecord, month string, delta int64) {
	r.metrics.Count(metrics.AICalls, metrics.Dims{metrics.Provider: string(rec.Provider), metrics.Outcome: strings.TrimPrefix(rec.Outcome, "llm.")}, 1)
	r.metrics.Add(metrics.AICostMicros, metrics.Dims{metrics.Provider: string(rec.Provider)}, metrics.None, float64(rec.CostMicros))
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var settleErr, recordErr error
	wg.Go(func() { settleErr = r.st.settle(wctx, rec.SiteID, month, delta) })
	wg.Go(func() { recordErr = r.st.recordCall(wctx, rec) })
	wg.Wait()
	if err := errors.Join(settleErr, recordErr); err != nil {
		r.log.LogAttrs(ctx, slog.LevelError, "ai cost ledger write failed", slog.String("site_id", rec.SiteID),
			slog.String("provider", string(rec.Provider)), slog.Int64("cost_micros", rec.CostMicros), slog.String("error", err.Error()))
	}
}

// cooldowns returns the cooldown states, read at most every
// cooldownReadTTL per instance. A failed read keeps the last one: the
// cooldown saves calls, it guards no invariant.
func (r *Router) cooldowns(ctx context.Context) map[llm.Name]coolState {
	r.coolMu.Lock()
	defer r.coolMu.Unlock()
	if r.coolSeen == nil || time.Since(r.coolRead) >= cooldownReadTTL {
		m, err := r.st.cooldowns(ctx)
		if err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "ai cooldown read failed", slog.String("error", err.Error()))
		} else {
			r.coolSeen, r.coolRead = m, time.Now()
		}
	}
	out := make(map[llm.Name]coolState, len(r.coolSeen))
	for k, v := range r.coolSeen {
		out[k] = v
	}
	return out
}

// failed counts a failure of name and keeps its new state.
func (r *Router) failed(ctx context.Context, name llm.Name, minUntil time.Time) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	st, err := r.st.failure(wctx, name, r.now(), r.cool, minUntil)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "ai cooldown write failed", slog.String("provider", string(name)), slog.String("error", err.Error()))
		return
	}
	if !st.Until.IsZero() && st.Until.After(r.now()) {
		r.log.LogAttrs(ctx, slog.LevelWarn, "ai provider cooling down", slog.String("provider", string(name)), slog.Time("until", st.Until))
	}
	r.remember(name, st)
}

// succeeded resets name's failure count.
func (r *Router) succeeded(ctx context.Context, name llm.Name) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.st.success(wctx, name); err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "ai cooldown write failed", slog.String("provider", string(name)), slog.String("error", err.Error()))
		return
	}
	r.remember(name, coolState{})
}

func (r *Router) remember(name llm.Name, st coolState) {
	r.coolMu.Lock()
	defer r.coolMu.Unlock()
	if r.coolSeen == nil {
		r.coolSeen = map[llm.Name]coolState{}
		r.coolRead = time.Now().Add(-cooldownReadTTL) // still read the others next time
	}
	r.coolSeen[name] = st
}

// observe adds a latency sample to name's moving average.
func (r *Router) observe(name llm.Name, lat time.Duration) {
	ms := float64(lat.Microseconds()) / 1000
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.latency[name]; ok {
		ms = latencyWeight*ms + (1-latencyWeight)*old
	}
	r.latency[name] = ms
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func (r *Router) newID() (string, error) {
	b := make([]byte, 10)
	if _, err := r.random(b); err != nil {
		return "", fmt.Errorf("generate AI call id: %w", err)
	}
	return idEncoding.EncodeToString(b), nil
}

// sha is the hex SHA-256 of s: what logs and the ledger keep of prompts
// and answers.
func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// UsageRow is one day's AI usage of a site for one provider's model.
type UsageRow struct {
	Day          string   `json:"day"` // YYYY-MM-DD, UTC
	Provider     llm.Name `json:"provider"`
	Model        string   `json:"model"`
	Calls        int64    `json:"calls"`
	Failures     int64    `json:"failures"`
	InputTokens  int64    `json:"inputTokens"`
	OutputTokens int64    `json:"outputTokens"`
	CostMicros   int64    `json:"costMicros"`
}

// MaxUsageDays bounds one Usage query's range.
const MaxUsageDays = 366

// Usage returns a site's daily AI usage from the UTC day of from to the
// UTC day of to, both included, sorted by day, provider and model. Days
// without calls have no rows.
func (r *Router) Usage(ctx context.Context, siteID string, from, to time.Time) ([]UsageRow, error) {
	first, last := utcDay(from), utcDay(to)
	if last.Before(first) {
		return nil, apperr.Invalid("to", "must not be before from")
	}
	if days := int(last.Sub(first)/(24*time.Hour)) + 1; days > MaxUsageDays {
		return nil, apperr.Invalid("to", fmt.Sprintf("the range spans %d days; at most %d", days, MaxUsageDays))
	}
	return r.st.usage(ctx, siteID, first.Format(dayLayout), last.Format(dayLayout))
}

// MonthCost returns the cost committed in the UTC month of month, in
// micro-USD: the settled cost of its calls plus the reservations of calls
// in flight.
func (r *Router) MonthCost(ctx context.Context, siteID string, month time.Time) (int64, error) {
	return r.st.monthCost(ctx, siteID, month.UTC().Format(monthLayout))
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
