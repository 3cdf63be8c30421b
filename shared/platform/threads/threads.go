// Package threads publishes posts to Threads (Meta) through the container
// model: create a TEXT, IMAGE, VIDEO or CAROUSEL container (Meta pulls the
// media from its public URL), poll its status until FINISHED, record the
// container id in the journal, then threads_publish. An ambiguous publish
// is reconciled by reading the container status: PUBLISHED means the post
// exists, anything else means it does not.
package threads

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

// Journal keys this adapter records before the final write.
const (
	// JournalContainerID is the container passed to threads_publish.
	JournalContainerID = "threads.container_id"
)

// Config configures the adapter. Zero values take the defaults from the
// platform notes.
type Config struct {
	// BaseURL is the Graph host (default https://graph.threads.net;
	// graph.threads.com is equivalent).
	BaseURL string
	// APIVersion is the path version (default v1.0).
	APIVersion string
	// TextLimit is the post limit, counted with emoji as UTF-8 bytes (500).
	TextLimit int
	// MaxLinks is the unique-link limit per post (5).
	MaxLinks int
	// MaxCarousel is the carousel size limit (20).
	MaxCarousel int
	// MaxImageBytes (8 MB) and MaxVideoBytes (1 GB) are Meta's media limits.
	MaxImageBytes int64
	MaxVideoBytes int64
	// PollInterval is the wait between container status polls (default
	// 10 s; Meta suggests polling at most once a minute for up to 5 min
	// for video, while text and images are usually ready at once).
	PollInterval time.Duration
	// PollTimeout bounds the wait for a container (default 5 min).
	PollTimeout time.Duration
	// ReconcileListLimit is how many recent threads Reconcile scans for the
	// published media id (default 25).
	ReconcileListLimit int
	// DefaultRetryAfter is the wait after throttling without a usage
	// header (default 5 min). ⚠️ Threads usage headers are unverified.
	DefaultRetryAfter time.Duration
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = "https://graph.threads.net"
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.APIVersion == "" {
		c.APIVersion = "v1.0"
	}
	if c.TextLimit <= 0 {
		c.TextLimit = 500
	}
	if c.MaxLinks <= 0 {
		c.MaxLinks = 5
	}
	if c.MaxCarousel <= 0 {
		c.MaxCarousel = 20
	}
	if c.MaxImageBytes <= 0 {
		c.MaxImageBytes = 8 << 20
	}
	if c.MaxVideoBytes <= 0 {
		c.MaxVideoBytes = 1 << 30
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 10 * time.Second
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = 5 * time.Minute
	}
	if c.ReconcileListLimit <= 0 {
		c.ReconcileListLimit = 25
	}
	if c.DefaultRetryAfter <= 0 {
		c.DefaultRetryAfter = 5 * time.Minute
	}
	return c
}

// Adapter is the Threads publisher. It is safe for concurrent use.
type Adapter struct {
	cfg   Config
	hc    *http.Client
	clock platform.Clock
}

// New returns an adapter. A nil hc gets a client with sane timeouts; a nil
// clock is the wall clock.
func New(cfg Config, hc *http.Client, clock platform.Clock) *Adapter {
	if hc == nil {
		hc = defaultHTTPClient()
	}
	if clock == nil {
		clock = platform.RealClock{}
	}
	return &Adapter{cfg: cfg.withDefaults(), hc: hc, clock: clock}
}

var (
	_ platform.Publisher  = (*Adapter)(nil)
	_ platform.Identifier = (*Adapter)(nil)
)

var (
	imageTypes = []string{"image/jpeg", "image/png"}
	videoTypes = []string{"video/mp4", "video/quicktime"}
	urlRE      = regexp.MustCompile(`https?://[^\s<>"]+[^\s<>".,;:!?)\]'"]`)
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.Threads }

// Capabilities implements platform.Publisher.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit:      a.cfg.TextLimit,
		CountRule:      platform.CountThreads,
		MaxImages:      a.cfg.MaxCarousel,
		MaxVideos:      a.cfg.MaxCarousel,
		MixedMedia:     true, // a carousel mixes images and videos
		ImageTypes:     imageTypes,
		VideoTypes:     videoTypes,
		MaxImageBytes:  a.cfg.MaxImageBytes,
		MaxVideoBytes:  a.cfg.MaxVideoBytes,
		LinkCard:       true, // link_attachment on text posts
		LinksClickable: true,
		MaxLinks:       a.cfg.MaxLinks,
	}
}

// links returns the unique links Threads counts for p: URLs in the text
// plus the link attachment (sent for text-only posts).
func links(p platform.Post) int {
	set := map[string]bool{}
	for _, u := range urlRE.FindAllString(p.Text, -1) {
		set[u] = true
	}
	if p.Link != "" && len(p.Media) == 0 {
		set[p.Link] = true
	}
	return len(set)
}

// Validate implements platform.Publisher.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	lim := text.Limit{Rule: platform.CountThreads, Max: a.cfg.TextLimit}
	if strings.TrimSpace(p.Text) == "" && len(p.Media) == 0 {
		probs = append(probs, apperr.Problem{Field: "text", Message: "text or media is required"})
	}
	if n := lim.Count(p.Text); n > lim.Max {
		probs = append(probs, apperr.Problem{Field: "text", Message: fmt.Sprintf("%d characters (emoji count as their UTF-8 bytes), over the limit of %d", n, lim.Max)})
	}
	if n := links(p); n > a.cfg.MaxLinks {
		probs = append(probs, apperr.Problem{Field: "text", Message: fmt.Sprintf("%d links, over the limit of %d", n, a.cfg.MaxLinks)})
	}
	if len(p.Media) > a.cfg.MaxCarousel {
		probs = append(probs, apperr.Problem{Field: "media", Message: fmt.Sprintf("%d items, over the carousel limit of %d", len(p.Media), a.cfg.MaxCarousel)})
	}
	for i, m := range p.Media {
		f := fmt.Sprintf("media[%d]", i)
		switch m.Kind {
		case platform.Image:
			if m.MIMEType != "" && !slices.Contains(imageTypes, m.MIMEType) {
				probs = append(probs, apperr.Problem{Field: f + ".mimeType", Message: "images must be JPEG or PNG"})
			}
			if m.Size > a.cfg.MaxImageBytes {
				probs = append(probs, apperr.Problem{Field: f + ".size", Message: fmt.Sprintf("over the image limit of %d bytes", a.cfg.MaxImageBytes)})
			}
		case platform.Video:
			if m.MIMEType != "" && !slices.Contains(videoTypes, m.MIMEType) {
				probs = append(probs, apperr.Problem{Field: f + ".mimeType", Message: "videos must be MP4 or MOV"})
			}
			if m.Size > a.cfg.MaxVideoBytes {
				probs = append(probs, apperr.Problem{Field: f + ".size", Message: fmt.Sprintf("over the video limit of %d bytes", a.cfg.MaxVideoBytes)})
			}
		default:
			probs = append(probs, apperr.Problem{Field: f + ".kind", Message: `must be "image" or "video"`})
		}
		if !strings.HasPrefix(m.URL, "https://") && !strings.HasPrefix(m.URL, "http://") {
			probs = append(probs, apperr.Problem{Field: f + ".url", Message: "must be a public http(s) URL (Threads downloads it)"})
		}
	}
	return probs
}

// api is the versioned Graph URL of path.
func (a *Adapter) api(path string) string {
	return a.cfg.BaseURL + "/" + a.cfg.APIVersion + "/" + strings.TrimLeft(path, "/")
}
