package tiktok

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// call POSTs body as JSON to an API path and returns the envelope's data.
func (a *Adapter) call(ctx context.Context, token, method, path string, body any, what string, final bool) (json.RawMessage, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, errs.Wrap(err, apperr.KindPermanent, "tiktok.encode", what+": could not encode the request")
		}
	}
	rq := platformhttp.Request{Method: method, URL: a.cfg.BaseURL + path, Token: token, Body: b, Final: final, What: what}
	if b != nil {
		rq.ContentType = "application/json; charset=UTF-8"
	}
	resp, err := a.api.Do(ctx, rq)
	if err != nil {
		return nil, err
	}
	var env envelope
	jerr := json.Unmarshal(resp.Body, &env)
	if resp.Status != http.StatusOK || (jerr == nil && env.Error.Code != "" && env.Error.Code != "ok") {
		return nil, a.apiError(resp, what, final)
	}
	if jerr != nil || env.Error.Code != "ok" || len(env.Data) == 0 {
		if jerr == nil {
			jerr = errors.New(`no "ok" envelope`)
		}
		return nil, errs.Shape(resp, final, what, jerr)
	}
	return env.Data, nil
}

// creator is the creator_info answer.
type creator struct {
	Username       string   `json:"creator_username"`
	Nickname       string   `json:"creator_nickname"`
	PrivacyOptions []string `json:"privacy_level_options"`
	MaxDurationSec int      `json:"max_video_post_duration_sec"`
}

func (a *Adapter) creatorInfo(ctx context.Context, acct platform.Account) (creator, error) {
	const what = "query creator info"
	data, err := a.call(ctx, acct.AccessToken, http.MethodPost, "/v2/post/publish/creator_info/query/", map[string]any{}, what, false)
	if err != nil {
		return creator{}, err
	}
	var c creator
	if err := json.Unmarshal(data, &c); err != nil {
		return creator{}, errs.Annotate(apperr.Wrap(err, apperr.KindPermanent, "tiktok.unexpected_response", what+": unexpected response"), http.StatusOK, data)
	}
	return c, nil
}

// postInfo builds post_info from the post's options.
func postInfo(p platform.Post, photo bool) map[string]any {
	info := map[string]any{"privacy_level": p.Options["privacy_level"]}
	if photo {
		info["title"] = p.Title
		info["description"] = p.Text
	} else {
		info["title"] = p.Text
	}
	for _, k := range boolOptions {
		if v, ok := p.Options[k]; ok {
			info[k] = v == "true"
		}
	}
	if v, err := strconv.Atoi(p.Options["video_cover_timestamp_ms"]); err == nil && !photo {
		info["video_cover_timestamp_ms"] = v
	}
	return info
}

// Publish implements platform.Publisher.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	if len(p.Media) == 0 {
		return platform.Result{}, errs.New(apperr.KindPermanent, "tiktok.media_required", "TikTok has no text-only posts")
	}
	level := p.Options["privacy_level"]
	ci, err := a.creatorInfo(ctx, acct)
	if err != nil {
		return platform.Result{}, err
	}
	if !slices.Contains(ci.PrivacyOptions, level) {
		e := apperr.Newf(apperr.KindPermanent, "tiktok.privacy_level_option_mismatch",
			"privacy_level %q is not one of the creator's options (%s)", level, strings.Join(ci.PrivacyOptions, ", "))
		e.PlatformCode = "privacy_level_option_mismatch"
		return platform.Result{}, errs.Annotate(e, 0, nil)
	}
	photo := p.Media[0].Kind == platform.Image
	if ci.Username == "" {
		ci.Username = acct.Handle
	}
	if !photo && a.cfg.VideoSource == SourceFileUpload {
		return a.publishFile(ctx, acct, p, j, ci.Username)
	}

	var path string
	var body map[string]any
	if photo {
		urls := make([]string, len(p.Media))
		for i, m := range p.Media {
			urls[i] = m.URL
		}
		cover, _ := strconv.Atoi(p.Options["photo_cover_index"])
		path = "/v2/post/publish/content/init/"
		body = map[string]any{"media_type": "PHOTO", "post_mode": "DIRECT_POST", "post_info": postInfo(p, true),
			"source_info": map[string]any{"source": SourcePullFromURL, "photo_cover_index": cover, "photo_images": urls}}
	} else {
		path = "/v2/post/publish/video/init/"
		body = map[string]any{"post_info": postInfo(p, false),
			"source_info": map[string]any{"source": SourcePullFromURL, "video_url": p.Media[0].URL}}
	}
	if err := j.Record(ctx, JournalInitSent, a.clock.Now().UTC().Format(time.RFC3339)); err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "tiktok.journal", "could not record the publish checkpoint")
	}
	// With pull-from-URL, init is the write that creates the post.
	publishID, _, err := a.init(ctx, acct, path, body, true)
	if err != nil {
		return platform.Result{}, err
	}
	if err := j.Record(ctx, JournalPublishID, publishID); err != nil {
		return platform.Result{}, afterInit(errs.Wrap(err, apperr.KindTransient, "tiktok.journal", "could not record the publish id"), publishID)
	}
	return a.wait(ctx, acct, publishID, level, photo, ci.Username)
}

// init calls an init endpoint and returns publish_id and upload_url.
func (a *Adapter) init(ctx context.Context, acct platform.Account, path string, body any, final bool) (string, string, error) {
	const what = "init post"
	data, err := a.call(ctx, acct.AccessToken, http.MethodPost, path, body, what, final)
	if err != nil {
		return "", "", err
	}
	var out struct {
		PublishID string `json:"publish_id"`
		UploadURL string `json:"upload_url"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.PublishID == "" {
		if err == nil {
			err = errors.New("no publish_id")
		}
		kind := apperr.KindPermanent
		if final {
			kind = apperr.KindAmbiguous
		}
		return "", "", errs.Annotate(apperr.Wrap(err, kind, "tiktok.unexpected_response", what+": unexpected response"), http.StatusOK, data)
	}
	return out.PublishID, out.UploadURL, nil
}

// publishFile downloads the video and uploads it in chunks streamed from the
// download, one in flight and none held; the last chunk is the write that
// creates the post.
func (a *Adapter) publishFile(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal, username string) (platform.Result, error) {
	src, err := platform.OpenMedia(ctx, a.cfg.Media, p.Media[0], a.cfg.MaxVideoBytes)
	if err != nil {
		if e, ok := apperr.As(err); ok {
			e.Platform = "tiktok"
			e.Message = "media[0]: " + e.Message
		}
		return platform.Result{}, err
	}
	defer src.Close()
	ct, _, _ := mime.ParseMediaType(src.ContentType)
	if !slices.Contains(videoTypes, ct) {
		ct = "video/mp4"
	}
	size := src.Size
	chunk, count := chunkPlan(size, a.cfg.ChunkSize)
	body := map[string]any{"post_info": postInfo(p, false), "source_info": map[string]any{
		"source": SourceFileUpload, "video_size": size, "chunk_size": chunk, "total_chunk_count": count}}
	publishID, uploadURL, err := a.init(ctx, acct, "/v2/post/publish/video/init/", body, false)
	if err != nil {
		return platform.Result{}, err
	}
	if uploadURL == "" {
		return platform.Result{}, errs.Annotate(apperr.New(apperr.KindPermanent, "tiktok.unexpected_response", "init post: no upload_url for FILE_UPLOAD"), http.StatusOK, nil)
	}
	if err := j.Record(ctx, JournalPublishID, publishID); err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "tiktok.journal", "could not record the publish id")
	}
	for i := 0; i < count; i++ {
		first := int64(i) * chunk
		last := first + chunk - 1
		if i == count-1 {
			last = size - 1
		}
		final := i == count-1
		what := fmt.Sprintf("upload chunk %d/%d", i+1, count)
		n := last - first + 1
		resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPut, URL: uploadURL, Stream: src.Next(n), Length: n, ContentType: ct,
			Header: map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", first, last, size)}, Final: final, What: what})
		if err != nil {
			// A chunk cut short by its source never completed, so the
			// platform did not take it: not ambiguous.
			return platform.Result{}, src.Cause(err)
		}
		if resp.Status != http.StatusPartialContent && resp.Status != http.StatusCreated && resp.Status != http.StatusOK {
			return platform.Result{}, a.apiError(resp, what, final)
		}
	}
	return a.wait(ctx, acct, publishID, p.Options["privacy_level"], false, username)
}

// status is the status fetch answer.
type status struct {
	Status     string  `json:"status"`
	FailReason string  `json:"fail_reason"`
	PostIDs    []int64 `json:"publicaly_available_post_id"` // sic
}

func (a *Adapter) fetchStatus(ctx context.Context, token, publishID string) (status, platformhttp.Response, error) {
	const what = "fetch status"
	data, err := a.call(ctx, token, http.MethodPost, "/v2/post/publish/status/fetch/", map[string]string{"publish_id": publishID}, what, false)
	if err != nil {
		return status{}, platformhttp.Response{}, err
	}
	resp := platformhttp.Response{Status: http.StatusOK, Body: data}
	var st status
	if err := json.Unmarshal(data, &st); err != nil || st.Status == "" {
		if err == nil {
			err = errors.New("no status")
		}
		return status{}, resp, errs.Shape(resp, false, what, err)
	}
	return st, resp, nil
}

// afterInit turns a failure after the post was initiated into ambiguous:
// the post may still appear, so the caller must reconcile, not retry.
func afterInit(err error, publishID string) error {
	e, ok := apperr.As(err)
	if !ok {
		e = apperr.Wrap(err, apperr.KindAmbiguous, "tiktok.status_unknown", "")
	}
	out := *e
	out.Err = err
	out.Kind, out.Retryable, out.RetryAfter = apperr.KindAmbiguous, false, 0
	out.Code = "tiktok.status_unknown"
	out.Message = "publish " + publishID + " was initiated but its outcome is unknown (" + e.Message + "); reconcile before retrying"
	return &out
}

// postURL is the public URL of a post.
func (a *Adapter) postURL(username, id string, photo bool) string {
	kind := "video"
	if photo {
		kind = "photo"
	}
	return a.cfg.WebURL + "/@" + username + "/" + kind + "/" + id
}

// wait polls the status of an initiated post until it is published (and,
// for public posts, has its id) or fails. A post that completes without an
// id (private, or still in moderation at the timeout) is returned with the
// publish_id as its id.
func (a *Adapter) wait(ctx context.Context, acct platform.Account, publishID, level string, photo bool, username string) (platform.Result, error) {
	deadline := a.clock.Now().Add(a.cfg.PollTimeout)
	complete := false
	for {
		if err := a.clock.Sleep(ctx, a.cfg.PollInterval); err != nil {
			return platform.Result{}, afterInit(errs.Wrap(err, apperr.KindAmbiguous, "tiktok.cancelled", "cancelled while waiting"), publishID)
		}
		st, resp, err := a.fetchStatus(ctx, acct.AccessToken, publishID)
		if err != nil {
			return platform.Result{}, afterInit(err, publishID)
		}
		switch st.Status {
		case "FAILED":
			return platform.Result{}, a.failReasonErr(st.FailReason, resp)
		case "SEND_TO_USER_INBOX":
			return platform.Result{ID: publishID}, nil
		case "PUBLISH_COMPLETE":
			if len(st.PostIDs) > 0 {
				id := strconv.FormatInt(st.PostIDs[0], 10)
				return platform.Result{ID: id, URL: a.postURL(username, id, photo)}, nil
			}
			if level != PrivacyLevels[0] {
				return platform.Result{ID: publishID}, nil // private posts never get a public id
			}
			complete = true
		}
		if !a.clock.Now().Before(deadline) {
			if complete {
				return platform.Result{ID: publishID}, nil
			}
			return platform.Result{}, afterInit(errs.Annotate(apperr.Newf(apperr.KindAmbiguous, "tiktok.processing",
				"still %s after %s", st.Status, a.cfg.PollTimeout), resp.Status, resp.Body), publishID)
		}
	}
}

// Reconcile implements platform.Publisher. With a journaled publish_id it
// asks the status endpoint. Without one, if init was sent (its answer was
// lost) it scans the creator's recent public videos for the caption; a
// private or still-moderated post cannot be seen there, so no match is
// ambiguous. If init was never sent, the post does not exist.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	photo := len(p.Media) > 0 && p.Media[0].Kind == platform.Image
	if pid := p.Journal[JournalPublishID]; pid != "" {
		st, resp, err := a.fetchStatus(ctx, acct.AccessToken, pid)
		if err != nil {
			return platform.Result{}, false, err
		}
		switch st.Status {
		case "PUBLISH_COMPLETE":
			if len(st.PostIDs) > 0 {
				id := strconv.FormatInt(st.PostIDs[0], 10)
				return platform.Result{ID: id, URL: a.postURL(acct.Handle, id, photo)}, true, nil
			}
			return platform.Result{ID: pid}, true, nil
		case "SEND_TO_USER_INBOX":
			return platform.Result{ID: pid}, true, nil
		case "FAILED":
			return platform.Result{}, false, nil
		}
		// Still processing: the status endpoint will tell once it ends,
		// so ask again later (transient), not "cannot tell".
		return platform.Result{}, false, errs.Annotate(apperr.Newf(apperr.KindTransient, "tiktok.processing",
			"publish %s is still %s", pid, st.Status), resp.Status, resp.Body)
	}
	if p.Journal[JournalInitSent] == "" {
		return platform.Result{}, false, nil
	}
	const what = "list videos"
	data, err := a.call(ctx, acct.AccessToken, http.MethodPost, "/v2/video/list/?fields=id,title,create_time,share_url",
		map[string]int{"max_count": a.cfg.ReconcileListCount}, what, false)
	if err != nil {
		return platform.Result{}, false, err
	}
	var list struct {
		Videos []struct {
			ID       string `json:"id"`
			Title    string `json:"title"`
			ShareURL string `json:"share_url"`
		} `json:"videos"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return platform.Result{}, false, errs.Annotate(apperr.Wrap(err, apperr.KindAmbiguous, "tiktok.unexpected_response", what+": unexpected response"), http.StatusOK, data)
	}
	for _, v := range list.Videos {
		if v.ID != "" && v.Title == p.Text {
			u := v.ShareURL
			if u == "" {
				u = a.postURL(acct.Handle, v.ID, photo)
			}
			return platform.Result{ID: v.ID, URL: u}, true, nil
		}
	}
	return platform.Result{}, false, errs.New(apperr.KindAmbiguous, "tiktok.not_visible",
		"init was sent but its answer was lost, and no recent public video matches; check the creator's profile")
}

// WhoAmI implements platform.Identifier with /v2/user/info/; the handle
// comes from creator_info when the token has video.publish.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	const what = "user info"
	data, err := a.call(ctx, acct.AccessToken, http.MethodGet, "/v2/user/info/?fields=open_id,union_id,display_name,avatar_url", nil, what, false)
	if err != nil {
		return platform.Identity{}, err
	}
	var out struct {
		User struct {
			OpenID      string `json:"open_id"`
			DisplayName string `json:"display_name"`
		} `json:"user"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.User.OpenID == "" {
		if err == nil {
			err = errors.New("no open_id")
		}
		return platform.Identity{}, errs.Annotate(apperr.Wrap(err, apperr.KindPermanent, "tiktok.unexpected_response", what+": unexpected response"), http.StatusOK, data)
	}
	id := platform.Identity{ID: out.User.OpenID, Name: out.User.DisplayName}
	if ci, err := a.creatorInfo(ctx, acct); err == nil {
		id.Handle = ci.Username
	}
	return id, nil
}
