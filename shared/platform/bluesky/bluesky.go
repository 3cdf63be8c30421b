// Package bluesky publishes posts to Bluesky (AT Protocol) with an
// app-password session: images through com.atproto.repo.uploadBlob, video
// through the video service (getServiceAuth → uploadVideo → getJobStatus),
// then com.atproto.repo.createRecord of an app.bsky.feed.post whose record
// key is derived from the delivery id, so a repeated attempt cannot create a
// second post and Reconcile can look the post up with getRecord.
//
// Links, mentions and hashtags become facets with UTF-8 byte offsets; a
// post's canonical link becomes an external embed (link card) when the post
// has no media. Login and Refresh manage the session for manual connections.
package bluesky

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// Journal keys this adapter records before the final write.
const (
	// JournalRKey is the record key of the post (derived from the delivery id).
	JournalRKey = "bluesky.rkey"
)

// Collection is the NSID of post records.
const Collection = "app.bsky.feed.post"

// Config configures the adapter. Zero values take the defaults from the
// platform notes.
type Config struct {
	// BaseURL is the PDS or entryway used for Login, Refresh and accounts
	// without Account.BaseURL (default https://bsky.social).
	BaseURL string
	// VideoBaseURL is the video service (default https://video.bsky.app).
	VideoBaseURL string
	// AppViewURL builds public post URLs (default https://bsky.app).
	AppViewURL string
	// MaxGraphemes and MaxBytes are the post text limits (300, 3,000).
	MaxGraphemes int
	MaxBytes     int
	// MaxImageBytes is the per-image limit (default 2,000,000; raised from
	// 1 MB in Apr 2026).
	MaxImageBytes int64
	// MaxVideoBytes is the video limit (default 300,000,000; raised from
	// 100 MB in Aug 2026).
	MaxVideoBytes int64
	// VideoPollInterval is the wait between job status polls (default 2 s).
	VideoPollInterval time.Duration
	// VideoPollTimeout bounds video processing (default 5 min).
	VideoPollTimeout time.Duration
	// DefaultRetryAfter is the wait after a 429 without rate-limit headers
	// (default 1 min).
	DefaultRetryAfter time.Duration
	// Media downloads media URLs, which the CMS chose (default
	// platform.MediaClient: public addresses only).
	Media *http.Client
}

func (c Config) withDefaults() Config {
	platform.DefaultURL(&c.BaseURL, "https://bsky.social")
	platform.DefaultURL(&c.VideoBaseURL, "https://video.bsky.app")
	platform.DefaultURL(&c.AppViewURL, "https://bsky.app")
	platform.DefaultPositive(&c.MaxGraphemes, 300)
	platform.DefaultPositive(&c.MaxBytes, 3000)
	platform.DefaultPositive(&c.MaxImageBytes, 2_000_000)
	platform.DefaultPositive(&c.MaxVideoBytes, 300_000_000)
	platform.DefaultPositive(&c.VideoPollInterval, 2*time.Second)
	platform.DefaultPositive(&c.VideoPollTimeout, 5*time.Minute)
	platform.DefaultPositive(&c.DefaultRetryAfter, time.Minute)
	if c.Media == nil {
		c.Media = platform.MediaClient(false)
	}
	return c
}

// Adapter is the Bluesky publisher. It is safe for concurrent use.
type Adapter struct {
	cfg   Config
	api   *platformhttp.Client
	clock platform.Clock
}

// New returns an adapter. A nil hc gets a client with sane timeouts; a nil
// clock is the wall clock.
func New(cfg Config, hc *http.Client, clock platform.Clock) *Adapter {
	if hc == nil {
		hc = platformhttp.DefaultClient()
	}
	return &Adapter{cfg: cfg.withDefaults(), api: &platformhttp.Client{Errors: errs, HC: hc}, clock: platform.ClockOrReal(clock)}
}

var (
	_ platform.Publisher  = (*Adapter)(nil)
	_ platform.Identifier = (*Adapter)(nil)
)

var (
	imageTypes = []string{"image/jpeg", "image/png", "image/webp", "image/gif"}
	videoTypes = []string{"video/mp4", "video/quicktime", "video/webm", "video/mpeg"}
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.Bluesky }

// Capabilities implements platform.Publisher.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit:      a.cfg.MaxGraphemes,
		CountRule:      platform.CountGraphemes,
		ByteLimit:      a.cfg.MaxBytes,
		MaxImages:      4,
		MaxVideos:      1,
		MixedMedia:     false,
		ImageTypes:     imageTypes,
		VideoTypes:     videoTypes,
		MaxImageBytes:  a.cfg.MaxImageBytes,
		MaxVideoBytes:  a.cfg.MaxVideoBytes,
		LinkCard:       true, // external embed for Link when the post has no media
		LinksClickable: true, // the adapter adds link facets
	}
}

// Validate implements platform.Publisher.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	lim := text.Limit{Rule: platform.CountGraphemes, Max: a.cfg.MaxGraphemes, MaxBytes: a.cfg.MaxBytes}
	if strings.TrimSpace(p.Text) == "" && len(p.Media) == 0 {
		probs = append(probs, apperr.Problem{Field: "text", Message: "text or media is required"})
	}
	if n := lim.Count(p.Text); n > lim.Max {
		probs = append(probs, apperr.Problem{Field: "text", Message: fmt.Sprintf("%d graphemes, over the limit of %d", n, lim.Max)})
	} else if len(p.Text) > lim.MaxBytes {
		probs = append(probs, apperr.Problem{Field: "text", Message: fmt.Sprintf("%d bytes, over the limit of %d", len(p.Text), lim.MaxBytes)})
	}
	if v := p.Options["langs"]; v != "" && len(strings.Split(v, ",")) > 3 {
		probs = append(probs, apperr.Problem{Field: "options.langs", Message: "at most 3 languages"})
	}
	image := platform.KindRule{Types: imageTypes, MaxBytes: a.cfg.MaxImageBytes, Noun: "image"}
	video := platform.KindRule{Types: videoTypes, MaxBytes: a.cfg.MaxVideoBytes, Noun: "video"}
	for i, m := range p.Media {
		f := fmt.Sprintf("media[%d]", i)
		probs = append(probs, platform.KindProblems(f, m, image, video)...)
		if m.URL == "" {
			probs = append(probs, apperr.Problem{Field: f + ".url", Message: "is required"})
		}
	}
	images, videos := platform.CountKinds(p.Media)
	switch {
	case images > 4:
		probs = append(probs, apperr.Problem{Field: "media", Message: fmt.Sprintf("%d images, over the limit of 4", images)})
	case videos > 1:
		probs = append(probs, apperr.Problem{Field: "media", Message: fmt.Sprintf("%d videos, over the limit of 1", videos)})
	case videos > 0 && images > 0:
		probs = append(probs, apperr.Problem{Field: "media", Message: "images and a video cannot be combined"})
	}
	return probs
}

const tidAlphabet = "234567abcdefghijklmnopqrstuvwxyz"

// rkeyEpoch and rkeySpan place derived record keys' timestamps between
// 2020-01-01 and mid-2024: in the past, so they never sort ahead of keys
// the user's own clients create.
var (
	rkeyEpoch = uint64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	rkeySpan  = uint64(1) << 47
)

// RecordKey derives the post's record key from a delivery id: a valid TID
// (13 base32-sortable characters, top bit zero) whose timestamp and clock
// id come from a SHA-256 of the delivery id. The same delivery always gets
// the same key, so a repeated createRecord cannot make a second post.
func RecordKey(deliveryID string) string {
	sum := sha256.Sum256([]byte("posse/bluesky/rkey\x00" + deliveryID))
	h := binary.BigEndian.Uint64(sum[:8])
	micros := rkeyEpoch + (h>>10)%rkeySpan
	return encodeTID(micros<<10 | h&1023)
}

// freshTID returns a TID for now with a random clock id.
func freshTID(now time.Time) string {
	var r [2]byte
	_, _ = rand.Read(r[:])
	return encodeTID(uint64(now.UnixMicro())<<10 | uint64(binary.BigEndian.Uint16(r[:]))&1023)
}

// encodeTID writes v (top bit cleared) as 13 base32-sortable characters.
func encodeTID(v uint64) string {
	v &^= 1 << 63
	b := make([]byte, 13)
	for i := 12; i >= 0; i-- {
		b[i] = tidAlphabet[v&31]
		v >>= 5
	}
	return string(b)
}

// base is the PDS URL for acct.
func (a *Adapter) base(acct platform.Account) string {
	if b := strings.TrimRight(acct.BaseURL, "/"); b != "" {
		return b
	}
	return a.cfg.BaseURL
}

// postURL is the public URL of a post.
func (a *Adapter) postURL(acct platform.Account, rkey string) string {
	who := acct.Handle
	if who == "" {
		who = acct.ID
	}
	return a.cfg.AppViewURL + "/profile/" + who + "/post/" + rkey
}
