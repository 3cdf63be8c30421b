// Package mastodon publishes posts to a Mastodon instance: media through
// POST /api/v2/media (polling GET /api/v1/media/:id while the instance
// processes it), then POST /api/v1/statuses with an Idempotency-Key derived
// from the delivery id, so a retry or a reconcile within the instance's
// one-hour window returns the original status instead of posting twice.
//
// Every instance has its own base URL (Account.BaseURL) and its own limits;
// InstanceLimits reads them from /api/v2/instance. Config.InstanceOverride
// sends every instance's calls to one host instead (the local stack's
// simulator), while accounts keep the instance URL their user gave.
package mastodon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// Journal keys this adapter records before the final write.
const (
	// JournalFirstSentAt is when the first status POST of a delivery was
	// sent (RFC 3339); Reconcile only re-sends inside the idempotency window.
	JournalFirstSentAt = "mastodon.first_sent_at"
	// JournalMediaIDs are the media ids (comma-separated) the status used.
	JournalMediaIDs = "mastodon.media_ids"
)

// Config configures the adapter. Zero values take the defaults from the
// platform notes; the limits are instance defaults (each instance may
// differ — see InstanceLimits).
type Config struct {
	// BaseURL is the instance used when Account.BaseURL is empty; usually
	// empty, since every account names its own instance.
	BaseURL string
	// InstanceOverride, when set, is where every instance's API calls go,
	// whatever instance the account names: the local stack sets it to its
	// simulator so that an account on any instance (https://mastodon.social)
	// works without the internet. Handles still name the account's own
	// instance. Never set outside the local environment.
	InstanceOverride string
	// MaxCharacters is the status limit used by Validate (default 500).
	MaxCharacters int
	// MaxMediaAttachments is the attachment limit (default 4).
	MaxMediaAttachments int
	// MaxImageBytes is the image size limit (default 16 MiB).
	MaxImageBytes int64
	// MaxVideoBytes is the video size limit (default 99 MiB).
	MaxVideoBytes int64
	// MediaPollInterval is the wait between media status polls (default 1 s).
	MediaPollInterval time.Duration
	// MediaPollTimeout bounds how long media may process (default 2 min).
	MediaPollTimeout time.Duration
	// IdempotencyWindow is how long the instance replays an
	// Idempotency-Key (default 1 h). Reconcile re-sends only while at least
	// IdempotencyMargin of it is left.
	IdempotencyWindow time.Duration
	// IdempotencyMargin is the safety margin inside the window (default 5 min).
	IdempotencyMargin time.Duration
	// DefaultRetryAfter is the wait after a 429 without a usable
	// X-RateLimit-Reset (default 5 min, the length of the request window).
	DefaultRetryAfter time.Duration
	// Media downloads media URLs, which the CMS chose (default
	// platform.MediaClient: public addresses only).
	Media *http.Client
}

func (c Config) withDefaults() Config {
	platform.DefaultPositive(&c.MaxCharacters, 500)
	platform.DefaultPositive(&c.MaxMediaAttachments, 4)
	platform.DefaultPositive(&c.MaxImageBytes, 16<<20)
	platform.DefaultPositive(&c.MaxVideoBytes, 99<<20)
	platform.DefaultPositive(&c.MediaPollInterval, time.Second)
	platform.DefaultPositive(&c.MediaPollTimeout, 2*time.Minute)
	platform.DefaultPositive(&c.IdempotencyWindow, time.Hour)
	platform.DefaultPositive(&c.IdempotencyMargin, 5*time.Minute)
	platform.DefaultPositive(&c.DefaultRetryAfter, 5*time.Minute)
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	c.InstanceOverride = strings.TrimRight(c.InstanceOverride, "/")
	if c.Media == nil {
		c.Media = platform.MediaClient(false)
	}
	return c
}

// Adapter is the Mastodon publisher. It is safe for concurrent use.
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

// Visibilities are the values of options.visibility.
var Visibilities = []string{"public", "unlisted", "private", "direct"}

var (
	imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/avif"}
	videoTypes = []string{"video/mp4", "video/quicktime", "video/webm"}
)

// Name implements platform.Publisher.
func (a *Adapter) Name() platform.Name { return platform.Mastodon }

// Capabilities implements platform.Publisher with the instance defaults.
func (a *Adapter) Capabilities() platform.Capabilities {
	return platform.Capabilities{
		TextLimit:      a.cfg.MaxCharacters,
		CountRule:      platform.CountMastodon,
		MaxImages:      a.cfg.MaxMediaAttachments,
		MaxVideos:      1,
		MixedMedia:     false,
		ImageTypes:     imageTypes,
		VideoTypes:     videoTypes,
		MaxImageBytes:  a.cfg.MaxImageBytes,
		MaxVideoBytes:  a.cfg.MaxVideoBytes,
		LinkCard:       true, // for the first URL in the text
		LinksClickable: true,
	}
}

// Validate implements platform.Publisher. The spoiler text
// (options.spoiler_text) counts towards the limit, as on the instance.
func (a *Adapter) Validate(p platform.Post) []apperr.Problem {
	var probs []apperr.Problem
	lim := text.Limit{Rule: platform.CountMastodon, Max: a.cfg.MaxCharacters}
	spoiler := p.Options["spoiler_text"]
	if strings.TrimSpace(p.Text) == "" && len(p.Media) == 0 {
		probs = append(probs, apperr.Problem{Field: "text", Message: "text or media is required"})
	}
	if n := lim.Count(spoiler + p.Text); n > lim.Max {
		probs = append(probs, apperr.Problem{Field: "text", Message: fmt.Sprintf("%d characters (with the spoiler text), over the limit of %d", n, lim.Max)})
	}
	if v, ok := p.Options["visibility"]; ok && !slices.Contains(Visibilities, v) {
		probs = append(probs, apperr.Problem{Field: "options.visibility", Message: "must be one of " + strings.Join(Visibilities, ", ")})
	}
	if v, ok := p.Options["sensitive"]; ok && v != "true" && v != "false" {
		probs = append(probs, apperr.Problem{Field: "options.sensitive", Message: `must be "true" or "false"`})
	}
	if len(p.Media) > a.cfg.MaxMediaAttachments {
		probs = append(probs, apperr.Problem{Field: "media", Message: fmt.Sprintf("%d items, over the limit of %d", len(p.Media), a.cfg.MaxMediaAttachments)})
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
	if _, videos := platform.CountKinds(p.Media); videos > 0 && len(p.Media) > 1 {
		probs = append(probs, apperr.Problem{Field: "media", Message: "a video cannot be combined with other media (at most 1 video)"})
	}
	return probs
}

// instance is the instance URL acct names (or the configured default).
func (a *Adapter) instance(acct platform.Account) (string, error) {
	b := strings.TrimRight(acct.BaseURL, "/")
	if b == "" {
		b = a.cfg.BaseURL
	}
	if b == "" {
		return "", errs.New(apperr.KindPermanent, "mastodon.no_instance", "the account names no Mastodon instance")
	}
	return b, nil
}

// base is the URL acct's API calls go to: its instance, unless every
// instance is routed elsewhere (Config.InstanceOverride).
func (a *Adapter) base(acct platform.Account) (string, error) {
	b, err := a.instance(acct)
	if err != nil {
		return "", err
	}
	return a.route(b), nil
}

// route maps an instance URL to the base URL its API calls go to.
func (a *Adapter) route(instance string) string {
	if a.cfg.InstanceOverride != "" {
		return a.cfg.InstanceOverride
	}
	return strings.TrimRight(instance, "/")
}

// status is the part of a Status entity the adapter reads.
type status struct {
	ID  string `json:"id"`
	URI string `json:"uri"`
	URL string `json:"url"`
}

func (s status) result() platform.Result {
	u := s.URL
	if u == "" {
		u = s.URI
	}
	return platform.Result{ID: s.ID, URL: u}
}

// Publish implements platform.Publisher.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	base, err := a.base(acct)
	if err != nil {
		return platform.Result{}, err
	}
	ids := make([]string, 0, len(p.Media))
	for i, m := range p.Media {
		id, err := a.uploadMedia(ctx, base, acct.AccessToken, i, m)
		if err != nil {
			return platform.Result{}, err
		}
		ids = append(ids, id)
	}
	// One fenced write before the status POST: when this attempt began
	// (the first one's time is kept) and the media it attaches.
	cp := map[string]string{JournalMediaIDs: strings.Join(ids, ",")}
	if p.Journal[JournalFirstSentAt] == "" {
		cp[JournalFirstSentAt] = a.clock.Now().UTC().Format(time.RFC3339Nano)
	}
	if err := platform.RecordAll(ctx, j, cp); err != nil {
		return platform.Result{}, journalErr(err)
	}
	return a.postStatus(ctx, base, acct.AccessToken, p, ids)
}

func journalErr(err error) error {
	return errs.Wrap(err, apperr.KindTransient, "mastodon.journal", "could not record the publish checkpoint")
}

// postStatus sends the final write with the delivery's Idempotency-Key.
func (a *Adapter) postStatus(ctx context.Context, base, token string, p platform.Post, mediaIDs []string) (platform.Result, error) {
	body := map[string]any{"status": p.Text, "media_ids": mediaIDs}
	if v := p.Options["visibility"]; v != "" {
		body["visibility"] = v
	}
	if v := p.Options["spoiler_text"]; v != "" {
		body["spoiler_text"] = v
	}
	if v := p.Options["sensitive"]; v != "" {
		body["sensitive"] = v == "true"
	}
	if v := p.Options["language"]; v != "" {
		body["language"] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindPermanent, "mastodon.encode", "could not encode the status")
	}
	hdr := map[string]string{}
	if p.DeliveryID != "" {
		hdr["Idempotency-Key"] = p.DeliveryID
	}
	const what = "post status"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: base + "/api/v1/statuses", Token: token,
		Body: b, ContentType: "application/json", Header: hdr, Final: true, What: what})
	if err != nil {
		return platform.Result{}, err
	}
	if resp.Status != http.StatusOK {
		return platform.Result{}, a.apiError(resp, what)
	}
	var st status
	if err := json.Unmarshal(resp.Body, &st); err != nil || st.ID == "" {
		if err == nil {
			err = fmt.Errorf("no id")
		}
		return platform.Result{}, errs.Shape(resp, true, what, err)
	}
	return st.result(), nil
}

// mediaAttachment is the part of a MediaAttachment the adapter reads.
type mediaAttachment struct {
	ID  string  `json:"id"`
	URL *string `json:"url"`
}

// uploadMedia downloads m, uploads it and waits until it is processed.
func (a *Adapter) uploadMedia(ctx context.Context, base, token string, i int, m platform.Media) (string, error) {
	max := a.cfg.MaxImageBytes
	if m.Kind == platform.Video {
		max = a.cfg.MaxVideoBytes
	}
	src, err := platform.OpenMedia(ctx, a.cfg.Media, m, max)
	if err != nil {
		if e, ok := apperr.As(err); ok {
			e.Platform = "mastodon"
			e.Message = fmt.Sprintf("media[%d]: %s", i, e.Message)
		}
		return "", err
	}
	defer src.Close()
	// The file streams from the download into the multipart body.
	var fields [][2]string
	if m.AltText != "" {
		fields = append(fields, [2]string{"description", m.AltText})
	}
	body, n, ct, err := platformhttp.MultipartFile(fields, "file", fileName(m.URL, i), src.ContentType, src, src.Size)
	if err != nil {
		return "", errs.Wrap(err, apperr.KindPermanent, "mastodon.encode", "could not encode the media upload")
	}
	what := fmt.Sprintf("upload media[%d]", i)
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: base + "/api/v2/media", Token: token,
		Stream: body, Length: n, ContentType: ct, What: what})
	if err != nil {
		return "", src.Cause(err)
	}
	if resp.Status != http.StatusOK && resp.Status != http.StatusAccepted {
		return "", a.apiError(resp, what)
	}
	var ma mediaAttachment
	if err := json.Unmarshal(resp.Body, &ma); err != nil || ma.ID == "" {
		if err == nil {
			err = fmt.Errorf("no id")
		}
		return "", errs.Shape(resp, false, what, err)
	}
	if resp.Status == http.StatusOK && ma.URL != nil {
		return ma.ID, nil
	}
	return ma.ID, a.waitMedia(ctx, base, token, ma.ID, what)
}

// waitMedia polls GET /api/v1/media/:id until it answers 200 (206 means
// still processing).
func (a *Adapter) waitMedia(ctx context.Context, base, token, id, what string) error {
	deadline := a.clock.Now().Add(a.cfg.MediaPollTimeout)
	for {
		if err := a.clock.Sleep(ctx, a.cfg.MediaPollInterval); err != nil {
			return errs.Wrap(err, apperr.KindTransient, "mastodon.cancelled", what+": cancelled while the media was processing")
		}
		resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: base + "/api/v1/media/" + url.PathEscape(id), Token: token, What: what + " status"})
		if err != nil {
			return err
		}
		switch resp.Status {
		case http.StatusOK:
			return nil
		case http.StatusPartialContent:
		default:
			return a.apiError(resp, what)
		}
		if !a.clock.Now().Before(deadline) {
			return errs.Annotate(apperr.Newf(apperr.KindTransient, "mastodon.media_processing_timeout",
				"%s: still processing after %s", what, a.cfg.MediaPollTimeout), resp.Status, resp.Body)
		}
	}
}

// fileName is a file name for an upload, from the media URL.
func fileName(u string, i int) string {
	if pu, err := url.Parse(u); err == nil {
		if b := path.Base(pu.Path); b != "" && b != "/" && b != "." {
			return b
		}
	}
	return fmt.Sprintf("media%d", i)
}

// Reconcile implements platform.Publisher. Mastodon keeps an
// Idempotency-Key for an hour, so inside that window Reconcile re-sends the
// status with the same key: the instance answers with the original status
// if the earlier attempt created it, or creates it now — either way exactly
// one status exists and found is true. With no recorded attempt it reports
// found=false; past the window it cannot tell and returns ambiguous.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	first := p.Journal[JournalFirstSentAt]
	if first == "" {
		return platform.Result{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, first)
	if err != nil {
		return platform.Result{}, false, errs.Wrap(err, apperr.KindAmbiguous, "mastodon.journal_unreadable", "the recorded attempt time is unreadable")
	}
	if a.clock.Now().Sub(t) >= a.cfg.IdempotencyWindow-a.cfg.IdempotencyMargin {
		return platform.Result{}, false, errs.New(apperr.KindAmbiguous, "mastodon.idempotency_expired",
			"the instance no longer remembers the idempotency key; check the account's statuses by hand")
	}
	base, err := a.base(acct)
	if err != nil {
		return platform.Result{}, false, err
	}
	var ids []string
	if v := p.Journal[JournalMediaIDs]; v != "" {
		ids = strings.Split(v, ",")
	}
	res, err := a.postStatus(ctx, base, acct.AccessToken, p, ids)
	if err != nil {
		return platform.Result{}, false, err
	}
	return res, true, nil
}
