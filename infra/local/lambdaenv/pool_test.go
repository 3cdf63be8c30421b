package lambdaenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
)

// echo is the runner's test function.
func echo(t *testing.T) string {
	return lambdaenvtest.BuildPackage(t, filepath.Join("..", "testdata", "echofn"))
}

// httpEvent is a minimal API Gateway v2 event for path.
func httpEvent(t *testing.T, path string) []byte {
	t.Helper()
	b, err := json.Marshal(events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "ANY /{proxy+}", RawPath: path,
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: path}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func invoke(t *testing.T, p *lambdaenv.Pool, path string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.Invoke(ctx, httpEvent(t, path))
}

func TestInvokeAndEnvironment(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	p := lambdaenvtest.Start(t, lambdaenv.Config{
		Name: "echo-env", Bootstrap: echo(t), Instances: 2, Timeout: 7 * time.Second, MemoryMB: 256,
		Env:    []string{"ECHO_X=first", "ECHO_X=second", "AWS_LAMBDA_FUNCTION_NAME=not-this"},
		LogDir: logs, LogName: "EchoFunction",
	})
	for name, want := range map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "echo-env",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     "7",
		"ECHO_X":                          "second",
		"TZ":                              ":UTC",
		"_HANDLER":                        "bootstrap",
	} {
		out, err := invoke(t, p, "/env/"+name)
		if err != nil {
			t.Fatalf("invoke: %v", err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("response %s: %v", out, err)
		}
		if got := fmt.Sprint(resp.StatusCode, " ", resp.Body); got != `200 {"value":"`+want+`"}` {
			t.Errorf("%s: got %s, want value %q", name, got, want)
		}
	}
	if err := p.Warm(context.Background(), []byte(`{}`)); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	d, ok := p.InitDuration()
	if !ok || d <= 0 {
		t.Errorf("InitDuration: got %v, %v, want a positive duration", d, ok)
	}
	if n := len(p.InitDurations()); n < 2 {
		t.Errorf("InitDurations: got %d, want one per instance (2)", n)
	}
	for i := 1; i <= 2; i++ {
		b, err := os.ReadFile(filepath.Join(logs, "EchoFunction-"+strconv.Itoa(i)+".log"))
		if err != nil {
			t.Fatalf("instance log: %v", err)
		}
		if !strings.Contains(string(b), "REPORT RequestId:") {
			t.Errorf("instance %d log has no REPORT line:\n%s", i, b)
		}
	}
}

func TestFunctionErrorsAndTimeout(t *testing.T) {
	t.Parallel()
	p := lambdaenvtest.Start(t, lambdaenv.Config{Name: "echo-errors", Bootstrap: echo(t), Instances: 1, Timeout: time.Second})

	_, err := invoke(t, p, "/crash")
	var fe *lambdaenv.FunctionError
	if !errors.As(err, &fe) || fe.Message != "crash requested" || fe.Type == "" {
		t.Errorf("crash: got %v, want a FunctionError with message %q", err, "crash requested")
	}
	_, err = invoke(t, p, "/sleep")
	if !errors.Is(err, lambdaenv.ErrTimeout) {
		t.Errorf("sleep: got %v, want ErrTimeout", err)
	}
	// The emulator re-initialises the runtime after a timeout.
	if _, err := invoke(t, p, "/env/X"); err != nil {
		t.Errorf("after timeout: got %v, want a normal answer", err)
	}
	if got := len(p.InitDurations()); got < 2 {
		t.Errorf("InitDurations after a timeout: got %d, want a cold start and a re-init", got)
	}
	big := make([]byte, lambdaenv.MaxPayload+1)
	if _, err := p.Invoke(context.Background(), big); !errors.Is(err, lambdaenv.ErrPayloadTooLarge) {
		t.Errorf("big payload: got %v, want ErrPayloadTooLarge", err)
	}
}

// TestOneInvocationPerInstance: with one instance, a second caller waits for
// the first invocation to finish.
func TestOneInvocationPerInstance(t *testing.T) {
	t.Parallel()
	p := lambdaenvtest.Start(t, lambdaenv.Config{Name: "echo-pool", Bootstrap: echo(t), Instances: 1, Timeout: 2 * time.Second})
	// Start the runtime first, so the slow call below is all sleep and the
	// pauses that let it take the instance hold under a loaded machine.
	if err := p.Warm(context.Background(), httpEvent(t, "/env/X")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := invoke(t, p, "/sleep")
		mu.Lock()
		order = append(order, fmt.Sprintf("slow:%v", errors.Is(err, lambdaenv.ErrTimeout)))
		mu.Unlock()
	}()
	time.Sleep(500 * time.Millisecond) // let the slow call take the instance
	_, err := invoke(t, p, "/env/X")
	mu.Lock()
	order = append(order, fmt.Sprintf("fast:%v", err == nil))
	mu.Unlock()
	wg.Wait()
	if got := strings.Join(order, ","); got != "slow:true,fast:true" {
		t.Errorf("order: got %s, want slow:true,fast:true (the second caller waits)", got)
	}

	// A caller that gives up while waiting gets its context's error.
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = invoke(t, p, "/sleep") }()
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Invoke(ctx, httpEvent(t, "/env/X")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting caller: got %v, want context.DeadlineExceeded", err)
	}
	wg.Wait()
}

func TestCloseStopsEverything(t *testing.T) {
	t.Parallel()
	p := lambdaenvtest.Start(t, lambdaenv.Config{Name: "echo-close", Bootstrap: echo(t), Instances: 2, Timeout: 3 * time.Second})
	if err := p.Warm(context.Background(), httpEvent(t, "/env/X")); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	pids := p.ProcessIDs()
	if len(pids) < 4 {
		t.Fatalf("got %d processes %v, want 2 emulators and 2 runtimes", len(pids), pids)
	}
	p.Close()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs after Close", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := invoke(t, p, "/env/X"); !errors.Is(err, lambdaenv.ErrClosed) {
		t.Errorf("after Close: got %v, want ErrClosed", err)
	}
}

// alive reports a process that exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		wantBody string
		wantErr  string // "timeout", "function:<Type>", "other" or ""
	}{
		{"ok", 200, `{"statusCode":200}`, `{"statusCode":200}`, ""},
		{"ok null", 200, `null`, `null`, ""},
		{"ok with errorMessage among other keys", 200, `{"errorMessage":"x","errorType":"y","data":1}`, `{"errorMessage":"x","errorType":"y","data":1}`, ""},
		{"handler error", 200, `{"errorMessage":"boom","errorType":"errorString"}`, "", "function:errorString"},
		{"panic", 200, `{"errorMessage":"oops","errorType":"string","stackTrace":[]}`, "", "function:string"},
		{"timeout", 200, `Task timed out after 3.00 seconds`, "", "timeout"},
		{"crash", 502, `{"errorType":"Runtime.ExitError","errorMessage":"exit status 3"}`, "", "function:Runtime.ExitError"},
		{"crash without document", 502, `bad gateway`, "", "function:Runtime.Unknown"},
		{"busy", 400, ``, "", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := lambdaenv.Classify("f", tt.status, []byte(tt.body))
			var fe *lambdaenv.FunctionError
			got := ""
			switch {
			case err == nil:
			case errors.Is(err, lambdaenv.ErrTimeout):
				got = "timeout"
			case errors.As(err, &fe):
				got = "function:" + fe.Type
			default:
				got = "other"
			}
			if got != tt.wantErr || string(out) != tt.wantBody {
				t.Errorf("got %q, %v, want %q, %s", out, err, tt.wantBody, tt.wantErr)
			}
		})
	}
}

// TestKillBusyCrashesTheRuntimeMidInvocation: KillBusy sends SIGKILL to the
// runtime of the instance running an invocation; the invocation ends at
// once with a Runtime.* function error (not a timeout), and the next
// invocation on the same instance gets a fresh runtime.
func TestKillBusyCrashesTheRuntimeMidInvocation(t *testing.T) {
	t.Parallel()
	p := lambdaenvtest.Start(t, lambdaenv.Config{Name: "echo-kill", Bootstrap: echo(t), Instances: 1, Timeout: 20 * time.Second})
	if got := p.KillBusy(nil); got != 0 {
		t.Fatalf("KillBusy with no invocation in flight: got instance %d, want 0", got)
	}
	if err := p.Warm(context.Background(), httpEvent(t, "/env/X")); err != nil {
		t.Fatal(err)
	}
	inits := len(p.InitDurations())
	start := time.Now()
	errc := make(chan error, 1)
	go func() { _, err := invoke(t, p, "/sleep"); errc <- err }()
	killed := 0
	for deadline := time.Now().Add(10 * time.Second); killed == 0; {
		if time.Now().After(deadline) {
			t.Fatal("KillBusy found no busy instance within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
		killed = p.KillBusy(func(int) int { return 0 })
	}
	if killed != 1 {
		t.Errorf("KillBusy: got instance %d, want 1", killed)
	}
	err := <-errc
	var fe *lambdaenv.FunctionError
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.Type, "Runtime.") {
		t.Errorf("killed invocation: got %v, want a Runtime.* FunctionError", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("killed invocation ended after %v, want well before the 20 s timeout", took)
	}
	if _, err := invoke(t, p, "/env/X"); err != nil {
		t.Fatalf("after the kill: got %v, want a normal answer", err)
	}
	if got := len(p.InitDurations()); got <= inits {
		t.Errorf("InitDurations after the kill: got %d, want more than %d (a fresh runtime)", got, inits)
	}
}
