// Package linkedin publishes to LinkedIn through the versioned Posts API
// (POST /rest/posts): text, a link as an article card, one image or 2-20
// images (Images API: initializeUpload, then PUT the bytes), or one video
// (Videos API: initializeUpload, PUT each part, finalizeUpload). Every /rest
// call carries the configured LinkedIn-Version and X-Restli-Protocol-Version.
//
// Commentary is LinkedIn's "little" text format: the adapter escapes its
// reserved characters (keeping #hashtags), since an unescaped one silently
// cuts the post short.
//
// LinkedIn has no idempotency key and no cheap way to read one's posts
// back; Reconcile can only tell that nothing was sent. A later attempt that
// meets DUPLICATE_POST gets the original post's URN from LinkedIn's answer.
package linkedin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// JournalSent is the journal key recorded just before POST /rest/posts.
const JournalSent = "linkedin.post_sent"

// Config configures the adapter. Zero fields take the defaults noted; values
// the platform notes mark unverified are here so they can change without a
// release.
type Config struct {
	// BaseURL is the API root (default https://api.linkedin.com).
	BaseURL string
	// Version is the LinkedIn-Version header, YYYYMM (default 202607).
	// LinkedIn answers 426 once a version is about 12 months old: bump it.
	Version string
	// TextLimit is the commentary limit in UTF-16 units, escapes included
	// (default 3,000; unverified).
	TextLimit int
	// MaxImages is the multi-image cap (default 20).
	MaxImages int
	// MaxImageBytes caps images (default 8 MiB; 5-8 MB is quoted, unverified).
	MaxImageBytes int64
	// MaxVideoBytes caps videos (default 500 MiB; unverified). Videos
	// stream from their URL one part at a time.
	MaxVideoBytes int64
	// MediaPollInterval is the wait between image/video status reads (default 2 s).
	MediaPollInterval time.Duration
	// MediaTimeout bounds the wait for an upload to become AVAILABLE (default 2 min).
	MediaTimeout time.Duration
	// HTTPTimeout bounds each request of the default client (default 60 s).
	HTTPTimeout time.Duration
	// ReadScopes are the permissions reading a post's social actions needs
	// (default r_member_social, a restricted permission LinkedIn grants to
	// select developers; an organization's posts need
	// r_organization_social instead; unverified which one a given app has).
	ReadScopes []string
	// Media downloads media URLs, which the CMS chose (default
	// platform.MediaClient: public addresses only).
	Media *http.Client
}

func (c Config) withDefaults() Config {
	platform.DefaultURL(&c.BaseURL, "https://api.linkedin.com")
	platform.Default(&c.Version, "202607")
	platform.Default(&c.TextLimit, 3000)
	platform.Default(&c.MaxImages, 20)
	platform.Default(&c.MaxImageBytes, 8<<20)
	platform.Default(&c.MaxVideoBytes, 500<<20)
	platform.Default(&c.MediaPollInterval, 2*time.Second)
	platform.Default(&c.MediaTimeout, 2*time.Minute)
	platform.Default(&c.HTTPTimeout, 60*time.Second)
	if len(c.ReadScopes) == 0 {
		c.ReadScopes = []string{"r_member_social"}
	}
	if c.Media == nil {
		c.Media = platform.MediaClient(false)
	}
	return c
}

// Adapter publishes to LinkedIn. It implements platform.Publisher and
// platform.Identifier and is safe for concurrent use.
type Adapter struct {
	cfg   Config
	api   *platformhttp.Client
	clock platform.Clock
}

// New returns an adapter. A nil hc gets a client with cfg.HTTPTimeout; a nil
// clock is the wall clock. New does no I/O.
func New(cfg Config, hc *http.Client, clock platform.Clock) *Adapter {
	cfg = cfg.withDefaults()
	if hc == nil {
		hc = &http.Client{Timeout: cfg.HTTPTimeout}
	}
	a := &Adapter{cfg: cfg, clock: platform.ClockOrReal(clock)}
	a.api = &platformhttp.Client{Errors: errs, HC: hc, MaxBody: 1 << 20, Classify: a.classify}
	return a
}

// errs builds this adapter's errors.
var errs = platformhttp.Errors{Platform: string(platform.LinkedIn), Name: "LinkedIn"}

var (
	imageTypes   = []string{"image/jpeg", "image/png", "image/gif"}
	videoTypes   = []string{"video/mp4"}
	visibilities = []string{"PUBLIC", "CONNECTIONS", "LOGGED_IN"}
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.LinkedIn }

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

// commentary is the escaped commentary for p. A link becomes an article
// card when there is no media; with media it goes into the text.
func commentary(p platform.Post) string {
	t := p.Text
	if len(p.Media) > 0 && p.Link != "" && !strings.Contains(t, p.Link) {
		if t != "" {
			t += "\n\n"
		}
		t += p.Link
	}
	return Escape(t)
}

// reserved are little text's reserved characters.
const reserved = `\|{}@[]()<>#*_~`

// urlPattern finds URLs, inside which nothing is read as a hashtag.
var urlPattern = regexp.MustCompile(`https?://\S+`)

// Escape backslash-escapes little text's reserved characters so LinkedIn
// shows them as written. A '#' that starts a word (a hashtag) is kept, so
// hashtags stay hashtags; inside URLs every reserved character is escaped.
func Escape(s string) string {
	urls := urlPattern.FindAllStringIndex(s, -1)
	inURL := func(i int) bool {
		for _, u := range urls {
			if i >= u[0] && i < u[1] {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range s {
		if strings.ContainsRune(reserved, r) && (r != '#' || inURL(i) || !hashtagAt(s, i)) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// hashtagAt reports whether the '#' at byte i starts a hashtag: it follows
// a non-word character (or the start) and a letter or digit follows it.
func hashtagAt(s string, i int) bool {
	before, _ := utf8.DecodeLastRuneInString(s[:i])
	after, _ := utf8.DecodeRuneInString(s[i+1:])
	wordy := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
	return (i == 0 || !wordy(before)) && i+1 < len(s) && (unicode.IsLetter(after) || unicode.IsDigit(after))
}

// Validate implements platform.Publisher; it makes no network call.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if p.Text == "" && p.Link == "" && len(p.Media) == 0 {
		add("text", "a LinkedIn post needs text, a link or media")
	}
	if n := text.Count(platform.CountUTF16, commentary(p)); n > a.cfg.TextLimit {
		add("text", "is %d characters once LinkedIn's reserved characters are escaped (with the link); the limit is %d", n, a.cfg.TextLimit)
	}
	if v := p.Options["visibility"]; v != "" && !slices.Contains(visibilities, v) {
		add("options.visibility", "must be one of %s", strings.Join(visibilities, ", "))
	}
	limits := platform.MediaLimits{ImageTypes: imageTypes, VideoTypes: videoTypes, MaxImageBytes: a.cfg.MaxImageBytes, MaxVideoBytes: a.cfg.MaxVideoBytes}
	probs = append(probs, limits.Problems(p.Media, "LinkedIn", nil)...)
	images, videos := platform.CountKinds(p.Media)
	switch {
	case images > 0 && videos > 0:
		add("media", "LinkedIn posts carry images or one video, not both")
	case videos > 1:
		add("media", "has %d videos; LinkedIn takes 1 per post", videos)
	case images > a.cfg.MaxImages:
		add("media", "has %d images; LinkedIn takes at most %d", images, a.cfg.MaxImages)
	}
	return probs
}

// authorURN is the post author: the account id is a person or organization
// URN; a bare member id is taken as a person.
func authorURN(id string) string {
	if strings.HasPrefix(id, "urn:li:") {
		return id
	}
	return "urn:li:person:" + id
}

// Publish implements platform.Publisher.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	author := authorURN(acct.ID)
	content, err := a.content(ctx, acct, author, p)
	if err != nil {
		return platform.Result{}, err
	}
	visibility := p.Options["visibility"]
	if visibility == "" {
		visibility = "PUBLIC"
	}
	post := map[string]any{
		"author": author, "commentary": commentary(p), "visibility": visibility,
		"distribution":   map[string]any{"feedDistribution": "MAIN_FEED", "targetEntities": []any{}, "thirdPartyDistributionChannels": []any{}},
		"lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": false,
	}
	if content != nil {
		post["content"] = content
	}
	body, err := json.Marshal(post)
	if err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindPermanent, "linkedin.bad_request", "the post could not be encoded")
	}
	if err := j.Record(ctx, JournalSent, a.clock.Now().UTC().Format(time.RFC3339)); err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "linkedin.journal", "could not record the publishing checkpoint")
	}
	h, err := a.do(ctx, request{method: http.MethodPost, path: "/rest/posts", body: body, contentType: "application/json",
		token: acct.AccessToken, final: true}, nil)
	if e, ok := apperr.As(err); ok && e.Code == "linkedin.duplicate" && p.Journal[JournalSent] != "" {
		// An earlier attempt was sent without an answer; LinkedIn names the
		// post it duplicates, which is that attempt's.
		if urn := shareURN.FindString(e.Message); urn != "" {
			return platform.Result{ID: urn, URL: postURL(urn)}, nil
		}
	}
	if err != nil {
		return platform.Result{}, err
	}
	urn := h.Get("x-restli-id")
	if urn == "" {
		return platform.Result{}, errs.Unexpected(http.StatusCreated, nil, true, errors.New("no x-restli-id header"))
	}
	return platform.Result{ID: urn, URL: postURL(urn)}, nil
}

// shareURN finds a post URN in a duplicate message.
var shareURN = regexp.MustCompile(`urn:li:(?:share|ugcPost):\d+`)

func postURL(urn string) string { return "https://www.linkedin.com/feed/update/" + urn + "/" }

// content uploads p's media and returns the post's content object: media,
// multiImage, an article for a bare link, or nil.
func (a *Adapter) content(ctx context.Context, acct platform.Account, author string, p platform.Post) (map[string]any, error) {
	if len(p.Media) == 0 {
		if p.Link == "" {
			return nil, nil
		}
		title := p.Title
		if title == "" {
			title = p.Link
		}
		return map[string]any{"article": map[string]any{"source": p.Link, "title": title}}, nil
	}
	if m := p.Media[0]; m.Kind == platform.Video {
		urn, err := a.uploadVideo(ctx, acct, author, m)
		if err != nil {
			return nil, err
		}
		media := map[string]any{"id": urn}
		if p.Title != "" {
			media["title"] = p.Title
		}
		return map[string]any{"media": media}, nil
	}
	images := make([]map[string]any, 0, len(p.Media))
	for _, m := range p.Media {
		urn, err := a.uploadImage(ctx, acct, author, m)
		if err != nil {
			return nil, err
		}
		im := map[string]any{"id": urn}
		if m.AltText != "" {
			im["altText"] = m.AltText
		}
		images = append(images, im)
	}
	if len(images) == 1 {
		return map[string]any{"media": images[0]}, nil
	}
	return map[string]any{"multiImage": map[string]any{"images": images}}, nil
}

// fetch downloads m whole (images) and checks its type.
func (a *Adapter) fetch(ctx context.Context, m platform.Media, types []string, max int64) ([]byte, string, error) {
	data, ct, err := platform.FetchMedia(ctx, a.cfg.Media, m, max)
	if err != nil {
		return nil, "", err
	}
	mt, _, _ := mime.ParseMediaType(ct)
	if !slices.Contains(types, mt) {
		return nil, "", errs.New(apperr.KindPermanent, "linkedin.media_type", "LinkedIn does not accept media of type "+mt)
	}
	return data, mt, nil
}

func (a *Adapter) uploadImage(ctx context.Context, acct platform.Account, author string, m platform.Media) (string, error) {
	data, mt, err := a.fetch(ctx, m, imageTypes, a.cfg.MaxImageBytes)
	if err != nil {
		return "", err
	}
	init, _ := json.Marshal(map[string]any{"initializeUploadRequest": map[string]any{"owner": author}})
	var out struct {
		Value struct {
			UploadURL string `json:"uploadUrl"`
			Image     string `json:"image"`
		} `json:"value"`
	}
	if _, err := a.do(ctx, request{method: http.MethodPost, path: "/rest/images?action=initializeUpload", body: init,
		contentType: "application/json", token: acct.AccessToken}, &out); err != nil {
		return "", err
	}
	if out.Value.UploadURL == "" || out.Value.Image == "" {
		return "", errs.Unexpected(http.StatusOK, nil, false, errors.New("no uploadUrl or image"))
	}
	if _, err := a.do(ctx, request{method: http.MethodPut, url: out.Value.UploadURL, body: data, contentType: mt, token: acct.AccessToken}, nil); err != nil {
		return "", err
	}
	return out.Value.Image, a.waitAvailable(ctx, acct, "/rest/images/", out.Value.Image)
}

// uploadVideo streams the video from its URL into the parts LinkedIn's
// upload instructions name, in order: one part in flight, none held.
func (a *Adapter) uploadVideo(ctx context.Context, acct platform.Account, author string, m platform.Media) (string, error) {
	src, err := platform.OpenMedia(ctx, a.cfg.Media, m, a.cfg.MaxVideoBytes)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if mt, _, _ := mime.ParseMediaType(src.ContentType); !slices.Contains(videoTypes, mt) {
		return "", errs.New(apperr.KindPermanent, "linkedin.media_type", "LinkedIn does not accept media of type "+mt)
	}
	init, _ := json.Marshal(map[string]any{"initializeUploadRequest": map[string]any{
		"owner": author, "fileSizeBytes": src.Size, "uploadCaptions": false, "uploadThumbnail": false}})
	var out struct {
		Value struct {
			Video        string `json:"video"`
			UploadToken  string `json:"uploadToken"`
			Instructions []struct {
				UploadURL string `json:"uploadUrl"`
				FirstByte int64  `json:"firstByte"`
				LastByte  int64  `json:"lastByte"`
			} `json:"uploadInstructions"`
		} `json:"value"`
	}
	if _, err := a.do(ctx, request{method: http.MethodPost, path: "/rest/videos?action=initializeUpload", body: init,
		contentType: "application/json", token: acct.AccessToken}, &out); err != nil {
		return "", err
	}
	v := out.Value
	if v.Video == "" || len(v.Instructions) == 0 {
		return "", errs.Unexpected(http.StatusOK, nil, false, errors.New("no video or uploadInstructions"))
	}
	// The parts are read from the stream in file order, so they must tile
	// the file; the ETags go back in the instructions' order.
	order := make([]int, len(v.Instructions))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(v.Instructions[x].FirstByte, v.Instructions[y].FirstByte) })
	next := int64(0)
	for _, i := range order {
		in := v.Instructions[i]
		if in.FirstByte != next || in.LastByte < in.FirstByte || in.LastByte >= src.Size {
			return "", errs.Unexpected(http.StatusOK, nil, false, fmt.Errorf("upload instruction %d-%d does not continue the file at byte %d", in.FirstByte, in.LastByte, next))
		}
		next = in.LastByte + 1
	}
	if next != src.Size {
		return "", errs.Unexpected(http.StatusOK, nil, false, fmt.Errorf("upload instructions end at byte %d of %d", next, src.Size))
	}
	etags := make([]string, len(v.Instructions))
	for _, i := range order {
		in := v.Instructions[i]
		n := in.LastByte - in.FirstByte + 1
		h, err := a.do(ctx, request{method: http.MethodPut, url: in.UploadURL, stream: src.Next(n), length: n,
			contentType: "application/octet-stream", token: acct.AccessToken}, nil)
		if err != nil {
			return "", src.Cause(err)
		}
		etags[i] = h.Get("ETag")
	}
	fin, _ := json.Marshal(map[string]any{"finalizeUploadRequest": map[string]any{
		"video": v.Video, "uploadToken": v.UploadToken, "uploadedPartIds": etags}})
	if _, err := a.do(ctx, request{method: http.MethodPost, path: "/rest/videos?action=finalizeUpload", body: fin,
		contentType: "application/json", token: acct.AccessToken}, nil); err != nil {
		return "", err
	}
	return v.Video, a.waitAvailable(ctx, acct, "/rest/videos/", v.Video)
}

// waitAvailable polls an image or video until its status is AVAILABLE.
func (a *Adapter) waitAvailable(ctx context.Context, acct platform.Account, collection, urn string) error {
	deadline := a.clock.Now().Add(a.cfg.MediaTimeout)
	for {
		var out struct {
			Status string `json:"status"`
		}
		if _, err := a.do(ctx, request{method: http.MethodGet, path: collection + escapeURN(urn), token: acct.AccessToken}, &out); err != nil {
			return err
		}
		switch out.Status {
		case "AVAILABLE":
			return nil
		case "PROCESSING_FAILED":
			return errs.New(apperr.KindPermanent, "linkedin.media_failed", "LinkedIn could not process "+urn)
		case "PROCESSING", "WAITING_UPLOAD":
		default:
			return errs.Unexpected(http.StatusOK, nil, false, fmt.Errorf("unknown media status %q", out.Status))
		}
		if !a.clock.Now().Before(deadline) {
			return errs.New(apperr.KindTransient, "linkedin.media_processing", "LinkedIn is still processing "+urn)
		}
		if err := a.clock.Sleep(ctx, a.cfg.MediaPollInterval); err != nil {
			return errs.Wrap(err, apperr.KindTransient, "linkedin.media_processing", "stopped waiting for LinkedIn to process the media")
		}
	}
}

// escapeURN encodes a URN as one path segment, colons included.
func escapeURN(urn string) string { return strings.ReplaceAll(url.PathEscape(urn), ":", "%3A") }

// Reconcile implements platform.Publisher. Without a journaled send nothing
// reached LinkedIn; with one, LinkedIn offers no way to look, so the answer
// is ambiguous (a retry that meets DUPLICATE_POST recovers the post).
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	if p.Journal[JournalSent] == "" {
		return platform.Result{}, false, nil
	}
	return platform.Result{}, false, errs.New(apperr.KindAmbiguous, "linkedin.cannot_reconcile",
		"LinkedIn cannot tell whether the post was published; check the profile and mark the delivery")
}

// WhoAmI implements platform.Identifier through the OpenID userinfo
// endpoint: the member's person URN and name.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	var out struct {
		Sub  string `json:"sub"`
		Name string `json:"name"`
	}
	if _, err := a.do(ctx, request{method: http.MethodGet, path: "/v2/userinfo", token: acct.AccessToken}, &out); err != nil {
		return platform.Identity{}, err
	}
	if out.Sub == "" {
		return platform.Identity{}, errs.Unexpected(http.StatusOK, nil, false, errors.New("no sub"))
	}
	return platform.Identity{ID: "urn:li:person:" + out.Sub, Handle: out.Name, Name: out.Name}, nil
}

// --- HTTP and errors ---

// request is one call: an API path under BaseURL (with the version headers)
// or an absolute upload URL.
type request struct {
	method, path string
	url          string // absolute upload URL; overrides path
	body         []byte
	stream       io.Reader // sent instead of body, with Content-Length length
	length       int64
	contentType  string
	token        string
	final        bool // the publishing write: failures after sending are ambiguous
}

// do sends r, decodes a 2xx JSON answer into out when out is not nil, and
// returns the answer's headers.
func (a *Adapter) do(ctx context.Context, r request, out any) (http.Header, error) {
	rq := platformhttp.Request{Method: r.method, URL: r.url, Token: r.token, Body: r.body, Stream: r.stream, Length: r.length, ContentType: r.contentType, Final: r.final}
	if r.url == "" {
		rq.URL = a.cfg.BaseURL + r.path
		rq.Header = map[string]string{"LinkedIn-Version": a.cfg.Version, "X-Restli-Protocol-Version": "2.0.0"}
	}
	return a.api.Call(ctx, rq, out)
}

// errorBody is LinkedIn's error shape.
type errorBody struct {
	ServiceErrorCode int    `json:"serviceErrorCode"`
	Code             string `json:"code"`
	Message          string `json:"message"`
	ErrorDetails     struct {
		InputErrors []struct {
			Code string `json:"code"`
		} `json:"inputErrors"`
	} `json:"errorDetails"`
}

// classify maps a LinkedIn error answer to the taxonomy (platforms.md §10).
func (a *Adapter) classify(status int, _ http.Header, body []byte, final bool) *apperr.Error {
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	pcode := eb.Code
	for _, ie := range eb.ErrorDetails.InputErrors {
		if pcode == "" || ie.Code == "DUPLICATE_POST" {
			pcode = ie.Code
		}
	}
	if pcode == "" && eb.ServiceErrorCode != 0 {
		pcode = strconv.Itoa(eb.ServiceErrorCode)
	}
	msg := eb.Message
	if msg == "" {
		msg = "LinkedIn answered HTTP " + strconv.Itoa(status)
	}
	e := errs.New(apperr.KindPermanent, "linkedin.rejected", "LinkedIn: "+msg)
	switch {
	case status == http.StatusUnauthorized:
		e.Kind, e.Code = apperr.KindReconnect, "linkedin.unauthorized"
	case status == http.StatusForbidden:
		e.Kind, e.Code = apperr.KindReconnect, "linkedin.access_denied"
	case status == http.StatusUpgradeRequired:
		e.Code = "linkedin.version_inactive" // ops: bump Config.Version
	case status == http.StatusTooManyRequests:
		// Quotas reset at midnight UTC; LinkedIn sends no headers.
		now := a.clock.Now().UTC()
		e.Kind, e.Code = apperr.KindRateLimited, "linkedin.rate_limited"
		e.RetryAfter = time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC).Sub(now)
	case pcode == "DUPLICATE_POST":
		e.Code = "linkedin.duplicate"
	case status >= 500:
		e.Kind, e.Code = platformhttp.AmbiguousIf(final, apperr.KindTransient), "linkedin.server_error"
	}
	e.Retryable = e.Kind == apperr.KindRateLimited || e.Kind == apperr.KindTransient
	e.PlatformCode = pcode
	return errs.Annotate(e, status, body)
}
