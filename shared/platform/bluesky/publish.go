package bluesky

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
	"github.com/posse-dev/posse/shared/text"
)

// Publish implements platform.Publisher.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	if !strings.HasPrefix(acct.ID, "did:") {
		return platform.Result{}, errs.New(apperr.KindPermanent, "bluesky.no_did", "the account id is not a DID")
	}
	base := a.base(acct)
	rkey := RecordKey(p.DeliveryID)
	if p.DeliveryID == "" {
		// No delivery to derive a key from: a fresh TID, without the
		// protection against double posts.
		rkey = freshTID(a.clock.Now())
	}

	embed, err := a.embed(ctx, base, acct, p)
	if err != nil {
		return platform.Result{}, err
	}
	record := map[string]any{
		"$type":     Collection,
		"text":      p.Text,
		"createdAt": a.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	if facets := a.facets(ctx, base, p.Text); len(facets) > 0 {
		record["facets"] = facets
	}
	if embed != nil {
		record["embed"] = embed
	}
	if v := p.Options["langs"]; v != "" {
		record["langs"] = strings.Split(v, ",")
	}
	body, err := json.Marshal(map[string]any{"repo": acct.ID, "collection": Collection, "rkey": rkey, "record": record})
	if err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindPermanent, "bluesky.encode", "could not encode the post")
	}
	if err := j.Record(ctx, JournalRKey, rkey); err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "bluesky.journal", "could not record the publish checkpoint")
	}
	const what = "create record"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: base + "/xrpc/com.atproto.repo.createRecord",
		Token: acct.AccessToken, Body: body, ContentType: "application/json", Final: true, What: what})
	if err != nil {
		return platform.Result{}, err
	}
	if resp.Status != http.StatusOK {
		return platform.Result{}, a.apiError(resp, what, true)
	}
	var out struct {
		URI string `json:"uri"`
		CID string `json:"cid"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || out.URI == "" {
		if err == nil {
			err = errors.New("no uri")
		}
		return platform.Result{}, errs.Shape(resp, true, what, err)
	}
	return platform.Result{ID: out.URI, URL: a.postURL(acct, rkey)}, nil
}

// Reconcile implements platform.Publisher: the record key is derived from
// the delivery id, so com.atproto.repo.getRecord tells whether the post
// exists.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	rkey := p.Journal[JournalRKey]
	if rkey == "" && p.DeliveryID != "" {
		rkey = RecordKey(p.DeliveryID)
	}
	if rkey == "" {
		return platform.Result{}, false, nil // nothing was ever sent under a known key
	}
	q := url.Values{"repo": {acct.ID}, "collection": {Collection}, "rkey": {rkey}}
	const what = "get record"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.base(acct) + "/xrpc/com.atproto.repo.getRecord?" + q.Encode(), What: what})
	if err != nil {
		return platform.Result{}, false, err
	}
	if resp.Status == http.StatusBadRequest || resp.Status == http.StatusNotFound {
		if name, _ := xrpcError(resp.Body); name == "RecordNotFound" {
			return platform.Result{}, false, nil
		}
	}
	if resp.Status != http.StatusOK {
		return platform.Result{}, false, a.apiError(resp, what, false)
	}
	var out struct {
		URI string `json:"uri"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || out.URI == "" {
		if err == nil {
			err = errors.New("no uri")
		}
		e := errs.Shape(resp, false, what, err)
		e.Kind = apperr.KindAmbiguous
		return platform.Result{}, false, e
	}
	return platform.Result{ID: out.URI, URL: a.postURL(acct, rkey)}, true, nil
}

// embed uploads the media and returns the record's embed, or a link card
// for p.Link when there is no media, or nil.
func (a *Adapter) embed(ctx context.Context, base string, acct platform.Account, p platform.Post) (map[string]any, error) {
	if len(p.Media) == 0 {
		if p.Link == "" {
			return nil, nil
		}
		title := p.Title
		if title == "" {
			title = p.Link
		}
		return map[string]any{"$type": "app.bsky.embed.external",
			"external": map[string]any{"uri": p.Link, "title": title, "description": ""}}, nil
	}
	if p.Media[0].Kind == platform.Video {
		m := p.Media[0]
		blob, err := a.uploadVideo(ctx, base, acct, m, RecordKey(p.DeliveryID+"/video"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"$type": "app.bsky.embed.video", "video": blob, "alt": m.AltText}, nil
	}
	images := make([]map[string]any, 0, len(p.Media))
	for i, m := range p.Media {
		data, ct, err := a.fetch(ctx, i, m, a.cfg.MaxImageBytes)
		if err != nil {
			return nil, err
		}
		what := fmt.Sprintf("upload media[%d]", i)
		resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: base + "/xrpc/com.atproto.repo.uploadBlob",
			Token: acct.AccessToken, Body: data, ContentType: ct, What: what})
		if err != nil {
			return nil, err
		}
		if resp.Status != http.StatusOK {
			return nil, a.apiError(resp, what, false)
		}
		var out struct {
			Blob json.RawMessage `json:"blob"`
		}
		if err := json.Unmarshal(resp.Body, &out); err != nil || len(out.Blob) == 0 || out.Blob[0] != '{' {
			if err == nil {
				err = errors.New("no blob")
			}
			return nil, errs.Shape(resp, false, what, err)
		}
		images = append(images, map[string]any{"image": out.Blob, "alt": m.AltText})
	}
	return map[string]any{"$type": "app.bsky.embed.images", "images": images}, nil
}

// fetch downloads media item i, labelling errors with its position.
func (a *Adapter) fetch(ctx context.Context, i int, m platform.Media, max int64) ([]byte, string, error) {
	data, ct, err := platform.FetchMedia(ctx, a.cfg.Media, m, max)
	if err != nil {
		return nil, "", labelMedia(err, i)
	}
	return data, ct, nil
}

// labelMedia names media item i in a download error.
func labelMedia(err error, i int) error {
	if e, ok := apperr.As(err); ok {
		e.Platform = "bluesky"
		e.Message = fmt.Sprintf("media[%d]: %s", i, e.Message)
	}
	return err
}

// uploadVideo runs the video service flow and returns the processed blob.
// The video streams from its URL into the upload (one request, read as it
// is sent), so it is never held whole.
func (a *Adapter) uploadVideo(ctx context.Context, base string, acct platform.Account, m platform.Media, name string) (json.RawMessage, error) {
	src, err := platform.OpenMedia(ctx, a.cfg.Media, m, a.cfg.MaxVideoBytes)
	if err != nil {
		return nil, labelMedia(err, 0)
	}
	defer src.Close()
	ct := src.ContentType
	aud := "did:web:"
	if u, err := url.Parse(base); err == nil {
		aud += strings.ReplaceAll(u.Host, ":", "%3A")
	}
	q := url.Values{"aud": {aud}, "lxm": {"com.atproto.repo.uploadBlob"},
		"exp": {strconv.FormatInt(a.clock.Now().Add(30*time.Minute).Unix(), 10)}}
	what := "get service auth"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: base + "/xrpc/com.atproto.server.getServiceAuth?" + q.Encode(),
		Token: acct.AccessToken, What: what})
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, a.apiError(resp, what, false)
	}
	var svc struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp.Body, &svc); err != nil || svc.Token == "" {
		if err == nil {
			err = errors.New("no token")
		}
		return nil, errs.Shape(resp, false, what, err)
	}

	what = "upload video"
	q = url.Values{"did": {acct.ID}, "name": {name + ".mp4"}}
	resp, err = a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: a.cfg.VideoBaseURL + "/xrpc/app.bsky.video.uploadVideo?" + q.Encode(),
		Token: svc.Token, Stream: src, Length: src.Size, ContentType: ct, What: what})
	if err != nil {
		return nil, labelMedia(src.Cause(err), 0)
	}
	job, jerr := decodeJob(resp.Body)
	// The service answers 409 with the existing job for a video it has seen.
	if resp.Status != http.StatusOK && !(resp.Status == http.StatusConflict && jerr == nil && job.JobID != "") {
		return nil, a.apiError(resp, what, false)
	}
	if jerr != nil || job.JobID == "" {
		if jerr == nil {
			jerr = errors.New("no jobId")
		}
		return nil, errs.Shape(resp, false, what, jerr)
	}
	deadline := a.clock.Now().Add(a.cfg.VideoPollTimeout)
	for {
		switch job.State {
		case "JOB_STATE_COMPLETED":
			if len(job.Blob) == 0 {
				return nil, errs.Shape(resp, false, what, errors.New("completed job without blob"))
			}
			return job.Blob, nil
		case "JOB_STATE_FAILED":
			return nil, errs.Annotate(apperr.Newf(apperr.KindPermanent, "bluesky.video_failed",
				"the video service could not process the video: %s", platformhttp.Clip(job.Error+" "+job.Message)), resp.Status, resp.Body)
		}
		if !a.clock.Now().Before(deadline) {
			return nil, errs.Annotate(apperr.Newf(apperr.KindTransient, "bluesky.video_timeout",
				"the video is still processing after %s", a.cfg.VideoPollTimeout), resp.Status, resp.Body)
		}
		if err := a.clock.Sleep(ctx, a.cfg.VideoPollInterval); err != nil {
			return nil, errs.Wrap(err, apperr.KindTransient, "bluesky.cancelled", "cancelled while the video was processing")
		}
		what = "video job status"
		resp, err = a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet,
			URL: a.cfg.VideoBaseURL + "/xrpc/app.bsky.video.getJobStatus?" + url.Values{"jobId": {job.JobID}}.Encode(), What: what})
		if err != nil {
			return nil, err
		}
		if resp.Status != http.StatusOK {
			return nil, a.apiError(resp, what, false)
		}
		if job, jerr = decodeJob(resp.Body); jerr != nil {
			return nil, errs.Shape(resp, false, what, jerr)
		}
	}
}

type jobStatus struct {
	JobID   string          `json:"jobId"`
	State   string          `json:"state"`
	Blob    json.RawMessage `json:"blob"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// decodeJob reads {"jobStatus": {...}}, or a bare job status.
func decodeJob(body []byte) (jobStatus, error) {
	var w struct {
		JobStatus *jobStatus `json:"jobStatus"`
		jobStatus
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return jobStatus{}, err
	}
	if w.JobStatus != nil {
		return *w.JobStatus, nil
	}
	return w.jobStatus, nil
}

var (
	linkRE    = regexp.MustCompile(`https?://[^\s<>"]+`)
	mentionRE = regexp.MustCompile(`(?:^|[\s(])(@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)`)
	tagRE     = regexp.MustCompile(`(?:^|\s)([#＃][^\s#＃]+)`)
	digitsRE  = regexp.MustCompile(`^[0-9]+$`)
)

// facet is one app.bsky.richtext.facet.
type facet struct {
	Index    facetIndex       `json:"index"`
	Features []map[string]any `json:"features"`
}

type facetIndex struct {
	ByteStart int `json:"byteStart"`
	ByteEnd   int `json:"byteEnd"`
}

// trimTrailing drops punctuation that ends a sentence rather than a URL or tag.
func trimTrailing(s string) string {
	s = strings.TrimRight(s, ".,;:!?\"'")
	if strings.HasSuffix(s, ")") && !strings.Contains(s, "(") {
		s = strings.TrimSuffix(s, ")")
	}
	return s
}

// facets finds links, mentions and hashtags in txt. Offsets are UTF-8 byte
// offsets (Go's regexp indexes are byte offsets). A mention whose handle
// does not resolve stays plain text.
func (a *Adapter) facets(ctx context.Context, base, txt string) []facet {
	var out []facet
	taken := func(st, en int) bool {
		for _, f := range out {
			if st < f.Index.ByteEnd && f.Index.ByteStart < en {
				return true
			}
		}
		return false
	}
	for _, m := range linkRE.FindAllStringIndex(txt, -1) {
		u := trimTrailing(txt[m[0]:m[1]])
		out = append(out, facet{Index: facetIndex{m[0], m[0] + len(u)},
			Features: []map[string]any{{"$type": "app.bsky.richtext.facet#link", "uri": u}}})
	}
	for _, m := range mentionRE.FindAllStringSubmatchIndex(txt, -1) {
		st, en := m[2], m[3]
		if taken(st, en) {
			continue
		}
		did := a.resolveHandle(ctx, base, txt[st+1:en])
		if did == "" {
			continue
		}
		out = append(out, facet{Index: facetIndex{st, en},
			Features: []map[string]any{{"$type": "app.bsky.richtext.facet#mention", "did": did}}})
	}
	for _, m := range tagRE.FindAllStringSubmatchIndex(txt, -1) {
		st := m[2]
		tagText := trimTrailing(txt[st:m[3]])
		en := st + len(tagText)
		_, size := utf8.DecodeRuneInString(tagText)
		tag := tagText[size:]
		if tag == "" || digitsRE.MatchString(tag) || text.Count(platform.CountGraphemes, tag) > 64 || taken(st, en) {
			continue
		}
		out = append(out, facet{Index: facetIndex{st, en},
			Features: []map[string]any{{"$type": "app.bsky.richtext.facet#tag", "tag": tag}}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index.ByteStart < out[j].Index.ByteStart })
	return out
}

// resolveHandle returns the DID of handle, or "" when it does not resolve.
func (a *Adapter) resolveHandle(ctx context.Context, base, handle string) string {
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet,
		URL: base + "/xrpc/com.atproto.identity.resolveHandle?" + url.Values{"handle": {handle}}.Encode(), What: "resolve handle"})
	if err != nil || resp.Status != http.StatusOK {
		return ""
	}
	var out struct {
		DID string `json:"did"`
	}
	if json.Unmarshal(resp.Body, &out) != nil || !strings.HasPrefix(out.DID, "did:") {
		return ""
	}
	return out.DID
}
