package engagement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// readers gives each platform's engagement reader.
type readers interface {
	MetricsReader(p platform.Name) (platform.MetricsReader, bool)
}

// accounts opens a connection's credentials (through the refresher and
// its vault cache).
type accounts interface {
	Ensure(ctx context.Context, siteID, id string) (platform.Account, error)
}

// connections reads a connection's status and granted scopes.
type connections interface {
	Get(ctx context.Context, siteID, id string) (connection.Connection, error)
}

// limiter is the publishing limiter (shared/ratelimit): its blocks and its
// fixed-window counters.
type limiter interface {
	Blocked(ctx context.Context, siteID, scope string) (time.Time, bool, error)
	Block(ctx context.Context, siteID, scope string, until time.Time) error
	Take(ctx context.Context, siteID, scope string, limit int, window time.Duration) (bool, time.Time, error)
}

// work lists the due deliveries (the ledger's GSI2 work index).
type work interface {
	Due(ctx context.Context, queue string, before time.Time, limit int) ([]ledger.Ref, error)
}

// store is what the collector writes with (*Store).
type store interface {
	Load(ctx context.Context, refs []ledger.Ref) ([]Due, error)
	Apply(ctx context.Context, d Due, o Outcome) error
}

// Config configures a Collector.
type Config struct {
	Work        work
	Store       store
	Readers     readers
	Accounts    accounts
	Connections connections
	Limiter     limiter
	// ReadAfter are the ages of a sent delivery at which it is read
	// (config.Metrics.ReadAfter).
	ReadAfter []time.Duration
	// ReadsPerHour caps read calls per connection and platform an hour,
	// counted apart from publishing; 0 turns reading off.
	ReadsPerHour int
	// Limit caps the deliveries one run takes (default 500).
	Limit int
	// Reserve is the time left unused before the context's deadline
	// (default 10 s).
	Reserve time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Collector takes the due readings. Build it with New.
type Collector struct{ cfg Config }

// New returns a collector; it does no I/O.
func New(cfg Config) (*Collector, error) {
	if cfg.Work == nil || cfg.Store == nil || cfg.Readers == nil || cfg.Accounts == nil || cfg.Connections == nil || cfg.Limiter == nil {
		return nil, errors.New("engagement: Work, Store, Readers, Accounts, Connections and Limiter are required")
	}
	if len(cfg.ReadAfter) == 0 {
		return nil, errors.New("engagement: ReadAfter is required")
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 500
	}
	if cfg.Reserve <= 0 {
		cfg.Reserve = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{cfg: cfg}, nil
}

// Stats count what one run did.
type Stats struct {
	Due      int `json:"due"`
	Read     int `json:"read"`     // readings written
	Deleted  int `json:"deleted"`  // posts the platform says are gone
	Deferred int `json:"deferred"` // moved past a block, a budget or a rate limit
	Stopped  int `json:"stopped"`  // broken connection or missing read permission
	Skipped  int `json:"skipped"`  // unreadable answers (counted as taken, no reading)
	Failed   int `json:"failed"`   // left due for the next run
	Calls    int `json:"calls"`    // read calls made to platforms
}

// ReadScope is the limiter scope of reads of a connection on a platform:
// counted and blocked apart from publishing's, so a read never uses a
// publish's slot and a rate limit met by a read never delays a publish.
func ReadScope(p platform.Name, connectionID string) string {
	return "metrics:" + string(p) + ":" + connectionID
}

// publishScope is the scope of the blocks the dispatcher records (a
// platform's 429 with its reset): reads wait for them too.
func publishScope(p platform.Name, connectionID string) string {
	return string(p) + ":" + connectionID
}

type groupKey struct {
	site, conn string
	platform   platform.Name
}

// Run takes the readings due now. An error means the due list could not be
// read; per-delivery failures are counted and logged.
func (c *Collector) Run(ctx context.Context) (Stats, error) {
	var st Stats
	if c.cfg.ReadsPerHour == 0 {
		return st, nil
	}
	now := c.cfg.Now().UTC()
	refs, err := c.cfg.Work.Due(ctx, ledger.QueueMetricsFirst, now.Add(-c.cfg.ReadAfter[0]), c.cfg.Limit)
	if err != nil {
		return st, fmt.Errorf("engagement run: %w", err)
	}
	more, err := c.cfg.Work.Due(ctx, ledger.QueueMetrics, now, c.cfg.Limit-len(refs))
	if err != nil {
		return st, fmt.Errorf("engagement run: %w", err)
	}
	refs = append(refs, more...)
	if len(refs) == 0 {
		return st, nil
	}
	dues, err := c.cfg.Store.Load(ctx, refs)
	if err != nil {
		return st, fmt.Errorf("engagement run: %w", err)
	}
	groups := map[groupKey][]Due{}
	var keys []groupKey
	for _, d := range dues {
		if pk, _ := ledger.MetricsKey(d.Delivery); pk == "" || d.PlatformPostID == "" {
			continue // the index lags the table; nothing to read
		}
		k := groupKey{d.SiteID, d.ConnectionID, d.Platform}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], d)
		st.Due++
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].site+keys[i].conn+string(keys[i].platform) < keys[j].site+keys[j].conn+string(keys[j].platform)
	})
	for _, k := range keys {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < c.cfg.Reserve {
			st.Failed += len(groups[k])
			continue
		}
		c.group(ctx, k, groups[k], &st)
	}
	return st, nil
}

// group reads one connection's due deliveries on one platform.
func (c *Collector) group(ctx context.Context, k groupKey, dues []Due, st *Stats) {
	log := c.cfg.Logger.With("site", k.site, "connection_id", k.conn, "platform", string(k.platform))
	now := c.cfg.Now().UTC()
	reader, ok := c.cfg.Readers.MetricsReader(k.platform)
	if !ok {
		c.stop(ctx, dues, "no engagement reader for "+string(k.platform), st, log)
		return
	}
	conn, err := c.cfg.Connections.Get(ctx, k.site, k.conn)
	switch {
	case apperr.Is(err, apperr.KindNotFound):
		c.stop(ctx, dues, "the connection no longer exists", st, log)
		return
	case err != nil:
		log.WarnContext(ctx, "engagement: read connection", "err", err)
		st.Failed += len(dues)
		return
	case conn.Status == connection.StatusBroken:
		c.stop(ctx, dues, "the connection is broken; reconnect it", st, log)
		return
	}
	if missing := missingScopes(conn.Scopes, reader.MetricsScopes()); len(conn.Scopes) > 0 && len(missing) > 0 {
		c.stop(ctx, dues, fmt.Sprintf("the connection lacks the read permission %v; reconnect with it", missing), st, log)
		return
	}
	for _, scope := range []string{publishScope(k.platform, k.conn), ReadScope(k.platform, k.conn)} {
		until, blocked, err := c.cfg.Limiter.Blocked(ctx, k.site, scope)
		if err != nil {
			log.WarnContext(ctx, "engagement: read block", "err", err)
			st.Failed += len(dues)
			return
		}
		if blocked {
			c.deferAll(ctx, dues, until, st, log)
			return
		}
	}
	acct, err := c.cfg.Accounts.Ensure(ctx, k.site, k.conn)
	switch {
	case apperr.Is(err, apperr.KindReconnect) || apperr.Is(err, apperr.KindNotFound):
		c.stop(ctx, dues, "the connection's token is dead; reconnect it", st, log)
		return
	case err != nil:
		log.WarnContext(ctx, "engagement: open credentials", "err", err)
		st.Failed += len(dues)
		return
	}
	byPost := map[string][]Due{}
	var ids []string
	for _, d := range dues {
		if _, ok := byPost[d.PlatformPostID]; !ok {
			ids = append(ids, d.PlatformPostID)
		}
		byPost[d.PlatformPostID] = append(byPost[d.PlatformPostID], d)
	}
	batches := platform.Batches(ids, reader.MetricsBatch())
	for i, batch := range batches {
		rest := func() []Due {
			var out []Due
			for _, b := range batches[i:] {
				for _, id := range b {
					out = append(out, byPost[id]...)
				}
			}
			return out
		}
		ok, end, err := c.cfg.Limiter.Take(ctx, k.site, ReadScope(k.platform, k.conn), c.cfg.ReadsPerHour, time.Hour)
		if err != nil {
			log.WarnContext(ctx, "engagement: take read budget", "err", err)
			st.Failed += len(rest())
			return
		}
		if !ok {
			c.deferAll(ctx, rest(), end, st, log)
			return
		}
		st.Calls++
		readings, err := reader.ReadMetrics(ctx, acct, batch)
		for _, id := range batch {
			r, got := readings[id]
			if !got {
				continue
			}
			for _, d := range byPost[id] {
				c.record(ctx, d, r, now, st, log)
			}
			delete(byPost, id)
		}
		if err == nil {
			// Posts the platform withheld without saying they are gone:
			// taken, without a reading.
			for _, id := range batch {
				for _, d := range byPost[id] {
					c.apply(ctx, d, Outcome{Advance: true, Next: c.next(d, d.MetricsReads+1, now)}, st, log)
					st.Skipped++
				}
			}
			continue
		}
		e, _ := apperr.As(err)
		left := rest()
		var unread []Due
		for _, d := range left {
			if _, still := byPost[d.PlatformPostID]; still {
				unread = append(unread, d)
			}
		}
		switch {
		case apperr.Is(err, apperr.KindRateLimited):
			wait := e.RetryAfter
			if wait <= 0 {
				wait = 15 * time.Minute
			}
			if berr := c.cfg.Limiter.Block(ctx, k.site, ReadScope(k.platform, k.conn), now.Add(wait)); berr != nil {
				log.WarnContext(ctx, "engagement: record read block", "err", berr)
			}
			c.deferAll(ctx, unread, now.Add(wait), st, log)
		case apperr.Is(err, apperr.KindForbidden):
			c.stop(ctx, unread, e.Message, st, log)
		case e != nil && e.Kind == apperr.KindPermanent:
			// An answer the adapter cannot read: logged with the redacted
			// body, taken without a reading (no zeroes are stored).
			log.WarnContext(ctx, "engagement: unreadable answer", "code", e.Code, "http_status", e.HTTPStatus, "body", e.Redacted)
			for _, d := range unread {
				c.apply(ctx, d, Outcome{Advance: true, Next: c.next(d, d.MetricsReads+1, now)}, st, log)
				st.Skipped++
			}
		default:
			log.WarnContext(ctx, "engagement: read failed", "err", err)
			st.Failed += len(unread)
		}
		return
	}
}

// record writes one reading, or the end of readings for a deleted post.
func (c *Collector) record(ctx context.Context, d Due, r platform.Reading, now time.Time, st *Stats, log *slog.Logger) {
	if r.Gone {
		if c.apply(ctx, d, Outcome{Status: ledger.MetricsDeleted, Reason: "the platform says the post was deleted"}, st, log) {
			st.Deleted++
		}
		return
	}
	figs := make(map[string]int64, len(r.Figures))
	for m, v := range r.Figures {
		figs[string(m)] = v
	}
	reading := &Reading{SiteID: d.SiteID, DeliveryID: d.ID, PostID: d.PostID, Revision: d.Revision, Platform: d.Platform,
		Variant: d.Variant, ReadAt: r.ReadAt.UTC(), Figures: figs, Raw: r.Raw}
	if reading.ReadAt.IsZero() {
		reading.ReadAt = now
	}
	if c.apply(ctx, d, Outcome{Reading: reading, Advance: true, Next: c.next(d, d.MetricsReads+1, now)}, st, log) {
		st.Read++
	}
}

// next is when reading n+1 (0-based: after n readings) is due: the sent
// time plus its interval, or zero after the last.
func (c *Collector) next(d Due, n int, now time.Time) time.Time {
	if n >= len(c.cfg.ReadAfter) || d.SentAt == nil {
		return time.Time{}
	}
	t := d.SentAt.Add(c.cfg.ReadAfter[n])
	if t.Before(now) {
		t = now
	}
	return t
}

func (c *Collector) apply(ctx context.Context, d Due, o Outcome, st *Stats, log *slog.Logger) bool {
	err := c.cfg.Store.Apply(ctx, d, o)
	if errors.Is(err, errDone) {
		return false
	}
	if err != nil {
		log.WarnContext(ctx, "engagement: write", "delivery_id", d.ID, "err", err)
		st.Failed++
		return false
	}
	return true
}

func (c *Collector) deferAll(ctx context.Context, dues []Due, until time.Time, st *Stats, log *slog.Logger) {
	for _, d := range dues {
		if c.apply(ctx, d, Outcome{Next: until}, st, log) {
			st.Deferred++
		}
	}
}

func (c *Collector) stop(ctx context.Context, dues []Due, reason string, st *Stats, log *slog.Logger) {
	log.InfoContext(ctx, "engagement: readings stopped", "reason", reason, "deliveries", len(dues))
	for _, d := range dues {
		if c.apply(ctx, d, Outcome{Status: ledger.MetricsStopped, Reason: reason}, st, log) {
			st.Stopped++
		}
	}
}

// missingScopes are the wanted scopes granted lacks.
func missingScopes(granted, wanted []string) []string {
	var out []string
	for _, w := range wanted {
		if !slices.Contains(granted, w) {
			out = append(out, w)
		}
	}
	return out
}
