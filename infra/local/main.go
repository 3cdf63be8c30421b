// Command local runs POSSE's local stack (`make dev`) without Docker or an
// AWS account: moto_server for the AWS APIs, every function of template.yaml
// under the Lambda Runtime Interface Emulator, an API Gateway stand-in on
// 127.0.0.1:3000, SQS event source mappings, a Scheduler ticker that fires
// schedules from moto, and the platform simulator.
//
// Everything comes from the template: adding a function, queue or event
// there needs no change here. On start it creates a demo site and prints the
// URLs and keys to use; Ctrl+C (SIGINT) or SIGTERM stops everything it
// started.
//
// Usage:
//
//	go run ./infra/local [flags]
//
// Every flag has an environment fallback; see -h.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/samtemplate"
	"github.com/posse-dev/posse/infra/platformsim"
	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/llm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// options are the command's settings after flags and environment.
type options struct {
	gatewayPort int
	motoPort    int
	simPort     int
	env         string
	stackName   string
	instances   int
	template    string
	stateDir    string
	logLevel    string
	demo        bool
	params      listFlag
	fnEnv       listFlag
}

// listFlag collects repeated KEY=VALUE flags.
type listFlag []string

// String implements flag.Value.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *listFlag) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*l = append(*l, v)
	return nil
}

// parseOptions reads flags, falling back to environment variables, then to
// defaults.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envInt := func(name string, def int) int {
		if v := getenv(name); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
			fmt.Fprintf(stderr, "ignoring %s=%q: not a number\n", name, v)
		}
		return def
	}
	envStr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.IntVar(&o.gatewayPort, "gateway-port", envInt("POSSE_GATEWAY_PORT", 3000), "API gateway port on 127.0.0.1 (env POSSE_GATEWAY_PORT)")
	fs.IntVar(&o.motoPort, "moto-port", envInt("POSSE_MOTO_PORT", 4566), "moto_server port on 127.0.0.1 (env POSSE_MOTO_PORT)")
	fs.IntVar(&o.simPort, "sim-port", envInt("POSSE_SIM_PORT", 4700), "platform simulator port on 127.0.0.1 (env POSSE_SIM_PORT)")
	fs.StringVar(&o.env, "env", envStr("POSSE_LOCAL_ENV", "local"), "environment name: the template's Environment parameter (env POSSE_LOCAL_ENV)")
	fs.StringVar(&o.stackName, "stack-name", envStr("POSSE_STACK_NAME", ""), "AWS::StackName (default posse-<env>; env POSSE_STACK_NAME)")
	fs.IntVar(&o.instances, "instances", envInt("POSSE_INSTANCES", 2), "emulator instances (concurrent invocations) per function (env POSSE_INSTANCES)")
	fs.StringVar(&o.template, "template", envStr("POSSE_TEMPLATE", ""), "SAM template (default <repo>/template.yaml; env POSSE_TEMPLATE)")
	fs.StringVar(&o.stateDir, "state-dir", envStr("POSSE_STATE_DIR", ""), "folder for run/ (bootstraps) and logs/ (default <repo>/.local; env POSSE_STATE_DIR)")
	fs.StringVar(&o.logLevel, "log-level", envStr("POSSE_RUNNER_LOG_LEVEL", "info"), "runner log level: debug, info, warn, error (env POSSE_RUNNER_LOG_LEVEL)")
	fs.BoolVar(&o.demo, "demo", getenv("POSSE_NO_DEMO") == "", "create a demo site and key through the API (env POSSE_NO_DEMO=1 turns it off)")
	fs.Var(&o.params, "param", "template parameter override KEY=VALUE (repeatable)")
	fs.Var(&o.fnEnv, "fn-env", "extra environment variable KEY=VALUE for every function (repeatable)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.instances < 1 {
		return o, errors.New("-instances must be at least 1")
	}
	if o.stackName == "" {
		o.stackName = "posse-" + o.env
	}
	return o, nil
}

// fixedPort is a port the stack must own, with its role.
type fixedPort struct {
	port int
	role string
}

// checkPorts fails on the first fixed port that is taken (or repeated),
// naming its role, before anything starts.
func checkPorts(ports []fixedPort) error {
	seen := map[int]string{}
	for _, p := range ports {
		if p.port <= 0 || p.port > 65535 {
			return fmt.Errorf("port %d (%s) is not a valid port", p.port, p.role)
		}
		if other, ok := seen[p.port]; ok {
			return fmt.Errorf("port %d is set for both %s and %s", p.port, other, p.role)
		}
		seen[p.port] = p.role
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
		if err != nil {
			return fmt.Errorf("port %d (%s) is taken: %w", p.port, p.role, err)
		}
		l.Close()
	}
	return nil
}

// run is the whole command; it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "local stack:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(stderr, "local stack: -log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := checkPorts([]fixedPort{{o.gatewayPort, "API gateway"}, {o.motoPort, "moto"}, {o.simPort, "platform simulator"}}); err != nil {
		fmt.Fprintln(stderr, "local stack:", err)
		return 1
	}
	if runtime.GOOS != "linux" {
		fmt.Fprintln(stderr, "local stack:", lambdaenv.ErrNotLinux)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := up(ctx, o, stdout, log); err != nil {
		if ctx.Err() != nil {
			log.Info("stopped during start-up")
			return 0
		}
		log.Error("local stack failed", "error", err)
		return 1
	}
	return 0
}

// up starts the stack, prints the ready block, waits for ctx to end and
// stops everything.
func up(ctx context.Context, o options, stdout io.Writer, log *slog.Logger) error {
	root, err := lambdaenv.RepoRoot(".")
	if err != nil {
		return err
	}
	if o.template == "" {
		o.template = filepath.Join(root, "template.yaml")
	}
	if o.stateDir == "" {
		o.stateDir = filepath.Join(root, ".local")
	}
	runDir, logDir := filepath.Join(o.stateDir, "run"), filepath.Join(o.stateDir, "logs")
	if err := os.RemoveAll(runDir); err != nil {
		return fmt.Errorf("remove stale %s: %w", runDir, err)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", logDir, err)
	}
	tpl, err := samtemplate.Load(o.template)
	if err != nil {
		return err
	}
	rie, err := lambdaenv.FindRIE(ctx, root)
	if err != nil {
		return err
	}
	adminKey, adminHash, err := newAdminKey()
	if err != nil {
		return err
	}
	params := map[string]string{}
	if _, ok := tpl.Parameters["Environment"]; ok {
		params["Environment"] = o.env
	}
	if _, ok := tpl.Parameters["AdminKeySha256"]; ok {
		params["AdminKeySha256"] = adminHash
	} else {
		log.Warn("the template has no AdminKeySha256 parameter; the admin key is not wired")
	}
	for _, kv := range o.params {
		k, v, _ := strings.Cut(kv, "=")
		params[k] = v
	}

	log.Info("starting moto", "port", o.motoPort)
	srv, err := moto.Start(ctx, moto.Options{Port: o.motoPort, Log: filepath.Join(logDir, "moto.log")})
	if err != nil {
		return fmt.Errorf("start moto: %w", err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Warn("stop moto", "error", err)
		}
	}()
	simURL := "http://127.0.0.1:" + strconv.Itoa(o.simPort)
	clients, clientEnv, err := localOAuthClients()
	if err != nil {
		return err
	}
	llmKeys, llmEnv, err := localLLMKeys(simURL)
	if err != nil {
		return err
	}
	clientEnv = append(clientEnv, llmEnv...)
	extraEnv := append([]string{
		"POSSE_PLATFORM_BASE_URL=" + simURL,
		"POSSE_PUBLIC_URL=http://127.0.0.1:" + strconv.Itoa(o.gatewayPort),
		// The simulator's media processing advances per status read, not
		// with time: poll it quickly.
		"POSSE_MEDIA_POLL_INTERVAL=100ms",
	}, clientEnv...)
	extraEnv = append(extraEnv, federatedEnv(params["Environment"], simURL)...)
	r := newRunner(runnerConfig{
		Root:         root,
		Template:     tpl,
		StackName:    o.stackName,
		Parameters:   params,
		MotoEndpoint: srv.Endpoint(),
		RunDir:       runDir,
		LogDir:       logDir,
		RIE:          rie,
		Instances:    o.instances,
		ExtraEnv:     append(extraEnv, o.fnEnv...),
		OAuthClients: clients,
		LLMKeys:      llmKeys,
		GatewayAddr:  "127.0.0.1:" + strconv.Itoa(o.gatewayPort),
		SimAddr:      "127.0.0.1:" + strconv.Itoa(o.simPort),
		Logger:       log,
	})
	defer r.close()
	if err := r.deploy(ctx); err != nil {
		return err
	}
	if err := r.startSimulator(); err != nil {
		return err
	}
	log.Info("building and starting functions", "functions", len(r.stack.Functions), "instances_each", o.instances)
	if err := r.startFunctions(ctx); err != nil {
		return err
	}
	if err := r.serve(ctx); err != nil {
		return err
	}
	site, accounts := demoSite{}, demoAccounts{}
	if o.demo {
		site = createDemoSite(ctx, r.apiURL, adminKey)
		if site.err != nil {
			log.Warn("demo site not created", "error", site.err)
		}
		accounts = seedDemoAccounts(ctx, r.simURL)
		if accounts.err != nil {
			log.Warn("demo accounts not created", "error", accounts.err)
		}
	}
	log.Info("ready", "api", r.apiURL, "functions", len(r.stack.Functions), "init", r.initDurations())
	printReady(stdout, readyInfo{
		apiURL: r.apiURL, site: site, accounts: accounts, adminKey: adminKey, simURL: r.simURL, moto: srv.Endpoint(),
		logs: logDir, inits: r.initDurations(),
	})
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// federatedEnv routes every Mastodon instance a user names (the README's
// https://mastodon.social) to the simulator, which is the only instance
// reachable here; the connection keeps the instance URL as given. The
// functions accept POSSE_FEDERATED_BASE_URL only when POSSE_ENV is local,
// so a stack run as another environment keeps the instances it is given.
func federatedEnv(env, simURL string) []string {
	if env != "local" {
		return nil
	}
	return []string{"POSSE_FEDERATED_BASE_URL=" + simURL}
}

// localOAuthClients makes an OAuth app for every OAuth platform, new on
// every start: the simulator accepts exactly these, and the functions get
// them as POSSE_<PLATFORM>_CLIENT_ID / _SECRET, so the whole connect flow
// runs locally with no secret on disk.
func localOAuthClients() (map[string]platformsim.Client, []string, error) {
	clients := map[string]platformsim.Client{}
	var env []string
	for _, p := range posseconfig.OAuthPlatforms {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("generate OAuth client secret: %w", err)
		}
		c := platformsim.Client{ID: "posse-local-" + p, Secret: base64.RawURLEncoding.EncodeToString(b)}
		clients[p] = c
		up := strings.ToUpper(p)
		env = append(env, "POSSE_"+up+"_CLIENT_ID="+c.ID, "POSSE_"+up+"_CLIENT_SECRET="+c.Secret)
	}
	return clients, env, nil
}

// llmSimBase is where each provider's API lives on the LLM simulator, as
// the provider's base URL is written (OpenAI's includes /v1).
var llmSimBase = map[llm.Name]string{
	llm.OpenAI: "/llm/openai/v1", llm.Anthropic: "/llm/anthropic", llm.Gemini: "/llm/gemini", llm.Cohere: "/llm/cohere",
}

// localLLMKeys makes an API key for every LLM provider, new on every start:
// the LLM simulator accepts exactly these, and the functions get them with
// the simulator's base URLs as POSSE_AI_<PROVIDER>_API_KEY / _BASE_URL, so
// AI adaptation runs locally with no key on disk.
func localLLMKeys(simURL string) (map[llm.Name]string, []string, error) {
	keys := map[llm.Name]string{}
	var env []string
	for _, p := range llm.All {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("generate LLM API key: %w", err)
		}
		keys[p] = "sim-" + string(p) + "-" + base64.RawURLEncoding.EncodeToString(b)
		up := "POSSE_AI_" + strings.ToUpper(string(p))
		env = append(env, up+"_API_KEY="+keys[p], up+"_BASE_URL="+simURL+llmSimBase[p])
	}
	return keys, env, nil
}

// newAdminKey returns a fresh admin key and its lowercase hex SHA-256.
func newAdminKey() (key, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate admin key: %w", err)
	}
	key = "posse_admin_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(sum[:]), nil
}

// readyInfo is what the ready block shows.
type readyInfo struct {
	apiURL, adminKey, simURL, moto, logs, inits string
	site                                        demoSite
	accounts                                    demoAccounts
}

func printReady(w io.Writer, i readyInfo) {
	siteID, siteKey := i.site.id, i.site.key
	if i.site.err != nil || siteID == "" {
		siteID, siteKey = "(not created)", "(not created)"
	}
	curlKey := siteKey
	if i.site.key == "" {
		curlKey = i.adminKey
	}
	accounts := ""
	if a := i.accounts; a.err == nil && a.mastodonToken != "" {
		// The README's manual connections, with credentials the simulator
		// knows; every Mastodon instance URL reaches the simulator here.
		accounts = fmt.Sprintf(`  Mastodon token   %s
  Bluesky handle   %s
  Bluesky password %s
`, a.mastodonToken, a.blueskyHandle, a.blueskyPassword)
	}
	fmt.Fprintf(w, `
POSSE local stack is ready

  API URL          %s
  Site id          %s
  Site API key     %s
  Admin key        %s
  Simulator        %s
  Moto endpoint    %s
  Logs             %s
  Init durations   %s
%s
  curl -H "Authorization: Bearer %s" %s/health

Press Ctrl+C to stop.
`, i.apiURL, siteID, siteKey, i.adminKey, i.simURL, i.moto, i.logs, i.inits, accounts, curlKey, i.apiURL)
}
