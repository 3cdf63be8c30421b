package threads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/platformhttp"
)

// Publish implements platform.Publisher.
func (a *Adapter) Publish(ctx context.Context, acct platform.Account, p platform.Post, j platform.Journal) (platform.Result, error) {
	var container string
	var err error
	switch len(p.Media) {
	case 0:
		params := url.Values{"media_type": {"TEXT"}, "text": {p.Text}}
		if p.Link != "" {
			params.Set("link_attachment", p.Link)
		}
		container, err = a.createContainer(ctx, acct, params, "create text container")
	case 1:
		container, err = a.createContainer(ctx, acct, mediaParams(p.Media[0], p.Text, false), "create media container")
	default:
		children := make([]string, 0, len(p.Media))
		for i, m := range p.Media {
			id, err := a.createContainer(ctx, acct, mediaParams(m, "", true), fmt.Sprintf("create carousel item %d", i))
			if err != nil {
				return platform.Result{}, err
			}
			children = append(children, id)
		}
		for i, id := range children {
			if err := a.waitFinished(ctx, acct, id, fmt.Sprintf("carousel item %d", i)); err != nil {
				return platform.Result{}, err
			}
		}
		container, err = a.createContainer(ctx, acct, url.Values{"media_type": {"CAROUSEL"}, "text": {p.Text},
			"children": {strings.Join(children, ",")}}, "create carousel container")
	}
	if err != nil {
		return platform.Result{}, err
	}
	if err := a.waitFinished(ctx, acct, container, "container"); err != nil {
		return platform.Result{}, err
	}
	if err := j.Record(ctx, JournalContainerID, container); err != nil {
		return platform.Result{}, errs.Wrap(err, apperr.KindTransient, "threads.journal", "could not record the container id")
	}

	const what = "publish"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: a.endpoint(acct.ID + "/threads_publish"), Token: acct.AccessToken,
		Body: []byte(url.Values{"creation_id": {container}}.Encode()), ContentType: "application/x-www-form-urlencoded", Final: true, What: what})
	if err != nil {
		return platform.Result{}, err
	}
	if resp.Status != http.StatusOK {
		return platform.Result{}, a.apiError(resp, what, true)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || out.ID == "" {
		if err == nil {
			err = errors.New("no id")
		}
		return platform.Result{}, errs.Shape(resp, true, what, err)
	}
	// The post exists now; a failed permalink lookup must not fail it.
	return platform.Result{ID: out.ID, URL: a.permalink(ctx, acct, out.ID)}, nil
}

// mediaParams are the container parameters of one media item.
func mediaParams(m platform.Media, text string, carouselItem bool) url.Values {
	v := url.Values{}
	if m.Kind == platform.Video {
		v.Set("media_type", "VIDEO")
		v.Set("video_url", m.URL)
	} else {
		v.Set("media_type", "IMAGE")
		v.Set("image_url", m.URL)
	}
	if m.AltText != "" {
		v.Set("alt_text", m.AltText)
	}
	if carouselItem {
		v.Set("is_carousel_item", "true")
	} else if text != "" {
		v.Set("text", text)
	}
	return v
}

// createContainer creates a media container and returns its id.
func (a *Adapter) createContainer(ctx context.Context, acct platform.Account, params url.Values, what string) (string, error) {
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodPost, URL: a.endpoint(acct.ID + "/threads"), Token: acct.AccessToken,
		Body: []byte(params.Encode()), ContentType: "application/x-www-form-urlencoded", What: what})
	if err != nil {
		return "", err
	}
	if resp.Status != http.StatusOK {
		return "", a.apiError(resp, what, false)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || out.ID == "" {
		if err == nil {
			err = errors.New("no id")
		}
		return "", errs.Shape(resp, false, what, err)
	}
	return out.ID, nil
}

// containerStatus is a container's status answer.
type containerStatus struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	ErrorMessage string `json:"error_message"`
}

func (a *Adapter) readContainer(ctx context.Context, acct platform.Account, id, what string) (containerStatus, platformhttp.Response, error) {
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.endpoint(url.PathEscape(id)) + "?fields=status,error_message",
		Token: acct.AccessToken, What: what})
	if err != nil {
		return containerStatus{}, resp, err
	}
	if resp.Status != http.StatusOK {
		return containerStatus{}, resp, a.apiError(resp, what, false)
	}
	var st containerStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil || st.Status == "" {
		if err == nil {
			err = errors.New("no status")
		}
		return containerStatus{}, resp, errs.Shape(resp, false, what, err)
	}
	return st, resp, nil
}

// waitFinished polls a container until it is FINISHED.
func (a *Adapter) waitFinished(ctx context.Context, acct platform.Account, id, label string) error {
	what := label + " status"
	deadline := a.clock.Now().Add(a.cfg.PollTimeout)
	for {
		st, resp, err := a.readContainer(ctx, acct, id, what)
		if err != nil {
			return err
		}
		switch st.Status {
		case "FINISHED":
			return nil
		case "ERROR", "EXPIRED":
			return containerErr(st, resp, label)
		case "PUBLISHED":
			return errs.Annotate(apperr.New(apperr.KindPermanent, "threads.container_published", label+": the container is already published"), resp.Status, resp.Body)
		}
		if !a.clock.Now().Before(deadline) {
			return errs.Annotate(apperr.Newf(apperr.KindTransient, "threads.container_timeout", "%s: still %s after %s", label, st.Status, a.cfg.PollTimeout), resp.Status, resp.Body)
		}
		if err := a.clock.Sleep(ctx, a.cfg.PollInterval); err != nil {
			return errs.Wrap(err, apperr.KindTransient, "threads.cancelled", label+": cancelled while waiting for the container")
		}
	}
}

// containerErr classifies a container in ERROR or EXPIRED: download
// failures, unknown errors and expiry are worth a new container (transient);
// format problems are permanent.
func containerErr(st containerStatus, resp platformhttp.Response, label string) error {
	var e *apperr.Error
	switch {
	case st.Status == "EXPIRED":
		e = apperr.New(apperr.KindTransient, "threads.container_expired", label+": the container expired")
	case st.ErrorMessage == "FAILED_DOWNLOADING_VIDEO" || st.ErrorMessage == "UNKNOWN" || st.ErrorMessage == "":
		e = apperr.New(apperr.KindTransient, "threads.media_fetch", label+": Threads could not download or process the media ("+st.ErrorMessage+")")
	default:
		e = apperr.New(apperr.KindPermanent, "threads.media_rejected", label+": Threads rejected the media ("+st.ErrorMessage+")")
	}
	e.PlatformCode = st.ErrorMessage
	if e.PlatformCode == "" {
		e.PlatformCode = st.Status
	}
	return errs.Annotate(e, resp.Status, resp.Body)
}

// permalink looks up a post's public URL; "" when the lookup fails.
func (a *Adapter) permalink(ctx context.Context, acct platform.Account, mediaID string) string {
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.endpoint(url.PathEscape(mediaID)) + "?fields=permalink",
		Token: acct.AccessToken, What: "permalink"})
	if err != nil || resp.Status != http.StatusOK {
		return ""
	}
	var out struct {
		Permalink string `json:"permalink"`
	}
	if json.Unmarshal(resp.Body, &out) != nil {
		return ""
	}
	return out.Permalink
}

// Reconcile implements platform.Publisher by reading the journaled
// container's status. PUBLISHED means the post exists; its media id is
// looked up among the account's recent threads by text (Threads does not
// link a container to the post it became). When no recent thread matches,
// the result carries the container id. Any other status means the publish
// did not happen. Without a journaled container the final write was never
// sent.
func (a *Adapter) Reconcile(ctx context.Context, acct platform.Account, p platform.Post) (platform.Result, bool, error) {
	container := p.Journal[JournalContainerID]
	if container == "" {
		return platform.Result{}, false, nil
	}
	st, _, err := a.readContainer(ctx, acct, container, "container status")
	if err != nil {
		return platform.Result{}, false, err
	}
	if st.Status != "PUBLISHED" {
		return platform.Result{}, false, nil
	}
	q := url.Values{"fields": {"id,permalink,text,timestamp"}, "limit": {fmt.Sprint(a.cfg.ReconcileListLimit)}}
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.endpoint(acct.ID+"/threads") + "?" + q.Encode(), Token: acct.AccessToken, What: "list threads"})
	if err == nil && resp.Status == http.StatusOK {
		var list struct {
			Data []struct {
				ID        string `json:"id"`
				Permalink string `json:"permalink"`
				Text      string `json:"text"`
			} `json:"data"`
		}
		if json.Unmarshal(resp.Body, &list) == nil {
			for _, t := range list.Data {
				if t.Text == p.Text && t.ID != "" {
					return platform.Result{ID: t.ID, URL: t.Permalink}, true, nil
				}
			}
		}
	}
	return platform.Result{ID: container}, true, nil
}

// WhoAmI implements platform.Identifier with GET /me.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	const what = "me"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.endpoint("me") + "?fields=id,username,name", Token: acct.AccessToken, What: what})
	if err != nil {
		return platform.Identity{}, err
	}
	if resp.Status != http.StatusOK {
		return platform.Identity{}, a.apiError(resp, what, false)
	}
	var me struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	}
	if err := json.Unmarshal(resp.Body, &me); err != nil || me.ID == "" {
		if err == nil {
			err = errors.New("no id")
		}
		return platform.Identity{}, errs.Shape(resp, false, what, err)
	}
	return platform.Identity{ID: me.ID, Handle: me.Username, Name: me.Name}, nil
}
