package logging

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func secret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	tok := secret(t)
	tests := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"secret key name", func(l *slog.Logger) { l.Info("x", "access_token", tok) }},
		{"password", func(l *slog.Logger) { l.Info("x", "password", tok) }},
		{"authorization header value", func(l *slog.Logger) { l.Info("x", "header", "Bearer "+tok) }},
		{"our key format in a message attr", func(l *slog.Logger) { l.Info("x", "detail", "got posse_sk_"+tok+" from caller") }},
		{"error text", func(l *slog.Logger) { l.Error("x", "err", errors.New("refresh failed for Bearer "+tok)) }},
		{"group", func(l *slog.Logger) { l.WithGroup("oauth").Info("x", "refresh_token", tok) }},
		{"jwt", func(l *slog.Logger) { l.Info("x", "session", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ."+tok) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			tt.log(New(&buf, slog.LevelDebug, "api"))
			if strings.Contains(buf.String(), tok) {
				t.Fatalf("log line leaks the secret: %s", buf.String())
			}
			if !strings.Contains(buf.String(), Redacted) {
				t.Fatalf("log line: got %s, want %s in it", buf.String(), Redacted)
			}
		})
	}
}

func TestRequestIDAndSafeFields(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo, "api")
	l.InfoContext(WithRequestID(context.Background(), "req-123"), "done", "key_id", "key_abc", "status", 200)
	out := buf.String()
	for _, want := range []string{`"request_id":"req-123"`, `"key_id":"key_abc"`, `"function":"api"`, `"status":200`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line: got %s, want it to contain %s", out, want)
		}
	}
}
