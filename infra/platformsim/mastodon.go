package platformsim

// Mastodon: one simulated instance under /mastodon (its base URL is
// PublicURL+"/mastodon"). App registration, OAuth (authorize, token,
// revoke), verify_credentials, /api/v2/instance, media v2 with 202 → 206 →
// 200 processing, and statuses with Idempotency-Key replay for one hour.

import (
	"encoding/json"
	"html"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesMastodon) }

const (
	mastoName            = "mastodon"
	mastoIdempotencyTTL  = time.Hour
	mastoCodeTTL         = 10 * time.Minute // Doorkeeper's default
	mastoDefaultMaxChars = 500
	mastoImageSizeLimit  = 16 * 1024 * 1024
	mastoVideoSizeLimit  = 99 * 1024 * 1024
	mastoMaxAttachments  = 4
)

var mastoMIMETypes = []string{
	"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/avif",
	"video/mp4", "video/quicktime", "video/webm", "audio/mpeg", "audio/ogg", "audio/wav",
}

type mastoApp struct {
	ClientID, Secret, RedirectURIs, Scopes string
}

type mastoMedia struct {
	ID, Owner, Type, Description, URL string
	Processing, Failed                bool
}

type mastoIdem struct {
	Status map[string]any
	At     time.Time
}

// SetMastodonMaxCharacters changes the instance's
// configuration.statuses.max_characters (default 500).
func (s *Server) SetMastodonMaxCharacters(n int) {
	s.with(func(st map[string]any) { st["mastodon|max_chars"] = n })
}

func (s *Server) mastoMaxChars() int {
	n := mastoDefaultMaxChars
	s.with(func(st map[string]any) {
		if v, ok := st["mastodon|max_chars"].(int); ok && v > 0 {
			n = v
		}
	})
	return n
}

func (s *Server) routesMastodon() {
	s.handle("POST /mastodon/api/v1/apps", s.mastoApps)
	s.handle("GET /mastodon/oauth/authorize", s.mastoAuthorize)
	s.handle("POST /mastodon/oauth/token", s.mastoToken)
	s.handle("POST /mastodon/oauth/revoke", s.mastoRevoke)
	s.handle("GET /mastodon/api/v1/accounts/verify_credentials", s.mastoVerify)
	s.handle("GET /mastodon/api/v2/instance", s.mastoInstance)
	s.handle("POST /mastodon/api/v2/media", s.mastoUpload)
	s.handle("GET /mastodon/api/v1/media/{id}", s.mastoGetMedia)
	s.handle("POST /mastodon/api/v1/statuses", s.mastoPostStatus)
	s.handle("GET /mastodon/api/v1/statuses/{id}", s.mastoGetStatus)
}

func (s *Server) mastoBase() string { return s.PublicURL() + "/mastodon" }

func mastoErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// mastoRateHeaders sets the X-RateLimit-* headers; Reset is ISO-8601.
func (s *Server) mastoRateHeaders(w http.ResponseWriter, remaining int, reset time.Time) {
	w.Header().Set("X-RateLimit-Limit", "300")
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	w.Header().Set("X-RateLimit-Reset", reset.UTC().Format("2006-01-02T15:04:05.000000Z"))
}

// mastoAPI authenticates an API call and applies the generic faults. It
// returns nil when it already answered.
func (s *Server) mastoAPI(w http.ResponseWriter, r *http.Request) *Account {
	slowFault(s, r, mastoName)
	a, ok := s.accountByToken(mastoName, bearer(r))
	if !ok {
		mastoErr(w, http.StatusUnauthorized, "The access token is invalid")
		return nil
	}
	if f := s.takeFault(mastoName, FaultRateLimit, FaultServerError, FaultExpiredToken); f != nil {
		switch f.Kind {
		case FaultRateLimit:
			s.mastoRateHeaders(w, 0, s.now().Add(f.resetAfter()))
			mastoErr(w, http.StatusTooManyRequests, "Too many requests")
		case FaultServerError:
			st := f.status(http.StatusServiceUnavailable)
			// A proxy in front of the instance answers with HTML.
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(st)
			_, _ = io.WriteString(w, "<html><body><h1>"+strconv.Itoa(st)+" Service Unavailable</h1></body></html>")
		case FaultExpiredToken:
			mastoErr(w, http.StatusUnauthorized, "The access token is invalid")
		}
		return nil
	}
	s.mastoRateHeaders(w, 299, s.now().Add(5*time.Minute).Truncate(5*time.Minute))
	return a
}

func (s *Server) mastoAccountJSON(a *Account) map[string]any {
	return map[string]any{
		"id": a.ID, "username": a.Handle, "acct": a.Handle, "display_name": a.Handle,
		"locked": false, "bot": false, "note": "", "url": s.mastoBase() + "/@" + a.Handle,
		"avatar": s.mastoBase() + "/avatars/original/missing.png", "followers_count": 0,
		"following_count": 0, "statuses_count": len(s.Posts(mastoName)),
		"created_at": "2024-01-01T00:00:00.000Z",
	}
}

// formOrJSON reads request parameters from JSON, urlencoded or multipart
// bodies into a flat map; arrays keep every value.
func mastoParams(r *http.Request) (url.Values, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var m map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil {
			return nil, err
		}
		v := url.Values{}
		for k, x := range m {
			switch t := x.(type) {
			case []any:
				for _, e := range t {
					v.Add(k+"[]", mastoScalar(e))
				}
			default:
				v.Set(k, mastoScalar(t))
			}
		}
		return v, nil
	}
	if ct == "multipart/form-data" {
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			return nil, err
		}
		return r.Form, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.Form, nil
}

func mastoScalar(x any) string {
	switch t := x.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}

func (s *Server) mastoApps(w http.ResponseWriter, r *http.Request) {
	p, err := mastoParams(r)
	if err != nil || p.Get("client_name") == "" || p.Get("redirect_uris") == "" {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Application name can't be blank, Redirect URI can't be blank")
		return
	}
	app := &mastoApp{ClientID: randB64(32), Secret: randB64(32), RedirectURIs: p.Get("redirect_uris"), Scopes: p.Get("scopes")}
	if app.Scopes == "" {
		app.Scopes = "read"
	}
	id := s.nextID()
	s.with(func(st map[string]any) { st["mastodon|app|"+app.ClientID] = app; s.issueLocked(app.Secret) })
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "name": p.Get("client_name"), "website": p.Get("website"),
		"redirect_uri": app.RedirectURIs, "redirect_uris": strings.Fields(app.RedirectURIs),
		"scopes": strings.Fields(app.Scopes), "client_id": app.ClientID, "client_secret": app.Secret,
		"vapid_key": randB64(65),
	})
}

// mastoClientOK checks a client against registered apps, then Options.Clients.
func (s *Server) mastoClientOK(id, secret string, secretRequired bool) bool {
	var app *mastoApp
	s.with(func(st map[string]any) { app, _ = st["mastodon|app|"+id].(*mastoApp) })
	if app != nil {
		return !secretRequired || app.Secret == secret
	}
	if !secretRequired {
		return id != ""
	}
	return s.checkClient(mastoName, id, secret)
}

func (s *Server) mastoAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("redirect_uri") == "" || !s.mastoClientOK(q.Get("client_id"), "", false) {
		mastoErr(w, http.StatusBadRequest, "The client identifier provided is invalid or the request is malformed")
		return
	}
	if m := q.Get("code_challenge_method"); q.Get("code_challenge") != "" && m != "S256" {
		mastoErr(w, http.StatusBadRequest, "The code challenge method must be S256")
		return
	}
	if s.takeFault(mastoName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{
			"error":             {"access_denied"},
			"error_description": {"The resource owner or authorization server denied the request."},
			"state":             {q.Get("state")},
		}, "")
		return
	}
	a := clientAccount(s, mastoName, q.Get("client_id"), q.Get(SimUserParam), "user", s.nextID)
	code := issueCode(s, mastoName, randB64(32), authCode{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		AccountID: a.ID, Scope: q.Get("scope"), Challenge: q.Get("code_challenge")})
	redirectWith(w, r, q.Get("redirect_uri"), codeParams(code, q.Get("state")), "")
}

func (s *Server) mastoToken(w http.ResponseWriter, r *http.Request) {
	p, err := mastoParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "The request is missing a required parameter."})
		return
	}
	if !s.mastoClientOK(p.Get("client_id"), p.Get("client_secret"), true) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."})
		return
	}
	invalidGrant := func() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."})
	}
	switch p.Get("grant_type") {
	case "authorization_code":
		c, ok := redeemCode(s, mastoName, p.Get("code"), p.Get("client_id"), p.Get("redirect_uri"), mastoCodeTTL)
		if s.takeFault(mastoName, FaultInvalidGrant) != nil || !ok || !c.verifierOK(p.Get("code_verifier")) {
			invalidGrant()
			return
		}
		a, ok := s.accountByID(mastoName, c.AccountID)
		if !ok {
			invalidGrant()
			return
		}
		tok := randB64(32)
		s.setToken(a, tok, time.Time{})
		scope := c.Scope
		if scope == "" {
			scope = "read"
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "scope": scope, "created_at": s.now().Unix()})
	case "client_credentials":
		writeJSON(w, http.StatusOK, map[string]any{"access_token": randB64(32), "token_type": "Bearer", "scope": "read", "created_at": s.now().Unix()})
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "The authorization grant type is not supported by the authorization server."})
	}
}

func (s *Server) mastoRevoke(w http.ResponseWriter, r *http.Request) {
	p, err := mastoParams(r)
	if err != nil || !s.mastoClientOK(p.Get("client_id"), p.Get("client_secret"), true) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "unauthorized_client", "error_description": "You are not authorized to revoke this token"})
		return
	}
	tok := p.Get("token")
	s.with(func(map[string]any) { delete(s.accounts, mastoName+"|"+tok) })
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Server) mastoVerify(w http.ResponseWriter, r *http.Request) {
	a := s.mastoAPI(w, r)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, s.mastoAccountJSON(a))
}

func (s *Server) mastoInstance(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, mastoName)
	u, _ := url.Parse(s.PublicURL())
	domain := ""
	if u != nil {
		domain = u.Host
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"domain": domain, "title": "POSSE simulated instance", "version": "4.5.0",
		"source_url": "https://github.com/mastodon/mastodon", "description": "platformsim",
		"configuration": map[string]any{
			"urls":     map[string]any{"streaming": "wss://" + domain},
			"accounts": map[string]any{"max_featured_tags": 10, "max_pinned_statuses": 5},
			"statuses": map[string]any{"max_characters": s.mastoMaxChars(), "max_media_attachments": mastoMaxAttachments, "characters_reserved_per_url": 23},
			"media_attachments": map[string]any{
				"supported_mime_types": mastoMIMETypes, "description_limit": 1500,
				"image_size_limit": mastoImageSizeLimit, "image_matrix_limit": 33177600,
				"video_size_limit": mastoVideoSizeLimit, "video_frame_rate_limit": 120, "video_matrix_limit": 8294400,
			},
			"polls": map[string]any{"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2629746},
		},
		"registrations": map[string]any{"enabled": false, "approval_required": false},
	})
}

func (s *Server) mastoMediaJSON(m *mastoMedia) map[string]any {
	var u any
	if !m.Processing {
		u = m.URL
	}
	return map[string]any{
		"id": m.ID, "type": m.Type, "url": u, "preview_url": m.URL + "?preview",
		"remote_url": nil, "description": m.Description, "blurhash": "UFHx", "meta": map[string]any{},
	}
}

func (s *Server) mastoUpload(w http.ResponseWriter, r *http.Request) {
	a := s.mastoAPI(w, r)
	if a == nil {
		return
	}
	if err := r.ParseMultipartForm(mastoVideoSizeLimit + 1<<20); err != nil {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File can't be blank")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File can't be blank")
		return
	}
	defer f.Close()
	body, err := io.ReadAll(f)
	if err != nil {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File could not be read")
		return
	}
	ct := hdr.Header.Get("Content-Type")
	if ct == "" || ct == "application/octet-stream" {
		ct = http.DetectContentType(body)
	}
	ct, _, _ = mime.ParseMediaType(ct)
	if !slices.Contains(mastoMIMETypes, ct) {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File content type is invalid, File is invalid")
		return
	}
	isVideo := strings.HasPrefix(ct, "video/") || ct == "image/gif"
	limit := int64(mastoImageSizeLimit)
	if isVideo {
		limit = mastoVideoSizeLimit
	}
	if int64(len(body)) > limit {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File file size must be less than "+strconv.FormatInt(limit, 10)+" Bytes")
		return
	}
	failed := s.takeFault(mastoName, FaultMediaFetch) != nil
	m := &mastoMedia{ID: s.nextID(), Owner: a.ID, Type: "image", Description: r.FormValue("description")}
	if isVideo {
		m.Type = "video"
		if ct == "image/gif" {
			m.Type = "gifv"
		}
	}
	m.URL = s.mastoBase() + "/system/media_attachments/files/" + m.ID + "/original"
	if !isVideo && failed {
		mastoErr(w, http.StatusUnprocessableEntity, "Error processing thumbnail for uploaded media")
		return
	}
	m.Processing, m.Failed = isVideo, failed
	s.with(func(st map[string]any) { st["mastodon|media|"+m.ID] = m })
	s.count(mastoName, "media_upload")
	status := http.StatusOK
	if isVideo {
		status = http.StatusAccepted
	}
	writeJSON(w, status, s.mastoMediaJSON(m))
}

func (s *Server) mastoGetMedia(w http.ResponseWriter, r *http.Request) {
	a := s.mastoAPI(w, r)
	if a == nil {
		return
	}
	var m *mastoMedia
	var snapshot mastoMedia
	s.with(func(st map[string]any) {
		m, _ = st["mastodon|media|"+r.PathValue("id")].(*mastoMedia)
		if m != nil {
			snapshot = *m
			if m.Processing && !m.Failed {
				// One 206 answer, then processing is done.
				m.Processing = false
			}
		}
	})
	if m == nil || snapshot.Owner != a.ID {
		mastoErr(w, http.StatusNotFound, "Record not found")
		return
	}
	if snapshot.Failed {
		mastoErr(w, http.StatusUnprocessableEntity, "Error processing thumbnail for uploaded media")
		return
	}
	status := http.StatusOK
	if snapshot.Processing {
		status = http.StatusPartialContent
	}
	writeJSON(w, status, s.mastoMediaJSON(&snapshot))
}

func (s *Server) mastoPostStatus(w http.ResponseWriter, r *http.Request) {
	a := s.mastoAPI(w, r)
	if a == nil {
		return
	}
	p, err := mastoParams(r)
	if err != nil {
		mastoErr(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	idemKey := "mastodon|idem|" + a.ID + "|" + key
	if key != "" {
		var prev *mastoIdem
		s.with(func(st map[string]any) { prev, _ = st[idemKey].(*mastoIdem) })
		if prev != nil && s.now().Sub(prev.At) < mastoIdempotencyTTL {
			s.count(mastoName, "idempotent_replay")
			writeJSON(w, http.StatusOK, prev.Status)
			return
		}
	}
	status, spoiler := p.Get("status"), p.Get("spoiler_text")
	mediaIDs := p["media_ids[]"]
	if len(mediaIDs) == 0 {
		mediaIDs = p["media_ids"]
	}
	if strings.TrimSpace(status) == "" && len(mediaIDs) == 0 {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Text can't be blank")
		return
	}
	if max := s.mastoMaxChars(); text.Count(platform.CountMastodon, spoiler+status) > max {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Text character limit of "+strconv.Itoa(max)+" exceeded")
		return
	}
	if len(mediaIDs) > mastoMaxAttachments {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Media attachments too many attachments")
		return
	}
	visibility := p.Get("visibility")
	if visibility == "" {
		visibility = "public"
	}
	if !slices.Contains([]string{"public", "unlisted", "private", "direct"}, visibility) {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Visibility is not included in the list")
		return
	}
	var attachments []map[string]any
	var mediaURLs []string
	hasVideo := false
	for _, id := range mediaIDs {
		var m *mastoMedia
		var snap mastoMedia
		s.with(func(st map[string]any) {
			if m, _ = st["mastodon|media|"+id].(*mastoMedia); m != nil {
				snap = *m
			}
		})
		if m == nil || snap.Owner != a.ID {
			mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Media attachments are invalid")
			return
		}
		if snap.Processing || snap.Failed {
			mastoErr(w, http.StatusUnprocessableEntity, "Cannot attach files that have not finished processing. Try again in a moment!")
			return
		}
		hasVideo = hasVideo || snap.Type != "image"
		attachments = append(attachments, s.mastoMediaJSON(&snap))
		mediaURLs = append(mediaURLs, snap.URL)
	}
	if hasVideo && len(attachments) > 1 {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: Media attachments cannot combine a video with other media")
		return
	}
	seq, _ := strconv.Atoi(s.nextID())
	id := strconv.FormatInt(s.now().UnixMilli()<<16+int64(seq%65536), 10)
	js := map[string]any{
		"id": id, "created_at": s.now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"in_reply_to_id": nil, "in_reply_to_account_id": nil,
		"sensitive": p.Get("sensitive") == "true", "spoiler_text": spoiler, "visibility": visibility,
		"language": p.Get("language"), "uri": s.mastoBase() + "/users/" + a.Handle + "/statuses/" + id,
		"url": s.mastoBase() + "/@" + a.Handle + "/" + id, "replies_count": 0, "reblogs_count": 0,
		"favourites_count": 0, "content": "<p>" + html.EscapeString(status) + "</p>",
		"account": s.mastoAccountJSON(a), "media_attachments": attachments,
		"mentions": []any{}, "tags": []any{}, "emojis": []any{}, "poll": nil, "card": nil,
	}
	if js["media_attachments"] == nil {
		js["media_attachments"] = []any{}
	}
	if key != "" {
		s.with(func(st map[string]any) { st[idemKey] = &mastoIdem{Status: js, At: s.now()} })
	}
	s.with(func(st map[string]any) { st["mastodon|status|"+id] = js })
	s.count(mastoName, "publish")
	s.record(Post{Platform: mastoName, ID: id, URL: js["url"].(string), AccountID: a.ID, Text: status,
		Media: mediaURLs, Extra: map[string]string{"idempotency_key": key, "visibility": visibility, "spoiler_text": spoiler}})
	if s.takeFault(mastoName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	writeJSON(w, http.StatusOK, js)
}

func (s *Server) mastoGetStatus(w http.ResponseWriter, r *http.Request) {
	a := s.mastoAPI(w, r)
	if a == nil {
		return
	}
	s.count(mastoName, "read_status")
	if s.missingScope(mastoName) {
		mastoErr(w, http.StatusForbidden, "This action is outside the authorized scopes")
		return
	}
	id := r.PathValue("id")
	var js map[string]any
	s.with(func(st map[string]any) { js, _ = st["mastodon|status|"+id].(map[string]any) })
	p, live := s.livePost(mastoName, id)
	switch {
	case !live:
		mastoErr(w, http.StatusNotFound, "Record not found")
		return
	case js == nil: // seeded with SeedPost
		js = map[string]any{"id": id, "url": p.URL, "uri": p.URL, "content": p.Text}
	}
	writeJSON(w, http.StatusOK, s.mastoStatusCounts(id, js))
}
