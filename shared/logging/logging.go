// Package logging builds POSSE's one slog logger: JSON, snake_case keys, the
// request id of the invocation on every line, and redaction of anything that
// looks like a secret, so a careless attribute cannot leak a token.
package logging

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// Redacted replaces secret values in log lines.
const Redacted = "[REDACTED]"

type ctxKey struct{}

// WithRequestID returns ctx carrying the request id every log line made
// with it will show.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// New returns a JSON logger writing to w at level, adding the function name
// and redacting secrets.
func New(w io.Writer, level slog.Leveler, function string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr})
	return slog.New(&handler{Handler: h}).With("function", function)
}

// secretKey matches attribute keys whose values must never be logged.
var secretKey = regexp.MustCompile(`(?i)(token|secret|password|passwd|authorization|api_?key|cookie|credential|verifier|private|data_?key|plaintext|jwt|^key$|^code$)`)

// secretValue matches values that look like credentials whatever their key:
// bearer headers, our own key formats, JWTs.
var secretValue = regexp.MustCompile(`(?i)(bearer\s+\S+|posse_(sk|admin)_[A-Za-z0-9_\-]+|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)`)

// RedactString removes credential-looking substrings from s.
func RedactString(s string) string {
	return secretValue.ReplaceAllString(s, Redacted)
}

func redactAttr(groups []string, a slog.Attr) slog.Attr {
	if secretKey.MatchString(a.Key) && a.Key != "request_id" && a.Key != "key_id" && a.Key != "token_version" {
		return slog.String(a.Key, Redacted)
	}
	if a.Value.Kind() == slog.KindString {
		v := a.Value.String()
		if r := RedactString(v); r != v {
			return slog.String(a.Key, r)
		}
	}
	if a.Value.Kind() == slog.KindAny {
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, RedactString(err.Error()))
		}
	}
	return a
}

// handler adds request_id from the context to every record.
type handler struct{ slog.Handler }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{Handler: h.Handler.WithAttrs(as)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{Handler: h.Handler.WithGroup(strings.ToLower(name))}
}
