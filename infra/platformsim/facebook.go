package platformsim

// Facebook Pages (Graph API), under /facebook/{version}: the Login dialog
// (dialog/oauth), the code and fb_exchange_token exchanges
// (oauth/access_token), /me, /me/accounts (Page tokens), Page publishing
// (/{page-id}/feed, /photos, /videos), Page post lists (/posts, /feed) and
// node reads (/{id}?fields=permalink_url). Errors use Meta's shape, mostly
// HTTP 400, and Page calls carry X-Business-Use-Case-Usage.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesFacebook) }

const (
	fbName          = "facebook"
	fbCodeTTL       = 10 * time.Minute
	fbShortTTL      = 2 * time.Hour
	fbLongTTL       = 5183944 * time.Second
	fbTextLimit     = 63206
	fbMaxImageBytes = 10 << 20
	fbMaxVideoBytes = 64 << 20 // the simulator's own cap on what it downloads
	fbThrottleMsg   = "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
)

// fbUser is a Facebook user who administers Pages.
type fbUser struct {
	Pages []string
}

// fbPost is a published Page post.
type fbPost struct {
	ID        string
	PageID    string
	Message   string
	Permalink string
	Created   time.Time
}

// fbObject is an uploaded photo or video.
type fbObject struct {
	ID        string
	PageID    string
	Kind      string // "photo" or "video"
	Published bool
	PostID    string
	Attached  bool // used in attached_media already
}

// fbVersionPattern is a Graph API version path segment.
var fbVersionPattern = regexp.MustCompile(`^v\d+\.\d+$`)

func (s *Server) routesFacebook() {
	s.handle("GET /facebook/{version}/dialog/oauth", s.fbDialog)
	s.handle("GET /facebook/{version}/oauth/access_token", s.fbAccessToken)
	s.handle("GET /facebook/{version}/me", s.fbMe)
	s.handle("GET /facebook/{version}/me/accounts", s.fbMeAccounts)
	s.handle("POST /facebook/{version}/{id}/feed", s.fbPublishFeed)
	s.handle("POST /facebook/{version}/{id}/photos", s.fbPublishPhoto)
	s.handle("POST /facebook/{version}/{id}/videos", s.fbPublishVideo)
	s.handle("GET /facebook/{version}/{id}/feed", s.fbListPosts)
	s.handle("GET /facebook/{version}/{id}/posts", s.fbListPosts)
	s.handle("GET /facebook/{version}/{id}", s.fbNode)
}

// fbVersion checks the version segment; Graph answers unknown paths 400.
func fbVersion(w http.ResponseWriter, r *http.Request) bool {
	if !fbVersionPattern.MatchString(r.PathValue("version")) {
		graphError(w, graphErr{Code: 2500, Message: "Unknown path components: /" + r.PathValue("version")})
		return false
	}
	return true
}

// fbIsUser reports whether account id is a user (not a Page).
func (s *Server) fbIsUser(id string) bool {
	var u *fbUser
	s.with(func(st map[string]any) { u, _ = st["facebook|user|"+id].(*fbUser) })
	return u != nil
}

// fbInvalidToken answers an unknown or dead token.
func fbInvalidToken(w http.ResponseWriter) {
	graphError(w, graphErr{Code: 190, Message: "Invalid OAuth access token - Cannot parse access token"})
}

// fbCaller authenticates a Graph call and applies the generic faults. It
// returns nil when it already answered.
func (s *Server) fbCaller(w http.ResponseWriter, r *http.Request, p url.Values, objectID string, write bool) *Account {
	slowFault(s, r, fbName)
	if !fbVersion(w, r) {
		return nil
	}
	if graphFaults(s, w, fbName, objectID, "pages", 80001, fbThrottleMsg, write) {
		return nil
	}
	a, ok := s.accountByToken(fbName, graphToken(r, p))
	if !ok {
		fbInvalidToken(w)
		return nil
	}
	graphBUC(w, objectID, "pages", 0)
	return a
}

// fbPageCaller is fbCaller for a call on a Page that needs that Page's token.
func (s *Server) fbPageCaller(w http.ResponseWriter, r *http.Request, p url.Values, write bool) *Account {
	pageID := r.PathValue("id")
	a := s.fbCaller(w, r, p, pageID, write)
	if a == nil {
		return nil
	}
	if a.ID != pageID || s.fbIsUser(a.ID) {
		graphError(w, graphErr{Code: 200, Message: "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with sufficient administrative permission"})
		return nil
	}
	return a
}

// --- OAuth ---

func (s *Server) fbDialog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !fbVersion(w, r) {
		return
	}
	if !clientIDOK(s, fbName, q.Get("client_id")) || q.Get("redirect_uri") == "" {
		http.Error(w, "Invalid App ID: The provided app ID does not look like a valid app ID, or the redirect_uri is missing.", http.StatusBadRequest)
		return
	}
	if rt := q.Get("response_type"); rt != "" && rt != "code" {
		http.Error(w, "Unsupported response_type.", http.StatusBadRequest)
		return
	}
	if s.takeFault(fbName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{
			"error": {"access_denied"}, "error_code": {"200"}, "error_description": {"Permissions error"},
			"error_reason": {"user_denied"}, "state": {q.Get("state")},
		}, "_=_")
		return
	}
	u := clientAccount(s, fbName, q.Get("client_id"), q.Get(SimUserParam), "Sim User ", func() string { return randDigits(15) })
	s.fbEnsurePage(u)
	code := issueCode(s, fbName, randB64(32), authCode{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		AccountID: u.ID, Scope: q.Get("scope")})
	redirectWith(w, r, q.Get("redirect_uri"), codeParams(code, q.Get("state")), "_=_")
}

// fbEnsurePage gives user u one Page (an account with a never-expiring Page
// token) the first time u logs in.
func (s *Server) fbEnsurePage(u *Account) {
	if s.fbIsUser(u.ID) {
		return
	}
	page := Account{Platform: fbName, ID: randDigits(15), AccessToken: "EAAP" + randB64(48)}
	page.Handle = "Sim Page " + page.ID[len(page.ID)-4:]
	s.AddAccount(page)
	s.with(func(st map[string]any) { st["facebook|user|"+u.ID] = &fbUser{Pages: []string{page.ID}} })
}

func (s *Server) fbAccessToken(w http.ResponseWriter, r *http.Request) {
	if !fbVersion(w, r) {
		return
	}
	q := r.URL.Query()
	if !s.checkClient(fbName, q.Get("client_id"), q.Get("client_secret")) {
		graphError(w, graphErr{Code: 1, Message: "Error validating client secret."})
		return
	}
	if q.Get("grant_type") == "fb_exchange_token" {
		s.count(fbName, "token_exchange")
		u, ok := s.accountByToken(fbName, q.Get("fb_exchange_token"))
		if s.takeFault(fbName, FaultInvalidGrant) != nil || !ok || !s.fbIsUser(u.ID) {
			graphError(w, graphErr{Code: 190, Message: "Invalid OAuth access token - Cannot parse access token"})
			return
		}
		tok := "EAAL" + randB64(48)
		s.setToken(u, tok, s.now().Add(fbLongTTL))
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(fbLongTTL.Seconds())})
		return
	}
	_, u, ok := redeemCodeAccount(s, fbName, q.Get("code"), q.Get("client_id"), q.Get("redirect_uri"), fbCodeTTL)
	if s.takeFault(fbName, FaultInvalidGrant) != nil || !ok {
		graphError(w, graphErr{Code: 100, Subcode: 36009, Message: "This authorization code has been used, has expired or does not match the redirect_uri."})
		return
	}
	tok := "EAAS" + randB64(48)
	s.setToken(u, tok, s.now().Add(fbShortTTL))
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(fbShortTTL.Seconds())})
}

func (s *Server) fbMe(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	a := s.fbCaller(w, r, p, "me", false)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": a.ID, "name": a.Handle})
}

func (s *Server) fbMeAccounts(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	u := s.fbCaller(w, r, p, "me", false)
	if u == nil {
		return
	}
	var usr *fbUser
	s.with(func(st map[string]any) { usr, _ = st["facebook|user|"+u.ID].(*fbUser) })
	if usr == nil {
		graphError(w, graphErr{Code: 100, Message: "(#100) Tried accessing nonexisting field (accounts) on node type (Page)"})
		return
	}
	data := []map[string]any{}
	for _, id := range usr.Pages {
		pg, ok := s.accountByID(fbName, id)
		if !ok {
			continue
		}
		var tok string
		s.with(func(map[string]any) { tok = pg.AccessToken })
		data = append(data, map[string]any{
			"access_token": tok, "category": "Software", "name": pg.Handle, "id": pg.ID,
			"tasks": []string{"ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "paging": map[string]any{"cursors": map[string]string{"before": "QVFI", "after": "QVFI"}}})
}

// --- publishing ---

// fbCreatePost records a Page post and applies timeout_after_create. It
// reports whether the caller may still answer.
func (s *Server) fbCreatePost(w http.ResponseWriter, page *Account, message string, media []string, extra map[string]string) (*fbPost, bool) {
	postPart := randDigits(16)
	p := &fbPost{ID: page.ID + "_" + postPart, PageID: page.ID, Message: message, Created: s.now().UTC(),
		Permalink: "https://www.facebook.com/" + page.ID + "/posts/" + postPart}
	s.record(Post{Platform: fbName, ID: p.ID, URL: p.Permalink, AccountID: page.ID, Text: message, Media: media, Extra: extra})
	s.with(func(st map[string]any) {
		st["facebook|post|"+p.ID] = p
		list, _ := st["facebook|posts|"+page.ID].([]*fbPost)
		st["facebook|posts|"+page.ID] = append(list, p)
	})
	if s.takeFault(fbName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return p, false
	}
	return p, true
}

// fbCheckMessage rejects an over-long message and a message identical to the
// Page's previous post (Graph error 506), or a duplicate fault.
func (s *Server) fbCheckMessage(w http.ResponseWriter, pageID, message string) bool {
	if text.Count(platform.CountUTF16, message) > fbTextLimit {
		graphError(w, graphErr{Code: 100, Message: "(#100) Param message must be at most " + strconv.Itoa(fbTextLimit) + " characters long"})
		return false
	}
	dup := s.takeFault(fbName, FaultDuplicate) != nil
	if message != "" {
		s.with(func(st map[string]any) {
			list, _ := st["facebook|posts|"+pageID].([]*fbPost)
			dup = dup || (len(list) > 0 && list[len(list)-1].Message == message)
		})
	}
	if dup {
		graphError(w, graphErr{Code: 506, Message: "(#506) Duplicate status message",
			UserTitle: "Duplicate post", UserMsg: "This status update is identical to the last one you posted."})
		return false
	}
	return true
}

func (s *Server) fbPublishFeed(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	page := s.fbPageCaller(w, r, p, true)
	if page == nil {
		return
	}
	message, link := p.Get("message"), p.Get("link")
	ids, ok := fbAttachedMedia(p)
	if !ok {
		graphError(w, graphErr{Code: 100, Message: "(#100) param attached_media must be an array of {\"media_fbid\": id} objects"})
		return
	}
	if message == "" && link == "" && len(ids) == 0 {
		graphError(w, graphErr{Code: 100, Message: "(#100) Missing message or attachment"})
		return
	}
	if link != "" {
		if u, err := url.Parse(link); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			graphError(w, graphErr{Code: 100, Message: "(#100) The parameter link is not a valid URL"})
			return
		}
	}
	bad := ""
	s.with(func(st map[string]any) {
		for _, id := range ids {
			o, _ := st["facebook|object|"+id].(*fbObject)
			if o == nil || o.PageID != page.ID || o.Kind != "photo" || o.Published || o.Attached {
				bad = id
				return
			}
		}
	})
	if bad != "" {
		graphError(w, graphErr{Code: 100, Message: "(#100) param attached_media has an invalid media_fbid: " + bad})
		return
	}
	if !s.fbCheckMessage(w, page.ID, message) {
		return
	}
	extra := map[string]string{}
	if link != "" {
		extra["link"] = link
	}
	post, ok := s.fbCreatePost(w, page, message, ids, extra)
	s.with(func(st map[string]any) {
		for _, id := range ids {
			if o, _ := st["facebook|object|"+id].(*fbObject); o != nil {
				o.Attached, o.PostID = true, post.ID
			}
		}
	})
	if ok {
		writeJSON(w, http.StatusOK, map[string]string{"id": post.ID})
	}
}

// fbAttachedMedia reads attached_media, as a JSON array or as
// attached_media[N] parameters holding {"media_fbid": id} objects.
func fbAttachedMedia(p url.Values) ([]string, bool) {
	type item struct {
		MediaFBID string `json:"media_fbid"`
	}
	var raw []string
	if v := p.Get("attached_media"); v != "" {
		var items []item
		if json.Unmarshal([]byte(v), &items) != nil {
			return nil, false
		}
		for _, it := range items {
			raw = append(raw, it.MediaFBID)
		}
	}
	for i := 0; ; i++ {
		v := p.Get("attached_media[" + strconv.Itoa(i) + "]")
		if v == "" {
			break
		}
		var it item
		if json.Unmarshal([]byte(v), &it) != nil {
			return nil, false
		}
		raw = append(raw, it.MediaFBID)
	}
	for _, id := range raw {
		if id == "" {
			return nil, false
		}
	}
	return raw, true
}

// fbFetch downloads url (or reads the multipart "source" file) the way Graph
// does, reporting whether it is of kind.
func (s *Server) fbFetch(r *http.Request, rawURL, kind string, max int64) bool {
	if s.takeFault(fbName, FaultMediaFetch) != nil {
		return false
	}
	var body []byte
	if rawURL != "" {
		b, _, err := fetchMedia(r.Context(), rawURL, max)
		if err != nil {
			return false
		}
		body = b
	} else if r.MultipartForm != nil {
		f, _, err := r.FormFile("source")
		if err != nil {
			return false
		}
		defer f.Close()
		buf := make([]byte, 512)
		n, _ := f.Read(buf)
		body = buf[:n]
	}
	return len(body) > 0 && mediaKind(sniff(body)) == kind
}

func (s *Server) fbPublishPhoto(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	page := s.fbPageCaller(w, r, p, true)
	if page == nil {
		return
	}
	message := p.Get("caption")
	if message == "" {
		message = p.Get("message")
	}
	if p.Get("url") == "" && r.MultipartForm == nil {
		graphError(w, graphErr{Code: 324, Message: "(#324) Requires upload file"})
		return
	}
	published := p.Get("published") != "false"
	if published && !s.fbCheckMessage(w, page.ID, message) {
		return
	}
	if !s.fbFetch(r, p.Get("url"), "image", fbMaxImageBytes) {
		graphError(w, graphErr{Code: 324, Message: "(#324) Missing or invalid image file"})
		return
	}
	o := &fbObject{ID: randDigits(16), PageID: page.ID, Kind: "photo", Published: published}
	s.with(func(st map[string]any) { st["facebook|object|"+o.ID] = o })
	if !published {
		writeJSON(w, http.StatusOK, map[string]string{"id": o.ID})
		return
	}
	post, ok := s.fbCreatePost(w, page, message, []string{o.ID}, map[string]string{"photo_id": o.ID})
	s.with(func(map[string]any) { o.PostID = post.ID })
	if ok {
		writeJSON(w, http.StatusOK, map[string]string{"id": o.ID, "post_id": post.ID})
	}
}

func (s *Server) fbPublishVideo(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	page := s.fbPageCaller(w, r, p, true)
	if page == nil {
		return
	}
	if p.Get("file_url") == "" && r.MultipartForm == nil {
		graphError(w, graphErr{Code: 100, Message: "(#100) Either file_url or source is required"})
		return
	}
	message := p.Get("description")
	if !s.fbCheckMessage(w, page.ID, message) {
		return
	}
	if !s.fbFetch(r, p.Get("file_url"), "video", fbMaxVideoBytes) {
		graphError(w, graphErr{Code: 389, Message: "Unable to fetch video file from URL."})
		return
	}
	o := &fbObject{ID: randDigits(16), PageID: page.ID, Kind: "video", Published: true}
	s.with(func(st map[string]any) { st["facebook|object|"+o.ID] = o })
	post, ok := s.fbCreatePost(w, page, message, []string{o.ID}, map[string]string{"video_id": o.ID, "title": p.Get("title")})
	s.with(func(map[string]any) { o.PostID = post.ID })
	if ok {
		writeJSON(w, http.StatusOK, map[string]string{"id": o.ID})
	}
}

// --- reads ---

// fbListPosts lists a Page's posts, newest first, honouring since (Unix
// seconds) and limit.
func (s *Server) fbListPosts(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	page := s.fbPageCaller(w, r, p, false)
	if page == nil {
		return
	}
	since, _ := strconv.ParseInt(p.Get("since"), 10, 64)
	limit, err := strconv.Atoi(p.Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 25
	}
	data := []map[string]any{}
	s.with(func(st map[string]any) {
		list, _ := st["facebook|posts|"+page.ID].([]*fbPost)
		for i := len(list) - 1; i >= 0 && len(data) < limit; i-- {
			if list[i].Created.Unix() < since {
				continue
			}
			it := map[string]any{"id": list[i].ID, "created_time": graphTime(list[i].Created), "permalink_url": list[i].Permalink}
			if list[i].Message != "" {
				it["message"] = list[i].Message
			}
			data = append(data, it)
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// fbNode reads one object: a post, photo, video or Page.
func (s *Server) fbNode(w http.ResponseWriter, r *http.Request) {
	p := graphParams(r)
	id := r.PathValue("id")
	a := s.fbCaller(w, r, p, id, false)
	if a == nil {
		return
	}
	var out map[string]any
	s.with(func(st map[string]any) {
		if post, _ := st["facebook|post|"+id].(*fbPost); post != nil && post.PageID == a.ID {
			out = map[string]any{"id": post.ID, "message": post.Message, "created_time": graphTime(post.Created), "permalink_url": post.Permalink}
		} else if o, _ := st["facebook|object|"+id].(*fbObject); o != nil && o.PageID == a.ID {
			out = map[string]any{"id": o.ID}
			if o.Kind == "video" {
				out["permalink_url"] = "/" + o.PageID + "/videos/" + o.ID + "/" // Graph answers videos' permalinks relative
			} else {
				out["link"] = "https://www.facebook.com/photo.php?fbid=" + o.ID
			}
			if o.PostID != "" {
				out["post_id"] = o.PostID
			}
		}
	})
	if out == nil && id == a.ID {
		out = map[string]any{"id": a.ID, "name": a.Handle}
	}
	if out == nil {
		graphError(w, graphErr{Code: 100, Subcode: 33, Message: "Unsupported get request. Object with ID '" + id +
			"' does not exist, cannot be loaded due to missing permissions, or does not support this operation."})
		return
	}
	if f := p.Get("fields"); f != "" {
		keep := map[string]bool{"id": true}
		for _, k := range strings.Split(f, ",") {
			keep[strings.TrimSpace(k)] = true
		}
		for k := range out {
			if !keep[k] {
				delete(out, k)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
