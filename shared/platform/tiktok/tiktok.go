// Package tiktok publishes posts to TikTok with the Content Posting API v2
// (Direct Post): it queries creator_info for the creator's privacy options,
// initialises a video (PULL_FROM_URL, or FILE_UPLOAD with chunked PUTs) or
// a photo post (PULL_FROM_URL), journals the publish_id, and polls the
// status until PUBLISH_COMPLETE. TikTok has no text-only posts and no
// idempotency key; Reconcile asks the status endpoint about the journaled
// publish_id.
package tiktok

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// Journal keys this adapter records.
const (
	// JournalInitSent marks that the init call (the final write for
	// pull-from-URL posts) was about to be sent.
	JournalInitSent = "tiktok.init_sent"
	// JournalPublishID is the publish_id init returned.
	JournalPublishID = "tiktok.publish_id"
)

// Video sources.
const (
	SourcePullFromURL = "PULL_FROM_URL"
	SourceFileUpload  = "FILE_UPLOAD"
)

// PrivacyLevels are the values of options.privacy_level; the creator's
// privacy_level_options say which of them an account may use.
var PrivacyLevels = []string{"PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"}

// boolOptions are the post_info switches a post may set ("true"/"false").
var boolOptions = []string{"disable_comment", "disable_duet", "disable_stitch", "brand_content_toggle", "brand_organic_toggle", "is_aigc", "auto_add_music"}

// Config configures the adapter. Zero values take the defaults from the
// platform notes.
type Config struct {
	// BaseURL is the API host (default https://open.tiktokapis.com).
	BaseURL string
	// WebURL builds public post URLs (default https://www.tiktok.com).
	WebURL string
	// VideoSource is SourcePullFromURL (default; the media host must be a
	// verified domain) or SourceFileUpload (the adapter downloads the video
	// and uploads it in chunks).
	VideoSource string
	// ChunkSize is the FILE_UPLOAD chunk size (default 10 MB; 5–64 MB).
	ChunkSize int64
	// MaxTitle is the video caption limit in UTF-16 units (2,200).
	MaxTitle int
	// MaxPhotoTitle (90) and MaxPhotoDescription (4,000) are the photo
	// post limits in UTF-16 units.
	MaxPhotoTitle       int
	MaxPhotoDescription int
	// MaxPhotos is the photo count limit (35).
	MaxPhotos int
	// MaxVideoBytes is the video size limit (default 4 GB ⚠️ unverified).
	MaxVideoBytes int64
	// MaxImageBytes is the photo size limit (default 20 MB ⚠️ unverified).
	MaxImageBytes int64
	// PollInterval is the wait between status fetches (default 5 s; the
	// endpoint allows 30 per minute).
	PollInterval time.Duration
	// PollTimeout bounds the wait for PUBLISH_COMPLETE and, for public
	// posts, for the post id (default 2 min).
	PollTimeout time.Duration
	// RateLimitRetryAfter is the wait after rate_limit_exceeded, which
	// comes without headers (default 60 s).
	RateLimitRetryAfter time.Duration
	// DailyCapRetryAfter is the wait after spam_risk_too_many_posts, the
	// unpublished per-creator daily cap (default 24 h ⚠️ unverified).
	DailyCapRetryAfter time.Duration
	// ReconcileListCount is how many recent videos Reconcile scans when it
	// has no publish_id (default 20, the API maximum).
	ReconcileListCount int
	// Media downloads media URLs, which the CMS chose (default
	// platform.MediaClient: public addresses only).
	Media *http.Client
}

func (c Config) withDefaults() Config {
	platform.DefaultURL(&c.BaseURL, "https://open.tiktokapis.com")
	platform.DefaultURL(&c.WebURL, "https://www.tiktok.com")
	platform.Default(&c.VideoSource, SourcePullFromURL)
	platform.DefaultPositive(&c.ChunkSize, 10<<20)
	platform.DefaultPositive(&c.MaxTitle, 2200)
	platform.DefaultPositive(&c.MaxPhotoTitle, 90)
	platform.DefaultPositive(&c.MaxPhotoDescription, 4000)
	platform.DefaultPositive(&c.MaxPhotos, 35)
	platform.DefaultPositive(&c.MaxVideoBytes, 4<<30)
	platform.DefaultPositive(&c.MaxImageBytes, 20<<20)
	platform.DefaultPositive(&c.PollInterval, 5*time.Second)
	platform.DefaultPositive(&c.PollTimeout, 2*time.Minute)
	platform.DefaultPositive(&c.RateLimitRetryAfter, time.Minute)
	platform.DefaultPositive(&c.DailyCapRetryAfter, 24*time.Hour)
	if c.ReconcileListCount <= 0 || c.ReconcileListCount > 20 {
		c.ReconcileListCount = 20
	}
	if c.Media == nil {
		c.Media = platform.MediaClient(false)
	}
	return c
}

// Adapter is the TikTok publisher. It is safe for concurrent use.
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
	// PNG photos are reportedly rejected (⚠️ unverified), so only JPEG and WebP.
	imageTypes = []string{"image/jpeg", "image/webp"}
	videoTypes = []string{"video/mp4", "video/quicktime", "video/webm"}
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.TikTok }

// Capabilities implements platform.Publisher. TextLimit is the video
// caption's; photo posts allow a 4,000-unit description (and a 90-unit
// Title), which Validate checks.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit:       a.cfg.MaxTitle,
		CountRule:       platform.CountUTF16,
		MaxImages:       a.cfg.MaxPhotos,
		MaxVideos:       1,
		MixedMedia:      false,
		MediaRequired:   true,
		ImageTypes:      imageTypes,
		VideoTypes:      videoTypes,
		MaxImageBytes:   a.cfg.MaxImageBytes,
		MaxVideoBytes:   a.cfg.MaxVideoBytes,
		LinkCard:        false,
		LinksClickable:  false,
		RequiredOptions: []string{"privacy_level"},
	}
}

// Validate implements platform.Publisher.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch lvl, ok := p.Options["privacy_level"]; {
	case !ok || lvl == "":
		add("options.privacy_level", "is required: one of %s (and one of the creator's options)", strings.Join(PrivacyLevels, ", "))
	case !slices.Contains(PrivacyLevels, lvl):
		add("options.privacy_level", "must be one of %s", strings.Join(PrivacyLevels, ", "))
	}
	for _, k := range boolOptions {
		if v, ok := p.Options[k]; ok && v != "true" && v != "false" {
			add("options."+k, `must be "true" or "false"`)
		}
	}
	image := platform.KindRule{Types: imageTypes, MaxBytes: a.cfg.MaxImageBytes, Noun: "photo", TypeProblem: "photos must be JPEG or WebP"}
	video := platform.KindRule{Types: videoTypes, MaxBytes: a.cfg.MaxVideoBytes, Noun: "video", TypeProblem: "videos must be MP4, MOV or WebM"}
	for i, m := range p.Media {
		f := fmt.Sprintf("media[%d]", i)
		probs = append(probs, platform.KindProblems(f, m, image, video)...)
		if !strings.HasPrefix(m.URL, "https://") && !strings.HasPrefix(m.URL, "http://") {
			add(f+".url", "must be a public http(s) URL")
		}
	}
	images, videos := platform.CountKinds(p.Media)
	switch {
	case len(p.Media) == 0:
		add("media", "TikTok needs a video or 1 to %d photos (no text-only posts)", a.cfg.MaxPhotos)
	case videos > 0 && images > 0:
		add("media", "photos and a video cannot be combined")
	case videos > 1:
		add("media", "%d videos, over the limit of 1", videos)
	case images > a.cfg.MaxPhotos:
		add("media", "%d photos, over the limit of %d", images, a.cfg.MaxPhotos)
	}
	if videos > 0 || len(p.Media) == 0 {
		if n := text.Count(platform.CountUTF16, p.Text); n > a.cfg.MaxTitle {
			add("text", "%d characters (UTF-16), over the caption limit of %d", n, a.cfg.MaxTitle)
		}
	} else {
		if n := text.Count(platform.CountUTF16, p.Text); n > a.cfg.MaxPhotoDescription {
			add("text", "%d characters (UTF-16), over the photo description limit of %d", n, a.cfg.MaxPhotoDescription)
		}
		if n := text.Count(platform.CountUTF16, p.Title); n > a.cfg.MaxPhotoTitle {
			add("title", "%d characters (UTF-16), over the photo title limit of %d", n, a.cfg.MaxPhotoTitle)
		}
	}
	return probs
}

// chunkPlan splits a FILE_UPLOAD of size bytes: a file that fits in one
// chunk (always under 5 MB) goes whole; otherwise chunks of chunk bytes
// (5–64 MB, grown to keep at most 1,000), count = floor(size/chunk), the
// last chunk taking the remainder.
func chunkPlan(size, chunk int64) (int64, int) {
	const minChunk, maxChunk, maxCount = 5 << 20, 64 << 20, 1000
	chunk = max(chunk, minChunk, (size+maxCount-1)/maxCount)
	chunk = min(chunk, maxChunk)
	if size <= chunk {
		return size, 1
	}
	return chunk, int(size / chunk)
}
