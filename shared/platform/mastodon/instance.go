package mastodon

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

// Limits are an instance's posting limits, from GET /api/v2/instance.
type Limits struct {
	MaxCharacters            int      `json:"maxCharacters"`
	MaxMediaAttachments      int      `json:"maxMediaAttachments"`
	CharactersReservedPerURL int      `json:"charactersReservedPerUrl"`
	SupportedMIMETypes       []string `json:"supportedMimeTypes,omitempty"`
	ImageSizeLimit           int64    `json:"imageSizeLimit"`
	ImageMatrixLimit         int64    `json:"imageMatrixLimit"`
	VideoSizeLimit           int64    `json:"videoSizeLimit"`
	DescriptionLimit         int      `json:"descriptionLimit,omitempty"` // 4.4+; 0 when the instance does not say
}

// InstanceLimits reads the limits of the instance at baseURL. Values the
// instance omits keep the adapter's configured defaults. An instance that
// cannot be reached is an invalid error (code "mastodon.instance_unreachable")
// naming it, since this is asked while connecting an account.
func (a *Adapter) InstanceLimits(ctx context.Context, baseURL string) (Limits, error) {
	instance := strings.TrimRight(baseURL, "/")
	const what = "read instance configuration"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.route(instance) + "/api/v2/instance", What: what})
	if err != nil {
		return Limits{}, unreachable(instance, err)
	}
	if resp.Status != http.StatusOK {
		return Limits{}, a.apiError(resp, what)
	}
	var in struct {
		Configuration struct {
			Statuses struct {
				MaxCharacters            int `json:"max_characters"`
				MaxMediaAttachments      int `json:"max_media_attachments"`
				CharactersReservedPerURL int `json:"characters_reserved_per_url"`
			} `json:"statuses"`
			MediaAttachments struct {
				SupportedMIMETypes []string `json:"supported_mime_types"`
				ImageSizeLimit     int64    `json:"image_size_limit"`
				ImageMatrixLimit   int64    `json:"image_matrix_limit"`
				VideoSizeLimit     int64    `json:"video_size_limit"`
				DescriptionLimit   int      `json:"description_limit"`
			} `json:"media_attachments"`
		} `json:"configuration"`
	}
	if err := json.Unmarshal(resp.Body, &in); err != nil {
		return Limits{}, errs.Shape(resp, false, what, err)
	}
	st, ma := in.Configuration.Statuses, in.Configuration.MediaAttachments
	l := Limits{
		MaxCharacters: a.cfg.MaxCharacters, MaxMediaAttachments: a.cfg.MaxMediaAttachments,
		CharactersReservedPerURL: 23, ImageSizeLimit: a.cfg.MaxImageBytes, VideoSizeLimit: a.cfg.MaxVideoBytes,
		ImageMatrixLimit: ma.ImageMatrixLimit, SupportedMIMETypes: ma.SupportedMIMETypes, DescriptionLimit: ma.DescriptionLimit,
	}
	if st.MaxCharacters > 0 {
		l.MaxCharacters = st.MaxCharacters
	}
	if st.MaxMediaAttachments > 0 {
		l.MaxMediaAttachments = st.MaxMediaAttachments
	}
	if st.CharactersReservedPerURL > 0 {
		l.CharactersReservedPerURL = st.CharactersReservedPerURL
	}
	if ma.ImageSizeLimit > 0 {
		l.ImageSizeLimit = ma.ImageSizeLimit
	}
	if ma.VideoSizeLimit > 0 {
		l.VideoSizeLimit = ma.VideoSizeLimit
	}
	return l, nil
}

// WhoAmI implements platform.Identifier with verify_credentials. The handle
// is the full address, user@instance.
func (a *Adapter) WhoAmI(ctx context.Context, acct platform.Account) (platform.Identity, error) {
	instance, err := a.instance(acct)
	if err != nil {
		return platform.Identity{}, err
	}
	const what = "verify credentials"
	resp, err := a.api.Do(ctx, platformhttp.Request{Method: http.MethodGet, URL: a.route(instance) + "/api/v1/accounts/verify_credentials", Token: acct.AccessToken, What: what})
	if err != nil {
		return platform.Identity{}, unreachable(instance, err)
	}
	if resp.Status != http.StatusOK {
		return platform.Identity{}, a.apiError(resp, what)
	}
	var me struct {
		ID          string `json:"id"`
		Username    string `json:"username"`
		Acct        string `json:"acct"`
		DisplayName string `json:"display_name"`
	}
	if err := json.Unmarshal(resp.Body, &me); err != nil || me.ID == "" {
		if err == nil {
			err = errors.New("no id")
		}
		return platform.Identity{}, errs.Shape(resp, false, what, err)
	}
	handle := me.Acct
	if handle == "" {
		handle = me.Username
	}
	if !strings.Contains(handle, "@") {
		// The account's own instance, even when calls are routed elsewhere.
		if u, err := url.Parse(instance); err == nil && u.Host != "" {
			handle += "@" + u.Host
		}
	}
	return platform.Identity{ID: me.ID, Handle: handle, Name: me.DisplayName}, nil
}

// unreachable turns a transport failure while connecting into an invalid
// error naming the instance.
func unreachable(base string, cause error) error {
	host := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	e := apperr.Wrap(cause, apperr.KindInvalid, "mastodon.instance_unreachable",
		fmt.Sprintf("the Mastodon instance %s could not be reached", host))
	e.Problems = []apperr.Problem{{Field: "baseUrl", Message: "instance " + host + " could not be reached"}}
	return errs.Annotate(e, 0, nil)
}
