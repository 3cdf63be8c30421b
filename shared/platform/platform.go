// Package platform defines the one publishing interface the dispatcher uses,
// and the types every platform adapter (shared/platform/<name>) shares.
//
// An adapter validates a post without the network, publishes it through the
// platform's real media flow, classifies every failure into the apperr
// taxonomy, and reconciles an ambiguous attempt where the platform can tell
// what happened.
package platform

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
)

// Name identifies a platform. The values are part of the API and the data
// model; never rename one.
type Name string

// The supported platforms.
const (
	X         Name = "x"
	LinkedIn  Name = "linkedin"
	Facebook  Name = "facebook"
	Instagram Name = "instagram"
	Threads   Name = "threads"
	TikTok    Name = "tiktok"
	Bluesky   Name = "bluesky"
	Mastodon  Name = "mastodon"
)

// All lists every supported platform in a stable order.
var All = []Name{X, LinkedIn, Facebook, Instagram, Threads, TikTok, Bluesky, Mastodon}

// Valid reports whether n is a supported platform.
func (n Name) Valid() bool {
	for _, p := range All {
		if p == n {
			return true
		}
	}
	return false
}

// MediaKind is the kind of an attached media item.
type MediaKind string

// Media kinds.
const (
	Image MediaKind = "image"
	Video MediaKind = "video"
)

// Media is one item attached to a post. URL is public (several platforms
// pull media from it); adapters that upload bytes download it first.
type Media struct {
	URL      string    `json:"url"`
	Kind     MediaKind `json:"kind"`
	AltText  string    `json:"altText,omitempty"`
	MIMEType string    `json:"mimeType,omitempty"` // optional; adapters sniff when empty
	Size     int64     `json:"size,omitempty"`     // bytes, when known before download
}

// Post is what one delivery publishes: text already composed and fitted,
// the canonical link, and media.
type Post struct {
	// DeliveryID is stable across attempts of one delivery. Adapters derive
	// idempotency keys (Mastodon) and record keys (Bluesky) from it.
	DeliveryID string
	Text       string
	Link       string // the post's canonical URL; may also appear in Text
	Title      string // used for link cards and TikTok photo titles
	Media      []Media
	// Options holds platform-specific settings, e.g. "privacy_level" for
	// TikTok or "visibility" for Mastodon.
	Options map[string]string
	// Journal holds the checkpoints recorded by earlier attempts of this
	// delivery (see Journal). Reconcile reads it.
	Journal map[string]string
}

// Account is the connected account a post is published as, with its
// credentials already opened from the vault.
type Account struct {
	ID          string // the platform's account id: X user id, LinkedIn person/org URN, Page id, IG/Threads user id, TikTok open_id, Bluesky DID, Mastodon account id
	Handle      string
	AccessToken string
	// BaseURL overrides the platform's API base for this account: the
	// Mastodon instance, the Bluesky PDS. Empty means the adapter's default.
	BaseURL string
}

// Result is a published post.
type Result struct {
	ID  string `json:"id"`  // the platform's post id (tweet id, URN, media id, at:// URI, status id)
	URL string `json:"url"` // its public URL, when the platform gives one or it can be derived
}

// Journal records checkpoints during an attempt (a container id, a publish
// id) before the final write, so a later attempt can reconcile. Record must
// persist before returning; an adapter that cannot record stops and returns
// a transient error.
type Journal interface {
	Record(ctx context.Context, key, value string) error
}

// batchJournal is a Journal that records several checkpoints in one write:
// the ledger's.
type batchJournal interface {
	RecordAll(ctx context.Context, kv map[string]string) error
}

// RecordAll records the checkpoints in kv: in one write when j can (the
// ledger's journal does: one fenced write, not one per key), else one
// Record per key, in key order.
func RecordAll(ctx context.Context, j Journal, kv map[string]string) error {
	if bj, ok := j.(batchJournal); ok {
		return bj.RecordAll(ctx, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if err := j.Record(ctx, k, kv[k]); err != nil {
			return err
		}
	}
	return nil
}

// NopJournal is a Journal that keeps nothing: for callers with no ledger.
type NopJournal struct{}

// Record implements Journal.
func (NopJournal) Record(context.Context, string, string) error { return nil }

// CountRule names how a platform counts text.
type CountRule string

// Counting rules, implemented by shared/text.
const (
	CountXWeighted CountRule = "x_weighted" // twitter-text v3: weights, every URL = 23, NFC
	CountGraphemes CountRule = "graphemes"  // extended grapheme clusters (Bluesky)
	CountMastodon  CountRule = "mastodon"   // graphemes, URL = 23, remote mention domain free
	CountThreads   CountRule = "threads"    // code points, emoji by their UTF-8 bytes
	CountUTF16     CountRule = "utf16"      // UTF-16 code units (TikTok, Instagram, LinkedIn)
)

// Capabilities declares what a platform accepts. The API validates against
// them before anything is queued.
type Capabilities struct {
	TextLimit       int       `json:"textLimit"`
	CountRule       CountRule `json:"countRule"`
	ByteLimit       int       `json:"byteLimit,omitempty"` // Bluesky's 3,000-byte cap; 0 = none
	MaxImages       int       `json:"maxImages"`
	MaxVideos       int       `json:"maxVideos"`
	MixedMedia      bool      `json:"mixedMedia"` // images and video in one post
	MediaRequired   bool      `json:"mediaRequired"`
	ImageTypes      []string  `json:"imageTypes"` // MIME types
	VideoTypes      []string  `json:"videoTypes"`
	MaxImageBytes   int64     `json:"maxImageBytes"`
	MaxVideoBytes   int64     `json:"maxVideoBytes"`
	LinkCard        bool      `json:"linkCard"`       // the platform renders a card for Link
	LinksClickable  bool      `json:"linksClickable"` // URLs in text become links (false on Instagram)
	MaxLinks        int       `json:"maxLinks,omitempty"`
	RequiredOptions []string  `json:"requiredOptions,omitempty"` // e.g. TikTok "privacy_level"
}

// Publisher is one platform adapter. Implementations are safe for concurrent
// use and share one http.Client.
type Publisher interface {
	// Name is the platform.
	Name() Name
	// Capabilities is what the platform accepts.
	Capabilities() Capabilities
	// Validate checks a post against the capabilities without the network.
	// Each problem names the field ("text", "media[1].kind",
	// "options.privacy_level") and the limit.
	Validate(p Post) []apperr.Problem
	// Publish publishes p as acct. Errors are *apperr.Error with a platform
	// kind: rate_limited (with RetryAfter), transient, permanent, reconnect
	// or ambiguous.
	Publish(ctx context.Context, acct Account, p Post, j Journal) (Result, error)
	// Reconcile asks the platform whether an earlier ambiguous attempt of p
	// was published. found=false with a nil error means the platform says it
	// was not; an *apperr.Error of kind ambiguous means it cannot tell.
	Reconcile(ctx context.Context, acct Account, p Post) (res Result, found bool, err error)
}

// Clock is injected where adapters wait (media processing polls).
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep implements Clock; it returns early with ctx's error.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
