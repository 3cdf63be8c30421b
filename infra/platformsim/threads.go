package platformsim

// Threads: graph.threads.net under /threads (any API version segment):
// OAuth (authorize with the "#_" code suffix, code exchange, th_exchange_token
// long-lived exchange, th_refresh_token extension), /me, the container model
// (create → IN_PROGRESS/FINISHED/ERROR/EXPIRED → threads_publish →
// PUBLISHED), media lookup with permalink, the user's thread list, and
// Graph-style errors (HTTP 400 with code/error_subcode).

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesThreads) }

const (
	thName          = "threads"
	thCodeTTL       = time.Hour
	thShortTTL      = time.Hour
	thLongTTL       = 5183944 * time.Second
	thContainerTTL  = 24 * time.Hour
	thMaxChars      = 500
	thMaxLinks      = 5
	thMaxCarousel   = 20
	thMaxImageBytes = 8 << 20
	thMaxVideoBytes = 1 << 30
)

type thToken struct {
	IssuedAt  time.Time
	LongLived bool
}

type thContainer struct {
	ID, Owner, MediaType, Text, MediaURL, LinkAttachment string
	IsCarouselItem                                       bool
	Children                                             []string
	Status, ErrorMessage                                 string
	Polls                                                int
	CreatedAt                                            time.Time
}

type thMedia struct {
	ID, Owner, Text, MediaType, Shortcode, Permalink string
	Timestamp                                        time.Time
}

func (s *Server) routesThreads() {
	s.handle("GET /threads/oauth/authorize", s.thAuthorize)
	s.handle("POST /threads/oauth/access_token", s.thCodeExchange)
	s.handle("GET /threads/access_token", s.thLongLived)
	s.handle("GET /threads/refresh_access_token", s.thRefresh)
	s.handle("GET /threads/{version}/me", s.thMe)
	s.handle("POST /threads/{version}/{uid}/threads", s.thCreateContainer)
	s.handle("GET /threads/{version}/{uid}/threads", s.thList)
	s.handle("POST /threads/{version}/{uid}/threads_publish", s.thPublish)
	s.handle("GET /threads/{version}/{id}", s.thGetObject)
}

// thErr answers a Graph-style error; codes 1 and 2 are marked transient.
func thErr(w http.ResponseWriter, status, code, subcode int, msg string) {
	graphError(w, graphErr{Status: status, Code: code, Subcode: subcode, Message: msg, Transient: code == 1 || code == 2})
}

// thTokenOf is the request's token: a Bearer or OAuth header, or the
// access_token parameter.
func thTokenOf(r *http.Request) string {
	if t := headerToken(r); t != "" {
		return t
	}
	return r.FormValue("access_token")
}

// thAPI authenticates a Graph call and applies the generic faults.
func (s *Server) thAPI(w http.ResponseWriter, r *http.Request) *Account {
	slowFault(s, r, thName)
	_ = r.ParseForm()
	tok := thTokenOf(r)
	a, ok := s.accountByToken(thName, tok)
	if !ok {
		if _, known := s.thTokenInfo(tok); known {
			thErr(w, http.StatusBadRequest, 190, 463, "Error validating access token: Session has expired.")
		} else {
			thErr(w, http.StatusBadRequest, 190, 0, "Invalid OAuth access token - Cannot parse access token")
		}
		return nil
	}
	if f := s.takeFault(thName, FaultRateLimit, FaultServerError, FaultExpiredToken); f != nil {
		switch f.Kind {
		case FaultRateLimit:
			mins := int(math.Ceil(f.resetAfter().Minutes()))
			w.Header().Set("X-Business-Use-Case-Usage", fmt.Sprintf(
				`{"%s":[{"type":"threads","call_count":100,"total_cputime":12,"total_time":15,"estimated_time_to_regain_access":%d}]}`, a.ID, mins))
			thErr(w, http.StatusBadRequest, 17, 0, "User request limit reached")
		case FaultServerError:
			thErr(w, f.status(http.StatusInternalServerError), 2, 0, "An unexpected error has occurred. Please retry your request later.")
		case FaultExpiredToken:
			thErr(w, http.StatusBadRequest, 190, 463, "Error validating access token: Session has expired on "+s.now().UTC().Format(time.RFC1123)+".")
		}
		return nil
	}
	w.Header().Set("X-Business-Use-Case-Usage", fmt.Sprintf(
		`{"%s":[{"type":"threads","call_count":1,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}`, a.ID))
	return a
}

func (s *Server) thTokenInfo(tok string) (*thToken, bool) {
	var t *thToken
	s.with(func(st map[string]any) { t, _ = st["threads|tok|"+tok].(*thToken) })
	return t, t != nil
}

func (s *Server) thAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("redirect_uri") == "" || !clientIDOK(s, thName, q.Get("client_id")) {
		thErr(w, http.StatusBadRequest, 100, 0, "Invalid platform app: client_id, redirect_uri and response_type=code are required")
		return
	}
	if s.takeFault(thName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{"error": {"access_denied"}, "error_reason": {"user_denied"},
			"error_description": {"Permissions error"}, "state": {q.Get("state")}}, "_")
		return
	}
	a := clientAccount(s, thName, q.Get("client_id"), q.Get(SimUserParam), "threads_user_", func() string { return randDigits(17) })
	code := issueCode(s, thName, "AQ"+randB64(48), authCode{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"), AccountID: a.ID})
	// Meta appends "#_" to the redirect; clients must strip it from copied codes.
	redirectWith(w, r, q.Get("redirect_uri"), codeParams(code, q.Get("state")), "_")
}

func (s *Server) thCodeExchange(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if !clientIDOK(s, thName, r.PostFormValue("client_id")) {
		thErr(w, http.StatusBadRequest, 101, 0, "Error validating application. Invalid application ID.")
		return
	}
	if !clientSecretOK(s, thName, r.PostFormValue("client_secret")) {
		thErr(w, http.StatusBadRequest, 1, 0, "Error validating client secret.")
		return
	}
	if r.PostFormValue("grant_type") != "authorization_code" {
		thErr(w, http.StatusBadRequest, 100, 0, "Unsupported grant_type")
		return
	}
	c, ok := redeemCode(s, thName, r.PostFormValue("code"), r.PostFormValue("client_id"), r.PostFormValue("redirect_uri"), thCodeTTL)
	if s.takeFault(thName, FaultInvalidGrant) != nil || !ok {
		thErr(w, http.StatusBadRequest, 100, 36007, "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request")
		return
	}
	a, ok := s.accountByID(thName, c.AccountID)
	if !ok {
		thErr(w, http.StatusBadRequest, 100, 36007, "Error validating verification code.")
		return
	}
	tok := "THAA" + randB64(96)
	s.setToken(a, tok, s.now().Add(thShortTTL))
	s.with(func(st map[string]any) { st["threads|tok|"+tok] = &thToken{IssuedAt: s.now()} })
	uid, _ := strconv.ParseInt(a.ID, 10, 64)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "user_id": uid})
}

// thNewLongLived replaces a's token with a fresh 60-day one.
func (s *Server) thNewLongLived(w http.ResponseWriter, a *Account) {
	tok := "THAA" + randB64(128)
	s.setToken(a, tok, s.now().Add(thLongTTL))
	s.with(func(st map[string]any) { st["threads|tok|"+tok] = &thToken{IssuedAt: s.now(), LongLived: true} })
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(thLongTTL.Seconds())})
}

func (s *Server) thLongLived(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, thName)
	q := r.URL.Query()
	if q.Get("grant_type") != "th_exchange_token" {
		thErr(w, http.StatusBadRequest, 100, 0, "grant_type must be th_exchange_token")
		return
	}
	if !clientSecretOK(s, thName, q.Get("client_secret")) {
		thErr(w, http.StatusBadRequest, 1, 0, "Error validating client secret.")
		return
	}
	a, ok := s.accountByToken(thName, q.Get("access_token"))
	info, _ := s.thTokenInfo(q.Get("access_token"))
	if s.takeFault(thName, FaultInvalidGrant) != nil || !ok {
		thErr(w, http.StatusBadRequest, 190, 0, "Error validating access token.")
		return
	}
	if info != nil && info.LongLived {
		thErr(w, http.StatusBadRequest, 100, 0, "The access token is already long-lived")
		return
	}
	s.thNewLongLived(w, a)
}

func (s *Server) thRefresh(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, thName)
	q := r.URL.Query()
	if q.Get("grant_type") != "th_refresh_token" {
		thErr(w, http.StatusBadRequest, 100, 0, "grant_type must be th_refresh_token")
		return
	}
	a, ok := s.accountByToken(thName, q.Get("access_token"))
	if s.takeFault(thName, FaultInvalidGrant) != nil || !ok {
		thErr(w, http.StatusBadRequest, 190, 0, "Error validating access token.")
		return
	}
	// Tokens registered directly (tests) count as old long-lived tokens.
	if info, known := s.thTokenInfo(q.Get("access_token")); known {
		if !info.LongLived {
			thErr(w, http.StatusBadRequest, 100, 0, "Only long-lived access tokens can be refreshed")
			return
		}
		if s.now().Sub(info.IssuedAt) < 24*time.Hour {
			thErr(w, http.StatusBadRequest, 100, 0, "The access token must be at least 24 hours old to be refreshed")
			return
		}
	}
	s.count(thName, "token_refresh")
	s.thNewLongLived(w, a)
}

func (s *Server) thMe(w http.ResponseWriter, r *http.Request) {
	a := s.thAPI(w, r)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, thFields(r, map[string]any{
		"id": a.ID, "username": a.Handle, "name": a.Handle,
		"threads_profile_picture_url": "https://scontent.example/" + a.ID + ".jpg", "threads_biography": "",
	}, "id", "username"))
}

// thFields keeps the requested fields (and id) of obj, or the defaults.
func thFields(r *http.Request, obj map[string]any, defaults ...string) map[string]any {
	want := defaults
	if f := r.FormValue("fields"); f != "" {
		want = append(strings.Split(f, ","), "id")
	}
	out := map[string]any{}
	for _, k := range want {
		if v, ok := obj[strings.TrimSpace(k)]; ok && v != nil {
			out[strings.TrimSpace(k)] = v
		}
	}
	return out
}

// thOwner checks the {uid} path segment against the token's account.
func (s *Server) thOwner(w http.ResponseWriter, r *http.Request, a *Account) bool {
	if uid := r.PathValue("uid"); uid != a.ID && uid != "me" {
		thErr(w, http.StatusBadRequest, 100, 33, "Unsupported post request. Object with ID '"+uid+"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
		return false
	}
	return true
}

func (s *Server) thCreateContainer(w http.ResponseWriter, r *http.Request) {
	a := s.thAPI(w, r)
	if a == nil || !s.thOwner(w, r, a) {
		return
	}
	c := &thContainer{ID: randDigits(17), Owner: a.ID, MediaType: r.FormValue("media_type"), Text: r.FormValue("text"),
		LinkAttachment: r.FormValue("link_attachment"), IsCarouselItem: r.FormValue("is_carousel_item") == "true",
		Status: "FINISHED", CreatedAt: s.now()}
	if !slices.Contains([]string{"TEXT", "IMAGE", "VIDEO", "CAROUSEL"}, c.MediaType) {
		thErr(w, http.StatusBadRequest, 100, 0, "Param media_type must be one of {TEXT, IMAGE, VIDEO, CAROUSEL}")
		return
	}
	if text.Count(platform.CountThreads, c.Text) > thMaxChars {
		thErr(w, http.StatusBadRequest, 100, 0, "Param text must be at most 500 characters long.")
		return
	}
	links := map[string]bool{}
	for _, u := range findURLs(c.Text) {
		links[u] = true
	}
	if c.LinkAttachment != "" {
		links[c.LinkAttachment] = true
	}
	if len(links) > thMaxLinks {
		thErr(w, http.StatusBadRequest, 100, 0, "THREADS_API__LINK_LIMIT_EXCEEDED: a post can contain at most 5 links.")
		return
	}
	if c.LinkAttachment != "" && c.MediaType != "TEXT" {
		thErr(w, http.StatusBadRequest, 100, 0, "Param link_attachment is only supported on TEXT posts")
		return
	}
	if c.IsCarouselItem && c.Text != "" {
		thErr(w, http.StatusBadRequest, 100, 0, "Param text is not supported on carousel items")
		return
	}
	switch c.MediaType {
	case "TEXT":
		if strings.TrimSpace(c.Text) == "" {
			thErr(w, http.StatusBadRequest, 100, 0, "Param text is required for TEXT posts")
			return
		}
	case "IMAGE", "VIDEO":
		param, max, fail := "image_url", int64(thMaxImageBytes), "UNKNOWN"
		if c.MediaType == "VIDEO" {
			param, max, fail = "video_url", thMaxVideoBytes, "FAILED_DOWNLOADING_VIDEO"
		}
		c.MediaURL = r.FormValue(param)
		if c.MediaURL == "" {
			thErr(w, http.StatusBadRequest, 100, 0, "Param "+param+" is required for "+c.MediaType+" posts")
			return
		}
		// Meta downloads the media from the public URL.
		_, ct, err := fetchMedia(r.Context(), c.MediaURL, max)
		switch {
		case s.takeFault(thName, FaultMediaFetch) != nil || err != nil:
			c.Status, c.ErrorMessage = "ERROR", fail
		case c.MediaType == "IMAGE" && ct != "image/jpeg" && ct != "image/png":
			c.Status, c.ErrorMessage = "ERROR", "UNKNOWN"
		case c.MediaType == "VIDEO":
			c.Status = "IN_PROGRESS" // FINISHED after a status poll
		}
	case "CAROUSEL":
		c.Children = strings.Split(r.FormValue("children"), ",")
		if len(c.Children) < 2 || len(c.Children) > thMaxCarousel {
			thErr(w, http.StatusBadRequest, 100, 0, "Param children must list 2 to 20 carousel item containers")
			return
		}
		for _, id := range c.Children {
			child := s.thContainer(id)
			if child == nil || child.Owner != a.ID || !child.IsCarouselItem {
				thErr(w, http.StatusBadRequest, 100, 0, "Param children contains an invalid carousel item: "+id)
				return
			}
			if child.Status != "FINISHED" {
				thErr(w, http.StatusBadRequest, 24, 4279009, "Carousel item "+id+" is not ready to be published")
				return
			}
		}
	}
	s.with(func(st map[string]any) { st["threads|container|"+c.ID] = c })
	s.count(thName, "container")
	writeJSON(w, http.StatusOK, map[string]string{"id": c.ID})
}

// thContainer returns a copy of a container with its status brought up to
// date, or nil.
func (s *Server) thContainer(id string) *thContainer {
	var out *thContainer
	s.with(func(st map[string]any) {
		c, _ := st["threads|container|"+id].(*thContainer)
		if c == nil {
			return
		}
		if c.Status != "PUBLISHED" && s.now().Sub(c.CreatedAt) > thContainerTTL {
			c.Status = "EXPIRED"
		}
		cp := *c
		out = &cp
	})
	return out
}

// thPoll is a status read: a VIDEO container finishes after one poll.
func (s *Server) thPoll(id string) {
	s.with(func(st map[string]any) {
		if c, _ := st["threads|container|"+id].(*thContainer); c != nil {
			c.Polls++
			if c.Status == "IN_PROGRESS" && c.Polls > 1 {
				c.Status = "FINISHED"
			}
		}
	})
}

func (s *Server) thGetObject(w http.ResponseWriter, r *http.Request) {
	a := s.thAPI(w, r)
	if a == nil {
		return
	}
	id := r.PathValue("id")
	s.thPoll(id)
	if c := s.thContainer(id); c != nil && c.Owner == a.ID {
		obj := map[string]any{"id": c.ID, "status": c.Status}
		if c.ErrorMessage != "" {
			obj["error_message"] = c.ErrorMessage
		}
		writeJSON(w, http.StatusOK, thFields(r, obj, "id", "status"))
		return
	}
	var m *thMedia
	s.with(func(st map[string]any) { m, _ = st["threads|media|"+id].(*thMedia) })
	if m == nil || m.Owner != a.ID {
		thErr(w, http.StatusBadRequest, 100, 33, "Unsupported get request. Object with ID '"+id+"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
		return
	}
	writeJSON(w, http.StatusOK, thFields(r, s.thMediaJSON(a, m), "id"))
}

func (s *Server) thMediaJSON(a *Account, m *thMedia) map[string]any {
	return map[string]any{
		"id": m.ID, "permalink": m.Permalink, "text": m.Text, "media_type": m.MediaType,
		"shortcode": m.Shortcode, "username": a.Handle, "is_quote_post": false,
		"timestamp": m.Timestamp.UTC().Format("2006-01-02T15:04:05-0700"),
	}
}

func (s *Server) thList(w http.ResponseWriter, r *http.Request) {
	a := s.thAPI(w, r)
	if a == nil || !s.thOwner(w, r, a) {
		return
	}
	limit, err := strconv.Atoi(r.FormValue("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 25
	}
	var items []map[string]any
	s.with(func(st map[string]any) {
		ids, _ := st["threads|medialist|"+a.ID].([]string)
		for i := len(ids) - 1; i >= 0 && len(items) < limit; i-- {
			if m, _ := st["threads|media|"+ids[i]].(*thMedia); m != nil {
				items = append(items, s.thMediaJSON(a, m))
			}
		}
	})
	data := make([]map[string]any, 0, len(items))
	for _, it := range items {
		data = append(data, thFields(r, it, "id"))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "paging": map[string]any{"cursors": map[string]string{"before": randB64(8), "after": randB64(8)}}})
}

func (s *Server) thPublish(w http.ResponseWriter, r *http.Request) {
	a := s.thAPI(w, r)
	if a == nil || !s.thOwner(w, r, a) {
		return
	}
	id := r.FormValue("creation_id")
	c := s.thContainer(id)
	switch {
	case c == nil || c.Owner != a.ID || c.IsCarouselItem:
		thErr(w, http.StatusBadRequest, 24, 4279009, "The requested resource does not exist: creation_id "+id)
		return
	case c.Status == "IN_PROGRESS":
		thErr(w, http.StatusBadRequest, 9007, 2207027, "The media is not ready to be published. Please wait a moment.")
		return
	case c.Status == "PUBLISHED":
		thErr(w, http.StatusBadRequest, 24, 4279009, "The media container has already been published")
		return
	case c.Status != "FINISHED":
		thErr(w, http.StatusBadRequest, 24, 4279009, "The media container is "+c.Status+" and cannot be published")
		return
	}
	if s.takeFault(thName, FaultDuplicate) != nil {
		thErr(w, http.StatusBadRequest, 506, 0, "Duplicate status message")
		return
	}
	m := &thMedia{ID: randDigits(17), Owner: a.ID, Text: c.Text, MediaType: c.MediaType, Shortcode: randB64(8), Timestamp: s.now()}
	if m.MediaType == "CAROUSEL" {
		m.MediaType = "CAROUSEL_ALBUM"
	} else if m.MediaType == "TEXT" {
		m.MediaType = "TEXT_POST"
	}
	m.Permalink = "https://www.threads.com/@" + a.Handle + "/post/" + m.Shortcode
	var media []string
	s.with(func(st map[string]any) {
		cc, _ := st["threads|container|"+id].(*thContainer)
		cc.Status = "PUBLISHED"
		st["threads|media|"+m.ID] = m
		ids, _ := st["threads|medialist|"+a.ID].([]string)
		st["threads|medialist|"+a.ID] = append(ids, m.ID)
		if cc.MediaURL != "" {
			media = append(media, cc.MediaURL)
		}
		for _, ch := range cc.Children {
			if child, _ := st["threads|container|"+ch].(*thContainer); child != nil {
				media = append(media, child.MediaURL)
			}
		}
	})
	s.count(thName, "publish")
	extra := map[string]string{"container_id": id, "media_type": c.MediaType}
	if c.LinkAttachment != "" {
		extra["link_attachment"] = c.LinkAttachment
	}
	s.record(Post{Platform: thName, ID: m.ID, URL: m.Permalink, AccountID: a.ID, Text: c.Text, Media: media, Extra: extra})
	if s.takeFault(thName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": m.ID})
}
