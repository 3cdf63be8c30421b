package connection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
	"github.com/posse-dev/posse/shared/vault"
)

// credentialVault seals and opens: the refresh (and dispatch) function's
// vault.Vault.
type credentialVault interface {
	Seal(ctx context.Context, c vault.Context, plaintext []byte) (vault.Sealed, error)
	Open(ctx context.Context, c vault.Context, s vault.Sealed) ([]byte, error)
}

// blueskyRefresher rotates a Bluesky session (the bluesky adapter).
type blueskyRefresher interface {
	RefreshAt(ctx context.Context, pdsURL, refreshJwt string) (bluesky.Session, error)
}

// Refresher defaults.
const (
	DefaultLeaseDuration = time.Minute
	DefaultPollInterval  = 200 * time.Millisecond
	DefaultConcurrency   = 8
	DefaultMaxPerRun     = 1000
)

// RefresherConfig is what a Refresher is built from.
type RefresherConfig struct {
	Store   *Store
	Vault   credentialVault
	OAuth   *oauth.Registry
	Bluesky blueskyRefresher
	// Identifiers are the adapters' "who am I" for Validate; OAuth
	// platforms without one use the oauth package's lookup.
	Identifiers map[platform.Name]platform.Identifier
	// RefreshWindow: refreshable tokens (X, TikTok, Bluesky, LinkedIn
	// partners) are refreshed when they expire within it.
	RefreshWindow time.Duration
	// MetaRefreshWindow: Instagram and Threads long-lived tokens are
	// extended when they expire within it.
	MetaRefreshWindow time.Duration
	// LinkedInExpiringWindow: a LinkedIn token that cannot be refreshed is
	// marked expiring when it expires within it.
	LinkedInExpiringWindow time.Duration
	// LeaseDuration bounds one refresh (default 1 min). Keep the platform
	// HTTP client's timeout well below it: a refresher that outlives its
	// lease can lose its compare-and-swap after the platform rotated.
	LeaseDuration time.Duration
	// PollInterval is how often a caller waiting on another's refresh
	// re-reads the connection (default 200 ms).
	PollInterval time.Duration
	// Concurrency bounds parallel refreshes in Run (default 8); MaxPerRun
	// bounds how many connections one Run looks at (default 1000).
	Concurrency int
	MaxPerRun   int
	// Metrics counts refresh outcomes (TokenRefreshes); the function
	// flushes it once per invocation. Nil records nothing.
	Metrics *metrics.Recorder
	Logger  *slog.Logger
	Now     func() time.Time
	// Sleep waits d or until ctx ends; a timer when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  io.Reader
}

// Refresher keeps tokens alive: on a schedule (Run) and on demand (Ensure).
// Refreshes are single-flight per connection across every process: a
// conditional lease on the connection item, and a token_version
// compare-and-swap when the new credentials are written — before anyone
// uses them. It is safe for concurrent use.
type Refresher struct {
	cfg    RefresherConfig
	log    *slog.Logger
	events eventPublisher
}

// NewRefresher returns a Refresher. It does no I/O.
func NewRefresher(cfg RefresherConfig) (*Refresher, error) {
	if cfg.Store == nil || cfg.Vault == nil || cfg.OAuth == nil {
		return nil, errors.New("connection: NewRefresher needs Store, Vault and OAuth")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RefreshWindow, 30*time.Minute)
	def(&cfg.MetaRefreshWindow, 7*24*time.Hour)
	def(&cfg.LinkedInExpiringWindow, 7*24*time.Hour)
	def(&cfg.LeaseDuration, DefaultLeaseDuration)
	def(&cfg.PollInterval, DefaultPollInterval)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxPerRun <= 0 {
		cfg.MaxPerRun = DefaultMaxPerRun
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Refresher{cfg: cfg, log: log}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// action is what a connection needs now.
type action int

const (
	actNone     action = iota
	actRefresh         // renew the token
	actExpiring        // mark expiring (cannot renew; ends soon)
	actBroken          // mark broken (expired and cannot renew)
)

// plan decides what rec needs at now.
func (r *Refresher) plan(rec record, creds Credentials, now time.Time) action {
	if rec.Status == StatusBroken || creds.Expiry.IsZero() {
		return actNone
	}
	left := creds.Expiry.Sub(now)
	window := r.cfg.RefreshWindow
	if rec.Platform == platform.Instagram || rec.Platform == platform.Threads {
		window = r.cfg.MetaRefreshWindow
	}
	refreshable := r.refreshable(rec, creds)
	switch {
	case refreshable && left <= window:
		return actRefresh
	case !refreshable && left <= 0:
		return actBroken
	case !refreshable && rec.Platform == platform.LinkedIn && left <= r.cfg.LinkedInExpiringWindow && rec.Status == StatusActive:
		return actExpiring
	}
	return actNone
}

// refreshable reports whether the connection's token can be renewed
// without the user.
func (r *Refresher) refreshable(rec record, creds Credentials) bool {
	if rec.Platform == platform.Bluesky {
		return r.cfg.Bluesky != nil && creds.RefreshToken != "" &&
			(creds.RefreshExpiry.IsZero() || r.cfg.Now().Before(creds.RefreshExpiry))
	}
	if !oauth.IsOAuth(rec.Platform) {
		return false
	}
	prov, err := r.cfg.OAuth.Provider(rec.Platform)
	if err != nil {
		return false
	}
	return prov.CanRefresh(oauthToken(creds))
}

func oauthToken(c Credentials) oauth.Token {
	return oauth.Token{AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, Expiry: c.Expiry,
		RefreshExpiry: c.RefreshExpiry, Scopes: c.Scopes, IssuedAt: c.IssuedAt, UserID: c.UserID}
}

// open decrypts a record's credentials.
func (r *Refresher) open(ctx context.Context, rec record) (Credentials, error) {
	plain, err := r.cfg.Vault.Open(ctx, credentialsContext(rec.SiteID, rec.ID), rec.Sealed)
	if err != nil {
		return Credentials{}, fmt.Errorf("open credentials of %s: %w", rec.ID, err)
	}
	defer clear(plain)
	var c Credentials
	if err := json.Unmarshal(plain, &c); err != nil {
		return Credentials{}, fmt.Errorf("decode credentials of %s: %w", rec.ID, errors.New("not JSON"))
	}
	return c, nil
}

// account is what a publisher needs of a connection.
func account(rec record, c Credentials) platform.Account {
	id := rec.AccountID
	return platform.Account{ID: id, Handle: rec.Handle, AccessToken: c.AccessToken, BaseURL: c.baseURL()}
}

// reconnectError says a connection must be connected again.
func reconnectError(rec record, reason string) error {
	e := apperr.Newf(apperr.KindReconnect, "connection.broken", "the %s connection %s must be connected again", rec.Platform, rec.ID)
	e.Platform = string(rec.Platform)
	e.PlatformCode = reason
	return e
}

// errBusy means another refresher holds the lease, or the record moved on.
var errBusy = errors.New("connection refresh in progress elsewhere")

// Ensure returns the account of a site's connection with a token that is
// fresh enough to use now, refreshing it first when it expires within its
// window — at most once across all callers: the others wait for the winner
// and get its token. The dispatcher calls it before each publish. A broken
// connection is a KindReconnect error.
func (r *Refresher) Ensure(ctx context.Context, siteID, id string) (platform.Account, error) {
	return r.ensure(ctx, siteID, id, "")
}

// Renew is Ensure after the platform refused rejected, an access token it
// returned earlier, before its expiry (revoked, or rotated elsewhere): the
// token is refreshed now when it can be — once across all callers; a caller
// that finds a token other than rejected stored gets that one. When the
// token cannot be refreshed, the connection is marked broken.
func (r *Refresher) Renew(ctx context.Context, siteID, id, rejected string) (platform.Account, error) {
	if rejected == "" {
		return platform.Account{}, errors.New("connection: Renew needs the rejected access token")
	}
	return r.ensure(ctx, siteID, id, rejected)
}

// MarkBroken records that the platform refused a connection's credentials
// for good (the dispatcher's reconnect errors); reason is a short code such
// as the platform's error code.
func (r *Refresher) MarkBroken(ctx context.Context, siteID, id, reason string) error {
	if reason == "" {
		reason = "token_refused"
	}
	c := statusChange{Status: StatusBroken, Reason: reason, Now: r.cfg.Now().UTC()}
	if rec, err := r.cfg.Store.get(ctx, siteID, id); err == nil {
		c.Conn = &rec.Connection // for the event's platform and account
	}
	ev, err := r.cfg.Store.setStatus(ctx, siteID, id, c)
	if errors.Is(err, ErrLeaseLost) {
		return apperr.NotFound("connection")
	}
	if err != nil {
		return err
	}
	r.publish(ctx, ev)
	r.log.InfoContext(ctx, "connection broken", "site", siteID, "connection_id", id, "reason", reason)
	return nil
}

func (r *Refresher) ensure(ctx context.Context, siteID, id, rejected string) (platform.Account, error) {
	return r.ensureFrom(ctx, siteID, id, rejected, nil)
}

// ensureFrom is ensure starting from read, the connection as just read,
// when it is not nil.
func (r *Refresher) ensureFrom(ctx context.Context, siteID, id, rejected string, read *record) (platform.Account, error) {
	deadline := r.cfg.Now().Add(r.cfg.LeaseDuration + 4*r.cfg.PollInterval)
	for {
		var rec record
		if read != nil {
			rec, read = *read, nil
		} else {
			var err error
			if rec, err = r.cfg.Store.get(ctx, siteID, id); err != nil {
				return platform.Account{}, err
			}
		}
		if rec.Status == StatusBroken {
			return platform.Account{}, reconnectError(rec, rec.StatusReason)
		}
		creds, err := r.open(ctx, rec)
		if err != nil {
			return platform.Account{}, err
		}
		now := r.cfg.Now()
		act := r.plan(rec, creds, now)
		if rejected != "" && creds.AccessToken == rejected {
			act = actBroken
			if r.refreshable(rec, creds) {
				act = actRefresh
			}
		}
		switch act {
		case actBroken:
			reason := "token_expired"
			if rejected != "" {
				reason = "token_refused"
			}
			if err := r.markBroken(ctx, rec, "", reason); err != nil && !errors.Is(err, ErrLeaseLost) {
				return platform.Account{}, err
			}
			return platform.Account{}, reconnectError(rec, reason)
		case actRefresh:
			if rec.leaseHeld(now) {
				break // someone is refreshing: wait below
			}
			fresh, err := r.refreshLeased(ctx, rec, creds)
			if errors.Is(err, errBusy) {
				break
			}
			if err != nil {
				return platform.Account{}, err
			}
			return account(fresh.rec, fresh.creds), nil
		default:
			return account(rec, creds), nil
		}
		if !r.cfg.Now().Before(deadline) {
			e := apperr.Newf(apperr.KindTransient, "connection.refresh_busy", "the %s token of %s is being refreshed elsewhere; try again", rec.Platform, rec.ID)
			return platform.Account{}, e
		}
		if err := r.cfg.Sleep(ctx, r.cfg.PollInterval); err != nil {
			return platform.Account{}, fmt.Errorf("wait for the refresh of %s: %w", id, err)
		}
	}
}

// freshRecord is a record with its new credentials.
type freshRecord struct {
	rec   record
	creds Credentials
}

// Outcomes of a refresh under a lease, the TokenRefreshes metric's
// Outcome.
const (
	refreshRefreshed = "refreshed" // renewed and stored
	refreshRefused   = "refused"   // the platform refused: the connection is broken
	refreshFailed    = "failed"    // an error; the next run or publish tries again
	refreshDiscarded = "discarded" // the connection changed meanwhile
)

// refreshLeased refreshes rec under a lease: errBusy when the lease could
// not be taken (another refresher, or rec is no longer current). The new
// credentials are sealed and stored before they are returned; a refresh
// token the platform refuses marks the connection broken. Each refresh
// under a lease counts one TokenRefreshes by its outcome.
func (r *Refresher) refreshLeased(ctx context.Context, rec record, creds Credentials) (freshRecord, error) {
	owner, err := r.newOwner()
	if err != nil {
		return freshRecord{}, err
	}
	now := r.cfg.Now()
	ok, err := r.cfg.Store.acquireLease(ctx, rec.SiteID, rec.ID, owner, rec.TokenVersion, now, now.Add(r.cfg.LeaseDuration))
	if err != nil {
		return freshRecord{}, err
	}
	if !ok {
		return freshRecord{}, errBusy
	}
	fresh, outcome, err := r.refreshHeld(ctx, rec, creds, owner)
	r.cfg.Metrics.Count(metrics.TokenRefreshes, metrics.Dims{metrics.Platform: string(rec.Platform), metrics.Outcome: outcome}, 1)
	return fresh, err
}

// refreshHeld is refreshLeased once the lease is held; it also returns the
// outcome.
func (r *Refresher) refreshHeld(ctx context.Context, rec record, creds Credentials, owner string) (freshRecord, string, error) {
	next, err := r.callPlatform(ctx, rec, creds)
	if err != nil {
		if apperr.Is(err, apperr.KindReconnect) {
			reason := oauth.CodeInvalidGrant
			if e, ok := apperr.As(err); ok && e.Code != "" {
				reason = e.Code
			}
			r.log.WarnContext(ctx, "token refresh refused; connection broken", "site", rec.SiteID, "platform", string(rec.Platform),
				"connection_id", rec.ID, "reason", reason, "err", logErr(err))
			if serr := r.markBroken(ctx, rec, owner, reason); serr != nil && !errors.Is(serr, ErrLeaseLost) {
				return freshRecord{}, refreshRefused, serr
			}
			return freshRecord{}, refreshRefused, reconnectError(rec, reason)
		}
		if rerr := r.cfg.Store.releaseLease(ctx, rec.SiteID, rec.ID, owner); rerr != nil {
			r.log.WarnContext(ctx, "release refresh lease", "connection_id", rec.ID, "err", rerr)
		}
		return freshRecord{}, refreshFailed, fmt.Errorf("refresh the %s token of %s: %w", rec.Platform, rec.ID, err)
	}
	sealed, err := sealCredentials(ctx, r.cfg.Vault, rec.SiteID, rec.ID, next)
	if err != nil {
		// The platform may have rotated the refresh token: it now lives only
		// here. Nothing to do but say so loudly; the lease expires.
		r.log.ErrorContext(ctx, "refreshed token could not be sealed; it is lost", "site", rec.SiteID,
			"platform", string(rec.Platform), "connection_id", rec.ID, "err", logErr(err))
		return freshRecord{}, refreshFailed, err
	}
	status := StatusActive
	if rec.Platform == platform.LinkedIn && next.RefreshToken == "" && !next.Expiry.IsZero() &&
		next.Expiry.Sub(r.cfg.Now()) <= r.cfg.LinkedInExpiringWindow {
		status = StatusExpiring
	}
	stored, err := r.cfg.Store.swapCredentials(ctx, rec.SiteID, rec.ID, owner, rec.TokenVersion, refreshed{
		Sealed: sealed, Expiry: next.Expiry, Scopes: next.Scopes, Status: status, Now: r.cfg.Now().UTC(),
	})
	if errors.Is(err, ErrLeaseLost) {
		r.log.WarnContext(ctx, "refreshed token discarded: the connection changed meanwhile", "site", rec.SiteID,
			"platform", string(rec.Platform), "connection_id", rec.ID)
		return freshRecord{}, refreshDiscarded, errBusy
	}
	if err != nil {
		r.log.ErrorContext(ctx, "refreshed token could not be stored", "site", rec.SiteID,
			"platform", string(rec.Platform), "connection_id", rec.ID, "err", logErr(err))
		return freshRecord{}, refreshFailed, err
	}
	r.log.InfoContext(ctx, "token refreshed", "site", rec.SiteID, "platform", string(rec.Platform),
		"connection_id", rec.ID, "token_version", stored.TokenVersion)
	return freshRecord{rec: stored, creds: next}, refreshRefreshed, nil
}

// callPlatform renews creds with the platform and returns the new
// credentials, never with an empty refresh token where there was one.
func (r *Refresher) callPlatform(ctx context.Context, rec record, creds Credentials) (Credentials, error) {
	next := creds
	if rec.Platform == platform.Bluesky {
		sess, err := r.cfg.Bluesky.RefreshAt(ctx, creds.PDS, creds.RefreshToken)
		if err != nil {
			return Credentials{}, err
		}
		pds := creds.PDS
		if sess.PDS != "" {
			pds = sess.PDS
		}
		fresh := blueskyCredentials(sess, pds, r.cfg.Now().UTC())
		fresh.RefreshToken = keep(fresh.RefreshToken, creds.RefreshToken)
		if fresh.DID == "" {
			fresh.DID = creds.DID
		}
		return fresh, nil
	}
	prov, err := r.cfg.OAuth.Provider(rec.Platform)
	if err != nil {
		return Credentials{}, err
	}
	t, err := prov.Refresh(ctx, oauthToken(creds))
	if err != nil {
		return Credentials{}, err
	}
	next.AccessToken = t.AccessToken
	next.RefreshToken = keep(t.RefreshToken, creds.RefreshToken)
	next.Expiry, next.IssuedAt = t.Expiry, t.IssuedAt
	if !t.RefreshExpiry.IsZero() {
		next.RefreshExpiry = t.RefreshExpiry
	}
	if len(t.Scopes) > 0 {
		next.Scopes = t.Scopes
	}
	return next, nil
}

// keep returns fresh, or old when fresh is empty: a refresh token is never
// overwritten with nothing.
func keep(fresh, old string) string {
	if fresh == "" {
		return old
	}
	return fresh
}

// markBroken marks rec broken on the condition that its token_version has
// not moved (and, with owner, that the lease is still owner's).
func (r *Refresher) markBroken(ctx context.Context, rec record, owner, reason string) error {
	ev, err := r.cfg.Store.setStatus(ctx, rec.SiteID, rec.ID, statusChange{
		Status: StatusBroken, Reason: reason, Version: rec.TokenVersion, Owner: owner, Now: r.cfg.Now().UTC(), Conn: &rec.Connection,
	})
	r.publish(ctx, ev)
	return err
}

// publish hands the event a status change recorded to the webhook queue.
// A failed send is logged: the sweep finds the event still pending.
func (r *Refresher) publish(ctx context.Context, ev *event.Event) {
	if ev == nil || r.events == nil {
		return
	}
	if err := r.events.Publish(ctx, ev.SiteID, ev.ID); err != nil {
		r.log.WarnContext(ctx, "publish connection event", "site", ev.SiteID, "event_id", ev.ID, "event_type", string(ev.Type), "err", err.Error())
	}
}

// eventPublisher puts an event's message on the webhook queue:
// shared/event.Publisher.
type eventPublisher interface {
	Publish(ctx context.Context, siteID, eventID string) error
}

// PublishEvents makes the refresher hand the events of the status changes
// it records (connection.broken, connection.expiring) to the webhook queue.
// Call it once, before use.
func (r *Refresher) PublishEvents(p eventPublisher) { r.events = p }

func (r *Refresher) newOwner() (string, error) {
	b := make([]byte, 12)
	if _, err := io.ReadFull(r.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("generate lease owner: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// RunStats counts what one Run did.
type RunStats struct {
	Due            int `json:"due"`            // connections found expiring within the window
	Refreshed      int `json:"refreshed"`      // tokens renewed and stored
	MarkedExpiring int `json:"markedExpiring"` // LinkedIn tokens marked expiring
	MarkedBroken   int `json:"markedBroken"`   // tokens refused or expired
	NotDue         int `json:"notDue"`         // in the index window, but nothing to do yet
	Busy           int `json:"busy"`           // refreshed, changed or deleted by someone else meanwhile
	Failed         int `json:"failed"`         // errors; retried on the next run
	Validated      int `json:"validated"`      // validation requests processed
	ValidateFailed int `json:"validateFailed"` // validation requests left for the next run
}

// maxWindow is the widest lead time: the index is queried that far ahead.
func (r *Refresher) maxWindow() time.Duration {
	w := r.cfg.RefreshWindow
	for _, d := range []time.Duration{r.cfg.MetaRefreshWindow, r.cfg.LinkedInExpiringWindow} {
		if d > w {
			w = d
		}
	}
	return w
}

// Run is the scheduled pass: it processes pending validations, then every
// connection whose token expires within the widest window, refreshing,
// marking expiring or broken as each needs. Errors of single connections
// are counted and logged, not returned; an error is returned only when the
// index cannot be read.
func (r *Refresher) Run(ctx context.Context) (RunStats, error) {
	var st RunStats
	now := r.cfg.Now()
	pending, err := r.cfg.Store.pendingValidations(ctx, now.Add(time.Minute), r.cfg.MaxPerRun)
	if err != nil {
		return st, err
	}
	var mu sync.Mutex
	r.each(ctx, pending, func(ref ref) {
		_, err := r.Validate(ctx, ref.SiteID, ref.ID)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && !apperr.Is(err, apperr.KindNotFound) {
			st.ValidateFailed++
			r.log.WarnContext(ctx, "validation failed; retried next run", "site", ref.SiteID, "connection_id", ref.ID, "err", logErr(err))
			return
		}
		st.Validated++
	})
	due, err := r.cfg.Store.expiringBefore(ctx, now.Add(r.maxWindow()), r.cfg.MaxPerRun)
	if err != nil {
		return st, err
	}
	st.Due = len(due)
	r.each(ctx, due, func(ref ref) {
		a, err := r.process(ctx, ref)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && apperr.Is(err, apperr.KindReconnect):
			st.MarkedBroken++
		case errors.Is(err, errBusy):
			st.Busy++
		case err != nil && apperr.Is(err, apperr.KindNotFound):
			st.Busy++
		case err != nil:
			st.Failed++
			r.log.WarnContext(ctx, "refresh failed; retried next run", "site", ref.SiteID, "connection_id", ref.ID, "err", logErr(err))
		case a == actRefresh:
			st.Refreshed++
		case a == actExpiring:
			st.MarkedExpiring++
		default:
			st.NotDue++
		}
	})
	return st, nil
}

// each runs f for every ref with bounded concurrency.
func (r *Refresher) each(ctx context.Context, refs []ref, f func(ref)) {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, rf := range refs {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(rf ref) {
			defer wg.Done()
			defer func() { <-sem }()
			f(rf)
		}(rf)
	}
	wg.Wait()
}

// process does what one connection needs and reports which action it took.
func (r *Refresher) process(ctx context.Context, rf ref) (action, error) {
	rec, err := r.cfg.Store.get(ctx, rf.SiteID, rf.ID)
	if err != nil {
		return actNone, err
	}
	if rec.Status == StatusBroken {
		return actNone, nil
	}
	creds, err := r.open(ctx, rec)
	if err != nil {
		return actNone, err
	}
	now := r.cfg.Now()
	switch a := r.plan(rec, creds, now); a {
	case actRefresh:
		if rec.leaseHeld(now) {
			return a, errBusy
		}
		_, err := r.refreshLeased(ctx, rec, creds)
		return a, err
	case actBroken:
		if err := r.markBroken(ctx, rec, "", "token_expired"); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				return a, errBusy
			}
			return a, err
		}
		r.log.InfoContext(ctx, "token expired; connection broken", "site", rec.SiteID, "platform", string(rec.Platform), "connection_id", rec.ID)
		return a, reconnectError(rec, "token_expired")
	case actExpiring:
		ev, err := r.cfg.Store.setStatus(ctx, rec.SiteID, rec.ID, statusChange{
			Status: StatusExpiring, Reason: "reconnect_before_expiry", Version: rec.TokenVersion, Now: now.UTC(), Conn: &rec.Connection,
		})
		r.publish(ctx, ev)
		if errors.Is(err, ErrLeaseLost) {
			return a, errBusy
		}
		if err == nil {
			r.log.InfoContext(ctx, "token expires soon and cannot be refreshed; connection expiring", "site", rec.SiteID,
				"platform", string(rec.Platform), "connection_id", rec.ID)
		}
		return a, err
	default:
		return actNone, nil
	}
}

// Validate checks a connection with the platform's "who am I" (refreshing
// its token first when due) and records the outcome: active (or expiring),
// or broken when the platform refuses the token or names another account.
// A failure that says nothing about the token (the platform is down) is
// returned and the request stays pending.
func (r *Refresher) Validate(ctx context.Context, siteID, id string) (Connection, error) {
	acct, err := r.Ensure(ctx, siteID, id)
	rec, gerr := r.cfg.Store.get(ctx, siteID, id)
	if gerr != nil {
		return Connection{}, gerr
	}
	now := r.cfg.Now().UTC()
	finish := func(status Status, reason string) (Connection, error) {
		c := statusChange{Status: status, Reason: reason, Validated: true, Now: now, Conn: &rec.Connection}
		if status != StatusBroken {
			// Do not undo a refresh or a broken mark made meanwhile: the
			// request stays pending and the next run checks again.
			c.Version, c.From = rec.TokenVersion, rec.Status
		}
		ev, err := r.cfg.Store.setStatus(ctx, siteID, id, c)
		if err != nil {
			return Connection{}, fmt.Errorf("record the validation of %s: %w", id, err)
		}
		r.publish(ctx, ev)
		r.log.InfoContext(ctx, "connection validated", "site", siteID, "platform", string(rec.Platform), "connection_id", id, "status", string(status))
		return r.cfg.Store.Get(ctx, siteID, id)
	}
	if err != nil {
		if apperr.Is(err, apperr.KindReconnect) {
			return finish(StatusBroken, reasonOf(err, "token_refused"))
		}
		return Connection{}, err
	}
	id2, err := r.identify(ctx, rec, acct)
	if err != nil {
		if apperr.Is(err, apperr.KindReconnect) {
			return finish(StatusBroken, reasonOf(err, "token_refused"))
		}
		return Connection{}, fmt.Errorf("validate %s: %w", id, err)
	}
	if id2.ID != rec.AccountID {
		return finish(StatusBroken, "account_mismatch")
	}
	status := StatusActive
	if rec.Status == StatusExpiring {
		status = StatusExpiring
	}
	return finish(status, "")
}

func reasonOf(err error, def string) string {
	if e, ok := apperr.As(err); ok {
		if e.PlatformCode != "" && e.Code == "connection.broken" {
			return e.PlatformCode
		}
		if e.Code != "" {
			return e.Code
		}
	}
	return def
}

// identify asks the platform who acct is.
func (r *Refresher) identify(ctx context.Context, rec record, acct platform.Account) (platform.Identity, error) {
	if idf, ok := r.cfg.Identifiers[rec.Platform]; ok && idf != nil {
		id, err := idf.WhoAmI(ctx, acct)
		if err != nil {
			return platform.Identity{}, fmt.Errorf("%s who am I: %w", rec.Platform, err)
		}
		return id, nil
	}
	if !oauth.IsOAuth(rec.Platform) {
		return platform.Identity{}, fmt.Errorf("validate %s: no identifier configured for %s", rec.ID, rec.Platform)
	}
	prov, err := r.cfg.OAuth.Provider(rec.Platform)
	if err != nil {
		return platform.Identity{}, err
	}
	return whoAmI(ctx, nil, prov, acct, oauth.Token{AccessToken: acct.AccessToken})
}
