// Package registry builds every platform adapter once, from configuration,
// around one shared http.Client for the platforms' configured API hosts:
// the dispatcher publishes through it, the api and refresh functions
// identify accounts with it. URLs a caller chose (media URLs, Mastodon
// instances) go through outbound-policy clients instead.
//
// With a simulator base URL (POSSE_PLATFORM_BASE_URL) every adapter points
// at <base>/<platform>; without one each adapter keeps its real default.
// With a federated base URL (POSSE_FEDERATED_BASE_URL, local only) the
// hosts users name themselves, Mastodon instances, go to
// <federated>/mastodon too.
package registry

import (
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
	"github.com/posse-dev/posse/shared/platform/facebook"
	"github.com/posse-dev/posse/shared/platform/instagram"
	"github.com/posse-dev/posse/shared/platform/linkedin"
	"github.com/posse-dev/posse/shared/platform/mastodon"
	"github.com/posse-dev/posse/shared/platform/threads"
	"github.com/posse-dev/posse/shared/platform/tiktok"
	"github.com/posse-dev/posse/shared/platform/x"
)

// Config is what the adapters are built from.
type Config struct {
	// BaseURL is the simulator's base URL; empty means the platforms' real
	// hosts.
	BaseURL string
	// FederatedBaseURL, when set, routes every Mastodon instance an account
	// names to <FederatedBaseURL>/mastodon (config.FederatedBaseURL; the
	// local stack only). Bluesky needs no such route: accounts log in
	// through the configured entryway (BaseURL) and use the PDS its DID
	// document names.
	FederatedBaseURL string
	// HTTPClient is shared by every adapter. Required: its timeout is the
	// caller's decision (below the refresh lease, below the dispatch
	// function's timeout).
	HTTPClient *http.Client
	// Media downloads media URLs the CMS sent (default
	// platform.MediaClient: public addresses only, see LocalBase).
	Media *http.Client
	// Instances talks to Mastodon instances, which account owners name
	// (default: an outbound client, public addresses only, 20 s, see
	// LocalBase).
	Instances *http.Client
	// Clock is where adapters wait (media processing polls); nil means the
	// wall clock.
	Clock platform.Clock
	// MediaPollInterval, when set, replaces every adapter's wait between
	// media-processing status reads (containers, uploads, publish status).
	// The local stack shortens it: the simulator's processing advances per
	// status read, not with time.
	MediaPollInterval time.Duration
}

// adapter is what every adapter implements.
type adapter interface {
	platform.Publisher
	platform.Identifier
	platform.MetricsReader
}

// Registry holds one adapter per platform. It is safe for concurrent use.
type Registry struct {
	base     string
	adapters map[platform.Name]adapter
	bluesky  *bluesky.Adapter
}

// New builds every adapter. It does no I/O.
func New(cfg Config) *Registry {
	r := &Registry{base: cfg.BaseURL}
	override := ""
	if cfg.FederatedBaseURL != "" {
		override = cfg.FederatedBaseURL + "/" + string(platform.Mastodon)
	}
	hc, clock, poll := cfg.HTTPClient, cfg.Clock, cfg.MediaPollInterval
	media, instanceHC := cfg.Media, cfg.Instances
	local := LocalBase(cfg.BaseURL)
	if media == nil {
		media = platform.MediaClient(local)
	}
	if instanceHC == nil {
		instanceHC = outbound.NewClient(outbound.Options{Timeout: 20 * time.Second, AllowLoopback: local})
	}
	videoBase := ""
	if b := r.Base(platform.Bluesky); b != "" {
		videoBase = b + "/video" // the simulator's video service
	}
	r.bluesky = bluesky.New(bluesky.Config{BaseURL: r.Base(platform.Bluesky), VideoBaseURL: videoBase, VideoPollInterval: poll, Media: media}, hc, clock)
	r.adapters = map[platform.Name]adapter{
		platform.X:         x.New(x.Config{BaseURL: r.Base(platform.X), Media: media}, hc, clock),
		platform.LinkedIn:  linkedin.New(linkedin.Config{BaseURL: r.Base(platform.LinkedIn), MediaPollInterval: poll, Media: media}, hc, clock),
		platform.Facebook:  facebook.New(facebook.Config{GraphURL: r.Base(platform.Facebook)}, hc, clock),
		platform.Instagram: instagram.New(instagram.Config{GraphURL: r.Base(platform.Instagram), PollInterval: poll}, hc, clock),
		platform.Threads:   threads.New(threads.Config{BaseURL: r.Base(platform.Threads), PollInterval: poll}, hc, clock),
		platform.TikTok:    tiktok.New(tiktok.Config{BaseURL: r.Base(platform.TikTok), PollInterval: poll, Media: media}, hc, clock),
		platform.Bluesky:   r.bluesky,
		// Every Mastodon account names its own instance: a caller-chosen
		// host, so the instance client.
		platform.Mastodon: mastodon.New(mastodon.Config{InstanceOverride: override, MediaPollInterval: poll, Media: media}, instanceHC, clock),
	}
	return r
}

// LocalBase reports whether base is a simulator on a loopback address (the
// local stack and tests): only then do the default Media and Instances
// clients allow loopback, where that simulator serves media and Mastodon.
// Every other refused class stays refused; without a base URL (the real
// platforms) loopback is refused too.
func LocalBase(base string) bool {
	u, err := url.Parse(base)
	if err != nil || base == "" {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.Unmap().IsLoopback()
}

// Base is the simulator's prefix for p (<base>/<p>) when a base URL is
// configured, else "" (the adapter's default).
func (r *Registry) Base(p platform.Name) string {
	if r.base == "" {
		return ""
	}
	return r.base + "/" + string(p)
}

// Publisher returns the adapter of p.
func (r *Registry) Publisher(p platform.Name) (platform.Publisher, bool) {
	a, ok := r.adapters[p]
	return a, ok
}

// Publishers returns every adapter by platform.
func (r *Registry) Publishers() map[platform.Name]platform.Publisher {
	m := make(map[platform.Name]platform.Publisher, len(r.adapters))
	for n, a := range r.adapters {
		m[n] = a
	}
	return m
}

// Identifiers returns every adapter's "who am I" by platform.
func (r *Registry) Identifiers() map[platform.Name]platform.Identifier {
	m := make(map[platform.Name]platform.Identifier, len(r.adapters))
	for n, a := range r.adapters {
		m[n] = a
	}
	return m
}

// Bluesky is the Bluesky adapter, which also logs in and refreshes
// sessions.
func (r *Registry) Bluesky() *bluesky.Adapter { return r.bluesky }

// MetricsReader returns the engagement reader of p.
func (r *Registry) MetricsReader(p platform.Name) (platform.MetricsReader, bool) {
	a, ok := r.adapters[p]
	return a, ok
}
