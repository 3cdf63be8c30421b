// Package x publishes to X through API v2: posts (POST /2/tweets) with up to
// four images, one GIF or one video, uploaded with the v2 media endpoints
// (simple upload for still images; initialize, append, finalize and STATUS
// polling for GIFs and video).
//
// X has no idempotency key and reading one's own posts back is a paid call,
// so Reconcile can only tell that nothing was sent; once the publishing call
// went out, an unanswered attempt stays ambiguous. A later attempt that
// meets X's duplicate-content rejection is reported as "probably posted".
package x

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// JournalSent is the journal key recorded just before POST /2/tweets.
const JournalSent = "x.post_sent"

// Config configures the adapter. Zero fields take the defaults noted.
type Config struct {
	// BaseURL is the API root (default https://api.x.com).
	BaseURL string
	// TextLimit is the weighted character limit (default 280).
	TextLimit int
	// MaxImageBytes caps still images (default 5 MiB).
	MaxImageBytes int64
	// MaxGIFBytes caps animated GIFs (default 15 MiB).
	MaxGIFBytes int64
	// MaxVideoBytes caps videos (default 512 MiB; X allows 8 GB). Videos
	// and GIFs stream from their URL one chunk at a time, so the cap is not
	// a memory bound.
	MaxVideoBytes int64
	// ChunkSize is the size of each appended segment (default 4 MiB).
	ChunkSize int
	// MediaTimeout bounds the wait for media processing (default 5 min).
	MediaTimeout time.Duration
	// RateLimitWait is the wait after a 429 without a reset header (default 15 min).
	RateLimitWait time.Duration
	// CreditsWait is the wait after 402 CreditsDepleted (default 1 h): the
	// app's pay-per-use credits must be topped up.
	CreditsWait time.Duration
	// HTTPTimeout bounds each request of the default client (default 60 s).
	HTTPTimeout time.Duration
	// Media downloads media URLs, which the CMS chose (default
	// platform.MediaClient: public addresses only).
	Media *http.Client
}

func (c Config) withDefaults() Config {
	platform.DefaultURL(&c.BaseURL, "https://api.x.com")
	platform.Default(&c.TextLimit, 280)
	platform.Default(&c.MaxImageBytes, 5<<20)
	platform.Default(&c.MaxGIFBytes, 15<<20)
	platform.Default(&c.MaxVideoBytes, 512<<20)
	platform.Default(&c.ChunkSize, 4<<20)
	platform.Default(&c.MediaTimeout, 5*time.Minute)
	platform.Default(&c.RateLimitWait, 15*time.Minute)
	platform.Default(&c.CreditsWait, time.Hour)
	platform.Default(&c.HTTPTimeout, 60*time.Second)
	if c.Media == nil {
		c.Media = platform.MediaClient(false)
	}
	return c
}

// Adapter publishes to X. It implements platform.Publisher and
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
var errs = platformhttp.Errors{Platform: string(platform.X), Name: "X"}

var (
	imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}
	videoTypes = []string{"video/mp4", "video/quicktime"}
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.X }

// Capabilities implements platform.Publisher. MaxImageBytes is the still
// image cap; an animated GIF may be up to MaxGIFBytes.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit: a.cfg.TextLimit, CountRule: platform.CountXWeighted,
		MaxImages: 4, MaxVideos: 1,
		ImageTypes: imageTypes, VideoTypes: videoTypes,
		MaxImageBytes: a.cfg.MaxImageBytes, MaxVideoBytes: a.cfg.MaxVideoBytes,
		LinkCard: true, LinksClickable: true,
	}
}

// compose is the post's text: X renders a card for a URL in the text, so
// the link is appended when the text does not carry it.
func compose(p platform.Post) string {
	if p.Link == "" || strings.Contains(p.Text, p.Link) {
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
	add := func(field, format string, args ...any) {
		probs = append(probs, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	body := compose(p)
	if body == "" && len(p.Media) == 0 {
		add("text", "an X post needs text or media")
	}
	if n := text.Count(platform.CountXWeighted, body); n > a.cfg.TextLimit {
		add("text", "is %d characters as X counts them (with the link); the limit is %d", n, a.cfg.TextLimit)
	}
	var images, gifs, videos int
	for i, m := range p.Media {
		mt := platform.GuessMIME(m, nil)
		var types []string
		var max int64
		switch {
		case m.Kind == platform.Image && mt == "image/gif":
			gifs, types, max = gifs+1, imageTypes, a.cfg.MaxGIFBytes
		case m.Kind == platform.Image:
			images, types, max = images+1, imageTypes, a.cfg.MaxImageBytes
		case m.Kind == platform.Video:
			videos, types, max = videos+1, videoTypes, a.cfg.MaxVideoBytes
		default:
			add(fmt.Sprintf("media[%d].kind", i), "must be image or video")
			continue
		}
		probs = append(probs, platform.MediaProblems(i, mt, m.Size, types, max, "X")...)
	}
	switch {
	case (gifs > 0 || videos > 0) && len(p.Media) > 1:
		add("media", "a video or GIF must be the post's only media item on X")
	case images > 4:
		add("media", "has %d images; X takes at most 4", images)
	}
	return probs
}

// Publish implements platform.Publisher: it uploads the media, journals the
// send, then creates the post.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	ids := make([]string, 0, len(p.Media))
	for _, m := range p.Media {
		id, err := a.upload(ctx, acct, m)
		if err != nil {
			return platform.Result{}, err
		}
		ids = append(ids, id)
	}
	body := map[string]any{}
	if t := compose(p); t != "" {
		body["text"] = t
	}
	if len(ids) > 0 {
		body["media"] = map[string]any{"media_ids": ids}
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindPermanent, "x.bad_request", "the post could not be encoded")
	}
	if err := j.Record(ctx, JournalSent, a.clock.Now().UTC().Format(time.RFC3339)); err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "x.journal", "could not record the publishing checkpoint")
	}
	var out struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err = a.do(ctx, request{method: http.MethodPost, path: "/2/tweets", body: payload,
		contentType: "application/json", token: acct.AccessToken, final: true}, &out)
	if e, ok := apperr.As(err); ok && e.Code == "x.duplicate" && p.Journal[JournalSent] != "" {
		// An earlier attempt was sent and got no answer; X now calls the
		// same text a duplicate, so that attempt most likely posted it.
		e.Kind, e.Code, e.Retryable = apperr.KindAmbiguous, "x.probably_posted", false
		e.Message = "X rejects the post as a duplicate of an earlier attempt, which most likely published it"
		return platform.Result{}, e
	}
	if err != nil {
		return platform.Result{}, err
	}
	if out.Data.ID == "" {
		return platform.Result{}, errs.Unexpected(http.StatusCreated, nil, true, errors.New("no data.id"))
	}
	return platform.Result{ID: out.Data.ID, URL: postURL(acct.Handle, out.Data.ID)}, nil
}

// postURL is a post's public URL; without the handle X's generic form works.
func postURL(handle, id string) string {
	if handle == "" {
		return "https://x.com/i/web/status/" + id
	}
	return "https://x.com/" + url.PathEscape(strings.TrimPrefix(handle, "@")) + "/status/" + id
}

// upload downloads m and uploads it: still images in one request, GIFs and
// videos in chunks streamed from the download, with processing polled to
// the end.
func (a *Adapter) upload(ctx context.Context, acct platform.Account, m platform.Media) (string, error) {
	max := max(a.cfg.MaxImageBytes, a.cfg.MaxGIFBytes)
	if m.Kind == platform.Video {
		max = a.cfg.MaxVideoBytes
	}
	src, err := platform.OpenMedia(ctx, a.cfg.Media, m, max)
	if err != nil {
		return "", err
	}
	defer src.Close()
	mt, _, _ := mime.ParseMediaType(src.ContentType)
	switch {
	case mt == "image/gif":
		return a.uploadChunked(ctx, acct, src, mt, "tweet_gif")
	case slices.Contains(imageTypes, mt):
		if src.Size > a.cfg.MaxImageBytes {
			return "", errs.New(apperr.KindPermanent, "x.media_too_large", fmt.Sprintf("the image is %d bytes; X takes %d", src.Size, a.cfg.MaxImageBytes))
		}
		return a.uploadSimple(ctx, acct, src, "tweet_image")
	case slices.Contains(videoTypes, mt):
		return a.uploadChunked(ctx, acct, src, mt, "tweet_video")
	}
	return "", errs.New(apperr.KindPermanent, "x.media_type", "X does not accept media of type "+mt)
}

// mediaAnswer is the data object of the media endpoints.
type mediaAnswer struct {
	Data struct {
		ID             string `json:"id"`
		ProcessingInfo *struct {
			State          string `json:"state"`
			CheckAfterSecs int    `json:"check_after_secs"`
			Error          *struct {
				Name    string `json:"name"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"processing_info"`
	} `json:"data"`
}

func (a *Adapter) uploadSimple(ctx context.Context, acct platform.Account, src *platform.MediaStream, category string) (string, error) {
	body, n, ct, err := platformhttp.MultipartFile([][2]string{{"media_category", category}}, "media", "media", src.ContentType, src, src.Size)
	if err != nil {
		return "", errs.Wrap(err, apperr.KindPermanent, "x.bad_request", "the upload could not be encoded")
	}
	var out mediaAnswer
	if err := a.do(ctx, request{method: http.MethodPost, path: "/2/media/upload", stream: body, length: n, contentType: ct, token: acct.AccessToken}, &out); err != nil {
		return "", src.Cause(err)
	}
	if out.Data.ID == "" {
		return "", errs.Unexpected(http.StatusOK, nil, false, errors.New("no data.id"))
	}
	return out.Data.ID, nil
}

func (a *Adapter) uploadChunked(ctx context.Context, acct platform.Account, src *platform.MediaStream, mediaType, category string) (string, error) {
	init, _ := json.Marshal(map[string]any{"media_type": mediaType, "total_bytes": src.Size, "media_category": category})
	var out mediaAnswer
	if err := a.do(ctx, request{method: http.MethodPost, path: "/2/media/upload/initialize", body: init,
		contentType: "application/json", token: acct.AccessToken}, &out); err != nil {
		return "", err
	}
	id := out.Data.ID
	if id == "" {
		return "", errs.Unexpected(http.StatusOK, nil, false, errors.New("no data.id"))
	}
	// Each segment streams from the download: one chunk is in flight, none
	// is held.
	chunk := int64(a.cfg.ChunkSize)
	for seg, off := 0, int64(0); off < src.Size; seg, off = seg+1, off+chunk {
		n := min(chunk, src.Size-off)
		body, length, ct, err := platformhttp.MultipartFile([][2]string{{"segment_index", strconv.Itoa(seg)}}, "media", "media", "application/octet-stream", src.Next(n), n)
		if err != nil {
			return "", errs.Wrap(err, apperr.KindPermanent, "x.bad_request", "the upload could not be encoded")
		}
		if err := a.do(ctx, request{method: http.MethodPost, path: "/2/media/upload/" + url.PathEscape(id) + "/append",
			stream: body, length: length, contentType: ct, token: acct.AccessToken}, nil); err != nil {
			return "", src.Cause(err)
		}
	}
	if err := a.do(ctx, request{method: http.MethodPost, path: "/2/media/upload/" + url.PathEscape(id) + "/finalize",
		token: acct.AccessToken}, &out); err != nil {
		return "", err
	}
	return id, a.waitProcessed(ctx, acct, id, out)
}

// waitProcessed follows processing_info through STATUS reads until it is
// succeeded, sleeping check_after_secs between reads.
func (a *Adapter) waitProcessed(ctx context.Context, acct platform.Account, id string, out mediaAnswer) error {
	deadline := a.clock.Now().Add(a.cfg.MediaTimeout)
	for {
		pi := out.Data.ProcessingInfo
		if pi == nil || pi.State == "succeeded" {
			return nil
		}
		switch pi.State {
		case "failed":
			msg := "X could not process the media"
			if pi.Error != nil {
				msg += ": " + pi.Error.Message
			}
			return errs.New(apperr.KindPermanent, "x.media_failed", msg)
		case "pending", "in_progress":
		default:
			return errs.Unexpected(http.StatusOK, nil, false, fmt.Errorf("unknown processing state %q", pi.State))
		}
		if !a.clock.Now().Before(deadline) {
			return errs.New(apperr.KindTransient, "x.media_processing", "X is still processing the media")
		}
		if err := a.clock.Sleep(ctx, time.Duration(max(pi.CheckAfterSecs, 1))*time.Second); err != nil {
			return errs.Wrap(err, apperr.KindTransient, "x.media_processing", "stopped waiting for X to process the media")
		}
		q := url.Values{"command": {"STATUS"}, "media_id": {id}}
		out = mediaAnswer{}
		if err := a.do(ctx, request{method: http.MethodGet, path: "/2/media/upload?" + q.Encode(), token: acct.AccessToken}, &out); err != nil {
			return err
		}
	}
}

// Reconcile implements platform.Publisher. Without a journaled send nothing
// reached X; with one, X cannot say without a paid read, so the answer is
// ambiguous.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	if p.Journal[JournalSent] == "" {
		return platform.Result{}, false, nil
	}
	return platform.Result{}, false, errs.New(apperr.KindAmbiguous, "x.cannot_reconcile",
		"X cannot tell whether the post was published; check the account and mark the delivery")
}

// WhoAmI implements platform.Identifier.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	var out struct {
		Data struct {
			ID       string `json:"id"`
			Username string `json:"username"`
			Name     string `json:"name"`
		} `json:"data"`
	}
	if err := a.do(ctx, request{method: http.MethodGet, path: "/2/users/me", token: acct.AccessToken}, &out); err != nil {
		return platform.Identity{}, err
	}
	if out.Data.ID == "" {
		return platform.Identity{}, errs.Unexpected(http.StatusOK, nil, false, errors.New("no data.id"))
	}
	return platform.Identity{ID: out.Data.ID, Handle: out.Data.Username, Name: out.Data.Name}, nil
}

// --- HTTP and errors ---

// request is one API call.
type request struct {
	method, path string
	body         []byte
	stream       io.Reader // sent instead of body, with Content-Length length
	length       int64
	contentType  string
	token        string
	final        bool // the publishing write: failures after sending are ambiguous
}

// do sends r and decodes a 2xx JSON answer into out when out is not nil.
func (a *Adapter) do(ctx context.Context, r request, out any) error {
	_, err := a.api.Call(ctx, platformhttp.Request{Method: r.method, URL: a.cfg.BaseURL + r.path, Token: r.token,
		Body: r.body, Stream: r.stream, Length: r.length, ContentType: r.contentType, Final: r.final}, out)
	return err
}

// problem is X's error body: RFC 7807 problem fields, sometimes with an
// errors list (the legacy shape has only that).
type problem struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Type   string `json:"type"`
	Errors []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// classify maps an X error answer to the taxonomy (platforms.md §10).
func (a *Adapter) classify(status int, h http.Header, body []byte, final bool) *apperr.Error {
	var pr problem
	_ = json.Unmarshal(body, &pr)
	kind := pr.Type[strings.LastIndex(pr.Type, "/")+1:] // match the path suffix: the host may be api.x.com or api.twitter.com
	if pr.Type == "about:blank" {
		kind = "" // RFC 7807's "no type": X's 401 carries it; the title names the error
	}
	msg := firstNonEmpty(pr.Detail, pr.Title, "X answered HTTP "+strconv.Itoa(status))
	pcode := firstNonEmpty(kind, pr.Title)
	if len(pr.Errors) > 0 {
		msg = firstNonEmpty(pr.Detail, pr.Errors[0].Message, msg)
		if pr.Errors[0].Code != 0 {
			pcode = strconv.Itoa(pr.Errors[0].Code)
		}
	}
	e := errs.New(apperr.KindPermanent, "x.rejected", "X: "+msg)
	switch {
	case status == http.StatusUnauthorized:
		e.Kind, e.Code = apperr.KindReconnect, "x.unauthorized"
	case status == http.StatusPaymentRequired:
		e.Kind, e.Code, e.RetryAfter = apperr.KindRateLimited, "x.credits_depleted", a.cfg.CreditsWait
	case status == http.StatusTooManyRequests && (kind == "usage-capped" || pr.Title == "UsageCapExceeded"):
		e.Kind, e.Code = apperr.KindRateLimited, "x.usage_capped"
		e.RetryAfter = a.resetWait(h, "x-app-limit-24hour-reset", "x-user-limit-24hour-reset", "x-rate-limit-reset")
	case status == http.StatusTooManyRequests:
		e.Kind, e.Code = apperr.KindRateLimited, "x.rate_limited"
		if wait, window, ok := a.exhaustedWait(h); ok {
			e.RetryAfter = wait
			if window != "x-rate-limit" {
				e.Code = "x.daily_cap"
			}
		} else {
			e.RetryAfter = a.resetWait(h, "x-rate-limit-reset", "x-user-limit-24hour-reset", "x-app-limit-24hour-reset")
		}
	case status == http.StatusForbidden && (strings.Contains(strings.ToLower(msg), "duplicate") || pcode == "187"):
		e.Code = "x.duplicate"
	case status >= 500:
		e.Kind, e.Code = platformhttp.AmbiguousIf(final, apperr.KindTransient), "x.server_error"
	case status == http.StatusForbidden:
		e.Code = "x.forbidden"
	}
	e.Retryable = e.Kind == apperr.KindRateLimited || e.Kind == apperr.KindTransient
	e.PlatformCode = pcode
	return errs.Annotate(e, status, body)
}

// xWindows are X's rate-limit windows, each answered as <name>-remaining
// and <name>-reset on every answer: the 15-minute window, the user's and
// the app's 24-hour caps.
var xWindows = []string{"x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"}

// exhaustedWait is the wait a 429 asks for: until the reset of the window
// whose remaining is 0 (the latest, when several are), and that window's
// name. X sends every window's headers on every answer, so the 15-minute
// reset alone would retry a capped account every 15 minutes for a day. ok
// is false when no window says it is used up.
func (a *Adapter) exhaustedWait(h http.Header) (time.Duration, string, bool) {
	var (
		wait   time.Duration
		window string
	)
	for _, w := range xWindows {
		if strings.TrimSpace(h.Get(w+"-remaining")) != "0" {
			continue
		}
		if t, ok := platformhttp.EpochReset(h, w+"-reset"); ok && t.Unix() > 0 && t.Sub(a.clock.Now()) > wait {
			wait, window = t.Sub(a.clock.Now()), w
		}
	}
	if window == "" {
		return 0, "", false
	}
	return max(wait, time.Second), window, true
}

// resetWait is the time until the first reset header present (Unix epoch
// seconds; X sends no Retry-After), else RateLimitWait.
func (a *Adapter) resetWait(h http.Header, names ...string) time.Duration {
	for _, n := range names {
		if t, ok := platformhttp.EpochReset(h, n); ok && t.Unix() > 0 {
			return max(t.Sub(a.clock.Now()), time.Second)
		}
	}
	return a.cfg.RateLimitWait
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
