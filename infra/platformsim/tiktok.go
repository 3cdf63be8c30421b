package platformsim

// TikTok: open.tiktokapis.com under /tiktok (Login Kit v2 authorize, token
// with client_key/client_secret and rotating refresh tokens, revoke,
// user/info) and the Content Posting API v2: creator_info, video init
// (PULL_FROM_URL, or FILE_UPLOAD with chunk-rule validation and a PUT upload
// URL under /tiktok/upload/video/), photo content init, status fetch with a
// progression ending in PUBLISH_COMPLETE (publicaly_available_post_id only
// for public posts, and only from the third fetch on), and video/list.
// Every answer uses the {"data":…, "error":{"code":"ok",…}} envelope.

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesTikTok) }

const (
	ttName = "tiktok"
	// ttCodeTTL is not in the platform notes; integrators report codes
	// expiring within minutes.
	ttCodeTTL          = 5 * time.Minute
	ttAccessTTL        = 2 * time.Hour
	ttRefreshTTL       = 180 * 24 * time.Hour
	ttMaxTitle         = 2200
	ttMaxPhotoTitle    = 90
	ttMaxPhotoDesc     = 4000
	ttMaxPhotos        = 35
	ttMinChunk         = 5 << 20
	ttMaxChunk         = 64 << 20
	ttMaxLastChunk     = 128 << 20
	ttMaxChunks        = 1000
	ttMaxPullBytes     = 64 << 20
	ttPublic           = "PUBLIC_TO_EVERYONE"
	ttDefaultMaxVidSec = 600
)

var (
	ttPrivacyAll   = []string{ttPublic, "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"}
	ttContentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)
)

type ttRefresh struct {
	OpenID, Scope string
	Exp           time.Time
	Revoked       bool
}

type ttPublish struct {
	ID, Owner, Kind, Source, Mode, Privacy, Title, Description string
	Media                                                      []string
	VideoSize, ChunkSize                                       int64
	TotalChunks, NextChunk                                     int
	Received                                                   int64
	UploadToken                                                string
	Ready                                                      bool // media pulled or fully uploaded
	Failed                                                     string
	Polls                                                      int
	PostID                                                     string
	CreatedAt                                                  time.Time
}

// SetTikTokPrivacyOptions sets the privacy_level_options creator_info
// reports for openID (default: all four levels).
func (s *Server) SetTikTokPrivacyOptions(openID string, options ...string) {
	s.with(func(st map[string]any) { st["tiktok|privacy|"+openID] = slices.Clone(options) })
}

func (s *Server) ttPrivacy(openID string) []string {
	out := ttPrivacyAll
	s.with(func(st map[string]any) {
		if v, ok := st["tiktok|privacy|"+openID].([]string); ok {
			out = v
		}
	})
	return out
}

func (s *Server) routesTikTok() {
	s.handle("GET /tiktok/v2/auth/authorize/{$}", s.ttAuthorize)
	s.handle("POST /tiktok/v2/oauth/token/{$}", s.ttToken)
	s.handle("POST /tiktok/v2/oauth/revoke/{$}", s.ttRevoke)
	s.handle("GET /tiktok/v2/user/info/{$}", s.ttUserInfo)
	s.handle("POST /tiktok/v2/post/publish/creator_info/query/{$}", s.ttCreatorInfo)
	s.handle("POST /tiktok/v2/post/publish/video/init/{$}", s.ttVideoInit)
	s.handle("POST /tiktok/v2/post/publish/content/init/{$}", s.ttContentInit)
	s.handle("POST /tiktok/v2/post/publish/status/fetch/{$}", s.ttStatus)
	s.handle("PUT /tiktok/upload/video/{$}", s.ttUpload)
	s.handle("POST /tiktok/v2/video/list/{$}", s.ttVideoList)
}

func ttLogID() string {
	return time.Now().UTC().Format("20060102150405") + strings.ToUpper(randHex(10))
}

// ttOK answers data in the success envelope.
func ttOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "error": map[string]string{"code": "ok", "message": "", "log_id": ttLogID()}})
}

// ttErr answers an API error in the envelope.
func ttErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"data": map[string]any{}, "error": map[string]string{"code": code, "message": msg, "log_id": ttLogID()}})
}

// ttOAuthErr answers an OAuth error in Login Kit v2's flat shape.
func ttOAuthErr(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc, "log_id": ttLogID()})
}

// ttAPI authenticates a Content Posting API call and applies the generic faults.
func (s *Server) ttAPI(w http.ResponseWriter, r *http.Request) *Account {
	slowFault(s, r, ttName)
	a, ok := s.accountByToken(ttName, bearer(r))
	if !ok {
		ttErr(w, http.StatusUnauthorized, "access_token_invalid", "The access token is invalid or not found in the request.")
		return nil
	}
	if f := s.takeFault(ttName, FaultRateLimit, FaultServerError, FaultExpiredToken); f != nil {
		switch f.Kind {
		case FaultRateLimit:
			ttErr(w, http.StatusTooManyRequests, "rate_limit_exceeded", "The API rate limit was exceeded. Please try again later.")
		case FaultServerError:
			ttErr(w, f.status(http.StatusInternalServerError), "internal_error", "Something went wrong. Please try again later.")
		case FaultExpiredToken:
			ttErr(w, http.StatusUnauthorized, "access_token_invalid", "The access token is invalid or not found in the request.")
		}
		return nil
	}
	return a
}

// ttJSON decodes a JSON request body, insisting on the JSON content type.
func ttJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		ttErr(w, http.StatusBadRequest, "invalid_params", "Content-Type must be application/json; charset=UTF-8")
		return false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		ttErr(w, http.StatusBadRequest, "invalid_params", "The request body is not valid JSON")
		return false
	}
	return true
}

func (s *Server) ttAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("redirect_uri") == "" || !clientIDOK(s, ttName, q.Get("client_key")) {
		ttOAuthErr(w, http.StatusBadRequest, "invalid_request", "client_key, redirect_uri and response_type=code are required")
		return
	}
	if s.takeFault(ttName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{"error": {"access_denied"},
			"error_description": {"The user denied the request"}, "state": {q.Get("state")}}, "")
		return
	}
	a := clientAccount(s, ttName, q.Get("client_key"), q.Get(SimUserParam), "tiktoker_", func() string { return "-000" + randHex(12) })
	code := issueCode(s, ttName, randB64(48)+"*0!"+randDigits(4), authCode{ClientID: q.Get("client_key"), RedirectURI: q.Get("redirect_uri"),
		AccountID: a.ID, Scope: q.Get("scope"), Challenge: q.Get("code_challenge")})
	redirectWith(w, r, q.Get("redirect_uri"), url.Values{"code": {code}, "scopes": {q.Get("scope")}, "state": {q.Get("state")}}, "")
}

// ttIssue gives a a fresh access and refresh token and answers them.
func (s *Server) ttIssue(w http.ResponseWriter, a *Account, scope string) {
	access, refresh := "act."+randB64(48)+"!"+randDigits(4), "rft."+randB64(48)+"!"+randDigits(4)
	s.setToken(a, access, s.now().Add(ttAccessTTL))
	setRefresh(s, a, refresh)
	s.with(func(st map[string]any) {
		st["tiktok|refresh|"+refresh] = &ttRefresh{OpenID: a.ID, Scope: scope, Exp: s.now().Add(ttRefreshTTL)}
	})
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "expires_in": int(ttAccessTTL.Seconds()), "open_id": a.ID,
		"refresh_token": refresh, "refresh_expires_in": int(ttRefreshTTL.Seconds()), "scope": scope, "token_type": "Bearer",
	})
}

func (s *Server) ttToken(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, ttName)
	if err := r.ParseForm(); err != nil {
		ttOAuthErr(w, http.StatusBadRequest, "invalid_request", "The request parameters are malformed.")
		return
	}
	f := r.PostForm
	if !s.checkClient(ttName, f.Get("client_key"), f.Get("client_secret")) {
		ttOAuthErr(w, http.StatusUnauthorized, "invalid_client", "Client key or secret is invalid.")
		return
	}
	badGrant := func(desc string) { ttOAuthErr(w, http.StatusBadRequest, "invalid_grant", desc) }
	switch f.Get("grant_type") {
	case "authorization_code":
		c, ok := redeemCode(s, ttName, f.Get("code"), f.Get("client_key"), f.Get("redirect_uri"), ttCodeTTL)
		if s.takeFault(ttName, FaultInvalidGrant) != nil || !ok || !c.verifierOK(f.Get("code_verifier")) {
			badGrant("Authorization code is expired or invalid.")
			return
		}
		a, ok := s.accountByID(ttName, c.AccountID)
		if !ok {
			badGrant("Authorization code is invalid.")
			return
		}
		s.ttIssue(w, a, c.Scope)
	case "refresh_token":
		key := "tiktok|refresh|" + f.Get("refresh_token")
		var rt *ttRefresh
		var revoked bool
		s.with(func(st map[string]any) {
			if rt, _ = st[key].(*ttRefresh); rt != nil {
				revoked = rt.Revoked
				rt.Revoked = true // rotation: the presented token is retired
			}
		})
		if s.takeFault(ttName, FaultInvalidGrant) != nil || rt == nil || revoked || s.now().After(rt.Exp) {
			badGrant("Refresh token is invalid or expired.")
			return
		}
		a, ok := s.accountByID(ttName, rt.OpenID)
		if !ok {
			badGrant("Refresh token is invalid.")
			return
		}
		s.count(ttName, "token_refresh")
		s.ttIssue(w, a, rt.Scope)
	default:
		ttOAuthErr(w, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported.")
	}
}

func (s *Server) ttRevoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if !s.checkClient(ttName, r.PostFormValue("client_key"), r.PostFormValue("client_secret")) {
		ttOAuthErr(w, http.StatusUnauthorized, "invalid_client", "Client key or secret is invalid.")
		return
	}
	tok := r.PostFormValue("token")
	s.with(func(map[string]any) { delete(s.accounts, ttName+"|"+tok) })
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Server) ttUserInfo(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	all := map[string]any{"open_id": a.ID, "union_id": "u" + a.ID, "avatar_url": "https://p16.example/" + a.ID + ".jpeg",
		"display_name": a.Handle, "username": a.Handle}
	user := map[string]any{}
	for _, f := range strings.Split(r.URL.Query().Get("fields"), ",") {
		if v, ok := all[strings.TrimSpace(f)]; ok {
			user[strings.TrimSpace(f)] = v
		}
	}
	if len(user) == 0 {
		ttErr(w, http.StatusBadRequest, "invalid_params", "fields is required")
		return
	}
	ttOK(w, map[string]any{"user": user})
}

func (s *Server) ttCreatorInfo(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	ttOK(w, map[string]any{
		"creator_avatar_url": "https://p16.example/" + a.ID + ".jpeg", "creator_username": a.Handle,
		"creator_nickname": a.Handle, "privacy_level_options": s.ttPrivacy(a.ID), "comment_disabled": false,
		"duet_disabled": false, "stitch_disabled": false, "max_video_post_duration_sec": ttDefaultMaxVidSec,
	})
}

// ttPostInfo is the post_info object of both init endpoints.
type ttPostInfo struct {
	Title         string `json:"title"`
	Description   string `json:"description"`
	PrivacyLevel  string `json:"privacy_level"`
	DisableDuet   bool   `json:"disable_duet"`
	DisableComm   bool   `json:"disable_comment"`
	DisableStitch bool   `json:"disable_stitch"`
}

// ttCheckPrivacy answers privacy_level_option_mismatch when level is not one
// of the creator's options.
func (s *Server) ttCheckPrivacy(w http.ResponseWriter, a *Account, level string) bool {
	if !slices.Contains(s.ttPrivacy(a.ID), level) {
		ttErr(w, http.StatusBadRequest, "privacy_level_option_mismatch", "privacy_level is not one of the creator's privacy_level_options")
		return false
	}
	return true
}

// ttPullable reports whether rawURL's domain counts as verified: in the
// simulator, loopback hosts are the verified ones.
func ttPullable(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && isLoopbackHost(u.Hostname())
}

func (s *Server) ttStore(p *ttPublish) {
	s.with(func(st map[string]any) { st["tiktok|publish|"+p.ID] = p })
}

// ttAccept records an accepted post (its media is in) and gives it its id.
func (s *Server) ttAccept(a *Account, p *ttPublish) {
	p.PostID = "7" + randDigits(18)
	kind := "video"
	text := p.Title
	if p.Kind == "PHOTO" {
		kind, text = "photo", p.Description
	}
	s.count(ttName, "publish")
	s.record(Post{Platform: ttName, ID: p.PostID, URL: "https://www.tiktok.com/@" + a.Handle + "/" + kind + "/" + p.PostID,
		AccountID: a.ID, Text: text, Media: p.Media, Extra: map[string]string{
			"publish_id": p.ID, "privacy_level": p.Privacy, "source": p.Source, "media_type": p.Kind, "title": p.Title, "post_mode": p.Mode}})
}

func (s *Server) ttVideoInit(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	var in struct {
		PostInfo   ttPostInfo `json:"post_info"`
		SourceInfo struct {
			Source          string `json:"source"`
			VideoURL        string `json:"video_url"`
			VideoSize       int64  `json:"video_size"`
			ChunkSize       int64  `json:"chunk_size"`
			TotalChunkCount int    `json:"total_chunk_count"`
		} `json:"source_info"`
	}
	if !ttJSON(w, r, &in) {
		return
	}
	if text.Count(platform.CountUTF16, in.PostInfo.Title) > ttMaxTitle {
		ttErr(w, http.StatusBadRequest, "invalid_params", "post_info.title is longer than 2200 characters")
		return
	}
	if in.PostInfo.PrivacyLevel == "" {
		ttErr(w, http.StatusBadRequest, "invalid_params", "post_info.privacy_level is required")
		return
	}
	if !s.ttCheckPrivacy(w, a, in.PostInfo.PrivacyLevel) {
		return
	}
	src := in.SourceInfo
	p := &ttPublish{Owner: a.ID, Kind: "VIDEO", Source: src.Source, Mode: "DIRECT_POST", Privacy: in.PostInfo.PrivacyLevel,
		Title: in.PostInfo.Title, CreatedAt: s.now()}
	resp := map[string]any{}
	switch src.Source {
	case "PULL_FROM_URL":
		if !ttPullable(src.VideoURL) {
			ttErr(w, http.StatusForbidden, "url_ownership_unverified", "The domain or URL prefix of video_url is not verified for this client")
			return
		}
		p.ID = "v_pub_url~v2-1." + randDigits(19)
		p.Media = []string{src.VideoURL}
		if _, _, err := fetchMedia(r.Context(), src.VideoURL, ttMaxPullBytes); err != nil || s.takeFault(ttName, FaultMediaFetch) != nil {
			p.Failed = "video_pull_failed"
		} else {
			p.Ready = true
		}
	case "FILE_UPLOAD":
		if msg := ttChunkRule(src.VideoSize, src.ChunkSize, src.TotalChunkCount); msg != "" {
			ttErr(w, http.StatusBadRequest, "invalid_params", msg)
			return
		}
		p.ID = "v_pub_file~v2-1." + randDigits(19)
		p.VideoSize, p.ChunkSize, p.TotalChunks, p.UploadToken = src.VideoSize, src.ChunkSize, src.TotalChunkCount, randB64(24)
		p.Media = []string{"upload:" + p.ID}
		resp["upload_url"] = s.PublicURL() + "/tiktok/upload/video/?" + url.Values{"upload_id": {p.ID}, "upload_token": {p.UploadToken}}.Encode()
	default:
		ttErr(w, http.StatusBadRequest, "invalid_params", "source_info.source must be FILE_UPLOAD or PULL_FROM_URL")
		return
	}
	resp["publish_id"] = p.ID
	s.ttStore(p)
	if p.Ready {
		s.ttAccept(a, p)
		if s.takeFault(ttName, FaultTimeoutAfterCreate) != nil {
			dropConnection(w)
			return
		}
	}
	ttOK(w, resp)
}

// ttChunkRule checks FILE_UPLOAD sizes: files under 5 MB in one chunk;
// chunks of 5–64 MB; total_chunk_count = floor(video_size / chunk_size),
// 1–1000; the last chunk (which takes the remainder) at most 128 MB.
func ttChunkRule(size, chunk int64, count int) string {
	switch {
	case size <= 0 || chunk <= 0 || count <= 0:
		return "source_info.video_size, chunk_size and total_chunk_count must be positive"
	case size < ttMinChunk:
		if chunk != size || count != 1 {
			return "a video under 5 MB must be uploaded as one chunk of video_size bytes"
		}
	case chunk < ttMinChunk || chunk > ttMaxChunk || chunk > size:
		return "chunk_size must be between 5 MB and 64 MB"
	case int64(count) != size/chunk:
		return "total_chunk_count must be video_size / chunk_size rounded down"
	case count > ttMaxChunks:
		return "total_chunk_count must be at most 1000"
	case size-int64(count-1)*chunk > ttMaxLastChunk:
		return "the last chunk must be at most 128 MB"
	}
	return ""
}

func (s *Server) ttContentInit(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	var in struct {
		MediaType  string     `json:"media_type"`
		PostMode   string     `json:"post_mode"`
		PostInfo   ttPostInfo `json:"post_info"`
		SourceInfo struct {
			Source          string   `json:"source"`
			PhotoCoverIndex int      `json:"photo_cover_index"`
			PhotoImages     []string `json:"photo_images"`
		} `json:"source_info"`
	}
	if !ttJSON(w, r, &in) {
		return
	}
	src := in.SourceInfo
	switch {
	case in.MediaType != "PHOTO":
		ttErr(w, http.StatusBadRequest, "invalid_params", "media_type must be PHOTO")
		return
	case in.PostMode != "DIRECT_POST" && in.PostMode != "MEDIA_UPLOAD":
		ttErr(w, http.StatusBadRequest, "invalid_params", "post_mode must be DIRECT_POST or MEDIA_UPLOAD")
		return
	case src.Source != "PULL_FROM_URL":
		ttErr(w, http.StatusBadRequest, "invalid_params", "photo posts only support PULL_FROM_URL")
		return
	case len(src.PhotoImages) == 0 || len(src.PhotoImages) > ttMaxPhotos:
		ttErr(w, http.StatusBadRequest, "invalid_params", "photo_images must list 1 to 35 URLs")
		return
	case src.PhotoCoverIndex < 0 || src.PhotoCoverIndex >= len(src.PhotoImages):
		ttErr(w, http.StatusBadRequest, "invalid_params", "photo_cover_index is out of range")
		return
	case text.Count(platform.CountUTF16, in.PostInfo.Title) > ttMaxPhotoTitle:
		ttErr(w, http.StatusBadRequest, "invalid_params", "post_info.title is longer than 90 characters")
		return
	case text.Count(platform.CountUTF16, in.PostInfo.Description) > ttMaxPhotoDesc:
		ttErr(w, http.StatusBadRequest, "invalid_params", "post_info.description is longer than 4000 characters")
		return
	}
	if in.PostMode == "DIRECT_POST" {
		if in.PostInfo.PrivacyLevel == "" {
			ttErr(w, http.StatusBadRequest, "invalid_params", "post_info.privacy_level is required")
			return
		}
		if !s.ttCheckPrivacy(w, a, in.PostInfo.PrivacyLevel) {
			return
		}
	}
	for _, u := range src.PhotoImages {
		if !ttPullable(u) {
			ttErr(w, http.StatusForbidden, "url_ownership_unverified", "The domain or URL prefix of a photo_images URL is not verified for this client")
			return
		}
	}
	p := &ttPublish{ID: "p_pub_url~v2-1." + randDigits(19), Owner: a.ID, Kind: "PHOTO", Source: src.Source, Mode: in.PostMode,
		Privacy: in.PostInfo.PrivacyLevel, Title: in.PostInfo.Title, Description: in.PostInfo.Description, Media: src.PhotoImages, CreatedAt: s.now()}
	p.Ready = true
	for _, u := range src.PhotoImages {
		if _, _, err := fetchMedia(r.Context(), u, ttMaxPullBytes); err != nil {
			p.Ready, p.Failed = false, "photo_pull_failed"
		}
	}
	if p.Ready && s.takeFault(ttName, FaultMediaFetch) != nil {
		p.Ready, p.Failed = false, "photo_pull_failed"
	}
	s.ttStore(p)
	if p.Ready {
		s.ttAccept(a, p)
		if s.takeFault(ttName, FaultTimeoutAfterCreate) != nil {
			dropConnection(w)
			return
		}
	}
	ttOK(w, map[string]any{"publish_id": p.ID})
}

func (s *Server) ttUpload(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, ttName)
	q := r.URL.Query()
	var p *ttPublish
	s.with(func(st map[string]any) { p, _ = st["tiktok|publish|"+q.Get("upload_id")].(*ttPublish) })
	if p == nil || p.UploadToken == "" || p.UploadToken != q.Get("upload_token") {
		ttErr(w, http.StatusNotFound, "invalid_params", "upload_id or upload_token is invalid")
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !slices.Contains([]string{"video/mp4", "video/quicktime", "video/webm"}, ct) {
		ttErr(w, http.StatusBadRequest, "invalid_file_upload", "Content-Type must be video/mp4, video/quicktime or video/webm")
		return
	}
	m := ttContentRange.FindStringSubmatch(r.Header.Get("Content-Range"))
	if m == nil {
		ttErr(w, http.StatusBadRequest, "invalid_file_upload", "Content-Range must be bytes {first}-{last}/{total}")
		return
	}
	first, _ := strconv.ParseInt(m[1], 10, 64)
	last, _ := strconv.ParseInt(m[2], 10, 64)
	total, _ := strconv.ParseInt(m[3], 10, 64)
	var idx int
	var wantFirst, wantLast int64
	s.with(func(map[string]any) {
		idx = p.NextChunk
		wantFirst = int64(idx) * p.ChunkSize
		wantLast = wantFirst + p.ChunkSize - 1
		if idx == p.TotalChunks-1 {
			wantLast = p.VideoSize - 1
		}
	})
	if idx >= p.TotalChunks || first != wantFirst || last != wantLast || total != p.VideoSize {
		ttErr(w, http.StatusBadRequest, "invalid_file_upload", "chunks must be uploaded in order: expected bytes "+
			strconv.FormatInt(wantFirst, 10)+"-"+strconv.FormatInt(wantLast, 10)+"/"+strconv.FormatInt(p.VideoSize, 10))
		return
	}
	_, got, err := readCounted(r.Body, last-first+1)
	if err != nil || got != last-first+1 {
		ttErr(w, http.StatusBadRequest, "invalid_file_upload", "the body length does not match Content-Range")
		return
	}
	final := false
	s.with(func(map[string]any) {
		p.NextChunk++
		p.Received += got
		final = p.NextChunk == p.TotalChunks
	})
	if !final {
		w.WriteHeader(http.StatusPartialContent)
		return
	}
	a, ok := s.accountByID(ttName, p.Owner)
	if !ok {
		ttErr(w, http.StatusBadRequest, "invalid_params", "the creator is gone")
		return
	}
	if s.takeFault(ttName, FaultMediaFetch) != nil {
		s.with(func(map[string]any) { p.Failed = "file_format_check_failed" })
		w.WriteHeader(http.StatusCreated)
		return
	}
	s.with(func(map[string]any) { p.Ready = true })
	s.ttAccept(a, p)
	if s.takeFault(ttName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) ttStatus(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	var in struct {
		PublishID string `json:"publish_id"`
	}
	if !ttJSON(w, r, &in) {
		return
	}
	var snap ttPublish
	found := false
	s.with(func(st map[string]any) {
		if p, _ := st["tiktok|publish|"+in.PublishID].(*ttPublish); p != nil && p.Owner == a.ID {
			if p.Ready {
				p.Polls++
			}
			snap, found = *p, true
		}
	})
	if !found {
		ttErr(w, http.StatusBadRequest, "invalid_params", "publish_id is invalid")
		return
	}
	data := map[string]any{"status": "", "uploaded_bytes": snap.Received}
	if snap.Source == "PULL_FROM_URL" {
		data = map[string]any{"status": "", "downloaded_bytes": 0}
	}
	done := "PUBLISH_COMPLETE"
	if snap.Mode == "MEDIA_UPLOAD" {
		done = "SEND_TO_USER_INBOX"
	}
	switch {
	case snap.Failed != "":
		data["status"], data["fail_reason"] = "FAILED", snap.Failed
	case !snap.Ready:
		data["status"] = "PROCESSING_UPLOAD"
	case snap.Polls == 1:
		data["status"] = "PROCESSING_DOWNLOAD"
		if snap.Source == "FILE_UPLOAD" {
			data["status"] = "PROCESSING_UPLOAD"
		}
	case snap.Polls == 2 || done != "PUBLISH_COMPLETE" || snap.Privacy != ttPublic:
		data["status"] = done
	default:
		// Public posts get their id only after moderation: here, from the
		// third fetch on.
		id, _ := strconv.ParseInt(snap.PostID, 10, 64)
		data["status"], data["publicaly_available_post_id"] = done, []int64{id}
	}
	ttOK(w, data)
}

func (s *Server) ttVideoList(w http.ResponseWriter, r *http.Request) {
	a := s.ttAPI(w, r)
	if a == nil {
		return
	}
	var in struct {
		MaxCount int `json:"max_count"`
	}
	if !ttJSON(w, r, &in) {
		return
	}
	if in.MaxCount <= 0 || in.MaxCount > 20 {
		in.MaxCount = 20
	}
	posts := s.Posts(ttName)
	videos := []map[string]any{}
	for i := len(posts) - 1; i >= 0 && len(videos) < in.MaxCount; i-- {
		p := posts[i]
		if p.AccountID != a.ID || p.Extra["privacy_level"] != ttPublic || p.Extra["post_mode"] == "MEDIA_UPLOAD" {
			continue
		}
		id, _ := strconv.ParseInt(p.ID, 10, 64)
		videos = append(videos, map[string]any{"id": strconv.FormatInt(id, 10), "title": p.Text, "create_time": p.CreatedAt.Unix(), "share_url": p.URL})
	}
	ttOK(w, map[string]any{"videos": videos, "cursor": 0, "has_more": false})
}
