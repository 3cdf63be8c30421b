// Package config is the one place POSSE reads its environment. Each
// function's main calls Load once at cold start; a missing or malformed
// variable stops the cold start with a message naming it.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Version is the build's version, set with -ldflags -X at build time.
var Version = "dev"

// Config is every setting a POSSE function reads. Fields a function does
// not use may be empty; mains call the Require* methods for what they need.
type Config struct {
	Env      string     // POSSE_ENV: local, dev or prod
	LogLevel slog.Level // POSSE_LOG_LEVEL: debug, info, warn, error (default info)

	Table            string // POSSE_TABLE: the DynamoDB table
	DispatchQueueURL string // POSSE_DISPATCH_QUEUE_URL
	DispatchQueueARN string // POSSE_DISPATCH_QUEUE_ARN (schedule targets)
	DispatchDLQURL   string // POSSE_DISPATCH_DLQ_URL
	DispatchDLQARN   string // POSSE_DISPATCH_DLQ_ARN (message move tasks)
	WebhookQueueURL  string // POSSE_WEBHOOK_QUEUE_URL
	WebhookQueueARN  string // POSSE_WEBHOOK_QUEUE_ARN (targets of webhook wake-ups beyond 15 min)
	KMSKeyID         string // POSSE_KMS_KEY_ID: key id, ARN or alias
	ScheduleGroup    string // POSSE_SCHEDULE_GROUP
	SchedulerRoleARN string // POSSE_SCHEDULER_ROLE_ARN
	SchedulerDLQARN  string // POSSE_SCHEDULER_DLQ_ARN

	// AdminKeySHA256 is the lowercase hex SHA-256 of the admin key
	// (POSSE_ADMIN_KEY_SHA256). Only the api function has it.
	AdminKeySHA256 string

	// PlatformBaseURL, when set (POSSE_PLATFORM_BASE_URL), points every
	// platform adapter at one simulator: <base>/x, <base>/linkedin, ...
	PlatformBaseURL string

	// FederatedBaseURL, when set (POSSE_FEDERATED_BASE_URL), routes every
	// federated host a user names to <base>/<platform>: today the Mastodon
	// instance of a connection (<base>/mastodon), whatever instance URL was
	// given. The stored connection keeps that URL; only where the calls go
	// changes. The local stack sets it so that the README's examples
	// (https://mastodon.social) reach its simulator; it is refused unless
	// POSSE_ENV is local, so no deployed function can be pointed away from
	// the instances its users named.
	FederatedBaseURL string

	// MediaPollInterval, when set (POSSE_MEDIA_POLL_INTERVAL), replaces the
	// adapters' waits between media-processing status reads; the local stack
	// shortens it for the simulator. Empty keeps each platform's default.
	MediaPollInterval time.Duration

	// MaxBodyBytes caps request bodies (POSSE_MAX_BODY_BYTES, default 1 MiB).
	MaxBodyBytes int64
	// HealthCacheTTL is how long /v1/health reuses its last check
	// (POSSE_HEALTH_CACHE_TTL, default 10s), so the public endpoint cannot
	// be used to hammer the table.
	HealthCacheTTL time.Duration

	// OAuthClients are the platform apps' credentials by platform name
	// ("x", "linkedin", ...), from POSSE_<PLATFORM>_CLIENT_ID and
	// POSSE_<PLATFORM>_CLIENT_SECRET, or from the Secrets Manager secret
	// named by PlatformSecretID (see WithPlatformSecret). A platform without
	// an entry is not configured: authorizing it answers 422.
	OAuthClients map[string]OAuthClient
	// PlatformSecretID (POSSE_PLATFORM_SECRET_ID) names a Secrets Manager
	// secret holding the OAuth client credentials; main reads it once at
	// cold start and passes it to WithPlatformSecret.
	PlatformSecretID string
	// AIKeys are the LLM providers' API keys found in the platform secret
	// (<PROVIDER>_API_KEY), for LoadAI. Never logged.
	AIKeys Secrets
	// OAuthStateKeyID (POSSE_OAUTH_STATE_KEY_ID) is the HMAC KMS key PKCE
	// verifiers are derived with.
	OAuthStateKeyID string
	// PublicURL (POSSE_PUBLIC_URL) is the API's public base URL, e.g.
	// https://api.example.com: OAuth redirect URIs are <PublicURL>/v1/oauth/
	// <platform>/callback and must be registered with each platform. Empty
	// means "the host the authorize request came to".
	PublicURL string
	// RefreshWindow (POSSE_REFRESH_WINDOW, default 30m) is how long before
	// expiry a refreshable token (X, TikTok, Bluesky, LinkedIn partners) is
	// refreshed.
	RefreshWindow time.Duration
	// MetaRefreshWindow (POSSE_META_REFRESH_WINDOW, default 168h) is how long
	// before expiry an Instagram or Threads long-lived token is extended.
	MetaRefreshWindow time.Duration
	// LinkedInExpiringWindow (POSSE_LINKEDIN_EXPIRING_WINDOW, default 168h)
	// is how long before its 60-day end a LinkedIn token without a refresh
	// token is marked expiring, so the site can ask the member to reconnect.
	LinkedInExpiringWindow time.Duration
}

var (
	envNames = map[string]bool{"local": true, "dev": true, "prod": true}
	hexHash  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	sqsARN   = regexp.MustCompile(`^arn:[a-z-]+:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$`)
)

// Load reads the configuration with getenv (os.Getenv in mains, a map in
// tests) and validates every value that is set, plus the variables every
// function needs (POSSE_ENV, POSSE_TABLE).
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		Env:              strings.TrimSpace(getenv("POSSE_ENV")),
		Table:            getenv("POSSE_TABLE"),
		DispatchQueueURL: getenv("POSSE_DISPATCH_QUEUE_URL"),
		DispatchQueueARN: getenv("POSSE_DISPATCH_QUEUE_ARN"),
		DispatchDLQURL:   getenv("POSSE_DISPATCH_DLQ_URL"),
		DispatchDLQARN:   getenv("POSSE_DISPATCH_DLQ_ARN"),
		WebhookQueueURL:  getenv("POSSE_WEBHOOK_QUEUE_URL"),
		WebhookQueueARN:  getenv("POSSE_WEBHOOK_QUEUE_ARN"),
		KMSKeyID:         getenv("POSSE_KMS_KEY_ID"),
		ScheduleGroup:    getenv("POSSE_SCHEDULE_GROUP"),
		SchedulerRoleARN: getenv("POSSE_SCHEDULER_ROLE_ARN"),
		SchedulerDLQARN:  getenv("POSSE_SCHEDULER_DLQ_ARN"),
		AdminKeySHA256:   strings.ToLower(strings.TrimSpace(getenv("POSSE_ADMIN_KEY_SHA256"))),
		PlatformBaseURL:  strings.TrimRight(getenv("POSSE_PLATFORM_BASE_URL"), "/"),
		FederatedBaseURL: strings.TrimRight(strings.TrimSpace(getenv("POSSE_FEDERATED_BASE_URL")), "/"),
		MaxBodyBytes:     1 << 20,
		HealthCacheTTL:   10 * time.Second,
	}
	var errs []error
	if c.Env == "" {
		errs = append(errs, errors.New("config: POSSE_ENV is required (local, dev or prod)"))
	} else if !envNames[c.Env] {
		errs = append(errs, fmt.Errorf("config: POSSE_ENV must be local, dev or prod, got %q", c.Env))
	}
	if c.Table == "" {
		errs = append(errs, errors.New("config: POSSE_TABLE is required"))
	}
	switch lv := strings.ToLower(getenv("POSSE_LOG_LEVEL")); lv {
	case "", "info":
		c.LogLevel = slog.LevelInfo
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		errs = append(errs, fmt.Errorf("config: POSSE_LOG_LEVEL must be debug, info, warn or error, got %q", lv))
	}
	for name, v := range map[string]string{
		"POSSE_DISPATCH_QUEUE_URL": c.DispatchQueueURL,
		"POSSE_DISPATCH_DLQ_URL":   c.DispatchDLQURL,
		"POSSE_WEBHOOK_QUEUE_URL":  c.WebhookQueueURL,
		"POSSE_PLATFORM_BASE_URL":  c.PlatformBaseURL,
		"POSSE_FEDERATED_BASE_URL": c.FederatedBaseURL,
	} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("config: %s must be an http(s) URL, got %q", name, v))
		}
	}
	if c.FederatedBaseURL != "" && c.Env != "local" {
		errs = append(errs, fmt.Errorf("config: POSSE_FEDERATED_BASE_URL is only allowed when POSSE_ENV is local (it sends every Mastodon instance's calls to one host), got POSSE_ENV %q", c.Env))
	}
	if c.DispatchDLQARN != "" && !sqsARN.MatchString(c.DispatchDLQARN) {
		errs = append(errs, fmt.Errorf("config: POSSE_DISPATCH_DLQ_ARN must be an SQS queue ARN (arn:<partition>:sqs:<region>:<account>:<name>), got %q", c.DispatchDLQARN))
	}
	if c.AdminKeySHA256 != "" && !hexHash.MatchString(c.AdminKeySHA256) {
		errs = append(errs, errors.New("config: POSSE_ADMIN_KEY_SHA256 must be 64 lowercase hex characters (the SHA-256 of the admin key)"))
	}
	if v := getenv("POSSE_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			errs = append(errs, fmt.Errorf("config: POSSE_MAX_BODY_BYTES must be a whole number of bytes >= 1024, got %q", v))
		} else {
			c.MaxBodyBytes = n
		}
	}
	if v := getenv("POSSE_MEDIA_POLL_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("config: POSSE_MEDIA_POLL_INTERVAL must be a positive duration like 500ms, got %q", v))
		} else {
			c.MediaPollInterval = d
		}
	}
	if v := getenv("POSSE_HEALTH_CACHE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("config: POSSE_HEALTH_CACHE_TTL must be a duration like 10s, got %q", v))
		} else {
			c.HealthCacheTTL = d
		}
	}
	errs = append(errs, loadOAuth(getenv, &c)...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// Require returns an error naming each of the given variables that is empty.
// A main calls it for the settings its function cannot run without.
func (c Config) Require(names ...string) error {
	values := map[string]string{
		"POSSE_DISPATCH_QUEUE_URL": c.DispatchQueueURL,
		"POSSE_DISPATCH_QUEUE_ARN": c.DispatchQueueARN,
		"POSSE_DISPATCH_DLQ_URL":   c.DispatchDLQURL,
		"POSSE_DISPATCH_DLQ_ARN":   c.DispatchDLQARN,
		"POSSE_WEBHOOK_QUEUE_URL":  c.WebhookQueueURL,
		"POSSE_WEBHOOK_QUEUE_ARN":  c.WebhookQueueARN,
		"POSSE_KMS_KEY_ID":         c.KMSKeyID,
		"POSSE_SCHEDULE_GROUP":     c.ScheduleGroup,
		"POSSE_SCHEDULER_ROLE_ARN": c.SchedulerRoleARN,
		"POSSE_SCHEDULER_DLQ_ARN":  c.SchedulerDLQARN,
		"POSSE_ADMIN_KEY_SHA256":   c.AdminKeySHA256,
		"POSSE_OAUTH_STATE_KEY_ID": c.OAuthStateKeyID,
	}
	var errs []error
	for _, n := range names {
		v, known := values[n]
		if !known {
			errs = append(errs, fmt.Errorf("config: %s is not a setting Require knows", n))
		} else if v == "" {
			errs = append(errs, fmt.Errorf("config: %s is required", n))
		}
	}
	return errors.Join(errs...)
}
