package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/devstack"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// command builds this command once per test binary.
func command(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "posse-local-cmd-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "local")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build the command: %v", buildErr)
	}
	return binary
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTakenPortIsReported: the command checks its fixed ports before it
// starts anything and names the one that is taken.
func TestTakenPortIsReported(t *testing.T) {
	t.Parallel()
	bin := command(t)
	for _, role := range []string{"API gateway", "moto", "platform simulator"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			port := held.Addr().(*net.TCPAddr).Port
			ports := map[string]int{"API gateway": freePort(t), "moto": freePort(t), "platform simulator": freePort(t)}
			ports[role] = port
			state := t.TempDir()
			cmd := exec.Command(bin, "-gateway-port", strconv.Itoa(ports["API gateway"]), "-moto-port", strconv.Itoa(ports["moto"]),
				"-sim-port", strconv.Itoa(ports["platform simulator"]), "-state-dir", state)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("got %v, want a non-zero exit", err)
			}
			want := "port " + strconv.Itoa(port) + " (" + role + ") is taken"
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), want)
			}
			if entries, _ := os.ReadDir(state); len(entries) != 0 {
				t.Errorf("the command started something before checking ports: %s holds %d entries", state, len(entries))
			}
		})
	}
}

var (
	adminKey = regexp.MustCompile(`^posse_admin_[A-Za-z0-9_-]{43}$`)
	initLine = regexp.MustCompile(`^EchoFunction [0-9]+\.[0-9] ms$`)
)

// TestCommandRunsAndStops runs the command twice on the test template: it
// starts moto, builds and runs the function, serves the API, creates the
// demo site through it with the admin key, prints the ready block, and on
// SIGINT stops every process it started and exits 0.
func TestCommandRunsAndStops(t *testing.T) {
	t.Parallel()
	mototest.Server(t) // integration test: skip or fail like the others when moto is missing
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	for run := 1; run <= 2; run++ {
		l := launch(t, bin, "-template", filepath.Join("testdata", "template.yaml"), "-env", "e2e", "-instances", "1",
			"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", state)
		cmd, info, exited, stderr := l.cmd, l.info, l.exited, l.stderr
		api := "http://127.0.0.1:" + strconv.Itoa(gw) + "/v1"
		checks := map[string]string{
			"API URL": api, "Site id": "site_echo", "Site API key": "posse_sk_echo_site_echo",
			"Simulator": "http://127.0.0.1:" + strconv.Itoa(sim), "Moto endpoint": "http://127.0.0.1:" + strconv.Itoa(mt),
			"Logs": filepath.Join(state, "logs"), "curl": `curl -H "Authorization: Bearer posse_sk_echo_site_echo" ` + api + "/health",
		}
		for k, want := range checks {
			if info[k] != want {
				t.Errorf("run %d: %s: got %q, want %q", run, k, info[k], want)
			}
		}
		if !adminKey.MatchString(info["Admin key"]) {
			t.Errorf("run %d: admin key %q is not posse_admin_ + 32 bytes base64url", run, info["Admin key"])
		}
		if !initLine.MatchString(info["Init durations"]) {
			t.Errorf("run %d: init durations %q", run, info["Init durations"])
		}
		if strings.Contains(stderr.String(), info["Admin key"]) {
			t.Errorf("run %d: the admin key was logged", run)
		}
		resp, err := http.Get(api + "/health")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("run %d: GET /v1/health: %v %v", run, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		for _, f := range []string{"moto.log", "EchoFunction-1.log"} {
			if _, err := os.Stat(filepath.Join(state, "logs", f)); err != nil {
				t.Errorf("run %d: log %s: %v", run, f, err)
			}
		}
		procs := descendants(cmd.Process.Pid)
		if len(procs) < 3 {
			t.Errorf("run %d: got %d child processes %v, want moto, the emulator and the bootstrap", run, len(procs), procs)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("run %d: exit after SIGINT: %v\n%s", run, err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("run %d did not stop within 30 s of SIGINT", run)
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, pid := range procs {
			for running(pid) {
				if time.Now().After(deadline) {
					t.Fatalf("run %d: process %d outlived the command", run, pid)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// launched is the command, started and ready.
type launched struct {
	cmd    *exec.Cmd
	info   map[string]string // the ready block: "API URL", "Site API key", ...
	exited <-chan error
	stderr *devstack.SyncBuffer
	stack  *devstack.Stack
}

// launch starts the command and waits for its ready block.
func launch(t *testing.T, bin string, args ...string) launched {
	t.Helper()
	s, err := devstack.Launch(3*time.Minute, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return launched{cmd: s.Cmd, info: s.Info, exited: s.Exited(), stderr: s.Stderr, stack: s}
}

// stop sends SIGINT and waits for a clean exit.
func (l launched) stop(t *testing.T) {
	t.Helper()
	if err := l.stack.Stop(); err != nil {
		t.Error(err)
	}
}

// descendants lists every process below pid (Linux /proc).
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], p)
			}
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// running reports a process that exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// TestParseOptions covers flags, environment fallbacks and defaults.
func TestParseOptions(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSSE_GATEWAY_PORT": "3100", "POSSE_INSTANCES": "3", "POSSE_LOCAL_ENV": "dev"}
	o, err := parseOptions([]string{"-sim-port", "4800", "-param", "LogLevel=debug", "-fn-env", "A=1"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.gatewayPort != 3100 || o.motoPort != 4566 || o.simPort != 4800 || o.instances != 3 || o.env != "dev" || o.stackName != "posse-dev" || !o.demo {
		t.Errorf("got %+v", o)
	}
	if len(o.params) != 1 || o.params[0] != "LogLevel=debug" || len(o.fnEnv) != 1 {
		t.Errorf("lists: got %v %v", o.params, o.fnEnv)
	}
	for _, args := range [][]string{{"-instances", "0"}, {"-param", "novalue"}, {"extra"}} {
		if _, err := parseOptions(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v: got no error, want one", args)
		}
	}
	if err := checkPorts([]fixedPort{{5000, "a"}, {5000, "b"}}); err == nil || !strings.Contains(err.Error(), "both a and b") {
		t.Errorf("repeated port: got %v", err)
	}
}

// TestFederatedEnv checks the runner routes Mastodon instances to the
// simulator only for the local environment, the only one whose functions
// accept the setting.
func TestFederatedEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{"local", []string{"POSSE_FEDERATED_BASE_URL=http://127.0.0.1:4700"}},
		{"dev", nil},
		{"prod", nil},
		{"", nil},
	} {
		if got := federatedEnv(tc.env, "http://127.0.0.1:4700"); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.env, got, tc.want)
		}
	}
}
