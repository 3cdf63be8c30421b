package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
)

// recentStats reads a site's recent figures per platform
// (shared/stats.Store).
type recentStats interface {
	Recent(ctx context.Context, siteID string, now time.Time) (map[platform.Name]stats.PlatformRecent, error)
}

// blockReader reads the blocks a platform reported for a connection
// (shared/ratelimit.Limiter).
type blockReader interface {
	Blocked(ctx context.Context, siteID, scope string) (time.Time, bool, error)
}

// Bounds of one GET /v1/platforms/health.
const (
	// healthPageSize is the connections read per page.
	healthPageSize = 100
	// maxHealthConnections bounds the connections looked at.
	maxHealthConnections = 1000
	// blockReads bounds the block reads made at once.
	blockReads = 8
)

// addPlatformRoutes registers GET /v1/platforms/health.
func (s *Server) addPlatformRoutes() {
	s.add("GET", "/v1/platforms/health", SiteKey, s.platformsHealth)
}

// PlatformHealth is one platform's health for a site.
type PlatformHealth struct {
	Platform platform.Name `json:"platform"`
	// LastHour and LastDay are the outcomes of the site's deliveries over
	// the last hour and the last day, to the hour (see stats.Window).
	LastHour stats.Window `json:"lastHour"`
	LastDay  stats.Window `json:"lastDay"`
	// LastError is the last failed or retried attempt's error kind and
	// time in the last day, or null.
	LastError *stats.LastError `json:"lastError"`
	// RateLimit says whether the platform asked us to wait for one of the
	// site's connections, and until when.
	RateLimit RateLimitState `json:"rateLimit"`
	// Connections counts the site's connections on the platform by state.
	Connections ConnectionStates `json:"connections"`
}

// RateLimitState is a platform-wide rate limit in force.
type RateLimitState struct {
	Limited bool `json:"limited"`
	// Until is when the last block on the platform ends; null when none
	// is in force.
	Until *time.Time `json:"until"`
}

// ConnectionStates counts connections by status.
type ConnectionStates struct {
	Active   int `json:"active"`
	Expiring int `json:"expiring"`
	Broken   int `json:"broken"`
}

// PlatformsHealth is the answer of GET /v1/platforms/health.
type PlatformsHealth struct {
	GeneratedAt time.Time        `json:"generatedAt"`
	Platforms   []PlatformHealth `json:"platforms"`
}

// platformsHealth answers, for every platform the site has a connection on
// or delivered to in the last day: the last hour's and day's success rate
// and median latency, the last error, a rate limit in force, and the
// connections by state. The figures come from DynamoDB (one Query of the
// statistics, the connection listing, one read per connection for its
// block), not from CloudWatch.
func (s *Server) platformsHealth(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.Connections == nil || s.d.RecentStats == nil || s.d.Blocks == nil {
		return errNotConfigured("platform health")
	}
	ctx := r.Context()
	now := s.d.Now().UTC()
	recent, err := s.d.RecentStats.Recent(ctx, p.SiteID, now)
	if err != nil {
		return err
	}
	conns, err := s.allConnections(ctx, p.SiteID)
	if err != nil {
		return err
	}
	blocks, err := s.blocksOf(ctx, p.SiteID, conns)
	if err != nil {
		return err
	}
	byPlatform := map[platform.Name]*PlatformHealth{}
	entry := func(name platform.Name) *PlatformHealth {
		if h := byPlatform[name]; h != nil {
			return h
		}
		rec, ok := recent[name]
		if !ok {
			rec = stats.Quiet(name, now)
		}
		h := &PlatformHealth{Platform: name, LastHour: rec.LastHour, LastDay: rec.LastDay, LastError: rec.LastError}
		byPlatform[name] = h
		return h
	}
	for name := range recent {
		entry(name)
	}
	for i, c := range conns {
		h := entry(c.Platform)
		switch c.Status {
		case connection.StatusActive:
			h.Connections.Active++
		case connection.StatusExpiring:
			h.Connections.Expiring++
		case connection.StatusBroken:
			h.Connections.Broken++
		}
		if until := blocks[i]; !until.IsZero() && (h.RateLimit.Until == nil || until.After(*h.RateLimit.Until)) {
			h.RateLimit = RateLimitState{Limited: true, Until: &until}
		}
	}
	out := PlatformsHealth{GeneratedAt: now, Platforms: make([]PlatformHealth, 0, len(byPlatform))}
	for _, h := range byPlatform {
		out.Platforms = append(out.Platforms, *h)
	}
	slices.SortFunc(out.Platforms, func(a, b PlatformHealth) int { return strings.Compare(string(a.Platform), string(b.Platform)) })
	return writeJSON(w, http.StatusOK, out)
}

// allConnections lists the site's connections, at most
// maxHealthConnections.
func (s *Server) allConnections(ctx context.Context, siteID string) ([]connection.Connection, error) {
	var all []connection.Connection
	cursor := ""
	for {
		page, next, err := s.d.Connections.List(ctx, siteID, healthPageSize, cursor)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" || len(all) >= maxHealthConnections {
			return all, nil
		}
		cursor = next
	}
}

// blocksOf reads the block in force on each connection (the zero time
// when none), blockReads at a time.
func (s *Server) blocksOf(ctx context.Context, siteID string, conns []connection.Connection) ([]time.Time, error) {
	until := make([]time.Time, len(conns))
	errs := make([]error, len(conns))
	sem := make(chan struct{}, blockReads)
	var wg sync.WaitGroup
	for i, c := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t, blocked, err := s.d.Blocks.Blocked(ctx, siteID, ratelimit.BlockScope(string(c.Platform), c.ID))
			if err != nil {
				errs[i] = fmt.Errorf("read the rate limit of connection %s: %w", c.ID, err)
				return
			}
			if blocked {
				until[i] = t.UTC()
			}
		})
	}
	wg.Wait()
	return until, errors.Join(errs...)
}
