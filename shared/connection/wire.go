package connection

import (
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/shared/config"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
)

// RefresherFor builds the Refresher of a function that can open
// credentials (dispatch, sweep, refresh) from its typed configuration: the
// platforms' OAuth apps, the refresh windows, and the adapters (which
// identify accounts and log in to Bluesky), all sharing hc, and the
// function's metrics (nil: none). It does no I/O.
func RefresherFor(cfg config.Config, db *dynamodb.Client, v credentialVault, adapters *registry.Registry, hc *http.Client, m *metrics.Recorder, log *slog.Logger) (*Refresher, error) {
	clients := map[platform.Name]oauth.Client{}
	for name, c := range cfg.OAuthClients {
		clients[platform.Name(name)] = oauth.Client{ID: c.ID, Secret: c.Secret}
	}
	return NewRefresher(RefresherConfig{
		Store:                  NewStore(db, cfg.Table),
		Vault:                  v,
		OAuth:                  oauth.New(oauth.Config{Clients: clients, BaseURL: cfg.PlatformBaseURL, HTTPClient: hc}),
		Bluesky:                adapters.Bluesky(),
		Identifiers:            adapters.Identifiers(),
		RefreshWindow:          cfg.RefreshWindow,
		MetaRefreshWindow:      cfg.MetaRefreshWindow,
		LinkedInExpiringWindow: cfg.LinkedInExpiringWindow,
		Metrics:                m,
		Logger:                 log,
	})
}
