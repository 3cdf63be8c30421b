// Package instagram publishes to Instagram professional accounts through the
// Instagram API with Instagram Login (graph.instagram.com). Publishing is
// the container model: create a container that Instagram fills by pulling
// the media from its public URL (one JPEG image, one Reel, or a carousel of
// up to ten children), wait until its status_code is FINISHED, then
// media_publish it.
//
// The container id is journaled as soon as it exists, before media_publish.
// Instagram has no idempotency key, but a container tells whether it was
// published, so Reconcile (and a retried Publish) never publish it twice.
package instagram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/facebook/graph"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// JournalContainer is the journal key holding the id of the container that
// is (or was) being published.
const JournalContainer = "instagram.container"

// Config configures the adapter. Zero fields take the defaults noted; values
// the platform notes mark unverified or conflicting are here so they can
// change without a release.
type Config struct {
	// GraphURL is the API host (default https://graph.instagram.com).
	GraphURL string
	// Version is the pinned Graph API version (default v26.0).
	Version string
	// CaptionLimit is the caption limit in UTF-16 units (default 2,200).
	CaptionLimit int
	// MaxHashtags is the hashtag cap (default 30, the API's documented
	// value; the app shows 5 since Dec 2025, unverified for the API).
	MaxHashtags int
	// MaxMentions is the @-mention cap (default 20).
	MaxMentions int
	// MaxCarousel is how many items a carousel takes (default 10; some
	// report 20, conflicting).
	MaxCarousel int
	// MaxImageBytes is the image size cap (default 8 MiB).
	MaxImageBytes int64
	// MaxVideoBytes is the Reel size cap (default 300 MB; 1 GB is also
	// reported, conflicting).
	MaxVideoBytes int64
	// PollInterval is the wait between container status reads (default 5 s).
	PollInterval time.Duration
	// PollTimeout bounds the wait for a container (default 90 s); past it
	// the attempt ends transient and the next one resumes the journaled
	// container.
	PollTimeout time.Duration
	// SkipLimitCheck skips reading content_publishing_limit before creating
	// containers.
	SkipLimitCheck bool
	// QuotaWait is the wait after the publishing cap is reached (default 1 h).
	QuotaWait time.Duration
	// ThrottleWait is the wait after throttling without an estimate (default 10 min).
	ThrottleWait time.Duration
	// HTTPTimeout bounds each request of the default client (default 60 s).
	HTTPTimeout time.Duration
	// Insights are the insights metrics read for engagement and their
	// common names (default: see defaultInsights; unverified: Meta renames
	// and retires insights metrics between Graph versions).
	Insights []graph.Insight
	// ReadScopes are the permissions reading insights needs (default: see
	// defaultReadScopes; unverified for apps without Advanced Access).
	ReadScopes []string
}

// defaultInsights are the insights metrics read by default.
var defaultInsights = []graph.Insight{{Name: "views", Metric: platform.Views}, {Name: "likes", Metric: platform.Likes}, {Name: "comments", Metric: platform.Replies}, {Name: "shares", Metric: platform.Shares}, {Name: "saved", Metric: platform.Saves}}

// defaultReadScopes are the permissions insights reads need by default.
var defaultReadScopes = []string{"instagram_business_manage_insights"}

func (c Config) withDefaults() Config {
	platform.Default(&c.GraphURL, "https://graph.instagram.com")
	platform.Default(&c.Version, "v26.0")
	platform.Default(&c.CaptionLimit, 2200)
	platform.Default(&c.MaxHashtags, 30)
	platform.Default(&c.MaxMentions, 20)
	platform.Default(&c.MaxCarousel, 10)
	platform.Default(&c.MaxImageBytes, 8<<20)
	platform.Default(&c.MaxVideoBytes, 300<<20)
	platform.Default(&c.PollInterval, 5*time.Second)
	platform.Default(&c.PollTimeout, 90*time.Second)
	platform.Default(&c.QuotaWait, time.Hour)
	platform.Default(&c.ThrottleWait, 10*time.Minute)
	platform.Default(&c.HTTPTimeout, 60*time.Second)
	if len(c.Insights) == 0 {
		c.Insights = defaultInsights
	}
	if len(c.ReadScopes) == 0 {
		c.ReadScopes = defaultReadScopes
	}
	return c
}

// Adapter publishes to Instagram. It implements platform.Publisher and
// platform.Identifier and is safe for concurrent use.
type Adapter struct {
	cfg   Config
	clock platform.Clock
	graph *graph.Client
}

// New returns an adapter. A nil hc gets a client with cfg.HTTPTimeout; a nil
// clock is the wall clock. New does no I/O.
func New(cfg Config, hc *http.Client, clock platform.Clock) *Adapter {
	cfg = cfg.withDefaults()
	if hc == nil {
		hc = &http.Client{Timeout: cfg.HTTPTimeout}
	}
	clock = platform.ClockOrReal(clock)
	return &Adapter{cfg: cfg, clock: clock, graph: &graph.Client{
		Platform: string(platform.Instagram), BaseURL: strings.TrimRight(cfg.GraphURL, "/") + "/" + cfg.Version,
		HC: hc, Clock: clock, ThrottleWait: cfg.ThrottleWait, QuotaWait: cfg.QuotaWait,
	}}
}

// StripCodeSuffix removes the "#_" Instagram appends to the authorization
// code it hands to the redirect URI; the code exchange rejects it otherwise.
func StripCodeSuffix(code string) string { return strings.TrimSuffix(code, "#_") }

var (
	imageTypes     = []string{"image/jpeg"}
	videoTypes     = []string{"video/mp4", "video/quicktime"}
	hashtagPattern = regexp.MustCompile(`(?:^|\s)#[\p{L}\p{N}_]+`)
	mentionPattern = regexp.MustCompile(`(?:^|\s)@[A-Za-z0-9._]+`)
	subcodePattern = regexp.MustCompile(`\b(2207\d{3})\b`)
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.Instagram }

// Capabilities implements platform.Publisher.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit: a.cfg.CaptionLimit, CountRule: platform.CountUTF16,
		MaxImages: a.cfg.MaxCarousel, MaxVideos: a.cfg.MaxCarousel, MixedMedia: true, MediaRequired: true,
		ImageTypes: imageTypes, VideoTypes: videoTypes,
		MaxImageBytes: a.cfg.MaxImageBytes, MaxVideoBytes: a.cfg.MaxVideoBytes,
	}
}

// Validate implements platform.Publisher; it makes no network call.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if n := text.Count(platform.CountUTF16, p.Text); n > a.cfg.CaptionLimit {
		add("text", "is %d characters; Instagram captions take at most %d", n, a.cfg.CaptionLimit)
	}
	if n := len(hashtagPattern.FindAllString(p.Text, -1)); n > a.cfg.MaxHashtags {
		add("text", "has %d hashtags; Instagram takes at most %d", n, a.cfg.MaxHashtags)
	}
	if n := len(mentionPattern.FindAllString(p.Text, -1)); n > a.cfg.MaxMentions {
		add("text", "has %d @-mentions; Instagram takes at most %d", n, a.cfg.MaxMentions)
	}
	switch n := len(p.Media); {
	case n == 0:
		add("media", "Instagram posts need at least one image or video")
	case n > a.cfg.MaxCarousel:
		add("media", "has %d items; a carousel takes at most %d", n, a.cfg.MaxCarousel)
	}
	limits := platform.MediaLimits{ImageTypes: imageTypes, VideoTypes: videoTypes, MaxImageBytes: a.cfg.MaxImageBytes, MaxVideoBytes: a.cfg.MaxVideoBytes}
	probs = append(probs, limits.Problems(p.Media, "Instagram", extTypes)...)
	return probs
}

// Publish implements platform.Publisher. A container journaled by an earlier
// attempt is resumed: if it was published, its post is returned (an empty
// Result when the media cannot be matched by caption) and nothing is
// published again; if it is ready or still processing, it is published; if
// it failed or expired, a new one is made.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	if len(p.Media) == 0 {
		return platform.Result{}, errs.New(apperr.KindPermanent, "instagram.media_required", "Instagram posts need at least one image or video")
	}
	cid := p.Journal[JournalContainer]
	if cid != "" {
		st, err := a.status(ctx, acct, cid)
		switch {
		case err != nil && !apperr.Is(err, apperr.KindPermanent):
			return platform.Result{}, err
		case err == nil && st.Code == "PUBLISHED":
			res, _ := a.findPublished(ctx, acct, p)
			return res, nil
		case err == nil && (st.Code == "FINISHED" || st.Code == "IN_PROGRESS"):
			// resume it
		default:
			cid = "" // unknown, failed or expired: start over
		}
	}
	if cid == "" {
		if !a.cfg.SkipLimitCheck {
			if err := a.checkQuota(ctx, acct); err != nil {
				return platform.Result{}, err
			}
		}
		var err error
		if cid, err = a.createContainer(ctx, acct, p); err != nil {
			return platform.Result{}, err
		}
		if err := j.Record(ctx, JournalContainer, cid); err != nil {
			return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "instagram.journal", "could not record the container checkpoint")
		}
	}
	if err := a.waitFinished(ctx, acct, cid); err != nil {
		return platform.Result{}, err
	}
	var out struct {
		ID string `json:"id"`
	}
	call := graph.Call{Method: http.MethodPost, Path: "/" + url.PathEscape(acct.ID) + "/media_publish",
		Params: url.Values{"creation_id": {cid}}, Token: acct.AccessToken, Final: true}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Result{}, err
	}
	if out.ID == "" {
		return platform.Result{}, a.graph.Unexpected(http.StatusOK, nil, true, errMissingID)
	}
	return platform.Result{ID: out.ID, URL: a.permalink(ctx, acct, out.ID)}, nil
}

var errMissingID = errors.New("the answer has no id")

// createContainer makes the container for p: an image, a Reel, or a
// carousel whose children are created and finished first.
func (a *Adapter) createContainer(ctx context.Context, acct platform.Account, p platform.Post) (string, error) {
	if len(p.Media) == 1 {
		form := mediaForm(p.Media[0], false)
		form.Set("caption", p.Text)
		return a.container(ctx, acct, form)
	}
	children := make([]string, 0, len(p.Media))
	for _, m := range p.Media {
		id, err := a.container(ctx, acct, mediaForm(m, true))
		if err != nil {
			return "", err
		}
		children = append(children, id)
	}
	for _, id := range children {
		if err := a.waitFinished(ctx, acct, id); err != nil {
			return "", err
		}
	}
	return a.container(ctx, acct, url.Values{"media_type": {"CAROUSEL"}, "children": {strings.Join(children, ",")}, "caption": {p.Text}})
}

// mediaForm is the container parameters of one item.
func mediaForm(m platform.Media, item bool) url.Values {
	form := url.Values{}
	if m.Kind == platform.Video {
		form.Set("video_url", m.URL)
		if item {
			form.Set("media_type", "VIDEO") // carousel items still use VIDEO
		} else {
			form.Set("media_type", "REELS")
			form.Set("share_to_feed", "true")
		}
	} else {
		form.Set("image_url", m.URL)
		if m.AltText != "" {
			form.Set("alt_text", m.AltText)
		}
	}
	if item {
		form.Set("is_carousel_item", "true")
	}
	return form
}

// container creates one container.
func (a *Adapter) container(ctx context.Context, acct platform.Account, form url.Values) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	call := graph.Call{Method: http.MethodPost, Path: "/" + url.PathEscape(acct.ID) + "/media", Params: form, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", a.graph.Unexpected(http.StatusOK, nil, false, errMissingID)
	}
	return out.ID, nil
}

// containerStatus is a container's status_code and status text.
type containerStatus struct {
	Code   string `json:"status_code"`
	Status string `json:"status"`
}

func (a *Adapter) status(ctx context.Context, acct platform.Account, id string) (containerStatus, error) {
	var st containerStatus
	call := graph.Call{Method: http.MethodGet, Path: "/" + url.PathEscape(id), Params: url.Values{"fields": {"status_code,status"}}, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &st); err != nil {
		return st, err
	}
	if st.Code == "" {
		return st, a.graph.Unexpected(http.StatusOK, nil, false, errors.New("no status_code"))
	}
	return st, nil
}

// waitFinished polls a container until it is FINISHED, within PollTimeout.
func (a *Adapter) waitFinished(ctx context.Context, acct platform.Account, id string) error {
	deadline := a.clock.Now().Add(a.cfg.PollTimeout)
	for {
		st, err := a.status(ctx, acct, id)
		if err != nil {
			return err
		}
		switch st.Code {
		case "FINISHED":
			return nil
		case "ERROR":
			return a.processingError(st.Status)
		case "EXPIRED":
			return errs.New(apperr.KindTransient, "instagram.container_expired", "the media container expired before it was published")
		case "PUBLISHED":
			return errs.New(apperr.KindPermanent, "instagram.container_published", "the media container was published already")
		case "IN_PROGRESS":
		default:
			return errs.New(apperr.KindPermanent, "instagram.unexpected_response", "unknown container status "+st.Code)
		}
		if !a.clock.Now().Before(deadline) {
			e := errs.New(apperr.KindTransient, "instagram.container_processing", "Instagram is still processing the media")
			e.RetryAfter = a.cfg.PollInterval
			return e
		}
		if err := a.clock.Sleep(ctx, a.cfg.PollInterval); err != nil {
			return errs.Wrap(err, apperr.KindTransient, "instagram.container_processing", "stopped waiting for Instagram to process the media")
		}
	}
}

// processingError classifies a container's ERROR status by the subcode in
// its text: download timeouts and server errors are transient (a new
// container may succeed), anything else is permanent.
func (a *Adapter) processingError(status string) *apperr.Error {
	e := errs.New(apperr.KindPermanent, "instagram.media_failed", "Instagram could not process the media: "+status)
	if m := subcodePattern.FindStringSubmatch(status); m != nil {
		e.PlatformCode = m[1]
		if sub, _ := strconv.Atoi(m[1]); graph.TransientSubcode(sub) {
			e.Kind, e.Retryable = apperr.KindTransient, true
		}
	}
	return e
}

// checkQuota reads content_publishing_limit and stops before any container
// is made when the rolling 24-hour cap is used up.
func (a *Adapter) checkQuota(ctx context.Context, acct platform.Account) error {
	var out struct {
		Data []struct {
			Usage  int `json:"quota_usage"`
			Config struct {
				Total int `json:"quota_total"`
			} `json:"config"`
		} `json:"data"`
	}
	call := graph.Call{Method: http.MethodGet, Path: "/" + url.PathEscape(acct.ID) + "/content_publishing_limit",
		Params: url.Values{"fields": {"quota_usage,config"}}, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return err
	}
	if len(out.Data) > 0 && out.Data[0].Config.Total > 0 && out.Data[0].Usage >= out.Data[0].Config.Total {
		e := errs.New(apperr.KindRateLimited, "instagram.publishing_limit",
			fmt.Sprintf("the account published %d posts in 24 hours, its cap", out.Data[0].Usage))
		e.RetryAfter = a.cfg.QuotaWait
		return e
	}
	return nil
}

// permalink asks for the media's public URL; the post exists already, so a
// failed lookup leaves the URL empty rather than failing.
func (a *Adapter) permalink(ctx context.Context, acct platform.Account, id string) string {
	var out struct {
		Permalink string `json:"permalink"`
	}
	call := graph.Call{Method: http.MethodGet, Path: "/" + url.PathEscape(id), Params: url.Values{"fields": {"permalink"}}, Token: acct.AccessToken}
	if a.graph.Do(ctx, call, &out) != nil {
		return ""
	}
	return out.Permalink
}

// findPublished looks for p among the account's recent media by caption.
// The container was published, so found is true even when the media cannot
// be matched (an empty caption, or it scrolled out): then the result is
// empty.
func (a *Adapter) findPublished(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, error) {
	var out struct {
		Data []struct {
			ID        string `json:"id"`
			Caption   string `json:"caption"`
			Permalink string `json:"permalink"`
		} `json:"data"`
	}
	call := graph.Call{Method: http.MethodGet, Path: "/" + url.PathEscape(acct.ID) + "/media",
		Params: url.Values{"fields": {"id,caption,permalink,timestamp"}, "limit": {"25"}}, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Result{}, err
	}
	if want := strings.TrimSpace(p.Text); want != "" {
		for _, m := range out.Data {
			if strings.TrimSpace(m.Caption) == want {
				return platform.Result{ID: m.ID, URL: m.Permalink}, nil
			}
		}
	}
	return platform.Result{}, nil
}

// Reconcile implements platform.Publisher by reading the journaled
// container's status: PUBLISHED means the post exists; any other status
// means media_publish did not take effect. With no journaled container,
// media_publish was never sent.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	cid := p.Journal[JournalContainer]
	if cid == "" {
		return platform.Result{}, false, nil
	}
	st, err := a.status(ctx, acct, cid)
	if err != nil {
		if apperr.Is(err, apperr.KindPermanent) {
			e := errs.Wrap(err, apperr.KindAmbiguous, "instagram.cannot_reconcile", "the journaled container could not be read")
			return platform.Result{}, false, e
		}
		return platform.Result{}, false, err
	}
	if st.Code != "PUBLISHED" {
		return platform.Result{}, false, nil
	}
	res, err := a.findPublished(ctx, acct, p)
	if err != nil {
		res = platform.Result{} // published for certain; the id lookup is a nicety
	}
	return res, true, nil
}

// WhoAmI implements platform.Identifier: the professional account's user id
// (the id publishing calls take) and username.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	var out struct {
		UserID   json.Number `json:"user_id"`
		Username string      `json:"username"`
	}
	call := graph.Call{Method: http.MethodGet, Path: "/me", Params: url.Values{"fields": {"user_id,username"}}, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Identity{}, err
	}
	if out.UserID == "" {
		return platform.Identity{}, a.graph.Unexpected(http.StatusOK, nil, false, errMissingID)
	}
	return platform.Identity{ID: out.UserID.String(), Handle: out.Username}, nil
}

// errs builds this adapter's own errors (graph builds the API's).
var errs = platformhttp.Errors{Platform: string(platform.Instagram)}

// extTypes are the file extensions Instagram takes beyond the common ones,
// for media whose type is not given (it is unknown until Instagram fetches
// the media).
var extTypes = map[string]string{".heic": "image/heic"}
