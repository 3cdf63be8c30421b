package platformsim

// Mastodon: one simulated instance under /mastodon (its base URL is
// PublicURL+"/mastodon"). App registration, OAuth (authorize, token,
// revoke), verify_credentials (a CredentialAccount with source.privacy),
// /api/v2/instance, media v2 with 202 → 206 → 200 processing, and statuses
// (the full Status entity, visibility defaulting to the account's) with
// Idempotency-Key replay for one hour.
//
// Rate limits follow Mastodon's own code: every API answer carries the
// per-account request window (300 per 5 minutes); creating a status counts
// against the statuses family (300 per 3 hours, app/lib/rate_limiter.rb) and
// media uploads against Rack::Attack's throttle (30 per 30 minutes). All
// are fixed windows aligned on the epoch, and X-RateLimit-Reset is
// Mastodon's now + (period - now mod period): the window's end, carrying
// the request's fraction of a second.

import (
	"encoding/json"
	"html"
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

func init() { platformRoutes = append(platformRoutes, (*Server).routesMastodon) }

const (
	mastoName            = "mastodon"
	mastoIdempotencyTTL  = time.Hour
	mastoCodeTTL         = 10 * time.Minute // Doorkeeper's default
	mastoDefaultMaxChars = 500
	mastoImageSizeLimit  = 16 * 1024 * 1024
	mastoVideoSizeLimit  = 99 * 1024 * 1024
	mastoMaxAttachments  = 4
	mastoAPILimit        = 300
	mastoAPIPeriod       = 5 * time.Minute
)

// MastodonLimits are the simulated instance's rate limits per account. A
// zero field keeps Mastodon's default.
type MastodonLimits struct {
	// Statuses created per StatusesPeriod (default 300 per 3 h).
	Statuses       int
	StatusesPeriod time.Duration
	// Media uploads per MediaPeriod (default 30 per 30 min).
	Media       int
	MediaPeriod time.Duration
}

func (l MastodonLimits) withDefaults() MastodonLimits {
	if l.Statuses <= 0 {
		l.Statuses = 300
	}
	if l.StatusesPeriod <= 0 {
		l.StatusesPeriod = 3 * time.Hour
	}
	if l.Media <= 0 {
		l.Media = 30
	}
	if l.MediaPeriod <= 0 {
		l.MediaPeriod = 30 * time.Minute
	}
	return l
}

// SetMastodonLimits changes the instance's per-account rate limits (zero
// fields: Mastodon's defaults). Benchmarks that post faster than an account
// may raise them; everything else should keep the defaults.
func (s *Server) SetMastodonLimits(l MastodonLimits) {
	s.with(func(st map[string]any) { st["mastodon|limits"] = l.withDefaults() })
}

func (s *Server) mastoLimits() MastodonLimits {
	l := MastodonLimits{}.withDefaults()
	s.with(func(st map[string]any) {
		if v, ok := st["mastodon|limits"].(MastodonLimits); ok {
			l = v
		}
	})
	return l
}

// SetMastodonMediaPolls sets how many GET /api/v1/media/:id reads of a
// processing upload answer 206 before it is ready (default 1; 0 makes the
// first poll answer 200, which real instances do for quick uploads).
func (s *Server) SetMastodonMediaPolls(n int) {
	s.with(func(st map[string]any) { st["mastodon|media_polls"] = max(n, 0) })
}

func (s *Server) mastoMediaPolls() int {
	n := 1
	s.with(func(st map[string]any) {
		if v, ok := st["mastodon|media_polls"].(int); ok {
			n = v
		}
	})
	return n
}

// mastoWindowEnd is Mastodon's X-RateLimit-Reset for a fixed window of
// period: now + (period - now mod period), in whole seconds of the epoch,
// so it keeps now's fraction of a second.
func mastoWindowEnd(now time.Time, period time.Duration) time.Time {
	p := int64(period / time.Second)
	return now.Add(time.Duration(p-now.Unix()%p) * time.Second)
}

// mastoWindowCount adds delta to account's count in family's current window
// and returns the new count. Windows are fixed, aligned on the epoch, like
// Mastodon's Redis keys (rate_limit:<account>:<family>:<epoch / period>).
func (s *Server) mastoWindowCount(account, family string, period time.Duration, delta int) int {
	key := "mastodon|rl|" + account + "|" + family + "|" + strconv.FormatInt(s.now().Unix()/int64(period/time.Second), 10)
	n := 0
	s.with(func(st map[string]any) {
		n, _ = st[key].(int)
		n += delta
		st[key] = n
	})
	return n
}

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
	// Polls is how many more status reads answer 206.
	Polls int
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
	s.handle("PUT /_sim/mastodon/limits", s.mastoPutLimits)
}

// mastoPutLimits sets the instance's rate limits: {"statuses": N,
// "statusesPeriodSeconds": S, "media": N, "mediaPeriodSeconds": S}.
func (s *Server) mastoPutLimits(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Statuses, StatusesPeriodSeconds, Media, MediaPeriodSeconds int
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil ||
		in.Statuses < 0 || in.StatusesPeriodSeconds < 0 || in.Media < 0 || in.MediaPeriodSeconds < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {statuses?, statusesPeriodSeconds?, media?, mediaPeriodSeconds?} as non-negative numbers"})
		return
	}
	s.SetMastodonLimits(MastodonLimits{Statuses: in.Statuses, StatusesPeriod: time.Duration(in.StatusesPeriodSeconds) * time.Second,
		Media: in.Media, MediaPeriod: time.Duration(in.MediaPeriodSeconds) * time.Second})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) mastoBase() string { return s.PublicURL() + "/mastodon" }

func mastoErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// mastoRateHeaders sets the X-RateLimit-* headers of the request window;
// Reset is ISO-8601 with microseconds, as Ruby's iso8601(6) writes it.
func (s *Server) mastoRateHeaders(w http.ResponseWriter, remaining int, reset time.Time) {
	mastoLimitHeaders(w, mastoAPILimit, remaining, reset)
}

// mastoLimitHeaders sets the X-RateLimit-* headers of one window.
func mastoLimitHeaders(w http.ResponseWriter, limit, remaining int, reset time.Time) {
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
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
	s.mastoRateHeaders(w, mastoAPILimit-1, mastoWindowEnd(s.now(), mastoAPIPeriod))
	return a
}

// mastoPrivacy is the account's default post visibility (its
// source.privacy): Account.Privacy, else public.
func mastoPrivacy(a *Account) string {
	if a.Privacy != "" {
		return a.Privacy
	}
	return "public"
}

// mastoAccountJSON is the Account entity of a.
func (s *Server) mastoAccountJSON(a *Account) map[string]any {
	statuses, last := 0, any(nil)
	for _, p := range s.Posts(mastoName) {
		if p.AccountID == a.ID {
			statuses++
			last = p.CreatedAt.UTC().Format(time.DateOnly)
		}
	}
	avatar := s.mastoBase() + "/avatars/original/missing.png"
	header := s.mastoBase() + "/headers/original/missing.png"
	return map[string]any{
		"id": a.ID, "username": a.Handle, "acct": a.Handle, "display_name": a.Handle,
		"locked": false, "bot": false, "discoverable": true, "indexable": true, "group": false,
		"hide_collections": false, "noindex": false,
		"created_at": "2024-01-01T00:00:00.000Z", "note": "", "url": s.mastoBase() + "/@" + a.Handle,
		"uri":    s.mastoBase() + "/users/" + a.Handle,
		"avatar": avatar, "avatar_static": avatar, "header": header, "header_static": header,
		"followers_count": 0, "following_count": 0, "statuses_count": statuses, "last_status_at": last,
		"emojis": []any{}, "fields": []any{}, "roles": []any{},
	}
}

// mastoCredentialAccountJSON is verify_credentials' CredentialAccount: the
// Account with source (the account's posting defaults) and role.
func (s *Server) mastoCredentialAccountJSON(a *Account) map[string]any {
	js := s.mastoAccountJSON(a)
	js["source"] = map[string]any{
		"privacy": mastoPrivacy(a), "sensitive": false, "language": "en", "note": "", "fields": []any{},
		"follow_requests_count": 0, "hide_collections": false, "discoverable": true, "indexable": true,
		"attribution_domains": []any{}, "quote_policy": "public",
	}
	js["role"] = map[string]any{"id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": false}
	return js
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
	writeJSON(w, http.StatusOK, s.mastoCredentialAccountJSON(a))
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
	// Rack::Attack's throttle_media runs before the app: every upload by
	// an authenticated account counts, and past the limit the answer is a
	// 429 with the throttle's own headers.
	if a, ok := s.accountByToken(mastoName, bearer(r)); ok {
		l := s.mastoLimits()
		if n := s.mastoWindowCount(a.ID, "media", l.MediaPeriod, 1); n > l.Media {
			mastoLimitHeaders(w, l.Media, 0, mastoWindowEnd(s.now(), l.MediaPeriod))
			mastoErr(w, http.StatusTooManyRequests, "Too many requests")
			return
		}
	}
	a := s.mastoAPI(w, r)
	if a == nil {
		return
	}
	// Files past 1 MiB spill to disk instead of memory.
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File can't be blank")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		mastoErr(w, http.StatusUnprocessableEntity, "Validation failed: File can't be blank")
		return
	}
	defer f.Close()
	body, size, err := readCounted(f, mastoVideoSizeLimit)
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
	if size > limit {
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
	m.Processing, m.Failed, m.Polls = isVideo, failed, s.mastoMediaPolls()
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
			if m.Processing && !m.Failed && m.Polls <= 0 {
				m.Processing = false // done before this read
			}
			snapshot = *m
			if m.Processing && !m.Failed {
				m.Polls--
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
	// Every answer to an authenticated create carries the statuses
	// family's headers (replays and rejections included); a created
	// status updates them below.
	lim := s.mastoLimits()
	s.mastoStatusHeaders(w, lim, s.mastoWindowCount(a.ID, "statuses", lim.StatusesPeriod, 0))
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
		visibility = mastoPrivacy(a) // the account's default, as Mastodon does
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
	// The statuses family counts a status once it is created; past the
	// limit the creation is rolled back and answered 429. The answer
	// carries the family's headers unless the request window has less
	// left (Api::RateLimitHeaders#override_rate_limit_headers).
	count := s.mastoWindowCount(a.ID, "statuses", lim.StatusesPeriod, 1)
	refused := count > lim.Statuses
	if refused {
		count = s.mastoWindowCount(a.ID, "statuses", lim.StatusesPeriod, -1)
	}
	s.mastoStatusHeaders(w, lim, count)
	if refused {
		mastoErr(w, http.StatusTooManyRequests, "Too many requests")
		return
	}
	seq, _ := strconv.Atoi(s.nextID())
	id := strconv.FormatInt(s.now().UnixMilli()<<16+int64(seq%65536), 10)
	language := p.Get("language")
	if language == "" {
		language = "en" // the account's posting language
	}
	if attachments == nil {
		attachments = []map[string]any{}
	}
	// No quotes_count: the adapter's contract (and the figures the
	// simulator serves for reads) has Mastodon give no quote count.
	js := map[string]any{
		"id": id, "created_at": s.now().UTC().Format("2006-01-02T15:04:05.000Z"), "edited_at": nil,
		"in_reply_to_id": nil, "in_reply_to_account_id": nil,
		"sensitive": p.Get("sensitive") == "true", "spoiler_text": spoiler, "visibility": visibility,
		"language": language, "uri": s.mastoBase() + "/users/" + a.Handle + "/statuses/" + id,
		"url": s.mastoBase() + "/@" + a.Handle + "/" + id, "replies_count": 0, "reblogs_count": 0,
		"favourites_count": 0, "content": mastoContent(status),
		"favourited": false, "reblogged": false, "muted": false, "bookmarked": false, "pinned": false,
		"filtered": []any{}, "reblog": nil, "quote": nil,
		"quote_approval":    map[string]any{"automatic": []string{"public"}, "manual": []any{}, "current_user": "automatic"},
		"application":       map[string]any{"name": "POSSE", "website": nil},
		"media_attachments": attachments,
		"mentions":          []any{}, "tags": mastoTags(s.mastoBase(), status), "emojis": []any{}, "poll": nil, "card": nil,
	}
	s.record(Post{Platform: mastoName, ID: id, URL: js["url"].(string), AccountID: a.ID, Text: status,
		Media: mediaURLs, Extra: map[string]string{"idempotency_key": key, "visibility": visibility, "spoiler_text": spoiler}})
	js["account"] = s.mastoAccountJSON(a) // counting the new status
	if key != "" {
		s.with(func(st map[string]any) { st[idemKey] = &mastoIdem{Status: js, At: s.now()} })
	}
	s.with(func(st map[string]any) { st["mastodon|status|"+id] = js })
	s.count(mastoName, "publish")
	if s.takeFault(mastoName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	writeJSON(w, http.StatusOK, js)
}

// mastoStatusHeaders sets the statuses family's headers for count statuses
// created in the current window, unless the request window has less left
// (Api::RateLimitHeaders#override_rate_limit_headers).
func (s *Server) mastoStatusHeaders(w http.ResponseWriter, lim MastodonLimits, count int) {
	if left := lim.Statuses - count; left <= mastoAPILimit-1 {
		mastoLimitHeaders(w, lim.Statuses, left, mastoWindowEnd(s.now(), lim.StatusesPeriod))
	}
}

// mastoContent renders plain status text as Mastodon does: paragraphs on
// blank lines, <br /> for single line breaks, links as anchors.
func mastoContent(text string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		if strings.TrimSpace(para) == "" {
			continue
		}
		b.WriteString("<p>")
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				b.WriteString("<br />")
			}
			b.WriteString(mastoLinkify(line))
		}
		b.WriteString("</p>")
	}
	return b.String()
}

// mastoLinkify escapes line and turns its URLs into anchors.
func mastoLinkify(line string) string {
	var b strings.Builder
	rest := line
	for _, loc := range urlPattern.FindAllStringIndex(line, -1) {
		start, end := loc[0]-(len(line)-len(rest)), loc[1]-(len(line)-len(rest))
		b.WriteString(html.EscapeString(rest[:start]))
		u := html.EscapeString(rest[start:end])
		b.WriteString(`<a href="` + u + `" target="_blank" rel="nofollow noopener">` + u + `</a>`)
		rest = rest[end:]
	}
	b.WriteString(html.EscapeString(rest))
	return b.String()
}

// mastoHashtag finds hashtags the way Mastodon's Tag::HASHTAG_RE roughly does.
var mastoHashtag = regexp.MustCompile(`(?:^|[^\p{L}\p{N}_/])#([\p{L}\p{N}_]*[\p{L}_][\p{L}\p{N}_]*)`)

// mastoTags is the Status' tags: each hashtag once, lowercased.
func mastoTags(base, text string) []map[string]any {
	out := []map[string]any{}
	seen := map[string]bool{}
	for _, m := range mastoHashtag.FindAllStringSubmatch(text, -1) {
		name := strings.ToLower(m[1])
		if seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, map[string]any{"name": name, "url": base + "/tags/" + name})
	}
	return out
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
