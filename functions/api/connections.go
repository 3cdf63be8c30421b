package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
	"github.com/posse-dev/posse/shared/platform/facebook"
	"github.com/posse-dev/posse/shared/platform/instagram"
	"github.com/posse-dev/posse/shared/platform/linkedin"
	"github.com/posse-dev/posse/shared/platform/mastodon"
	"github.com/posse-dev/posse/shared/platform/threads"
	"github.com/posse-dev/posse/shared/platform/tiktok"
	"github.com/posse-dev/posse/shared/platform/x"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

// buildConnections wires the connection service: a vault that can only seal
// (kms:GenerateDataKey), PKCE verifiers from the OAuth state key
// (kms:GenerateMac), the platforms' OAuth apps (from the environment or
// the platform secret, read here once) and the adapters that identify
// accounts (and, for Bluesky, log in).
func buildConnections(ctx context.Context, cfg posseconfig.Config, awsCfg aws.Config, db *dynamodb.Client, sites *site.Store, log *slog.Logger) (*connection.Service, error) {
	if err := cfg.Require("POSSE_KMS_KEY_ID"); err != nil {
		return nil, err
	}
	cfg, err := cfg.ResolvePlatformSecret(ctx, secretsmanager.NewFromConfig(awsCfg))
	if err != nil {
		return nil, err
	}
	keys := kms.NewFromConfig(awsCfg)
	sealer, err := vault.NewSealer(keys, vault.Config{KeyID: cfg.KMSKeyID, Logger: log})
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 20 * time.Second}
	clients := map[platform.Name]oauth.Client{}
	for name, c := range cfg.OAuthClients {
		clients[platform.Name(name)] = oauth.Client{ID: c.ID, Secret: c.Secret}
	}
	ids, bsky := identifiers(cfg, hc)
	bskyBase := platformBase(cfg, platform.Bluesky)
	cs := connection.ServiceConfig{
		Store:              connection.NewStore(db, cfg.Table),
		Sealer:             sealer,
		Sites:              sites,
		OAuth:              oauth.New(oauth.Config{Clients: clients, BaseURL: cfg.PlatformBaseURL, HTTPClient: hc}),
		StateKeyID:         cfg.OAuthStateKeyID,
		Identifiers:        ids,
		Bluesky:            bsky,
		BlueskyPDS:         bskyBase,
		PublicURL:          cfg.PublicURL,
		AllowHTTPInstances: cfg.Env == "local",
		Logger:             log,
	}
	if cfg.OAuthStateKeyID != "" {
		cs.MAC = keys
	}
	if cs.BlueskyPDS == "" {
		cs.BlueskyPDS = "https://bsky.social"
	}
	return connection.NewService(cs)
}

// identifiers builds every adapter's "who am I" (pointed at the simulator's
// prefixes when POSSE_PLATFORM_BASE_URL is set) and returns the Bluesky
// adapter, which also logs in.
func identifiers(cfg posseconfig.Config, hc *http.Client) (map[platform.Name]platform.Identifier, *bluesky.Adapter) {
	b := func(p platform.Name) string { return platformBase(cfg, p) }
	bsky := bluesky.New(bluesky.Config{BaseURL: b(platform.Bluesky)}, hc, nil)
	return map[platform.Name]platform.Identifier{
		platform.X:         x.New(x.Config{BaseURL: b(platform.X)}, hc, nil),
		platform.LinkedIn:  linkedin.New(linkedin.Config{BaseURL: b(platform.LinkedIn)}, hc, nil),
		platform.Facebook:  facebook.New(facebook.Config{GraphURL: b(platform.Facebook)}, hc, nil),
		platform.Instagram: instagram.New(instagram.Config{GraphURL: b(platform.Instagram)}, hc, nil),
		platform.Threads:   threads.New(threads.Config{BaseURL: b(platform.Threads)}, hc, nil),
		platform.TikTok:    tiktok.New(tiktok.Config{BaseURL: b(platform.TikTok)}, hc, nil),
		platform.Bluesky:   bsky,
		platform.Mastodon:  mastodon.New(mastodon.Config{}, hc, nil),
	}, bsky
}

// platformBase is the simulator's prefix for p when POSSE_PLATFORM_BASE_URL
// is set, else "" (the adapter's default).
func platformBase(cfg posseconfig.Config, p platform.Name) string {
	if cfg.PlatformBaseURL == "" {
		return ""
	}
	return cfg.PlatformBaseURL + "/" + string(p)
}
