// Package facebook publishes to Facebook Pages through the Graph API: text
// and link posts (/{page-id}/feed), one photo pulled from its URL
// (/{page-id}/photos), several photos uploaded unpublished and attached to
// one feed post (attached_media), and one video pulled from its URL
// (/{page-id}/videos).
//
// The account's token is a Page token (from /me/accounts). Facebook has no
// idempotency key; the adapter journals when it sends the publishing call,
// and Reconcile looks for the post among the Page's posts since then.
package facebook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/facebook/graph"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// JournalSentAt is the journal key holding when the publishing call was sent
// (RFC 3339, UTC).
const JournalSentAt = "facebook.sent_at"

// Config configures the adapter. Zero fields take the defaults noted; values
// marked unverified in the platform notes are here so they can change
// without a release.
type Config struct {
	// GraphURL is the Graph API host (default https://graph.facebook.com).
	GraphURL string
	// Version is the pinned Graph API version (default v26.0).
	Version string
	// TextLimit is the message limit in UTF-16 units (default 63,206; unverified).
	TextLimit int
	// MaxImages is how many photos one post may carry (default 10; unverified).
	MaxImages int
	// MaxImageBytes is the photo size cap (default 4 MB; unverified).
	MaxImageBytes int64
	// MaxVideoBytes is the video size cap (default 1 GiB; unverified).
	MaxVideoBytes int64
	// ThrottleWait is the wait after throttling without an estimate (default 10 min).
	ThrottleWait time.Duration
	// ReconcileSlack widens Reconcile's search before the journaled send
	// time, for clock skew (default 5 min).
	ReconcileSlack time.Duration
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
var defaultInsights = []graph.Insight{{Name: "post_impressions", Metric: platform.Views}, {Name: "post_clicks", Metric: platform.Clicks}, {Name: "post_reactions_like_total", Metric: platform.Likes}}

// defaultReadScopes are the permissions insights reads need by default.
var defaultReadScopes = []string{"pages_read_engagement", "read_insights"}

func (c Config) withDefaults() Config {
	platform.Default(&c.GraphURL, "https://graph.facebook.com")
	platform.Default(&c.Version, "v26.0")
	platform.Default(&c.TextLimit, 63206)
	platform.Default(&c.MaxImages, 10)
	platform.Default(&c.MaxImageBytes, 4<<20)
	platform.Default(&c.MaxVideoBytes, 1<<30)
	platform.Default(&c.ThrottleWait, 10*time.Minute)
	platform.Default(&c.ReconcileSlack, 5*time.Minute)
	platform.Default(&c.HTTPTimeout, 60*time.Second)
	if len(c.Insights) == 0 {
		c.Insights = defaultInsights
	}
	if len(c.ReadScopes) == 0 {
		c.ReadScopes = defaultReadScopes
	}
	return c
}

// Adapter publishes to Facebook Pages. It implements platform.Publisher and
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
		Platform: string(platform.Facebook), BaseURL: strings.TrimRight(cfg.GraphURL, "/") + "/" + cfg.Version,
		HC: hc, Clock: clock, ThrottleWait: cfg.ThrottleWait,
	}}
}

var (
	imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff"}
	videoTypes = []string{"video/mp4", "video/quicktime"}
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.Facebook }

// Capabilities implements platform.Publisher.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit: a.cfg.TextLimit, CountRule: platform.CountUTF16,
		MaxImages: a.cfg.MaxImages, MaxVideos: 1,
		ImageTypes: imageTypes, VideoTypes: videoTypes,
		MaxImageBytes: a.cfg.MaxImageBytes, MaxVideoBytes: a.cfg.MaxVideoBytes,
		LinkCard: true, LinksClickable: true,
	}
}

// message is the text Facebook receives: with media there is no link card,
// so the link goes into the text when it is not there already.
func message(p platform.Post) string {
	if len(p.Media) == 0 || p.Link == "" || strings.Contains(p.Text, p.Link) {
		return p.Text
	}
	if p.Text == "" {
		return p.Link
	}
	return p.Text + "\n\n" + p.Link
}

// Validate implements platform.Publisher; it makes no network call.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	msg := message(p)
	if msg == "" && p.Link == "" && len(p.Media) == 0 {
		probs = append(probs, apperr.Problem{Field: "text", Message: "a Facebook post needs text, a link or media"})
	}
	if n := text.Count(platform.CountUTF16, msg); n > a.cfg.TextLimit {
		probs = append(probs, apperr.Problem{Field: "text", Message: fmt.Sprintf("is %d characters (with the link); Facebook accepts at most %d", n, a.cfg.TextLimit)})
	}
	limits := platform.MediaLimits{ImageTypes: imageTypes, VideoTypes: videoTypes, MaxImageBytes: a.cfg.MaxImageBytes, MaxVideoBytes: a.cfg.MaxVideoBytes}
	probs = append(probs, limits.Problems(p.Media, "Facebook", extTypes)...)
	images, videos := platform.CountKinds(p.Media)
	switch {
	case images > 0 && videos > 0:
		probs = append(probs, apperr.Problem{Field: "media", Message: "Facebook posts carry photos or one video, not both"})
	case videos > 1:
		probs = append(probs, apperr.Problem{Field: "media", Message: fmt.Sprintf("has %d videos; Facebook takes 1 per post", videos)})
	case images > a.cfg.MaxImages:
		probs = append(probs, apperr.Problem{Field: "media", Message: fmt.Sprintf("has %d photos; the limit is %d", images, a.cfg.MaxImages)})
	}
	return probs
}

// Publish implements platform.Publisher.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	var images, videos []platform.Media
	for _, m := range p.Media {
		if m.Kind == platform.Video {
			videos = append(videos, m)
		} else {
			images = append(images, m)
		}
	}
	switch {
	case len(videos) > 0:
		return a.publishVideo(ctx, acct, p, videos[0], j)
	case len(images) == 1:
		return a.publishPhoto(ctx, acct, p, images[0], j)
	case len(images) > 1:
		return a.publishAlbum(ctx, acct, p, images, j)
	}
	form := url.Values{"message": {p.Text}}
	if p.Link != "" {
		form.Set("link", p.Link)
	}
	return a.publishFeed(ctx, acct, form, j)
}

// publishFeed posts to the Page's feed: text, a link, attached photos.
func (a *Adapter) publishFeed(ctx context.Context, acct platform.Account, form url.Values, j platform.Journal) (platform.Result, error) {
	if err := a.journalSent(ctx, j); err != nil {
		return platform.Result{}, err
	}
	var out struct {
		ID string `json:"id"`
	}
	call := graph.Call{Method: http.MethodPost, Path: "/" + url.PathEscape(acct.ID) + "/feed", Params: form, Token: acct.AccessToken, Final: true}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Result{}, err
	}
	if out.ID == "" {
		return platform.Result{}, a.graph.Unexpected(http.StatusOK, nil, true, errMissingID)
	}
	return platform.Result{ID: out.ID, URL: a.permalink(ctx, acct, out.ID)}, nil
}

// publishPhoto posts one photo, which Facebook pulls from its URL.
func (a *Adapter) publishPhoto(ctx context.Context, acct platform.Account, p platform.Post, m platform.Media, j platform.Journal) (platform.Result, error) {
	if err := a.journalSent(ctx, j); err != nil {
		return platform.Result{}, err
	}
	form := url.Values{"url": {m.URL}, "caption": {message(p)}, "published": {"true"}}
	if m.AltText != "" {
		form.Set("alt_text_custom", m.AltText)
	}
	var out struct {
		ID     string `json:"id"`
		PostID string `json:"post_id"`
	}
	call := graph.Call{Method: http.MethodPost, Path: "/" + url.PathEscape(acct.ID) + "/photos", Params: form, Token: acct.AccessToken, Final: true}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Result{}, err
	}
	id := out.PostID
	if id == "" {
		id = out.ID
	}
	if id == "" {
		return platform.Result{}, a.graph.Unexpected(http.StatusOK, nil, true, errMissingID)
	}
	return platform.Result{ID: id, URL: a.permalink(ctx, acct, id)}, nil
}

// publishAlbum uploads each photo unpublished, then attaches them all to one
// feed post.
func (a *Adapter) publishAlbum(ctx context.Context, acct platform.Account, p platform.Post, images []platform.Media, j platform.Journal) (platform.Result, error) {
	type attached struct {
		MediaFBID string `json:"media_fbid"`
	}
	var ids []attached
	for _, m := range images {
		form := url.Values{"url": {m.URL}, "published": {"false"}}
		if m.AltText != "" {
			form.Set("alt_text_custom", m.AltText)
		}
		var out struct {
			ID string `json:"id"`
		}
		call := graph.Call{Method: http.MethodPost, Path: "/" + url.PathEscape(acct.ID) + "/photos", Params: form, Token: acct.AccessToken}
		if err := a.graph.Do(ctx, call, &out); err != nil {
			return platform.Result{}, err
		}
		if out.ID == "" {
			return platform.Result{}, a.graph.Unexpected(http.StatusOK, nil, false, errMissingID)
		}
		ids = append(ids, attached{out.ID})
	}
	list, _ := json.Marshal(ids)
	return a.publishFeed(ctx, acct, url.Values{"message": {message(p)}, "attached_media": {string(list)}}, j)
}

// publishVideo posts one video, which Facebook pulls from its URL. The
// result's ID is the video id, as Facebook returns no post id here.
func (a *Adapter) publishVideo(ctx context.Context, acct platform.Account, p platform.Post, m platform.Media, j platform.Journal) (platform.Result, error) {
	if err := a.journalSent(ctx, j); err != nil {
		return platform.Result{}, err
	}
	form := url.Values{"file_url": {m.URL}, "description": {message(p)}, "published": {"true"}}
	if p.Title != "" {
		form.Set("title", p.Title)
	}
	var out struct {
		ID string `json:"id"`
	}
	call := graph.Call{Method: http.MethodPost, Path: "/" + url.PathEscape(acct.ID) + "/videos", Params: form, Token: acct.AccessToken, Final: true}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Result{}, err
	}
	if out.ID == "" {
		return platform.Result{}, a.graph.Unexpected(http.StatusOK, nil, true, errMissingID)
	}
	return platform.Result{ID: out.ID, URL: a.permalink(ctx, acct, out.ID)}, nil
}

// errMissingID is the cause when a success answer has no id.
var errMissingID = errors.New("the answer has no id")

// journalSent records when the publishing call goes out, before it does.
func (a *Adapter) journalSent(ctx context.Context, j platform.Journal) error {
	if err := j.Record(ctx, JournalSentAt, a.clock.Now().UTC().Format(time.RFC3339)); err != nil {
		return errs.Wrap(err, apperr.KindTransient, "facebook.journal", "could not record the publishing checkpoint")
	}
	return nil
}

// permalink asks Facebook for the object's public URL. The post exists
// already, so a failed lookup falls back to a derived URL instead of failing.
func (a *Adapter) permalink(ctx context.Context, acct platform.Account, id string) string {
	var out struct {
		Permalink string `json:"permalink_url"`
	}
	call := graph.Call{Method: http.MethodGet, Path: "/" + url.PathEscape(id), Params: url.Values{"fields": {"permalink_url"}}, Token: acct.AccessToken}
	if a.graph.Do(ctx, call, &out) != nil || out.Permalink == "" {
		return "https://www.facebook.com/" + id
	}
	if strings.HasPrefix(out.Permalink, "/") { // videos' permalinks come back relative
		return "https://www.facebook.com" + out.Permalink
	}
	return out.Permalink
}

// Reconcile implements platform.Publisher. With no journaled send the
// publishing call never went out. Otherwise it looks for a post with the
// same message among the Page's posts since the send; a video that is not
// there yet may still be processing, so that case stays ambiguous.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	sent := p.Journal[JournalSentAt]
	if sent == "" {
		return platform.Result{}, false, nil
	}
	at, err := time.Parse(time.RFC3339, sent)
	msg := strings.TrimSpace(message(p))
	if err != nil || msg == "" {
		return platform.Result{}, false, a.ambiguous("the post has no text to find it by, or its checkpoint is unreadable")
	}
	var out struct {
		Data []struct {
			ID        string `json:"id"`
			Message   string `json:"message"`
			Permalink string `json:"permalink_url"`
		} `json:"data"`
	}
	q := url.Values{
		"fields": {"id,message,created_time,permalink_url"},
		"since":  {strconv.FormatInt(at.Add(-a.cfg.ReconcileSlack).Unix(), 10)},
		"limit":  {"100"},
	}
	call := graph.Call{Method: http.MethodGet, Path: "/" + url.PathEscape(acct.ID) + "/posts", Params: q, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Result{}, false, err
	}
	for _, post := range out.Data {
		if strings.TrimSpace(post.Message) == msg {
			return platform.Result{ID: post.ID, URL: post.Permalink}, true, nil
		}
	}
	for _, m := range p.Media {
		if m.Kind == platform.Video {
			return platform.Result{}, false, a.ambiguous("the video is not among the Page's posts yet; it may still be processing")
		}
	}
	return platform.Result{}, false, nil
}

func (a *Adapter) ambiguous(msg string) *apperr.Error {
	return errs.New(apperr.KindAmbiguous, "facebook.cannot_reconcile", msg)
}

// errs builds this adapter's own errors (graph builds the API's).
var errs = platformhttp.Errors{Platform: string(platform.Facebook)}

// WhoAmI implements platform.Identifier: the Page the token belongs to.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	var out struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	call := graph.Call{Method: http.MethodGet, Path: "/me", Params: url.Values{"fields": {"id,name"}}, Token: acct.AccessToken}
	if err := a.graph.Do(ctx, call, &out); err != nil {
		return platform.Identity{}, err
	}
	if out.ID == "" {
		return platform.Identity{}, a.graph.Unexpected(http.StatusOK, nil, false, errMissingID)
	}
	return platform.Identity{ID: out.ID, Handle: out.Name, Name: out.Name}, nil
}

// extTypes are the file extensions Facebook takes beyond the common ones,
// for media whose type is not given.
var extTypes = map[string]string{".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
