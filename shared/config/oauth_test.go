package config

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestLoadOAuthSettings(t *testing.T) {
	t.Parallel()
	base := map[string]string{"POSSE_ENV": "local", "POSSE_TABLE": "t"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"none", base, ""},
		{"a client", with("POSSE_X_CLIENT_ID", "id", "POSSE_X_CLIENT_SECRET", "s"), ""},
		{"id without secret", with("POSSE_TIKTOK_CLIENT_ID", "id"), "POSSE_TIKTOK_CLIENT_ID and POSSE_TIKTOK_CLIENT_SECRET must be set together"},
		{"secret without id", with("POSSE_LINKEDIN_CLIENT_SECRET", "s"), "POSSE_LINKEDIN_CLIENT_ID and POSSE_LINKEDIN_CLIENT_SECRET"},
		{"bad window", with("POSSE_REFRESH_WINDOW", "soon"), "POSSE_REFRESH_WINDOW must be a positive duration"},
		{"negative window", with("POSSE_META_REFRESH_WINDOW", "-1h"), "POSSE_META_REFRESH_WINDOW must be a positive duration"},
		{"bad public url", with("POSSE_PUBLIC_URL", "api.example.com"), "POSSE_PUBLIC_URL must be an http(s) base URL"},
		{"public url with query", with("POSSE_PUBLIC_URL", "https://api.example.com/?a=b"), "POSSE_PUBLIC_URL must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tt.env))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: got %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), `"s"`) {
				t.Errorf("the error quotes a secret: %v", err)
			}
		})
	}

	c, err := Load(env(with(
		"POSSE_X_CLIENT_ID", " xid ", "POSSE_X_CLIENT_SECRET", "xsecret",
		"POSSE_PUBLIC_URL", "https://api.example.com/", "POSSE_OAUTH_STATE_KEY_ID", "alias/posse-dev-oauth-state",
		"POSSE_PLATFORM_SECRET_ID", "arn:aws:secretsmanager:us-east-1:123456789012:secret:posse-x",
		"POSSE_LINKEDIN_EXPIRING_WINDOW", "240h",
	)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.OAuthClients["x"]; got.ID != "xid" || got.Secret != "xsecret" || len(c.OAuthClients) != 1 {
		t.Errorf("OAuthClients: got %v, want only x trimmed", c.OAuthClients)
	}
	if c.PublicURL != "https://api.example.com" || c.OAuthStateKeyID != "alias/posse-dev-oauth-state" || c.PlatformSecretID == "" {
		t.Errorf("PublicURL, OAuthStateKeyID, PlatformSecretID: got %q, %q, %q", c.PublicURL, c.OAuthStateKeyID, c.PlatformSecretID)
	}
	if c.RefreshWindow != DefaultRefreshWindow || c.MetaRefreshWindow != DefaultMetaRefreshWindow || c.LinkedInExpiringWindow != 240*time.Hour {
		t.Errorf("windows: got %v, %v, %v", c.RefreshWindow, c.MetaRefreshWindow, c.LinkedInExpiringWindow)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c.OAuthClients)} {
		if strings.Contains(s, "xsecret") {
			t.Errorf("formatting the config shows a client secret: %s", s)
		}
	}
	if err := c.Require("POSSE_OAUTH_STATE_KEY_ID"); err != nil {
		t.Errorf("Require(POSSE_OAUTH_STATE_KEY_ID): %v", err)
	}
}

func TestWithPlatformSecret(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"POSSE_ENV": "dev", "POSSE_TABLE": "t",
		"POSSE_X_CLIENT_ID": "env-id", "POSSE_X_CLIENT_SECRET": "env-secret",
		"POSSE_THREADS_CLIENT_ID": "th-id", "POSSE_THREADS_CLIENT_SECRET": "th-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.WithPlatformSecret(`{"X_CLIENT_ID":"sm-id","X_CLIENT_SECRET":"sm-secret","TIKTOK_CLIENT_ID":"tk","TIKTOK_CLIENT_SECRET":"tks"}`)
	if err != nil {
		t.Fatalf("WithPlatformSecret: %v", err)
	}
	if got.OAuthClients["x"].ID != "sm-id" || got.OAuthClients["tiktok"].Secret != "tks" || got.OAuthClients["threads"].ID != "th-id" {
		t.Errorf("clients: got %v, want the secret's x and tiktok and the environment's threads", got.OAuthClients)
	}
	if c.OAuthClients["x"].ID != "env-id" {
		t.Error("WithPlatformSecret changed the original config's map")
	}
	for _, tt := range []struct{ raw, want string }{
		{`not json`, "must be a JSON object"},
		{`{"X_CLIENT_ID":"a"}`, "X_CLIENT_ID and X_CLIENT_SECRET together"},
		{`{"X_CLIENT_ID":"a","X_CLIENT_SECRET":"b","X_CLIENT_SECERT":"c"}`, `unknown key "X_CLIENT_SECERT"`},
		{`{"X_CLIENT_ID":1}`, "must be a JSON object"},
	} {
		_, err := c.WithPlatformSecret(tt.raw)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("WithPlatformSecret(%s): got %v, want %q", tt.raw, err, tt.want)
		}
	}
}

type fakeSecrets struct {
	value *string
	err   error
	asked string
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.asked = *in.SecretId
	return &secretsmanager.GetSecretValueOutput{SecretString: f.value}, f.err
}

func TestResolvePlatformSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	val := `{"X_CLIENT_ID":"id-from-secret","X_CLIENT_SECRET":"s3"}`
	f := &fakeSecrets{value: &val}
	c, err := Config{PlatformSecretID: "posse-dev/platforms"}.ResolvePlatformSecret(ctx, f)
	if err != nil {
		t.Fatalf("ResolvePlatformSecret: %v", err)
	}
	if f.asked != "posse-dev/platforms" {
		t.Errorf("secret asked for: got %q, want posse-dev/platforms", f.asked)
	}
	if got := c.OAuthClients["x"].ID; got != "id-from-secret" {
		t.Errorf("X client id: got %q, want id-from-secret", got)
	}
	none := &fakeSecrets{}
	if _, err := (Config{}).ResolvePlatformSecret(ctx, none); err != nil || none.asked != "" {
		t.Errorf("without a secret id: got err %v, asked %q; want no call", err, none.asked)
	}
	if _, err := (Config{PlatformSecretID: "x"}).ResolvePlatformSecret(ctx, &fakeSecrets{err: errors.New("AccessDenied")}); err == nil || !strings.Contains(err.Error(), "read the platform secret x") {
		t.Errorf("failing read: got %v, want an error naming the secret", err)
	}
}
