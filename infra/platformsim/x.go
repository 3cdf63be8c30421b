package platformsim

// X API v2, under /x: OAuth 2.0 authorization code with PKCE
// (/x/i/oauth2/authorize, /x/2/oauth2/token, /x/2/oauth2/revoke), the
// current user (/x/2/users/me), posts (/x/2/tweets) and media upload, simple
// (/x/2/media/upload) and chunked (initialize, append, finalize, STATUS).

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesX) }

// FaultCreditsDepleted makes X answer 402 CreditsDepleted: the app's
// pay-per-use credits ran out.
const FaultCreditsDepleted FaultKind = "credits_depleted"

// FaultUserCap24h makes X answer 429 because the user's 24-hour post cap is
// used up (x-user-limit-24hour-remaining: 0, reset ResetSeconds ahead)
// while the 15-minute window still has room, as X does: it sends every
// window's headers on every answer.
const FaultUserCap24h FaultKind = "user_cap_24h"

const (
	xName          = "x"
	xCodeTTL       = 30 * time.Second
	xTokenTTL      = 2 * time.Hour
	xTextLimit     = 280
	xMaxImageBytes = 5 << 20
	xMaxGIFBytes   = 15 << 20
	xMaxVideoBytes = 8 << 30
	xMediaTTL      = 86400
)

// xMedia is one media upload.
type xMedia struct {
	ID        string
	Owner     string
	Type      string // MIME type
	Category  string
	Total     int64
	Segments  map[int]int64
	Finalized bool
	Fail      bool   // processing ends "failed" (media_fetch fault)
	State     string // "" (no processing), pending, in_progress, succeeded, failed
}

// usable reports whether the media can be attached to a post.
func (m *xMedia) usable() bool { return m.Finalized && (m.State == "" || m.State == "succeeded") }

// kind is "video", "gif" or "image".
func (m *xMedia) kind() string {
	switch {
	case strings.HasPrefix(m.Type, "video/"):
		return "video"
	case m.Type == "image/gif":
		return "gif"
	}
	return "image"
}

func (m *xMedia) key() string {
	switch m.kind() {
	case "video":
		return "7_" + m.ID
	case "gif":
		return "16_" + m.ID
	}
	return "3_" + m.ID
}

func (s *Server) routesX() {
	s.handle("GET /x/i/oauth2/authorize", s.xAuthorize)
	s.handle("POST /x/2/oauth2/token", s.xToken)
	s.handle("POST /x/2/oauth2/revoke", s.xRevoke)
	s.handle("GET /x/2/users/me", s.xUsersMe)
	s.handle("POST /x/2/tweets", s.xCreatePost)
	s.handle("POST /x/2/media/upload", s.xUploadSimple)
	s.handle("GET /x/2/media/upload", s.xUploadStatus)
	s.handle("POST /x/2/media/upload/initialize", s.xUploadInit)
	s.handle("POST /x/2/media/upload/{id}/append", s.xUploadAppend)
	s.handle("POST /x/2/media/upload/{id}/finalize", s.xUploadFinalize)
}

// xProblem answers with X's problem JSON.
func xProblem(w http.ResponseWriter, status int, title, detail, typ string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": title, "detail": detail, "type": typ, "status": status})
}

// xInvalid answers 400 invalid-request with one error message.
func xInvalid(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": msg}},
		"title":  "Invalid Request", "detail": "One or more parameters to your request was invalid.",
		"type": "https://api.twitter.com/2/problems/invalid-request",
	})
}

func xUnauthorized(w http.ResponseWriter) {
	xProblem(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized", "about:blank")
}

// xOAuthError answers the token endpoint's error shape.
func xOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// xRateHeaders sets the per-endpoint rate-limit headers (reset in epoch
// seconds; X sends no Retry-After).
func (s *Server) xRateHeaders(w http.ResponseWriter, remaining int, reset time.Time) {
	w.Header().Set("x-rate-limit-limit", "100")
	w.Header().Set("x-rate-limit-remaining", strconv.Itoa(remaining))
	w.Header().Set("x-rate-limit-reset", strconv.FormatInt(reset.Unix(), 10))
}

// xAPI authenticates an API call and applies the generic faults; write calls
// also get server_error and credits_depleted. It returns nil when it already
// answered.
func (s *Server) xAPI(w http.ResponseWriter, r *http.Request, write bool) *Account {
	slowFault(s, r, xName)
	kinds := []FaultKind{FaultExpiredToken, FaultRateLimit}
	if write {
		kinds = append(kinds, FaultServerError, FaultCreditsDepleted, FaultUserCap24h)
	}
	if f := s.takeFault(xName, kinds...); f != nil {
		switch f.Kind {
		case FaultExpiredToken:
			xUnauthorized(w)
		case FaultRateLimit:
			s.xRateHeaders(w, 0, s.now().Add(f.resetAfter()))
			xProblem(w, http.StatusTooManyRequests, "Too Many Requests", "Too Many Requests", "about:blank")
		case FaultServerError:
			st := f.status(http.StatusServiceUnavailable)
			xProblem(w, st, http.StatusText(st), http.StatusText(st), "about:blank")
		case FaultUserCap24h:
			s.xRateHeaders(w, 99, s.now().Add(15*time.Minute))
			w.Header().Set("x-user-limit-24hour-limit", "17")
			w.Header().Set("x-user-limit-24hour-remaining", "0")
			w.Header().Set("x-user-limit-24hour-reset", strconv.FormatInt(s.now().Add(f.resetAfter()).Unix(), 10))
			xProblem(w, http.StatusTooManyRequests, "Too Many Requests", "Too Many Requests", "about:blank")
		case FaultCreditsDepleted:
			xProblem(w, http.StatusPaymentRequired, "CreditsDepleted",
				"Your enrolled account does not have any credits to fulfill this request.",
				"https://api.twitter.com/2/problems/credits")
		}
		return nil
	}
	a, ok := s.accountByToken(xName, bearer(r))
	if !ok {
		xUnauthorized(w)
		return nil
	}
	s.xRateHeaders(w, 99, s.now().Add(15*time.Minute))
	return a
}

// --- OAuth 2.0 ---

func (s *Server) xAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	method := q.Get("code_challenge_method")
	switch {
	case q.Get("response_type") != "code", !clientIDOK(s, xName, q.Get("client_id")):
		http.Error(w, "Something went wrong: the client_id or response_type is not valid.", http.StatusBadRequest)
		return
	case q.Get("redirect_uri") == "", q.Get("scope") == "", q.Get("state") == "":
		http.Error(w, "Something went wrong: redirect_uri, scope and state are required.", http.StatusBadRequest)
		return
	case q.Get("code_challenge") == "", method != "S256" && method != "plain":
		http.Error(w, "Something went wrong: PKCE is required (code_challenge with code_challenge_method S256 or plain).", http.StatusBadRequest)
		return
	}
	if s.takeFault(xName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{"error": {"access_denied"}, "state": {q.Get("state")}}, "")
		return
	}
	a := clientAccount(s, xName, q.Get("client_id"), q.Get(SimUserParam), "sim_x_", func() string { return randDigits(19) })
	code := issueCode(s, xName, randB64(32), authCode{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		AccountID: a.ID, Scope: q.Get("scope"), Challenge: q.Get("code_challenge"), Method: method})
	redirectWith(w, r, q.Get("redirect_uri"), url.Values{"state": {q.Get("state")}, "code": {code}}, "")
}

// xClient authenticates the client of a token or revoke call: Basic auth for
// confidential clients, client_id in the form for public ones.
func (s *Server) xClient(r *http.Request) (string, bool) {
	if id, secret, ok := r.BasicAuth(); ok {
		return id, secret != "" && s.checkClient(xName, id, secret)
	}
	id := r.PostForm.Get("client_id")
	return id, s.checkClient(xName, id, "")
}

func (s *Server) xToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		xOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	clientID, ok := s.xClient(r)
	if !ok {
		xOAuthError(w, http.StatusUnauthorized, "unauthorized_client", "Missing valid authorization header")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		c, ok := redeemCode(s, xName, r.PostForm.Get("code"), clientID, r.PostForm.Get("redirect_uri"), xCodeTTL)
		verifier := r.PostForm.Get("code_verifier")
		if ok {
			ok = verifier != "" && ((c.Method == "S256" && s256(verifier) == c.Challenge) ||
				(c.Method == "plain" && verifier == c.Challenge))
		}
		if s.takeFault(xName, FaultInvalidGrant) != nil || !ok {
			xOAuthError(w, http.StatusBadRequest, "invalid_request", "Value passed for the authorization code was invalid.")
			return
		}
		a, found := s.accountByID(xName, c.AccountID)
		if !found {
			xOAuthError(w, http.StatusBadRequest, "invalid_request", "Value passed for the authorization code was invalid.")
			return
		}
		s.xIssueTokens(w, a, c.Scope)
	case "refresh_token":
		s.count(xName, "token_refresh")
		a, ok := accountByRefresh(s, xName, r.PostForm.Get("refresh_token"))
		if s.takeFault(xName, FaultInvalidGrant) != nil || !ok {
			// X answers a spent or unknown refresh token with invalid_request.
			xOAuthError(w, http.StatusBadRequest, "invalid_request", "Value passed for the token was invalid.")
			return
		}
		var scope string
		s.with(func(st map[string]any) { scope, _ = st["x|scope|"+a.ID].(string) })
		s.xIssueTokens(w, a, scope)
	default:
		xOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter [grant_type].")
	}
}

// xIssueTokens gives a a new access token and, with offline.access, a new
// refresh token that replaces (rotates out) the previous one.
func (s *Server) xIssueTokens(w http.ResponseWriter, a *Account, scope string) {
	access := randB64(40)
	s.setToken(a, access, s.now().Add(xTokenTTL))
	s.with(func(st map[string]any) { st["x|scope|"+a.ID] = scope })
	out := map[string]any{"token_type": "bearer", "expires_in": int(xTokenTTL.Seconds()), "access_token": access, "scope": scope}
	if strings.Contains(" "+scope+" ", " offline.access ") {
		rt := randB64(40)
		bindRefresh(s, a, rt)
		out["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) xRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		xOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	if _, ok := s.xClient(r); !ok {
		xOAuthError(w, http.StatusUnauthorized, "unauthorized_client", "Missing valid authorization header")
		return
	}
	tok := r.PostForm.Get("token")
	if a, ok := s.accountByToken(xName, tok); ok {
		s.with(func(map[string]any) { delete(s.accounts, xName+"|"+a.AccessToken) })
	} else if a, ok := accountByRefresh(s, xName, tok); ok {
		bindRefresh(s, a, "")
	}
	writeJSON(w, http.StatusOK, map[string]bool{"revoked": true})
}

func (s *Server) xUsersMe(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, false)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{"id": a.ID, "name": a.Handle, "username": a.Handle}})
}

// --- posts ---

// xPostRequest is the body of POST /2/tweets; X's schema allows no other
// properties.
type xPostRequest struct {
	Text  *string `json:"text"`
	Media *struct {
		MediaIDs      []string `json:"media_ids"`
		TaggedUserIDs []string `json:"tagged_user_ids"`
	} `json:"media"`
	Reply *struct {
		InReplyToTweetID    string   `json:"in_reply_to_tweet_id"`
		ExcludeReplyUserIDs []string `json:"exclude_reply_user_ids"`
	} `json:"reply"`
	ReplySettings         string          `json:"reply_settings"`
	QuoteTweetID          string          `json:"quote_tweet_id"`
	Poll                  json.RawMessage `json:"poll"`
	CommunityID           string          `json:"community_id"`
	Geo                   json.RawMessage `json:"geo"`
	ForSuperFollowersOnly bool            `json:"for_super_followers_only"`
	Nullcast              bool            `json:"nullcast"`
	MadeWithAI            bool            `json:"made_with_ai"`
	PaidPartnership       bool            `json:"paid_partnership"`
	EditOptions           json.RawMessage `json:"edit_options"`
	CardURI               string          `json:"card_uri"`
	ShareWithFollowers    bool            `json:"share_with_followers"`
}

func (s *Server) xCreatePost(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, true)
	if a == nil {
		return
	}
	var req xPostRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		xInvalid(w, "The request body is not valid JSON for this endpoint: "+err.Error())
		return
	}
	body := ""
	if req.Text != nil {
		body = *req.Text
	}
	var ids []string
	if req.Media != nil {
		ids = req.Media.MediaIDs
	}
	if body == "" && len(ids) == 0 {
		xInvalid(w, "You must specify either text or media.")
		return
	}
	if text.Count(platform.CountXWeighted, body) > xTextLimit {
		xInvalid(w, "Your Tweet text is too long. For more information on how X determines text length see https://github.com/twitter/twitter-text.")
		return
	}
	if req.QuoteTweetID != "" {
		xProblem(w, http.StatusForbidden, "Forbidden", "Quoting posts is not available on your access tier.", "https://api.twitter.com/2/problems/client-forbidden")
		return
	}
	if !s.xMediaAttachable(a.ID, ids) {
		xInvalid(w, "Your media IDs are invalid.")
		return
	}
	duplicate := s.takeFault(xName, FaultDuplicate) != nil
	if body != "" {
		s.with(func(st map[string]any) {
			texts, _ := st["x|texts|"+a.ID].(map[string]bool)
			duplicate = duplicate || texts[body]
		})
	}
	if duplicate {
		xProblem(w, http.StatusForbidden, "Forbidden", "You are not allowed to create a Tweet with duplicate content.", "about:blank")
		return
	}
	id := randDigits(19)
	extra := map[string]string{}
	if req.ReplySettings != "" {
		extra["reply_settings"] = req.ReplySettings
	}
	if req.Reply != nil {
		extra["in_reply_to"] = req.Reply.InReplyToTweetID
	}
	s.record(Post{Platform: xName, ID: id, URL: "https://x.com/" + a.Handle + "/status/" + id,
		AccountID: a.ID, Text: body, Media: ids, Extra: extra})
	s.with(func(st map[string]any) {
		texts, _ := st["x|texts|"+a.ID].(map[string]bool)
		if texts == nil {
			texts = map[string]bool{}
			st["x|texts|"+a.ID] = texts
		}
		if body != "" {
			texts[body] = true
		}
	})
	if s.takeFault(xName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	w.Header().Set("x-user-limit-24hour-limit", "10000")
	w.Header().Set("x-user-limit-24hour-remaining", "9999")
	w.Header().Set("x-user-limit-24hour-reset", strconv.FormatInt(s.now().Add(24*time.Hour).Unix(), 10))
	// As recorded: the new post's API URL in Location, the edit history
	// under its recorded name, gzip when the client accepts it.
	w.Header().Set("Location", s.PublicURL()+"/x/2/tweets/"+id)
	writeJSONEncoded(w, r, http.StatusCreated, map[string]any{"data": map[string]any{"id": id, "text": body, "edit_history_tweet_ids": []string{id}}})
}

// xMediaAttachable checks media ids against X's rules: up to four images,
// or one GIF, or one video, all uploaded by owner and processed.
func (s *Server) xMediaAttachable(owner string, ids []string) bool {
	if len(ids) == 0 {
		return true
	}
	if len(ids) > 4 {
		return false
	}
	ok := true
	s.with(func(st map[string]any) {
		for _, id := range ids {
			m, _ := st["x|media|"+id].(*xMedia)
			if m == nil || m.Owner != owner || !m.usable() || (m.kind() != "image" && len(ids) > 1) {
				ok = false
				return
			}
		}
	})
	return ok
}

// --- media ---

// xMediaLimit is the size cap for a MIME type, or 0 when X does not accept it.
func xMediaLimit(mt string) int64 {
	switch mt {
	case "image/jpeg", "image/png", "image/webp", "image/bmp":
		return xMaxImageBytes
	case "image/gif":
		return xMaxGIFBytes
	case "video/mp4", "video/quicktime":
		return xMaxVideoBytes
	}
	return 0
}

// xMediaJSON is the data object of upload answers.
func xMediaJSON(m *xMedia) map[string]any {
	out := map[string]any{"id": m.ID, "media_key": m.key(), "size": m.Total, "expires_after_secs": xMediaTTL}
	switch m.State {
	case "pending", "in_progress":
		out["processing_info"] = map[string]any{"state": m.State, "check_after_secs": 1, "progress_percent": map[string]int{"pending": 0, "in_progress": 50}[m.State]}
	case "succeeded":
		out["processing_info"] = map[string]any{"state": "succeeded", "progress_percent": 100}
	case "failed":
		out["processing_info"] = map[string]any{"state": "failed", "progress_percent": 100,
			"error": map[string]any{"code": 1, "name": "InvalidMedia", "message": "Invalid or Unsupported media"}}
	}
	if m.kind() != "video" {
		out["image"] = map[string]any{"image_type": m.Type, "w": 1200, "h": 675}
	}
	return out
}

// xPart reads the "media" part of a multipart upload: its first bytes
// (to sniff) and its size. Parts past 1 MiB spill to disk, not memory.
func xPart(r *http.Request) ([]byte, int64, bool) {
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		return nil, 0, false
	}
	f, _, err := r.FormFile("media")
	if err != nil {
		return nil, 0, false
	}
	defer f.Close()
	head, n, err := readCounted(f, xMaxVideoBytes)
	return head, n, err == nil
}

func (s *Server) xUploadSimple(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, true)
	if a == nil {
		return
	}
	b, size, ok := xPart(r)
	if r.FormValue("command") != "" {
		xInvalid(w, "The command parameter is not supported on this endpoint; use /2/media/upload/initialize, append and finalize.")
		return
	}
	if !ok || size == 0 {
		xInvalid(w, "The media field is required (multipart/form-data).")
		return
	}
	mt := sniff(b)
	if s.takeFault(xName, FaultMediaFetch) != nil || !strings.HasPrefix(mt, "image/") || xMediaLimit(mt) == 0 {
		xInvalid(w, "Invalid or Unsupported media.")
		return
	}
	if size > xMediaLimit(mt) {
		xInvalid(w, "File size exceeds "+strconv.FormatInt(xMediaLimit(mt), 10)+" bytes.")
		return
	}
	m := &xMedia{ID: randDigits(19), Owner: a.ID, Type: mt, Category: r.FormValue("media_category"),
		Total: size, Finalized: true}
	s.with(func(st map[string]any) { st["x|media|"+m.ID] = m })
	writeJSON(w, http.StatusOK, map[string]any{"data": xMediaJSON(m)})
}

func (s *Server) xUploadInit(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, true)
	if a == nil {
		return
	}
	var req struct {
		MediaType     string `json:"media_type"`
		TotalBytes    int64  `json:"total_bytes"`
		MediaCategory string `json:"media_category"`
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		xInvalid(w, "The request body must be JSON.")
		return
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		xInvalid(w, "The request body is not valid JSON.")
		return
	}
	limit := xMediaLimit(req.MediaType)
	switch {
	case limit == 0:
		xInvalid(w, "media_type "+req.MediaType+" is not supported.")
		return
	case req.TotalBytes <= 0 || req.TotalBytes > limit:
		xInvalid(w, "total_bytes must be between 1 and "+strconv.FormatInt(limit, 10)+".")
		return
	case req.MediaCategory == "":
		xInvalid(w, "media_category is required.")
		return
	}
	m := &xMedia{ID: randDigits(19), Owner: a.ID, Type: req.MediaType, Category: req.MediaCategory,
		Total: req.TotalBytes, Segments: map[int]int64{}}
	s.with(func(st map[string]any) { st["x|media|"+m.ID] = m })
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"id": m.ID, "media_key": m.key(), "expires_after_secs": xMediaTTL}})
}

// xOwnMedia returns the chunked upload id of a, or answers 400.
func (s *Server) xOwnMedia(w http.ResponseWriter, a *Account, id string) *xMedia {
	var m *xMedia
	s.with(func(st map[string]any) { m, _ = st["x|media|"+id].(*xMedia) })
	if m == nil || m.Owner != a.ID || m.Segments == nil {
		xInvalid(w, "The media id is not valid for this upload.")
		return nil
	}
	return m
}

func (s *Server) xUploadAppend(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, true)
	if a == nil {
		return
	}
	m := s.xOwnMedia(w, a, r.PathValue("id"))
	if m == nil {
		return
	}
	_, size, ok := xPart(r)
	idx, err := strconv.Atoi(r.FormValue("segment_index"))
	if !ok || err != nil || idx < 0 || idx > 999 {
		xInvalid(w, "media (multipart) and segment_index (0-999) are required.")
		return
	}
	finalized := false
	s.with(func(map[string]any) {
		finalized = m.Finalized
		if !finalized {
			m.Segments[idx] = size
		}
	})
	if finalized {
		xInvalid(w, "The upload was already finalized.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"expires_at": s.now().Add(xMediaTTL * time.Second).Unix()}})
}

func (s *Server) xUploadFinalize(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, true)
	if a == nil {
		return
	}
	m := s.xOwnMedia(w, a, r.PathValue("id"))
	if m == nil {
		return
	}
	fail := s.takeFault(xName, FaultMediaFetch) != nil
	msg := ""
	s.with(func(map[string]any) {
		var sum int64
		for i := 0; i < len(m.Segments); i++ {
			n, ok := m.Segments[i]
			if !ok {
				msg = "Segment " + strconv.Itoa(i) + " is missing."
				return
			}
			sum += n
		}
		switch {
		case m.Finalized:
			msg = "The upload was already finalized."
		case sum != m.Total:
			msg = "Segments do not add up to provided total file size."
		default:
			m.Finalized, m.Fail = true, fail
			if m.kind() != "image" || fail {
				m.State = "pending"
			}
		}
	})
	if msg != "" {
		xInvalid(w, msg)
		return
	}
	var out map[string]any
	s.with(func(map[string]any) { out = xMediaJSON(m) })
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

// xUploadStatus answers STATUS; each read moves processing one step:
// pending → in_progress → succeeded (or failed).
func (s *Server) xUploadStatus(w http.ResponseWriter, r *http.Request) {
	a := s.xAPI(w, r, false)
	if a == nil {
		return
	}
	q := r.URL.Query()
	if q.Get("command") != "STATUS" {
		xInvalid(w, "command must be STATUS.")
		return
	}
	var m *xMedia
	var out map[string]any
	s.with(func(st map[string]any) {
		m, _ = st["x|media|"+q.Get("media_id")].(*xMedia)
		if m == nil || m.Owner != a.ID {
			return
		}
		switch m.State {
		case "pending":
			m.State = "in_progress"
		case "in_progress":
			m.State = "succeeded"
			if m.Fail {
				m.State = "failed"
			}
		}
		out = xMediaJSON(m)
	})
	if out == nil {
		xInvalid(w, "The media_id is not valid.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}
