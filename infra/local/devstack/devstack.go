// Package devstack builds and starts `make dev`'s command (infra/local) as a
// child process and reads its ready block, so the end-to-end tests and the
// benchmarks drive the same local stack a person gets.
package devstack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyLine matches one line of the ready block.
var readyLine = regexp.MustCompile(`^\s+(API URL|Site id|Site API key|Admin key|Simulator|Moto endpoint|Logs|Init durations|Mastodon token|Bluesky handle|Bluesky password)\s+(.*)$`)

// Build compiles the command from root (the repository) into dir and
// returns the binary.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "posse-local")
	cmd := exec.Command("go", "build", "-o", bin, "./infra/local")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build infra/local: %w: %s", err, out)
	}
	return bin, nil
}

// Stack is a running local stack.
type Stack struct {
	Cmd *exec.Cmd
	// Info is the ready block: "API URL", "Site id", "Site API key",
	// "Admin key", "Simulator", "Moto endpoint", "Logs", "Init durations",
	// and "curl" for the suggested command.
	Info   map[string]string
	Stderr *SyncBuffer
	exited chan error
}

// Launch starts bin with args and waits up to ready for the ready block.
func Launch(ready time.Duration, bin string, args ...string) (*Stack, error) {
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &Stack{Cmd: cmd, Stderr: &SyncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = s.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	infoc := make(chan map[string]string, 1)
	go func() {
		info := map[string]string{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				info[m[1]] = m[2]
			}
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), "curl ") {
				info["curl"] = strings.TrimSpace(sc.Text())
			}
			if strings.HasPrefix(sc.Text(), "Press Ctrl+C") {
				infoc <- info
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		s.exited <- cmd.Wait()
	}()
	select {
	case s.Info = <-infoc:
		return s, nil
	case err := <-s.exited:
		return nil, fmt.Errorf("the local stack exited before it was ready: %v\n%s", err, s.Stderr.String())
	case <-time.After(ready):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the local stack was not ready within %v:\n%s", ready, s.Stderr.String())
	}
}

// Exited reports the command's exit once it has ended.
func (s *Stack) Exited() <-chan error { return s.exited }

// Stop sends SIGINT and waits up to 30 s for a clean exit.
func (s *Stack) Stop() error {
	if err := s.Cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("exit after SIGINT: %w\n%s", err, s.Stderr.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = s.Cmd.Process.Kill()
		return errors.New("did not stop within 30 s of SIGINT")
	}
}

// SyncBuffer is a bytes.Buffer safe to read while a process writes to it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
