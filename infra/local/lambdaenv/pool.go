// Package lambdaenv runs a Lambda function's real bootstrap under the AWS
// Lambda Runtime Interface Emulator (aws-lambda-rie), the way Lambda runs it
// in an execution environment, and invokes it.
//
// A Pool starts N emulator instances for one function, each on its own
// loopback ports with its own log file, and hands out a free instance per
// invocation: one instance serves one invocation at a time, callers wait for
// a free one, and the function's timeout is enforced. Init durations are
// read from the emulator's output.
//
// Typical use in a test (see lambdaenvtest for helpers):
//
//	bin, _ := lambdaenv.Build{Dir: root, Target: "build-ApiFunction", OutDir: dir}.Run(ctx)
//	pool, _ := lambdaenv.Start(ctx, lambdaenv.Config{Name: "api", Bootstrap: bin, Env: moto.Env(endpoint)})
//	defer pool.Close()
//	out, err := pool.Invoke(ctx, payload)
package lambdaenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Lambda's limits for synchronous invocations.
const (
	// MaxPayload is the largest request payload Lambda accepts (6 MB).
	MaxPayload = 6 * 1024 * 1024
	// MaxResponse is the largest response payload Lambda returns (6 MB).
	MaxResponse = 6 * 1024 * 1024
)

// Errors an invocation can end with besides *FunctionError.
var (
	// ErrTimeout means the function ran past its timeout.
	ErrTimeout = errors.New("function timed out")
	// ErrClosed means the pool was closed.
	ErrClosed = errors.New("pool is closed")
	// ErrPayloadTooLarge means the request is over MaxPayload.
	ErrPayloadTooLarge = errors.New("request payload is larger than 6 MB")
)

// FunctionError is an error the function itself reported (a returned error,
// a panic, a crash of the runtime), as Lambda reports it with
// X-Amz-Function-Error.
type FunctionError struct {
	Function string
	// Type is errorType ("errorString", "Runtime.ExitError"...).
	Type string
	// Message is errorMessage.
	Message string
	// Payload is the error document as the emulator returned it.
	Payload []byte
}

// Error implements error.
func (e *FunctionError) Error() string {
	return fmt.Sprintf("function %s failed: %s: %s", e.Function, e.Type, e.Message)
}

// Config configures a Pool.
type Config struct {
	// Name is the function name (AWS_LAMBDA_FUNCTION_NAME). Required.
	Name string
	// Bootstrap is the function's executable. Required.
	Bootstrap string
	// RIE is the emulator binary; FindRIE decides when empty.
	RIE string
	// Instances is how many execution environments to run (default 2).
	Instances int
	// Timeout is the function timeout (default 3 s, Lambda's); the emulator
	// counts whole seconds, so it is rounded up.
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 128).
	MemoryMB int
	// Handler is _HANDLER (default "bootstrap").
	Handler string
	// Env is the function's environment, KEY=VALUE (template variables,
	// moto.Env, extras); later entries win.
	Env []string
	// LogDir receives one log per instance, <LogName>-<n>.log; empty
	// discards the output.
	LogDir string
	// LogName names the log files (default Name).
	LogName string
	// Logger reports restarts (default slog.Default()).
	Logger *slog.Logger
}

// Pool is a set of emulator instances running one function.
type Pool struct {
	cfg       Config
	client    *http.Client
	instances []*instance
	free      chan *instance
	closed    chan struct{}
	closeOnce sync.Once
	stopCtx   context.Context
	stop      context.CancelFunc

	mu     sync.Mutex
	rapid  []time.Duration // INIT REPORT lines: the runtime's real init
	report []time.Duration // "Init Duration" of REPORT lines
}

// Start launches the instances and waits until each emulator listens. It
// does not start the bootstrap: like Lambda, the emulator initialises the
// runtime on the first invocation (see Warm).
func Start(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.Name == "" || cfg.Bootstrap == "" {
		return nil, errors.New("start pool: Name and Bootstrap are required")
	}
	if cfg.Instances <= 0 {
		cfg.Instances = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	cfg.Timeout = time.Duration(math.Ceil(cfg.Timeout.Seconds())) * time.Second
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = 128
	}
	if cfg.Handler == "" {
		cfg.Handler = "bootstrap"
	}
	if cfg.LogName == "" {
		cfg.LogName = cfg.Name
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RIE == "" {
		root, err := RepoRoot(".")
		if err != nil {
			return nil, fmt.Errorf("start pool %s: %w", cfg.Name, err)
		}
		if cfg.RIE, err = FindRIE(ctx, root); err != nil {
			return nil, fmt.Errorf("start pool %s: %w", cfg.Name, err)
		}
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("start pool %s: %w", cfg.Name, err)
		}
	}
	stopCtx, stop := context.WithCancel(context.Background())
	p := &Pool{
		cfg:     cfg,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}},
		free:    make(chan *instance, cfg.Instances),
		closed:  make(chan struct{}),
		stopCtx: stopCtx,
		stop:    stop,
	}
	for n := 1; n <= cfg.Instances; n++ {
		inst := &instance{pool: p, n: n}
		p.instances = append(p.instances, inst)
		if err := inst.start(ctx); err != nil {
			p.Close()
			return nil, fmt.Errorf("start pool %s: %w", cfg.Name, err)
		}
		p.free <- inst
	}
	return p, nil
}

// Name is the function name.
func (p *Pool) Name() string { return p.cfg.Name }

// Size is the number of instances.
func (p *Pool) Size() int { return p.cfg.Instances }

// Timeout is the function timeout the pool enforces.
func (p *Pool) Timeout() time.Duration { return p.cfg.Timeout }

// LogFiles lists the instances' log files (none when LogDir is empty).
func (p *Pool) LogFiles() []string {
	if p.cfg.LogDir == "" {
		return nil
	}
	out := make([]string, len(p.instances))
	for i, inst := range p.instances {
		out[i] = inst.logPath()
	}
	return out
}

// Invoke runs the function once with payload (a JSON event) and returns its
// response. It waits for a free instance; a function error is a
// *FunctionError, a timeout wraps ErrTimeout. When ctx ends first Invoke
// returns, while the instance finishes the invocation in the background.
func (p *Pool) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("invoke %s: %w", p.cfg.Name, ErrPayloadTooLarge)
	}
	inst, err := p.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", p.cfg.Name, err)
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	inst.setBusy(true)
	go func() {
		out, err := inst.invoke(payload)
		inst.setBusy(false)
		p.release(inst, err)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: %w", p.cfg.Name, ctx.Err())
	}
}

func (p *Pool) acquire(ctx context.Context) (*instance, error) {
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	select {
	case inst := <-p.free:
		if inst.needsRestart() {
			if err := inst.restart(ctx); err != nil {
				p.free <- inst
				return nil, err
			}
		}
		return inst, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closed:
		return nil, ErrClosed
	}
}

func (p *Pool) release(inst *instance, err error) {
	if err != nil && inst.brokenBy(err) {
		inst.markBroken()
	}
	select {
	case <-p.closed:
	default:
		p.free <- inst
	}
}

// KillBusy crashes the execution environment of one instance that is
// running an invocation now, the way a runtime dies mid-invocation in Lambda:
// SIGKILL to the runtime process (the bootstrap, the emulator's child), the
// emulator left running. The emulator answers the invocation with a
// Runtime.* error (the event source keeps the batch, so its messages come
// back after their visibility timeout) and starts a fresh runtime for the
// next invocation; an instance whose emulator does not recover is
// restarted by the pool. It returns the instance's number, or 0 when no
// instance was busy (or its runtime was already gone).
func (p *Pool) KillBusy(pick func(n int) int) int {
	var busy []*instance
	for _, inst := range p.instances {
		if inst.isBusy() {
			busy = append(busy, inst)
		}
	}
	if len(busy) == 0 {
		return 0
	}
	i := 0
	if pick != nil {
		i = pick(len(busy))
	}
	if i < 0 || i >= len(busy) {
		i = 0
	}
	inst := busy[i]
	if !inst.killRuntime() {
		return 0
	}
	p.cfg.Logger.Info("runtime killed mid-invocation", "function", p.cfg.Name, "instance", inst.n)
	return inst.n
}

// Warm invokes every instance once, concurrently, so each initialises its
// runtime (and reports its init duration). Errors the handler returns for
// the payload are ignored (the runtime initialised all the same); a runtime
// that crashes (Runtime.* errors, such as a failed init) is an error.
func (p *Pool) Warm(ctx context.Context, payload []byte) error {
	errs := make(chan error, p.cfg.Instances)
	for range p.cfg.Instances {
		go func() {
			_, err := p.Invoke(ctx, payload)
			var fe *FunctionError
			if errors.As(err, &fe) && !strings.HasPrefix(fe.Type, "Runtime.") {
				err = nil
			}
			errs <- err
		}()
	}
	var first error
	for range p.cfg.Instances {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("warm %s: %w", p.cfg.Name, first)
	}
	// The emulator prints the init report before it answers; give the log
	// reader a moment to see it.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if p.coldStarts() == p.cfg.Instances {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// InitDurations lists every runtime initialisation the instances reported,
// in order: cold starts and re-inits after a crash or timeout. It prefers
// the emulator's "INIT REPORT(durationMs: ...)" lines, which time the
// runtime's real init, and falls back to "Init Duration" of REPORT lines.
func (p *Pool) InitDurations() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.rapid) > 0 {
		return append([]time.Duration(nil), p.rapid...)
	}
	return append([]time.Duration(nil), p.report...)
}

// InitDuration is the mean cold start of the instances that have started
// their runtime; false when none has yet.
func (p *Pool) InitDuration() (time.Duration, bool) {
	var sum time.Duration
	n := 0
	for _, inst := range p.instances {
		if d, ok := inst.coldStart(); ok {
			sum += d
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / time.Duration(n), true
}

func (p *Pool) coldStarts() int {
	n := 0
	for _, inst := range p.instances {
		if _, ok := inst.coldStart(); ok {
			n++
		}
	}
	return n
}

func (p *Pool) recordInit(rapid bool, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rapid {
		p.rapid = append(p.rapid, d)
	} else {
		p.report = append(p.report, d)
	}
}

// Close stops every instance (the emulator and the runtime it started) and
// waits for them to exit.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.stop()
		var wg sync.WaitGroup
		for _, inst := range p.instances {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inst.kill()
				inst.closeLog()
			}()
		}
		wg.Wait()
		p.client.CloseIdleConnections()
	})
	return nil
}

// classify turns the emulator's answer into the function's response or
// error. The emulator answers 200 for a handler's error (with Lambda's error
// document as the body) and for a timeout ("Task timed out after N.00
// seconds"), and 502 when the runtime crashed.
func classify(function string, status int, body []byte) ([]byte, error) {
	switch {
	case status == http.StatusOK && bytes.HasPrefix(body, []byte("Task timed out after")):
		return nil, fmt.Errorf("invoke %s: %w (%s)", function, ErrTimeout, body)
	case status == http.StatusOK:
		if fe := errorDocument(function, body, false); fe != nil {
			return nil, fe
		}
		if len(body) > MaxResponse {
			return nil, &FunctionError{Function: function, Type: "Function.ResponseSizeTooLarge", Message: "response payload is larger than 6 MB"}
		}
		return body, nil
	case status == http.StatusBadGateway:
		return nil, errorDocument(function, body, true)
	default:
		return nil, fmt.Errorf("invoke %s: emulator answered %d: %s", function, status, truncate(body, 200))
	}
}

// errorDocument reads Lambda's error document ({"errorMessage":...,
// "errorType":..., "stackTrace":...}); with force it always returns one.
func errorDocument(function string, body []byte, force bool) *FunctionError {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || len(doc) == 0 {
		if !force {
			return nil
		}
		return &FunctionError{Function: function, Type: "Runtime.Unknown", Message: truncate(body, 200), Payload: body}
	}
	var typ, msg string
	_, hasType := doc["errorType"]
	_, hasMsg := doc["errorMessage"]
	for k, v := range doc {
		switch k {
		case "errorType":
			if json.Unmarshal(v, &typ) != nil {
				hasType = false
			}
		case "errorMessage":
			if json.Unmarshal(v, &msg) != nil {
				hasMsg = false
			}
		case "stackTrace":
		default:
			if !force {
				return nil
			}
		}
	}
	if !force && !(hasType && hasMsg) {
		return nil
	}
	return &FunctionError{Function: function, Type: typ, Message: msg, Payload: body}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// discard is the log sink when LogDir is empty.
var discard io.Writer = io.Discard

func (inst *instance) logPath() string {
	return filepath.Join(inst.pool.cfg.LogDir, fmt.Sprintf("%s-%d.log", inst.pool.cfg.LogName, inst.n))
}
