package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/llmsim"
	"github.com/posse-dev/posse/infra/local/esm"
	"github.com/posse-dev/posse/infra/local/gateway"
	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/samtemplate"
	"github.com/posse-dev/posse/infra/local/schedules"
	"github.com/posse-dev/posse/infra/local/stack"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/llm"
)

// runnerConfig is what the runner needs once moto is up.
type runnerConfig struct {
	// Root is the repository root (Makefile, go.mod).
	Root string
	// Template is the SAM template to run.
	Template *samtemplate.Template
	// StackName is AWS::StackName and the prefix of generated names.
	StackName string
	// Parameters override the template's defaults.
	Parameters map[string]string
	// MotoEndpoint is moto's base URL.
	MotoEndpoint string
	// RunDir receives each function's bootstrap (<RunDir>/<LogicalId>).
	RunDir string
	// LogDir receives each instance's log (<LogicalId>-<n>.log).
	LogDir string
	// RIE is the emulator binary.
	RIE string
	// Instances per function.
	Instances int
	// ExtraEnv is added to every function's environment (KEY=VALUE).
	ExtraEnv []string
	// OAuthClients are the OAuth apps the simulator accepts, by platform.
	OAuthClients map[string]platformsim.Client
	// LLMKeys are the API keys the LLM simulator (served under /llm on the
	// simulator's address) accepts, by provider.
	LLMKeys map[llm.Name]string
	// GatewayAddr and SimAddr are the listen addresses (port 0: any free).
	GatewayAddr string
	SimAddr     string
	// ESMConcurrency overrides the batches in flight per mapping (0: the
	// function's pool size).
	ESMConcurrency int
	// ScheduleGroups limits the scheduler ticker (default: all groups).
	ScheduleGroups []string
	// Now is the scheduler ticker's clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// runner owns everything the local stack starts after moto.
type runner struct {
	cfg    runnerConfig
	aws    aws.Config
	stack  *stack.Stack
	pools  map[string]*lambdaenv.Pool // by logical id
	byName map[string]*lambdaenv.Pool // by function name

	sim        *http.Server
	simURL     string
	gateway    *http.Server
	gatewayURL string
	// apiURL is the base URL of the first HTTP API (gateway + stage).
	apiURL string

	// chaos crashes function instances on request (/_local/chaos).
	chaos *chaos

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newRunner(cfg runnerConfig) *runner {
	if cfg.Instances <= 0 {
		cfg.Instances = 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &runner{cfg: cfg, aws: moto.Config(cfg.MotoEndpoint), pools: map[string]*lambdaenv.Pool{}, byName: map[string]*lambdaenv.Pool{}}
	r.chaos = newChaos(func(id string) (killer, bool) {
		p, ok := r.pools[id]
		return p, ok
	})
	return r
}

// deploy creates the template's resources in moto.
func (r *runner) deploy(ctx context.Context) error {
	st, err := stack.Deploy(ctx, stack.Options{
		Template:   r.cfg.Template,
		Parameters: r.cfg.Parameters,
		StackName:  r.cfg.StackName,
		Clients:    stack.NewClients(r.aws),
		Logger:     r.cfg.Logger,
	})
	if err != nil {
		return err
	}
	r.stack = st
	r.cfg.Logger.Info("resources created in moto", "stack", st.Name, "queues", len(st.Queues), "tables", len(st.Tables),
		"keys", len(st.Keys), "schedule_groups", len(st.ScheduleGroups), "schedules", len(st.Schedules), "functions", len(st.Functions))
	for _, id := range st.SkippedIDs() {
		r.cfg.Logger.Debug("resource not created", "logical_id", id, "reason", st.Skipped[id])
	}
	return nil
}

// startSimulator serves the platform simulator, the LLM simulator under
// /llm, and the runner's own test controls under /_local: crash injection
// (/_local/chaos, see ChaosConfig) and every credential the simulators
// issued or accept (GET /_local/secrets), for the scans that prove none is
// at rest in the clear.
func (r *runner) startSimulator() error {
	l, err := net.Listen("tcp", r.cfg.SimAddr)
	if err != nil {
		return fmt.Errorf("listen for the platform simulator: %w", err)
	}
	r.simURL = "http://" + l.Addr().String()
	sim := platformsim.New(platformsim.Options{Clients: r.cfg.OAuthClients, AfterCreate: r.chaos.afterCreate})
	sim.SetPublicURL(r.simURL)
	mux := http.NewServeMux()
	mux.Handle("/_local/chaos", r.chaos.handler())
	mux.HandleFunc("GET /_local/secrets", func(w http.ResponseWriter, _ *http.Request) {
		secrets := sim.Secrets()
		for _, k := range r.cfg.LLMKeys {
			secrets = append(secrets, k)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"secrets": secrets})
	})
	mux.Handle("/llm/", http.StripPrefix("/llm", llmsim.New(llmsim.Options{Keys: r.cfg.LLMKeys})))
	mux.Handle("/", sim)
	r.sim = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.sim.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.cfg.Logger.Error("platform simulator stopped", "error", err)
		}
	}()
	return nil
}

// startFunctions builds every function for this machine and starts its
// pool, then warms each instance once to measure its init duration.
func (r *runner) startFunctions(ctx context.Context) error {
	fns := r.stack.Functions
	bins := make([]string, len(fns))
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bins[i], errs[i] = r.build(ctx, f)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	env := append(moto.Env(r.cfg.MotoEndpoint), r.cfg.ExtraEnv...)
	// Each function also gets AWS_SDK_UA_APP_ID=<logical id>: the SDK puts
	// it in its User-Agent, and moto counts calls by it.
	for i, f := range fns {
		pool, err := lambdaenv.Start(ctx, lambdaenv.Config{
			Name:      f.Name,
			Bootstrap: bins[i],
			RIE:       r.cfg.RIE,
			Instances: r.cfg.Instances,
			Timeout:   f.Timeout,
			MemoryMB:  f.MemoryMB,
			Handler:   f.Handler,
			Env:       append(append(f.EnvironmentList(), env...), "AWS_SDK_UA_APP_ID="+f.LogicalID),
			LogDir:    r.cfg.LogDir,
			LogName:   f.LogicalID,
			Logger:    r.cfg.Logger,
		})
		if err != nil {
			return err
		}
		r.pools[f.LogicalID] = pool
		r.byName[f.Name] = pool
		for _, u := range f.Unsupported {
			r.cfg.Logger.Warn("event type not run locally", "function", f.LogicalID, "event", u)
		}
	}
	for _, f := range fns {
		if err := r.pools[f.LogicalID].Warm(ctx, []byte(`{}`)); err != nil {
			r.cfg.Logger.Warn("warm-up invocation failed", "function", f.LogicalID, "error", err)
		}
	}
	return nil
}

// build builds one function's bootstrap into <RunDir>/<LogicalId>.
func (r *runner) build(ctx context.Context, f stack.Function) (string, error) {
	b := lambdaenv.Build{Dir: f.CodeDir, OutDir: filepath.Join(r.cfg.RunDir, f.LogicalID)}
	if f.BuildMethod == "makefile" {
		b.Target = "build-" + f.LogicalID
		if _, err := os.Stat(filepath.Join(f.CodeDir, "Makefile")); err != nil {
			b.Dir = r.cfg.Root
		}
	}
	start := time.Now()
	bin, err := b.Run(ctx)
	if err != nil {
		return "", fmt.Errorf("function %s: %w", f.LogicalID, err)
	}
	r.cfg.Logger.Info("built function", "function", f.LogicalID, "took_ms", time.Since(start).Milliseconds())
	return bin, nil
}

// serve starts the gateway, the SQS pollers and the scheduler ticker.
func (r *runner) serve(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	if err := r.startGateway(); err != nil {
		return err
	}
	// Each stand-in names itself to moto, which counts calls by caller: the
	// pollers' calls are what Lambda's event source mappings make (billed
	// as SQS requests on AWS), the ticker's what EventBridge Scheduler does.
	esmCfg, schedCfg := r.aws.Copy(), r.aws.Copy()
	esmCfg.AppID, schedCfg.AppID = moto.CallerEventSourceMapping, moto.CallerScheduler
	client := sqs.NewFromConfig(esmCfg)
	for _, f := range r.stack.Functions {
		for _, ev := range f.SQSEvents {
			if err := r.startMapping(ctx, client, f, ev); err != nil {
				return err
			}
		}
	}
	tk := schedules.New(schedules.Options{
		Scheduler: scheduler.NewFromConfig(schedCfg),
		SQS:       sqs.NewFromConfig(schedCfg),
		Function: func(name string) (schedules.Invoker, bool) {
			p, ok := r.byName[name]
			return p, ok
		},
		Groups: r.cfg.ScheduleGroups,
		Now:    r.cfg.Now,
		Logger: r.cfg.Logger.With("component", "scheduler"),
	})
	r.wg.Add(1)
	go func() { defer r.wg.Done(); tk.Run(ctx) }()
	return nil
}

func (r *runner) startGateway() error {
	var apis []gateway.API
	byAPI := map[string]*gateway.API{}
	var order []string
	for _, f := range r.stack.Functions {
		for _, ev := range f.HTTPEvents {
			if ev.PayloadFormatVersion != "2.0" {
				r.cfg.Logger.Warn("only payload format 2.0 is emulated; serving 2.0", "function", f.LogicalID, "event", ev.Name, "version", ev.PayloadFormatVersion)
			}
			a, ok := byAPI[ev.API.LogicalID]
			if !ok {
				a = &gateway.API{ID: ev.API.ID, Stage: ev.API.StageName}
				byAPI[ev.API.LogicalID] = a
				order = append(order, ev.API.LogicalID)
			}
			a.Routes = append(a.Routes, gateway.Route{Method: ev.Method, Path: ev.Path, Function: r.pools[f.LogicalID], Name: f.LogicalID})
		}
	}
	sort.Strings(order)
	for _, id := range order {
		apis = append(apis, *byAPI[id])
	}
	g, err := gateway.New(gateway.Options{APIs: apis, AccountID: samtemplate.DefaultAccountID, Logger: r.cfg.Logger.With("component", "gateway")})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", r.cfg.GatewayAddr)
	if err != nil {
		return fmt.Errorf("listen for the API gateway: %w", err)
	}
	r.gatewayURL = "http://" + l.Addr().String()
	r.apiURL = r.gatewayURL
	if len(apis) > 0 && apis[0].Stage != "$default" && apis[0].Stage != "" {
		r.apiURL += "/" + apis[0].Stage
	}
	r.gateway = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.gateway.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.cfg.Logger.Error("gateway stopped", "error", err)
		}
	}()
	for _, k := range g.RouteKeys() {
		r.cfg.Logger.Debug("route", "route", k)
	}
	return nil
}

func (r *runner) startMapping(ctx context.Context, client *sqs.Client, f stack.Function, ev stack.SQSEvent) error {
	name := f.LogicalID + "." + ev.Name
	if !ev.Enabled {
		r.cfg.Logger.Info("event source mapping disabled in the template", "mapping", name)
		return nil
	}
	q, ok := r.stack.QueueByARN(ev.QueueARN)
	if !ok {
		r.cfg.Logger.Warn("event source queue is not part of the template; mapping skipped", "mapping", name, "queue", ev.QueueARN)
		return nil
	}
	if vt, err := strconv.Atoi(q.Attributes["VisibilityTimeout"]); err == nil && time.Duration(vt)*time.Second < f.Timeout {
		// AWS refuses such a mapping; locally it only risks duplicates.
		r.cfg.Logger.Warn("queue visibility timeout is shorter than the function timeout (AWS rejects this mapping)", "mapping", name, "visibility_timeout_s", vt, "function_timeout", f.Timeout)
	}
	pool := r.pools[f.LogicalID]
	conc := pool.Size()
	if ev.MaximumConcurrency > 0 && ev.MaximumConcurrency < conc {
		conc = ev.MaximumConcurrency
	}
	if r.cfg.ESMConcurrency > 0 {
		conc = r.cfg.ESMConcurrency
	}
	p, err := esm.New(client, esm.Mapping{
		Name: name, QueueURL: q.URL, QueueARN: q.ARN, BatchSize: ev.BatchSize, MaximumBatchingWindow: ev.MaximumBatchingWindow,
		ReportBatchItemFailures: ev.ReportBatchItemFailures, Concurrency: conc, Function: pool,
	}, r.cfg.Logger.With("component", "esm"))
	if err != nil {
		return err
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); p.Run(ctx) }()
	return nil
}

// initDurations is "ApiFunction 12.3 ms, ..." for the ready block.
func (r *runner) initDurations() string {
	var parts []string
	for _, f := range r.stack.Functions {
		p := r.pools[f.LogicalID]
		if p == nil {
			continue
		}
		if d, ok := p.InitDuration(); ok {
			parts = append(parts, fmt.Sprintf("%s %.1f ms", f.LogicalID, float64(d)/float64(time.Millisecond)))
		} else {
			parts = append(parts, f.LogicalID+" (not measured)")
		}
	}
	return strings.Join(parts, ", ")
}

// close stops everything the runner started, in reverse order.
func (r *runner) close() {
	r.chaos.stop()
	if r.cancel != nil {
		r.cancel()
	}
	shutdown := func(s *http.Server) {
		if s == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}
	shutdown(r.gateway)
	var wg sync.WaitGroup
	for _, p := range r.pools {
		wg.Add(1)
		go func() { defer wg.Done(); p.Close() }()
	}
	wg.Wait()
	shutdown(r.sim)
	r.wg.Wait()
}
