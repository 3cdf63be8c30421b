package lambdaenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// invokeGrace is how long past the function timeout the pool waits for the
// emulator before it gives up on the instance and restarts it.
const invokeGrace = 5 * time.Second

// instance is one emulator process (one execution environment).
type instance struct {
	pool *Pool
	n    int

	mu       sync.Mutex
	cmd      *exec.Cmd
	addr     string // 127.0.0.1:<port> of the emulator's invoke API
	done     chan struct{}
	logFile  *os.File
	broken   bool
	busy     bool // an invocation is in flight
	cold     time.Duration
	hasCold  bool
	sawRapid bool
}

// start launches the emulator on fresh loopback ports, retrying when a port
// was taken between choosing and binding it.
func (inst *instance) start(ctx context.Context) error {
	var err error
	for range 3 {
		if err = inst.startOnce(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (inst *instance) startOnce(ctx context.Context) error {
	cfg := inst.pool.cfg
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(cfg.RIE,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(ports[1]),
		cfg.Bootstrap)
	cmd.Dir = filepath.Dir(cfg.Bootstrap)
	cmd.Env = inst.environment()
	cmd.SysProcAttr = procAttr()
	cmd.WaitDelay = 2 * time.Second
	out := &lineWriter{onLine: inst.parseLine, sink: discard}
	inst.mu.Lock()
	if cfg.LogDir != "" && inst.logFile == nil {
		f, err := os.OpenFile(inst.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			inst.mu.Unlock()
			return fmt.Errorf("open instance log: %w", err)
		}
		inst.logFile = f
	}
	if inst.logFile != nil {
		out.sink = inst.logFile
	}
	inst.mu.Unlock()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cfg.RIE, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.flush(); close(done) }()
	inst.mu.Lock()
	inst.cmd, inst.addr, inst.done, inst.broken = cmd, addr, done, false
	inst.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("emulator for %s instance %d exited at start (see its log)", cfg.Name, inst.n)
		case <-ctx.Done():
			inst.kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			inst.kill()
			return fmt.Errorf("emulator for %s instance %d did not listen on %s within 10s", cfg.Name, inst.n, addr)
		}
	}
}

// environment is what the emulator (and the runtime it starts, which
// inherits it) sees: a Lambda-like base, the configured variables, then the
// function's identity, which the configuration cannot override.
func (inst *instance) environment() []string {
	cfg := inst.pool.cfg
	dir := filepath.Dir(cfg.Bootstrap)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"LAMBDA_TASK_ROOT=" + dir,
		"LAMBDA_RUNTIME_DIR=" + dir,
	}
	env = append(env, cfg.Env...)
	return append(env,
		"_HANDLER="+cfg.Handler,
		"AWS_LAMBDA_FUNCTION_NAME="+cfg.Name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(cfg.Timeout/time.Second)),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+cfg.Name,
		fmt.Sprintf("AWS_LAMBDA_LOG_STREAM_NAME=%s/[$LATEST]local%d", time.Now().UTC().Format("2006/01/02"), inst.n),
	)
}

// invoke posts one event to the emulator.
func (inst *instance) invoke(payload []byte) ([]byte, error) {
	p := inst.pool
	inst.mu.Lock()
	addr := inst.addr
	inst.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.stopCtx, p.cfg.Timeout+invokeGrace)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", p.cfg.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amzn-RequestId", newRequestID())
	resp, err := p.client.Do(req)
	if err != nil {
		switch {
		case p.stopCtx.Err() != nil:
			return nil, fmt.Errorf("invoke %s: %w", p.cfg.Name, ErrClosed)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return nil, fmt.Errorf("invoke %s: %w (no answer within %v)", p.cfg.Name, errHung, p.cfg.Timeout+invokeGrace)
		}
		return nil, fmt.Errorf("invoke %s: %w: %w", p.cfg.Name, errTransport, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("invoke %s: read response: %w: %w", p.cfg.Name, errTransport, err)
	}
	return classify(p.cfg.Name, resp.StatusCode, body)
}

// Internal causes that mean the instance must be restarted.
var (
	errHung      = fmt.Errorf("%w: emulator hung", ErrTimeout)
	errTransport = errors.New("emulator unreachable")
)

func (inst *instance) brokenBy(err error) bool {
	return errors.Is(err, errHung) || errors.Is(err, errTransport)
}

func (inst *instance) setBusy(b bool) {
	inst.mu.Lock()
	inst.busy = b
	inst.mu.Unlock()
}

func (inst *instance) isBusy() bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.busy
}

func (inst *instance) markBroken() {
	inst.mu.Lock()
	inst.broken = true
	inst.mu.Unlock()
}

// needsRestart reports a broken instance or an emulator that exited.
func (inst *instance) needsRestart() bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.broken {
		return true
	}
	select {
	case <-inst.done:
		return true
	default:
		return false
	}
}

func (inst *instance) restart(ctx context.Context) error {
	inst.pool.cfg.Logger.Warn("restarting function instance", "function", inst.pool.cfg.Name, "instance", inst.n)
	inst.kill()
	if err := inst.start(ctx); err != nil {
		return fmt.Errorf("restart %s instance %d: %w", inst.pool.cfg.Name, inst.n, err)
	}
	return nil
}

// killRuntime sends SIGKILL to the runtime processes the emulator started
// (the bootstrap, in a process group of its own), leaving the emulator up,
// and reports whether there was one to kill.
func (inst *instance) killRuntime() bool {
	inst.mu.Lock()
	cmd := inst.cmd
	inst.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return false
	}
	killed := false
	for _, pid := range childPIDs(cmd.Process.Pid) {
		// The group's kill may already have taken the process (then the
		// second kill finds none): either one landing is a kill.
		group := syscall.Kill(-pid, syscall.SIGKILL) == nil
		if syscall.Kill(pid, syscall.SIGKILL) == nil || group {
			killed = true
		}
	}
	return killed
}

// kill stops the emulator and the runtime processes it started. The
// emulator runs in its own process group; it starts the runtime in another
// group of its own, so those are found through /proc and stopped too.
func (inst *instance) kill() {
	inst.mu.Lock()
	cmd, done := inst.cmd, inst.done
	inst.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	pid := cmd.Process.Pid
	groups := append([]int{pid}, childPIDs(pid)...)
	signal := func(sig syscall.Signal) {
		for _, g := range groups {
			_ = syscall.Kill(-g, sig)
			_ = syscall.Kill(g, sig)
		}
	}
	signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	signal(syscall.SIGKILL)
	<-done
}

func (inst *instance) closeLog() {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.logFile != nil {
		inst.logFile.Close()
		inst.logFile = nil
	}
}

func (inst *instance) coldStart() (time.Duration, bool) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.cold, inst.hasCold
}

var (
	rapidInit  = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	reportInit = regexp.MustCompile(`^REPORT RequestId: .*Init Duration: ([0-9.]+) ms`)
)

// parseLine reads init durations from the emulator's output.
func (inst *instance) parseLine(line string) {
	rapid := true
	m := rapidInit.FindStringSubmatch(line)
	if m == nil {
		rapid = false
		if m = reportInit.FindStringSubmatch(line); m == nil {
			return
		}
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return
	}
	d := time.Duration(ms * float64(time.Millisecond))
	inst.pool.recordInit(rapid, d)
	inst.mu.Lock()
	defer inst.mu.Unlock()
	switch {
	case rapid && !inst.sawRapid:
		inst.sawRapid = true
		inst.cold, inst.hasCold = d, true
	case !rapid && !inst.sawRapid && !inst.hasCold:
		inst.cold, inst.hasCold = d, true
	}
}

// lineWriter copies output to sink and hands complete lines to onLine.
type lineWriter struct {
	mu     sync.Mutex
	buf    []byte
	sink   io.Writer
	onLine func(string)
}

// Write implements io.Writer.
func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.sink.Write(b)
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.onLine(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64*1024 {
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.onLine(string(w.buf))
		w.buf = nil
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// childPIDs lists the direct children of pid (Linux /proc; none elsewhere).
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parens.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// newRequestID is a random UUID (version 4), as Lambda's request ids are.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
