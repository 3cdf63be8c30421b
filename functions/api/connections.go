package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	posseconfig "github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

// buildConnections wires the connection service: a vault that can only seal
// (kms:GenerateDataKey), PKCE verifiers from the OAuth state key
// (kms:GenerateMac), the platforms' OAuth apps (from the environment or
// the platform secret, which build has read) and the adapters that identify
// accounts (and, for Bluesky, log in).
func buildConnections(ctx context.Context, cfg posseconfig.Config, awsCfg aws.Config, db *dynamodb.Client, sites *site.Store, log *slog.Logger) (*connection.Service, error) {
	if err := cfg.Require("POSSE_KMS_KEY_ID"); err != nil {
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
	// Mastodon instances are caller-chosen: the outbound policy, loopback
	// only on the local stack.
	instances := outbound.NewClient(outbound.Options{Timeout: 20 * time.Second, AllowLoopback: cfg.Env == "local"})
	adapters := registry.New(registry.Config{BaseURL: cfg.PlatformBaseURL, FederatedBaseURL: cfg.FederatedBaseURL, MediaPollInterval: cfg.MediaPollInterval, HTTPClient: hc, Instances: instances})
	cs := connection.ServiceConfig{
		Store:              connection.NewStore(db, cfg.Table),
		Sealer:             sealer,
		Sites:              sites,
		OAuth:              oauth.New(oauth.Config{Clients: clients, BaseURL: cfg.PlatformBaseURL, HTTPClient: hc}),
		StateKeyID:         cfg.OAuthStateKeyID,
		Identifiers:        adapters.Identifiers(),
		Bluesky:            adapters.Bluesky(),
		BlueskyPDS:         adapters.Base(platform.Bluesky),
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
