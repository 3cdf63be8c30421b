package platformsim

// Instagram API with Instagram Login, under /instagram: the authorize page
// (instagram.com/oauth/authorize; the code it hands back ends in "#_"), the
// code exchange (api.instagram.com/oauth/access_token), the long-lived token
// exchange and its refresh (graph.instagram.com/access_token and
// refresh_access_token), /me, and content publishing: containers
// (/{ig-user-id}/media, IN_PROGRESS → FINISHED, EXPIRED after 24 h,
// PUBLISHED after media_publish), carousels, /{ig-user-id}/media_publish,
// content_publishing_limit, and reads of containers and media.

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesInstagram) }

const (
	igName           = "instagram"
	igCodeTTL        = time.Hour
	igShortTTL       = time.Hour
	igLongTTL        = 5183944 * time.Second
	igRefreshMinAge  = 24 * time.Hour
	igContainerTTL   = 24 * time.Hour
	igCaptionLimit   = 2200
	igMaxHashtags    = 30
	igMaxMentions    = 20
	igMaxCarousel    = 10
	igDefaultQuota   = 100
	igMaxImageBytes  = 8 << 20
	igMaxVideoBytes  = 64 << 20 // the simulator's own cap on what it downloads
	igThrottleMsg    = "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again."
	igCodeSuffix     = "#_"
	igUserIDDigits   = 17
	igContainerReads = 1 // status reads answered IN_PROGRESS for an image
)

// igContainer is a media container.
type igContainer struct {
	ID        string
	Owner     string
	MediaType string // IMAGE, REELS, VIDEO (carousel item), STORIES, CAROUSEL
	Caption   string
	MediaURL  string
	Children  []string
	Item      bool // is_carousel_item
	Created   time.Time
	ReadsLeft int
	Error     string // status text when processing failed
	MediaID   string // set once published
}

// igMedia is a published media object.
type igMedia struct {
	ID        string
	Owner     string
	Caption   string
	MediaType string
	Shortcode string
	Created   time.Time
}

// SetInstagramPublishingQuota sets the content_publishing_limit quota_total
// (default 100 posts per rolling 24 hours).
func (s *Server) SetInstagramPublishingQuota(n int) {
	s.with(func(st map[string]any) { st["instagram|quota"] = n })
}

func (s *Server) routesInstagram() {
	s.handle("GET /instagram/oauth/authorize", s.igAuthorize)
	s.handle("POST /instagram/oauth/access_token", s.igCodeExchange)
	s.handle("GET /instagram/access_token", s.igLongLived)
	s.handle("GET /instagram/refresh_access_token", s.igRefresh)
	s.handle("GET /instagram/{version}/me", s.igMe)
	s.handle("POST /instagram/{version}/{id}/media", s.igCreateContainer)
	s.handle("GET /instagram/{version}/{id}/media", s.igListMedia)
	s.handle("POST /instagram/{version}/{id}/media_publish", s.igPublish)
	s.handle("GET /instagram/{version}/{id}/content_publishing_limit", s.igPublishingLimit)
	s.handle("GET /instagram/{version}/{id}", s.igNode)
}

// igOAuthError answers api.instagram.com's OAuth error shape.
func igOAuthError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error_type": "OAuthException", "code": 400, "error_message": msg})
}

// igCaller authenticates a Graph call and applies the generic faults; it
// returns nil when it already answered.
func (s *Server) igCaller(w http.ResponseWriter, r *http.Request, p url.Values, write bool) *Account {
	slowFault(s, r, igName)
	if !fbVersion(w, r) {
		return nil
	}
	if graphFaults(s, w, igName, r.PathValue("id"), "instagram", 80002, igThrottleMsg, write) {
		return nil
	}
	a, ok := s.accountByToken(igName, graphToken(r, p))
	if !ok {
		fbInvalidToken(w)
		return nil
	}
	graphBUC(w, a.ID, "instagram", 0)
	return a
}

// igOwnUser checks that the path's user id is the token's account.
func igOwnUser(w http.ResponseWriter, r *http.Request, a *Account) bool {
	if r.PathValue("id") != a.ID {
		graphError(w, graphErr{Code: 100, Subcode: 33, Message: "Unsupported post request. Object with ID '" + r.PathValue("id") +
			"' does not exist, cannot be loaded due to missing permissions, or does not support this operation."})
		return false
	}
	return true
}

// --- OAuth ---

func (s *Server) igAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || !clientIDOK(s, igName, q.Get("client_id")) ||
		q.Get("redirect_uri") == "" || q.Get("scope") == "" {
		http.Error(w, "Invalid request: client_id, redirect_uri, scope and response_type=code are required.", http.StatusBadRequest)
		return
	}
	if s.takeFault(igName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{
			"error": {"access_denied"}, "error_reason": {"user_denied"},
			"error_description": {"The user denied your request."}, "state": {q.Get("state")},
		}, "")
		return
	}
	a := clientAccount(s, igName, q.Get("client_id"), q.Get(SimUserParam), "sim_ig_", func() string { return "1784" + randDigits(igUserIDDigits-4) })
	code := issueCode(s, igName, randB64(32), authCode{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		AccountID: a.ID, Scope: q.Get("scope")})
	// Instagram hands the code back with "#_" on its end; callbacks must
	// strip it before the exchange.
	redirectWith(w, r, q.Get("redirect_uri"), codeParams(code+igCodeSuffix, q.Get("state")), "")
}

func (s *Server) igCodeExchange(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		igOAuthError(w, "Malformed request body")
		return
	}
	p := r.PostForm
	if !s.checkClient(igName, p.Get("client_id"), p.Get("client_secret")) {
		igOAuthError(w, "Invalid platform app")
		return
	}
	if p.Get("grant_type") != "authorization_code" {
		igOAuthError(w, "Invalid grant_type")
		return
	}
	_, a, ok := redeemCodeAccount(s, igName, p.Get("code"), p.Get("client_id"), p.Get("redirect_uri"), igCodeTTL)
	if s.takeFault(igName, FaultInvalidGrant) != nil || !ok {
		igOAuthError(w, "Invalid authorization code")
		return
	}
	tok := "IGQW" + randB64(48)
	s.igSetToken(a, tok, igShortTTL)
	// user_id is a JSON number here, too large for a float64 to hold exactly.
	body := `{"access_token":` + strconv.Quote(tok) + `,"user_id":` + a.ID +
		`,"permissions":["instagram_business_basic","instagram_business_content_publish"]}`
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body))
}

// igSetToken gives a a token valid for ttl and remembers when it was issued
// (refresh needs it to be a day old).
func (s *Server) igSetToken(a *Account, tok string, ttl time.Duration) {
	s.setToken(a, tok, s.now().Add(ttl))
	s.with(func(st map[string]any) { st["instagram|issued|"+a.ID] = s.now() })
}

func (s *Server) igLongLived(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.count(igName, "token_exchange")
	c, registered := s.opts.Clients[igName]
	a, ok := s.accountByToken(igName, q.Get("access_token"))
	switch {
	case q.Get("grant_type") != "ig_exchange_token":
		graphError(w, graphErr{Code: 100, Message: "Unsupported grant_type"})
	case q.Get("client_secret") == "" || registered && c.Secret != q.Get("client_secret"):
		graphError(w, graphErr{Code: 101, Message: "Error validating client secret."})
	case s.takeFault(igName, FaultInvalidGrant) != nil, !ok:
		fbInvalidToken(w)
	default:
		tok := "IGAA" + randB64(64)
		s.igSetToken(a, tok, igLongTTL)
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(igLongTTL.Seconds())})
	}
}

func (s *Server) igRefresh(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.count(igName, "token_refresh")
	a, ok := s.accountByToken(igName, q.Get("access_token"))
	var issued time.Time
	if ok {
		s.with(func(st map[string]any) { issued, _ = st["instagram|issued|"+a.ID].(time.Time) })
	}
	switch {
	case q.Get("grant_type") != "ig_refresh_token":
		graphError(w, graphErr{Code: 100, Message: "Unsupported grant_type"})
	case s.takeFault(igName, FaultInvalidGrant) != nil, !ok:
		fbInvalidToken(w)
	case s.now().Sub(issued) < igRefreshMinAge:
		graphError(w, graphErr{Code: 100, Message: "(#100) The access token can only be refreshed once it is at least 24 hours old"})
	default:
		tok := "IGAA" + randB64(64)
		s.igSetToken(a, tok, igLongTTL)
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(igLongTTL.Seconds())})
	}
}

func (s *Server) igMe(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.igCaller(w, r, p, false)
	if a == nil {
		return
	}
	// user_id is the professional account id the publishing calls take.
	body := `{"user_id":` + strconv.Quote(a.ID) + `,"username":` + strconv.Quote(a.Handle) + `,"id":` + strconv.Quote(a.ID) + `}`
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body))
}

// --- containers and publishing ---

// igStatus is a container's status_code, advancing a pending container by
// one read when advance is set. Callers hold the simulator's lock.
func (s *Server) igStatus(c *igContainer, advance bool) string {
	switch {
	case c.MediaID != "":
		return "PUBLISHED"
	case s.now().Sub(c.Created) > igContainerTTL:
		return "EXPIRED"
	case c.ReadsLeft > 0:
		if advance {
			c.ReadsLeft--
		}
		return "IN_PROGRESS"
	case c.Error != "":
		return "ERROR"
	}
	return "FINISHED"
}

var (
	igHashtagPattern = regexp.MustCompile(`(?:^|\s)#[\p{L}\p{N}_]+`)
	igMentionPattern = regexp.MustCompile(`(?:^|\s)@[A-Za-z0-9._]+`)
)

func (s *Server) igCreateContainer(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.igCaller(w, r, p, true)
	if a == nil || !igOwnUser(w, r, a) {
		return
	}
	c := &igContainer{ID: "1790" + randDigits(13), Owner: a.ID, MediaType: strings.ToUpper(p.Get("media_type")),
		Caption: p.Get("caption"), Item: p.Get("is_carousel_item") == "true", Created: s.now(), ReadsLeft: igContainerReads}
	bad := func(msg string) { graphError(w, graphErr{Code: 100, Message: msg}) }
	switch {
	case text.Count(platform.CountUTF16, c.Caption) > igCaptionLimit:
		bad("(#100) The caption must be at most 2200 characters long.")
		return
	case len(igHashtagPattern.FindAllString(c.Caption, -1)) > igMaxHashtags:
		bad("(#100) The caption has more than 30 hashtags.")
		return
	case len(igMentionPattern.FindAllString(c.Caption, -1)) > igMaxMentions:
		bad("(#100) The caption has more than 20 @ tags.")
		return
	}
	kind := "image"
	switch c.MediaType {
	case "":
		c.MediaType, c.MediaURL = "IMAGE", p.Get("image_url")
		if c.MediaURL == "" {
			bad("(#100) The parameter image_url is required.")
			return
		}
	case "REELS", "STORIES", "VIDEO":
		if c.MediaType == "VIDEO" && !c.Item {
			bad("(#100) The VIDEO media type is no longer supported for single posts. Please use REELS.")
			return
		}
		c.MediaURL, kind = p.Get("video_url"), "video"
		if c.MediaType == "STORIES" && c.MediaURL == "" {
			c.MediaURL, kind = p.Get("image_url"), "image"
		}
		if c.MediaURL == "" {
			bad("(#100) The parameter video_url is required.")
			return
		}
		c.ReadsLeft = 2
	case "CAROUSEL":
		if !s.igChildrenOK(w, a, c, p.Get("children")) {
			return
		}
		kind = ""
	default:
		bad("(#100) media_type must be one of REELS, STORIES, CAROUSEL or VIDEO (carousel items).")
		return
	}
	if kind != "" && !s.igFetch(w, r, c, kind) {
		return
	}
	s.with(func(st map[string]any) { st["instagram|container|"+c.ID] = c })
	writeJSON(w, http.StatusOK, map[string]string{"id": c.ID})
}

// igChildrenOK checks a carousel's children: 2 to 10 of the caller's
// carousel-item containers.
func (s *Server) igChildrenOK(w http.ResponseWriter, a *Account, c *igContainer, children string) bool {
	for _, id := range strings.Split(children, ",") {
		if id = strings.TrimSpace(id); id != "" {
			c.Children = append(c.Children, id)
		}
	}
	if n := len(c.Children); n < 2 || n > igMaxCarousel {
		graphError(w, graphErr{Code: 100, Message: "(#100) A carousel needs between 2 and 10 children."})
		return false
	}
	bad := ""
	s.with(func(st map[string]any) {
		for _, id := range c.Children {
			ch, _ := st["instagram|container|"+id].(*igContainer)
			if ch == nil || ch.Owner != a.ID || !ch.Item {
				bad = id
				return
			}
			if ch.Error != "" {
				c.Error = ch.Error
			}
		}
	})
	if bad != "" {
		graphError(w, graphErr{Code: 100, Subcode: 2207008, Message: "(#100) Carousel child " + bad + " is not a carousel item container of this user."})
		return false
	}
	return true
}

// igFetch downloads the container's media like Instagram's crawler. Images
// must be JPEG and are fetched at once (a failure is answered 9004/2207052);
// videos download in the background, so a failure turns the container's
// status to ERROR instead.
func (s *Server) igFetch(w http.ResponseWriter, r *http.Request, c *igContainer, kind string) bool {
	fault := s.takeFault(igName, FaultMediaFetch) != nil
	max := int64(igMaxImageBytes)
	if kind == "video" {
		max = igMaxVideoBytes
	}
	body, _, err := fetchMedia(r.Context(), c.MediaURL, max)
	failed := fault || err != nil
	if kind == "video" {
		if failed || mediaKind(sniff(body)) != "video" {
			c.Error = "Error: Media download has failed. The media URI doesn't meet our requirements. (2207052)"
		}
		return true
	}
	if failed {
		graphError(w, graphErr{Code: 9004, Subcode: 2207052, Message: "Only photo or video can be accepted as media type.",
			UserTitle: "Media download has failed.", UserMsg: "The media could not be fetched from this URI: " + c.MediaURL})
		return false
	}
	if sniff(body) != "image/jpeg" {
		graphError(w, graphErr{Code: 36001, Subcode: 2207005, Message: "The image format is not supported.",
			UserTitle: "Unsupported format", UserMsg: "Only JPEG images can be published."})
		return false
	}
	return true
}

// igQuota returns the publishing quota total and how many posts the account
// published in the last 24 hours. Callers hold the simulator's lock.
func (s *Server) igQuota(st map[string]any, owner string) (total, used int) {
	total, _ = st["instagram|quota"].(int)
	if total == 0 {
		total = igDefaultQuota
	}
	list, _ := st["instagram|published|"+owner].([]*igMedia)
	for _, m := range list {
		if s.now().Sub(m.Created) < 24*time.Hour {
			used++
		}
	}
	return total, used
}

func (s *Server) igPublish(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.igCaller(w, r, p, true)
	if a == nil || !igOwnUser(w, r, a) {
		return
	}
	if s.takeFault(igName, FaultDuplicate) != nil {
		graphError(w, graphErr{Code: 4, Subcode: 2207051, Message: "Application request limit reached",
			UserTitle: "Action is blocked", UserMsg: "We restrict certain activity to protect our community."})
		return
	}
	var c *igContainer
	var status string
	var total, used int
	s.with(func(st map[string]any) {
		c, _ = st["instagram|container|"+p.Get("creation_id")].(*igContainer)
		if c != nil {
			status = s.igStatus(c, false)
		}
		total, used = s.igQuota(st, a.ID)
	})
	switch {
	case c == nil || c.Owner != a.ID || c.Item:
		graphError(w, graphErr{Code: 24, Subcode: 2207008, Message: "The media container does not exist or does not belong to this user."})
		return
	case status == "EXPIRED":
		graphError(w, graphErr{Code: -2, Subcode: 2207020, Message: "The media container has expired; create a new one."})
		return
	case status == "IN_PROGRESS":
		graphError(w, graphErr{Code: 9007, Subcode: 2207027, Message: "Media ID is not available",
			UserTitle: "Media not ready for publishing", UserMsg: "The media is not ready for publishing, please wait for a moment"})
		return
	case status == "ERROR":
		graphError(w, graphErr{Code: 9007, Subcode: 2207027, Message: "The media container failed processing: " + c.Error})
		return
	case status == "PUBLISHED":
		graphError(w, graphErr{Code: 100, Message: "(#100) The media container was already published."})
		return
	case used >= total:
		graphError(w, graphErr{Code: 9, Subcode: 2207042, Message: "Application request limit reached",
			UserTitle: "Cannot publish", UserMsg: "You reached maximum number of posts that is allowed to be published by Content Publishing API."})
		return
	}
	m := &igMedia{ID: "1789" + randDigits(13), Owner: a.ID, Caption: c.Caption, MediaType: c.MediaType,
		Shortcode: randB64(8), Created: s.now().UTC()}
	if m.MediaType == "REELS" {
		m.MediaType = "VIDEO"
	}
	media := []string{c.MediaURL}
	if c.MediaType == "CAROUSEL" {
		media = nil
		s.with(func(st map[string]any) {
			for _, id := range c.Children {
				if ch, _ := st["instagram|container|"+id].(*igContainer); ch != nil {
					media = append(media, ch.MediaURL)
				}
			}
		})
	}
	s.record(Post{Platform: igName, ID: m.ID, URL: igPermalink(m), AccountID: a.ID, Text: c.Caption, Media: media,
		Extra: map[string]string{"container_id": c.ID, "media_type": c.MediaType}})
	s.with(func(st map[string]any) {
		c.MediaID = m.ID
		st["instagram|media|"+m.ID] = m
		list, _ := st["instagram|published|"+a.ID].([]*igMedia)
		st["instagram|published|"+a.ID] = append(list, m)
	})
	if s.takeFault(igName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": m.ID})
}

func igPermalink(m *igMedia) string {
	if m.MediaType == "VIDEO" {
		return "https://www.instagram.com/reel/" + m.Shortcode + "/"
	}
	return "https://www.instagram.com/p/" + m.Shortcode + "/"
}

func igMediaJSON(m *igMedia) map[string]any {
	return map[string]any{"id": m.ID, "caption": m.Caption, "media_type": m.MediaType, "shortcode": m.Shortcode,
		"permalink": igPermalink(m), "timestamp": graphTime(m.Created)}
}

func (s *Server) igPublishingLimit(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.igCaller(w, r, p, false)
	if a == nil || !igOwnUser(w, r, a) {
		return
	}
	var total, used int
	s.with(func(st map[string]any) { total, used = s.igQuota(st, a.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{{
		"quota_usage": used, "config": map[string]int{"quota_total": total, "quota_duration": 86400},
	}}})
}

// igListMedia lists the account's published media, newest first.
func (s *Server) igListMedia(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.igCaller(w, r, p, false)
	if a == nil || !igOwnUser(w, r, a) {
		return
	}
	limit, err := strconv.Atoi(p.Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 25
	}
	data := []map[string]any{}
	s.with(func(st map[string]any) {
		list, _ := st["instagram|published|"+a.ID].([]*igMedia)
		for i := len(list) - 1; i >= 0 && len(data) < limit; i-- {
			data = append(data, igMediaJSON(list[i]))
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// igNode reads a container (status_code advances a pending one by a step) or
// a published media object.
func (s *Server) igNode(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.igCaller(w, r, p, false)
	if a == nil {
		return
	}
	id := r.PathValue("id")
	var out map[string]any
	s.with(func(st map[string]any) {
		if c, _ := st["instagram|container|"+id].(*igContainer); c != nil && c.Owner == a.ID {
			code := s.igStatus(c, true)
			status := code
			if code == "ERROR" {
				status = c.Error
			}
			out = map[string]any{"id": c.ID, "status_code": code, "status": status}
		} else if m, _ := st["instagram|media|"+id].(*igMedia); m != nil && m.Owner == a.ID {
			out = igMediaJSON(m)
		}
	})
	if out == nil && id == a.ID {
		out = map[string]any{"id": a.ID, "user_id": a.ID, "username": a.Handle}
	}
	if out == nil {
		graphError(w, graphErr{Code: 100, Subcode: 33, Message: "Unsupported get request. Object with ID '" + id +
			"' does not exist, cannot be loaded due to missing permissions, or does not support this operation."})
		return
	}
	writeJSON(w, http.StatusOK, out)
}
