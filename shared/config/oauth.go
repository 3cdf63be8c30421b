package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// OAuthPlatforms are the platforms connected through an OAuth authorization
// code flow, whose app credentials come from configuration. Bluesky and
// Mastodon connections are made from credentials the site supplies.
var OAuthPlatforms = []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok"}

// OAuthClient is one platform app's client credentials. TikTok calls the id
// its client key.
type OAuthClient struct {
	ID     string
	Secret string
}

// String never shows the secret, so printing a Config cannot leak it.
func (c OAuthClient) String() string {
	if c.Secret == "" {
		return "{id:" + c.ID + "}"
	}
	return "{id:" + c.ID + " secret:[REDACTED]}"
}

// GoString is String for %#v.
func (c OAuthClient) GoString() string { return c.String() }

// Secrets are secret values by name. Printing them never shows a value.
type Secrets map[string]string

// String lists the names only.
func (s Secrets) String() string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	return "[REDACTED: " + strings.Join(names, " ") + "]"
}

// GoString is String for %#v.
func (s Secrets) GoString() string { return s.String() }

// Defaults of the OAuth settings.
const (
	DefaultRefreshWindow          = 30 * time.Minute
	DefaultMetaRefreshWindow      = 7 * 24 * time.Hour
	DefaultLinkedInExpiringWindow = 7 * 24 * time.Hour
)

// loadOAuth reads the OAuth settings into c and returns every problem.
func loadOAuth(getenv func(string) string, c *Config) []error {
	var errs []error
	c.PlatformSecretID = strings.TrimSpace(getenv("POSSE_PLATFORM_SECRET_ID"))
	c.OAuthStateKeyID = strings.TrimSpace(getenv("POSSE_OAUTH_STATE_KEY_ID"))
	c.PublicURL = strings.TrimRight(strings.TrimSpace(getenv("POSSE_PUBLIC_URL")), "/")
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("config: POSSE_PUBLIC_URL must be an http(s) base URL without query or fragment, got %q", c.PublicURL))
		}
	}
	c.OAuthClients = map[string]OAuthClient{}
	for _, p := range OAuthPlatforms {
		up := strings.ToUpper(p)
		id := strings.TrimSpace(getenv("POSSE_" + up + "_CLIENT_ID"))
		secret := strings.TrimSpace(getenv("POSSE_" + up + "_CLIENT_SECRET"))
		switch {
		case id == "" && secret == "":
		case id == "" || secret == "":
			errs = append(errs, fmt.Errorf("config: POSSE_%s_CLIENT_ID and POSSE_%s_CLIENT_SECRET must be set together", up, up))
		default:
			c.OAuthClients[p] = OAuthClient{ID: id, Secret: secret}
		}
	}
	for _, w := range []struct {
		name string
		dst  *time.Duration
		def  time.Duration
	}{
		{"POSSE_REFRESH_WINDOW", &c.RefreshWindow, DefaultRefreshWindow},
		{"POSSE_META_REFRESH_WINDOW", &c.MetaRefreshWindow, DefaultMetaRefreshWindow},
		{"POSSE_LINKEDIN_EXPIRING_WINDOW", &c.LinkedInExpiringWindow, DefaultLinkedInExpiringWindow},
	} {
		*w.dst = w.def
		v := strings.TrimSpace(getenv(w.name))
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("config: %s must be a positive duration like 30m or 168h, got %q", w.name, v))
			continue
		}
		*w.dst = d
	}
	return errs
}

// WithPlatformSecret returns c with the OAuth client credentials of the
// Secrets Manager secret (its SecretString) merged in. The secret is a flat
// JSON object, editable as key/value pairs in the console, whose keys are
// the environment names without the POSSE_ prefix:
//
//	{"X_CLIENT_ID": "...", "X_CLIENT_SECRET": "...", "TIKTOK_CLIENT_ID": "...", ...}
//
// It may also hold the LLM providers' API keys, "OPENAI_API_KEY",
// "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "COHERE_API_KEY": they are kept in
// AIKeys for LoadAI.
//
// A platform the secret names replaces the environment's values. Unknown
// keys are rejected, so a typo does not silently leave a platform off.
// Errors never quote a value.
func (c Config) WithPlatformSecret(secretString string) (Config, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(secretString), &m); err != nil {
		return Config{}, errors.New("config: the platform secret must be a JSON object of strings like {\"X_CLIENT_ID\": \"...\", \"X_CLIENT_SECRET\": \"...\"}")
	}
	known := map[string]bool{}
	for _, p := range OAuthPlatforms {
		up := strings.ToUpper(p)
		known[up+"_CLIENT_ID"], known[up+"_CLIENT_SECRET"] = true, true
	}
	aiKeys := Secrets{}
	for _, p := range AIProviders {
		known[aiKeyName(p)] = true
		if v := strings.TrimSpace(m[aiKeyName(p)]); v != "" {
			aiKeys[aiKeyName(p)] = v
		}
	}
	var errs []error
	for k := range m {
		if !known[k] {
			errs = append(errs, fmt.Errorf("config: the platform secret has an unknown key %q (want <PLATFORM>_CLIENT_ID, <PLATFORM>_CLIENT_SECRET or <AI PROVIDER>_API_KEY)", k))
		}
	}
	clients := make(map[string]OAuthClient, len(c.OAuthClients))
	for p, cl := range c.OAuthClients {
		clients[p] = cl
	}
	for _, p := range OAuthPlatforms {
		up := strings.ToUpper(p)
		id, secret := strings.TrimSpace(m[up+"_CLIENT_ID"]), strings.TrimSpace(m[up+"_CLIENT_SECRET"])
		switch {
		case id == "" && secret == "":
		case id == "" || secret == "":
			errs = append(errs, fmt.Errorf("config: the platform secret must hold %s_CLIENT_ID and %s_CLIENT_SECRET together", up, up))
		default:
			clients[p] = OAuthClient{ID: id, Secret: secret}
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	c.OAuthClients = clients
	c.AIKeys = aiKeys
	return c, nil
}

// secretsAPI is what ResolvePlatformSecret calls.
type secretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// ResolvePlatformSecret reads the platform secret (POSSE_PLATFORM_SECRET_ID)
// once, at cold start, and returns c with its client credentials applied.
// Without a secret id it returns c unchanged.
func (c Config) ResolvePlatformSecret(ctx context.Context, sm secretsAPI) (Config, error) {
	if c.PlatformSecretID == "" {
		return c, nil
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &c.PlatformSecretID})
	if err != nil {
		return Config{}, fmt.Errorf("config: read the platform secret %s: %w", c.PlatformSecretID, err)
	}
	if out.SecretString == nil {
		return Config{}, fmt.Errorf("config: the platform secret %s has no SecretString", c.PlatformSecretID)
	}
	return c.WithPlatformSecret(*out.SecretString)
}
