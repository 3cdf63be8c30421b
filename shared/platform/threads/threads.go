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
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/facebook/graph"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
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
	// Insights are the media insights metrics read for engagement (default
	// views, likes, replies, reposts, quotes, shares; "views" is marked "in
	// development" by Meta).
	Insights []graph.Insight
	// ReadScopes are the permissions media insights need (default
	// threads_basic and threads_manage_insights).
	ReadScopes []string
}

func (c Config) withDefaults() Config {
	platform.DefaultURL(&c.BaseURL, "https://graph.threads.net")
	platform.Default(&c.APIVersion, "v1.0")
	platform.DefaultPositive(&c.TextLimit, 500)
	platform.DefaultPositive(&c.MaxLinks, 5)
	platform.DefaultPositive(&c.MaxCarousel, 20)
	platform.DefaultPositive(&c.MaxImageBytes, 8<<20)
	platform.DefaultPositive(&c.MaxVideoBytes, 1<<30)
	platform.DefaultPositive(&c.PollInterval, 10*time.Second)
	platform.DefaultPositive(&c.PollTimeout, 5*time.Minute)
	platform.DefaultPositive(&c.ReconcileListLimit, 25)
	platform.DefaultPositive(&c.DefaultRetryAfter, 5*time.Minute)
	if len(c.Insights) == 0 {
		c.Insights = []graph.Insight{{Name: "views", Metric: platform.Views}, {Name: "likes", Metric: platform.Likes},
			{Name: "replies", Metric: platform.Replies}, {Name: "reposts", Metric: platform.Reposts},
			{Name: "quotes", Metric: platform.Quotes}, {Name: "shares", Metric: platform.Shares}}
	}
	if len(c.ReadScopes) == 0 {
		c.ReadScopes = []string{"threads_basic", "threads_manage_insights"}
	}
	return c
}

// Adapter is the Threads publisher. It is safe for concurrent use.
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
	image := platform.KindRule{Types: imageTypes, MaxBytes: a.cfg.MaxImageBytes, Noun: "image", TypeProblem: "images must be JPEG or PNG"}
	video := platform.KindRule{Types: videoTypes, MaxBytes: a.cfg.MaxVideoBytes, Noun: "video", TypeProblem: "videos must be MP4 or MOV"}
	for i, m := range p.Media {
		f := fmt.Sprintf("media[%d]", i)
		probs = append(probs, platform.KindProblems(f, m, image, video)...)
		if !strings.HasPrefix(m.URL, "https://") && !strings.HasPrefix(m.URL, "http://") {
			probs = append(probs, apperr.Problem{Field: f + ".url", Message: "must be a public http(s) URL (Threads downloads it)"})
		}
	}
	return probs
}

// endpoint is the versioned Graph URL of path.
func (a *Adapter) endpoint(path string) string {
	return a.cfg.BaseURL + "/" + a.cfg.APIVersion + "/" + strings.TrimLeft(path, "/")
}
