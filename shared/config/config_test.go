package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	t.Parallel()
	base := map[string]string{"POSSE_ENV": "local", "POSSE_TABLE": "posse-local"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"minimal", base, ""},
		{"missing env", with("POSSE_ENV", ""), "POSSE_ENV is required"},
		{"bad env", with("POSSE_ENV", "staging"), `POSSE_ENV must be local, dev or prod, got "staging"`},
		{"missing table", with("POSSE_TABLE", ""), "POSSE_TABLE is required"},
		{"bad level", with("POSSE_LOG_LEVEL", "loud"), "POSSE_LOG_LEVEL must be"},
		{"bad queue url", with("POSSE_DISPATCH_QUEUE_URL", "not a url"), "POSSE_DISPATCH_QUEUE_URL must be an http(s) URL"},
		{"dlq arn", with("POSSE_DISPATCH_DLQ_ARN", "arn:aws:sqs:eu-west-1:123456789012:posse-prod-dispatch-dlq"), ""},
		{"bad dlq arn", with("POSSE_DISPATCH_DLQ_ARN", "https://sqs.eu-west-1.amazonaws.com/123456789012/posse-prod-dispatch-dlq"), "POSSE_DISPATCH_DLQ_ARN must be an SQS queue ARN"},
		{"bad admin hash", with("POSSE_ADMIN_KEY_SHA256", "abc"), "POSSE_ADMIN_KEY_SHA256 must be 64"},
		{"bad body cap", with("POSSE_MAX_BODY_BYTES", "12"), "POSSE_MAX_BODY_BYTES must be"},
		{"bad ttl", with("POSSE_HEALTH_CACHE_TTL", "soon"), "POSSE_HEALTH_CACHE_TTL must be"},
		{"bad media poll", with("POSSE_MEDIA_POLL_INTERVAL", "-1s"), "POSSE_MEDIA_POLL_INTERVAL must be"},
		{"federated override locally", with("POSSE_FEDERATED_BASE_URL", "http://127.0.0.1:4700"), ""},
		{"bad federated override", with("POSSE_FEDERATED_BASE_URL", "127.0.0.1:4700"), "POSSE_FEDERATED_BASE_URL must be an http(s) URL"},
		{"federated override in dev", map[string]string{"POSSE_ENV": "dev", "POSSE_TABLE": "t", "POSSE_FEDERATED_BASE_URL": "http://127.0.0.1:4700"},
			`POSSE_FEDERATED_BASE_URL is only allowed when POSSE_ENV is local`},
		{"federated override in prod", map[string]string{"POSSE_ENV": "prod", "POSSE_TABLE": "t", "POSSE_FEDERATED_BASE_URL": "https://sim.example"},
			`POSSE_FEDERATED_BASE_URL is only allowed when POSSE_ENV is local`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tt.env))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadDefaultsAndValues(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"POSSE_ENV": "dev", "POSSE_TABLE": "t", "POSSE_LOG_LEVEL": "DEBUG",
		"POSSE_ADMIN_KEY_SHA256":  strings.Repeat("AB", 32),
		"POSSE_PLATFORM_BASE_URL": "http://127.0.0.1:4700/",
		"POSSE_MAX_BODY_BYTES":    "2048", "POSSE_HEALTH_CACHE_TTL": "1s",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.LogLevel != slog.LevelDebug {
		t.Errorf("LogLevel: got %v, want debug", c.LogLevel)
	}
	if c.AdminKeySHA256 != strings.Repeat("ab", 32) {
		t.Errorf("AdminKeySHA256: got %q, want it lowercased", c.AdminKeySHA256)
	}
	if c.FederatedBaseURL != "" {
		t.Errorf("FederatedBaseURL: got %q, want it empty unless set", c.FederatedBaseURL)
	}
	if l, err := Load(env(map[string]string{"POSSE_ENV": "local", "POSSE_TABLE": "t", "POSSE_FEDERATED_BASE_URL": " http://127.0.0.1:4700/ "})); err != nil || l.FederatedBaseURL != "http://127.0.0.1:4700" {
		t.Errorf("FederatedBaseURL: got %q %v, want http://127.0.0.1:4700 (trimmed)", l.FederatedBaseURL, err)
	}
	if c.PlatformBaseURL != "http://127.0.0.1:4700" {
		t.Errorf("PlatformBaseURL: got %q, want the trailing slash trimmed", c.PlatformBaseURL)
	}
	if c.MaxBodyBytes != 2048 || c.HealthCacheTTL != time.Second {
		t.Errorf("MaxBodyBytes, HealthCacheTTL: got %d, %v, want 2048, 1s", c.MaxBodyBytes, c.HealthCacheTTL)
	}
	d, _ := Load(env(map[string]string{"POSSE_ENV": "prod", "POSSE_TABLE": "t"}))
	if d.MaxBodyBytes != 1<<20 || d.HealthCacheTTL != 10*time.Second || d.LogLevel != slog.LevelInfo {
		t.Errorf("defaults: got %d, %v, %v; want 1 MiB, 10s, info", d.MaxBodyBytes, d.HealthCacheTTL, d.LogLevel)
	}
}

func TestRequire(t *testing.T) {
	t.Parallel()
	c := Config{KMSKeyID: "alias/posse-local"}
	if err := c.Require("POSSE_KMS_KEY_ID"); err != nil {
		t.Errorf("Require set: got %v, want nil", err)
	}
	err := c.Require("POSSE_KMS_KEY_ID", "POSSE_ADMIN_KEY_SHA256", "POSSE_NOPE")
	if err == nil || !strings.Contains(err.Error(), "POSSE_ADMIN_KEY_SHA256 is required") || !strings.Contains(err.Error(), "POSSE_NOPE is not a setting") {
		t.Errorf("Require: got %v, want both problems named", err)
	}
}
