package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// Identify asks the platform who t belongs to. The connection service uses
// an adapter's WhoAmI when one is configured and falls back to this.
func (p *Provider) Identify(ctx context.Context, t Token) (platform.Identity, error) {
	if t.AccessToken == "" {
		return platform.Identity{}, errors.New("oauth: identify: no access token")
	}
	var (
		endpoint = p.ep.IdentityURL
		bearer   = t.AccessToken
	)
	switch p.name {
	case platform.Facebook:
		endpoint, bearer = withQuery(endpoint, url.Values{"fields": {"id,name"}, "access_token": {t.AccessToken}}), ""
	case platform.Instagram:
		endpoint, bearer = withQuery(endpoint, url.Values{"fields": {"user_id,username"}, "access_token": {t.AccessToken}}), ""
	case platform.Threads:
		endpoint, bearer = withQuery(endpoint, url.Values{"fields": {"id,username,name"}, "access_token": {t.AccessToken}}), ""
	case platform.TikTok:
		endpoint = withQuery(endpoint, url.Values{"fields": {"open_id,display_name"}})
	}
	resp, err := p.call(ctx, http.MethodGet, endpoint, nil, "", bearer, identifyWhat)
	if err != nil {
		return platform.Identity{}, err
	}
	if resp.status != http.StatusOK {
		switch p.name {
		case platform.Facebook, platform.Instagram, platform.Threads:
			return platform.Identity{}, p.graphError(resp, identifyWhat)
		}
		return platform.Identity{}, p.httpError(resp, "", 0, identifyWhat)
	}
	id, err := p.parseIdentity(resp.body)
	if err == nil && id.ID == "" && t.UserID != "" {
		id.ID = t.UserID
	}
	if err != nil || id.ID == "" {
		if err == nil {
			err = errors.New("no account id")
		}
		e := p.errorf(apperr.KindPermanent, "oauth.bad_response", "%s answered %s with an unexpected response", p.name, identifyWhat)
		e.Err = fmt.Errorf("%s identify: %w", p.name, err)
		e.Redacted = Redact(resp.body)
		return platform.Identity{}, e
	}
	return id, nil
}

// parseIdentity reads each platform's "who am I" answer. Numbers are kept
// as text: Meta user ids do not fit a float64.
func (p *Provider) parseIdentity(body []byte) (platform.Identity, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	switch p.name {
	case platform.X:
		var v struct {
			Data struct {
				ID       string `json:"id"`
				Name     string `json:"name"`
				Username string `json:"username"`
			} `json:"data"`
		}
		if err := dec.Decode(&v); err != nil {
			return platform.Identity{}, err
		}
		return platform.Identity{ID: v.Data.ID, Handle: v.Data.Username, Name: v.Data.Name}, nil
	case platform.LinkedIn:
		var v struct {
			Sub  string `json:"sub"`
			Name string `json:"name"`
		}
		if err := dec.Decode(&v); err != nil || v.Sub == "" {
			return platform.Identity{}, err
		}
		return platform.Identity{ID: "urn:li:person:" + v.Sub, Handle: v.Name, Name: v.Name}, nil
	case platform.TikTok:
		var v struct {
			Data struct {
				User struct {
					OpenID      string `json:"open_id"`
					DisplayName string `json:"display_name"`
				} `json:"user"`
			} `json:"data"`
		}
		if err := dec.Decode(&v); err != nil {
			return platform.Identity{}, err
		}
		u := v.Data.User
		return platform.Identity{ID: u.OpenID, Handle: u.DisplayName, Name: u.DisplayName}, nil
	}
	var v struct {
		ID       flexID `json:"id"`
		UserID   flexID `json:"user_id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	}
	if err := dec.Decode(&v); err != nil {
		return platform.Identity{}, err
	}
	id := string(v.UserID)
	if id == "" {
		id = string(v.ID)
	}
	handle := v.Username
	if handle == "" {
		handle = v.Name
	}
	name := v.Name
	if name == "" {
		name = handle
	}
	return platform.Identity{ID: id, Handle: handle, Name: name}, nil
}

// flexID is an id sent as a JSON string or a JSON number, kept as text.
type flexID string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return fmt.Errorf("id is neither a string nor a number: %w", err)
	}
	*f = flexID(n.String())
	return nil
}
