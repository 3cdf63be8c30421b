// Package moto starts and stops moto_server, the local stand-in for the AWS
// APIs POSSE uses (SQS, DynamoDB, KMS, EventBridge Scheduler), and builds AWS
// SDK configurations that talk to it. The local runner and the integration
// tests share it.
//
// moto runs under serve.py, which makes DynamoDB writes atomic, counts calls,
// and adds the SQS message move tasks moto lacks (StartMessageMoveTask,
// ListMessageMoveTasks, CancelMessageMoveTask: the SQS console's DLQ
// redrive).
package moto

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

//go:embed serve.py
var serveScript string

// Region is the region the local stack uses unless told otherwise.
const Region = "us-east-1"

// ErrNotInstalled means moto_server could not be found.
var ErrNotInstalled = errors.New("moto_server not found: run `make venv` (it installs infra/local/requirements.txt into .venv) or set POSSE_MOTO_SERVER")

// Server is a running moto_server.
type Server struct {
	cmd      *exec.Cmd
	endpoint string
	done     chan struct{}
}

// Options configure Start.
type Options struct {
	Binary string // path to moto_server; found automatically when empty
	Host   string // default 127.0.0.1
	Port   int    // 0 picks a free port
	Log    string // file for moto's own output; empty discards it
}

// FindBinary returns the moto_server to run: $POSSE_MOTO_SERVER, else
// .venv/bin/moto_server in the first parent folder of the working directory
// that has one, else moto_server on PATH.
func FindBinary() (string, error) {
	if p := os.Getenv("POSSE_MOTO_SERVER"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err == nil {
		for {
			p := filepath.Join(dir, ".venv", "bin", "moto_server")
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	return "", ErrNotInstalled
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs moto_server and waits until it answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	} else if err := portFree(host, port); err != nil {
		return nil, err
	}
	// moto_server's own Python runs our launcher (serve.py), which serves
	// the same application with DynamoDB writes made atomic and SQS message
	// move tasks added.
	python := filepath.Join(filepath.Dir(bin), "python")
	if _, err := os.Stat(python); err != nil {
		return nil, fmt.Errorf("no python beside %s: %w", bin, err)
	}
	cmd := exec.Command(python, "-c", serveScript, "-H", host, "-p", strconv.Itoa(port))
	cmd.SysProcAttr = procAttr()
	cmd.Env = append(os.Environ(), "MOTO_ALLOW_NONEXISTENT_REGION=false")
	if opts.Log != "" {
		f, err := os.OpenFile(opts.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open moto log: %w", err)
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, endpoint: fmt.Sprintf("http://%s", net.JoinHostPort(host, strconv.Itoa(port))), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.endpoint + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("moto_server exited before answering on %s", s.endpoint)
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("moto_server did not answer on %s within 30s", s.endpoint)
		}
	}
}

// portFree reports a taken port by number.
func portFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d for moto is taken: %w", port, err)
	}
	return l.Close()
}

// Endpoint is moto's base URL.
func (s *Server) Endpoint() string { return s.endpoint }

// Reset drops every resource moto holds.
func (s *Server) Reset() error {
	resp, err := http.Post(s.endpoint+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	resp.Body.Close()
	return nil
}

// Close stops moto_server and its children.
func (s *Server) Close() error {
	if s.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	return nil
}

// Config returns an AWS SDK configuration that talks to endpoint with dummy
// static credentials.
func Config(endpoint string) aws.Config {
	return aws.Config{
		Region:           Region,
		Credentials:      credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint:     aws.String(endpoint),
		RetryMaxAttempts: 3,
	}
}

// Env returns the environment variables that point an AWS SDK process
// (a function's bootstrap) at endpoint.
func Env(endpoint string) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_SESSION_TOKEN=",
	}
}

// Calls returns how many requests moto has served per X-Amz-Target
// ("TrentService.Decrypt", "DynamoDB_20120810.PutItem", ...) since it
// started: serve.py counts them.
func Calls(endpoint string) (map[string]int, error) {
	resp, err := http.Get(endpoint + "/_posse/calls")
	if err != nil {
		return nil, fmt.Errorf("read moto call counts: %w", err)
	}
	defer resp.Body.Close()
	var out map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode moto call counts: %w", err)
	}
	return out, nil
}

// The callers the local runner's own AWS calls are counted under (the
// functions are counted under their logical ids, AWS_SDK_UA_APP_ID).
const (
	// CallerEventSourceMapping is the SQS pollers: what Lambda's event
	// source mappings call (billed as SQS requests on AWS).
	CallerEventSourceMapping = "LambdaEventSourceMapping"
	// CallerScheduler is the schedule ticker: what EventBridge Scheduler
	// calls when a schedule fires.
	CallerScheduler = "EventBridgeScheduler"
)

// CallCount is how many requests one caller made to one operation of one
// service: {"ApiFunction", "dynamodb", "PutItem", 3}. The caller is the
// application id in the SDK's User-Agent (AWS_SDK_UA_APP_ID, or
// aws.Config.AppID), "unnamed" without one.
type CallCount struct {
	Caller    string `json:"caller"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Count     int    `json:"count"`
	// ReadUnits and WriteUnits are the DynamoDB on-demand request units
	// the calls cost, as serve.py reckons them from the items' sizes (1 RRU
	// per 4 KB read strongly consistent, half eventually; 1 WRU per 1 KB
	// written; twice for transactions; failed conditions still cost).
	ReadUnits  float64 `json:"readUnits,omitempty"`
	WriteUnits float64 `json:"writeUnits,omitempty"`
}

// CallDetail returns the requests moto has served since it started or
// since the last ResetCalls, by caller, service and operation.
func CallDetail(endpoint string) ([]CallCount, error) {
	resp, err := http.Get(endpoint + "/_posse/calls/detail")
	if err != nil {
		return nil, fmt.Errorf("read moto call detail: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read moto call detail: HTTP %d", resp.StatusCode)
	}
	var out []CallCount
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode moto call detail: %w", err)
	}
	return out, nil
}

// ResetCalls zeroes the counts Calls and CallDetail answer.
func ResetCalls(endpoint string) error {
	resp, err := http.Post(endpoint+"/_posse/calls/reset", "application/json", nil)
	if err != nil {
		return fmt.Errorf("reset moto call counts: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset moto call counts: HTTP %d", resp.StatusCode)
	}
	return nil
}
