package platformsim

// LinkedIn, under /linkedin: OAuth 2.0 (/linkedin/oauth/v2/authorization and
// accessToken), /linkedin/v2/userinfo, and the versioned REST API: Posts
// (/linkedin/rest/posts), Images and Videos (initializeUpload, PUT to the
// upload URL, finalizeUpload, status reads). Every /rest call needs an active
// LinkedIn-Version and X-Restli-Protocol-Version: 2.0.0. Commentary is read
// as "little" text: it is cut at the first unescaped reserved character, as
// LinkedIn does silently.

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesLinkedIn) }

const (
	liName          = "linkedin"
	liCodeTTL       = 30 * time.Minute
	liTokenTTL      = 60 * 24 * time.Hour
	liRefreshTTL    = 365 * 24 * time.Hour
	liTextLimit     = 3000
	liVideoPartSize = 4 << 20
	liPersonPrefix  = "urn:li:person:"
)

// liAsset is an image or video upload.
type liAsset struct {
	URN       string
	Kind      string // "image" or "video"
	Owner     string
	Status    string // WAITING_UPLOAD, PROCESSING, AVAILABLE, PROCESSING_FAILED
	ReadsLeft int    // status reads answered PROCESSING before the final status
	Fail      bool   // processing ends PROCESSING_FAILED
	Parts     []liPart
	Finalized bool
}

// liPart is one byte range of a video upload.
type liPart struct {
	First, Last int64
	ETag        string
}

// SetLinkedInRefreshTokens makes the LinkedIn token endpoint behave as for an
// approved partner app: it issues refresh tokens (365 days from consent,
// never extended) and accepts the refresh_token grant. Off by default, as for
// most apps.
func (s *Server) SetLinkedInRefreshTokens(on bool) {
	s.with(func(st map[string]any) { st["linkedin|partner"] = on })
}

func (s *Server) routesLinkedIn() {
	s.handle("GET /linkedin/oauth/v2/authorization", s.liAuthorize)
	s.handle("POST /linkedin/oauth/v2/accessToken", s.liToken)
	s.handle("GET /linkedin/v2/userinfo", s.liUserinfo)
	s.handle("POST /linkedin/rest/posts", s.liCreatePost)
	s.handle("POST /linkedin/rest/images", s.liImagesAction)
	s.handle("GET /linkedin/rest/images/{urn}", s.liGetAsset)
	s.handle("POST /linkedin/rest/videos", s.liVideosAction)
	s.handle("GET /linkedin/rest/videos/{urn}", s.liGetAsset)
	s.handle("PUT /linkedin/dms-uploads/{id}", s.liUpload)
}

// liError answers LinkedIn's error shape.
func liError(w http.ResponseWriter, status, serviceCode int, code, msg string) {
	body := map[string]any{"status": status, "message": msg}
	if serviceCode != 0 {
		body["serviceErrorCode"] = serviceCode
	}
	if code != "" {
		body["code"] = code
	}
	writeJSON(w, status, body)
}

// liInputError answers a validation failure naming the field.
func liInputError(w http.ResponseWriter, code, field, desc string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message": "ERROR :: /" + field + " :: " + desc,
		"status":  http.StatusUnprocessableEntity,
		"errorDetails": map[string]any{"inputErrors": []map[string]any{{
			"code": code, "description": desc,
			"input": map[string]any{"inputPath": map[string]string{"fieldPath": field}},
		}}},
	})
}

func liUnauthorized(w http.ResponseWriter) {
	liError(w, http.StatusUnauthorized, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token")
}

// liVersionPattern is a LinkedIn-Version value: YYYYMM or YYYYMM.RR.
var liVersionPattern = regexp.MustCompile(`^(\d{4})(\d{2})(\.\d{2})?$`)

// liREST checks what every /rest call needs (an active LinkedIn-Version,
// X-Restli-Protocol-Version 2.0.0, a valid token) and applies the generic
// faults; write calls also get server_error. It returns nil when it already
// answered.
func (s *Server) liREST(w http.ResponseWriter, r *http.Request, write bool) *Account {
	slowFault(s, r, liName)
	v := r.Header.Get("LinkedIn-Version")
	if v == "" {
		liError(w, http.StatusUpgradeRequired, 0, "VERSION_MISSING", "A version must be present. Please specify a version by adding the LinkedIn-Version header.")
		return nil
	}
	m := liVersionPattern.FindStringSubmatch(v)
	now := s.now().UTC()
	oldest := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(-1, 0, 0)
	if m == nil || !liVersionActive(m[1], m[2], oldest, now) {
		liError(w, http.StatusUpgradeRequired, 0, "NONEXISTENT_VERSION", "Requested version "+v+" is not active")
		return nil
	}
	if r.Header.Get("X-Restli-Protocol-Version") != "2.0.0" {
		liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "This API requires the header X-Restli-Protocol-Version: 2.0.0")
		return nil
	}
	return s.liAuth(w, r, write)
}

func liVersionActive(year, month string, oldest, now time.Time) bool {
	y, _ := strconv.Atoi(year)
	mo, _ := strconv.Atoi(month)
	if mo < 1 || mo > 12 {
		return false
	}
	t := time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)
	return !t.Before(oldest) && !t.After(now)
}

// liAuth authenticates the bearer token and applies the generic faults.
func (s *Server) liAuth(w http.ResponseWriter, r *http.Request, write bool) *Account {
	kinds := []FaultKind{FaultExpiredToken, FaultRateLimit}
	if write {
		kinds = append(kinds, FaultServerError)
	}
	if f := s.takeFault(liName, kinds...); f != nil {
		switch f.Kind {
		case FaultExpiredToken:
			liError(w, http.StatusUnauthorized, 65601, "REVOKED_ACCESS_TOKEN", "The token used in the request has been revoked by the user")
		case FaultRateLimit:
			// LinkedIn sends no rate-limit headers: quotas reset at midnight UTC.
			liError(w, http.StatusTooManyRequests, 101, "", "Resource level throttle limit for calls to this resource is reached.")
		case FaultServerError:
			st := f.status(http.StatusServiceUnavailable)
			liError(w, st, 0, "", http.StatusText(st))
		}
		return nil
	}
	a, ok := s.accountByToken(liName, bearer(r))
	if !ok {
		liUnauthorized(w)
		return nil
	}
	return a
}

// --- OAuth ---

func (s *Server) liAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || !clientIDOK(s, liName, q.Get("client_id")) ||
		q.Get("redirect_uri") == "" || q.Get("scope") == "" {
		http.Error(w, "The application could not be authorized: check client_id, redirect_uri, scope and response_type.", http.StatusBadRequest)
		return
	}
	if s.takeFault(liName, FaultAccessDenied) != nil {
		redirectWith(w, r, q.Get("redirect_uri"), url.Values{
			"error":             {"user_cancelled_authorize"},
			"error_description": {"The user cancelled the authorization"},
			"state":             {q.Get("state")},
		}, "")
		return
	}
	a := clientAccount(s, liName, q.Get("client_id"), q.Get(SimUserParam), "Sim Member ", func() string { return liPersonPrefix + randB64(7) })
	code := issueCode(s, liName, randB64(32), authCode{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		AccountID: a.ID, Scope: q.Get("scope")})
	redirectWith(w, r, q.Get("redirect_uri"), codeParams(code, q.Get("state")), "")
}

func (s *Server) liToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		xOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	p := r.PostForm
	if !s.checkClient(liName, p.Get("client_id"), p.Get("client_secret")) {
		xOAuthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	var partner bool
	s.with(func(st map[string]any) { partner, _ = st["linkedin|partner"].(bool) })
	switch p.Get("grant_type") {
	case "authorization_code":
		c, a, ok := redeemCodeAccount(s, liName, p.Get("code"), p.Get("client_id"), p.Get("redirect_uri"), liCodeTTL)
		if s.takeFault(liName, FaultInvalidGrant) != nil || !ok {
			xOAuthError(w, http.StatusBadRequest, "invalid_request",
				"Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired.")
			return
		}
		access := randB64(60)
		s.setToken(a, access, s.now().Add(liTokenTTL))
		scope := strings.Join(strings.Fields(strings.ReplaceAll(c.Scope, ",", " ")), ",")
		out := map[string]any{"access_token": access, "expires_in": int(liTokenTTL.Seconds()), "scope": scope, "token_type": "Bearer"}
		if partner {
			rt := randB64(60)
			bindRefresh(s, a, rt)
			s.with(func(st map[string]any) { st["linkedin|rtexp|"+rt] = s.now().Add(liRefreshTTL) })
			out["refresh_token"], out["refresh_token_expires_in"] = rt, int(liRefreshTTL.Seconds())
		}
		writeJSON(w, http.StatusOK, out)
	case "refresh_token":
		s.count(liName, "token_refresh")
		rt := p.Get("refresh_token")
		a, ok := accountByRefresh(s, liName, rt)
		var exp time.Time
		s.with(func(st map[string]any) { exp, _ = st["linkedin|rtexp|"+rt].(time.Time) })
		if s.takeFault(liName, FaultInvalidGrant) != nil || !partner || !ok || !s.now().Before(exp) {
			xOAuthError(w, http.StatusBadRequest, "invalid_grant", "The provided refresh token is invalid, expired or revoked.")
			return
		}
		access := randB64(60)
		s.setToken(a, access, s.now().Add(liTokenTTL))
		// LinkedIn keeps the same refresh token and its original expiry.
		writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "expires_in": int(liTokenTTL.Seconds()),
			"refresh_token": rt, "refresh_token_expires_in": int(exp.Sub(s.now()).Seconds())})
	default:
		xOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "The grant type is not supported.")
	}
}

func (s *Server) liUserinfo(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, liName)
	a := s.liAuth(w, r, false)
	if a == nil {
		return
	}
	given, family, _ := strings.Cut(a.Handle, " ")
	writeJSON(w, http.StatusOK, map[string]any{
		"sub": strings.TrimPrefix(a.ID, liPersonPrefix), "name": a.Handle, "given_name": given, "family_name": family,
		"locale": map[string]string{"country": "US", "language": "en"}, "email_verified": true,
	})
}

// --- posts ---

// liPostRequest is the body of POST /rest/posts.
type liPostRequest struct {
	Author       string `json:"author"`
	Commentary   string `json:"commentary"`
	Visibility   string `json:"visibility"`
	Distribution *struct {
		FeedDistribution string `json:"feedDistribution"`
	} `json:"distribution"`
	LifecycleState string `json:"lifecycleState"`
	Content        *struct {
		Media *struct {
			ID      string `json:"id"`
			AltText string `json:"altText"`
			Title   string `json:"title"`
		} `json:"media"`
		MultiImage *struct {
			Images []struct {
				ID      string `json:"id"`
				AltText string `json:"altText"`
			} `json:"images"`
		} `json:"multiImage"`
		Article *struct {
			Source      string `json:"source"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"article"`
	} `json:"content"`
}

func (s *Server) liCreatePost(w http.ResponseWriter, r *http.Request) {
	a := s.liREST(w, r, true)
	if a == nil {
		return
	}
	var req liPostRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "Unable to parse the request body as JSON")
		return
	}
	switch {
	case req.Author == "":
		liInputError(w, "MISSING_FIELD", "author", "Field /author is required")
		return
	case req.Author != a.ID:
		liError(w, http.StatusForbidden, 100, "ACCESS_DENIED", "Not enough permissions to access: partnerApiPostsExternal.CREATE")
		return
	case req.Visibility != "PUBLIC" && req.Visibility != "CONNECTIONS" && req.Visibility != "LOGGED_IN":
		liInputError(w, "INVALID_VALUE", "visibility", "Field /visibility must be PUBLIC, CONNECTIONS or LOGGED_IN")
		return
	case req.Distribution == nil || req.Distribution.FeedDistribution == "":
		liInputError(w, "MISSING_FIELD", "distribution/feedDistribution", "Field /distribution/feedDistribution is required")
		return
	case req.LifecycleState != "PUBLISHED":
		liInputError(w, "INVALID_VALUE", "lifecycleState", "Field /lifecycleState must be PUBLISHED")
		return
	case text.Count(platform.CountUTF16, req.Commentary) > liTextLimit:
		liInputError(w, "MAX_LENGTH_EXCEEDED", "commentary", "Field /commentary exceeds the maximum length of 3000")
		return
	}
	media, field, problem := s.liContent(a.ID, &req)
	if problem != "" {
		liInputError(w, "INVALID_VALUE", field, problem)
		return
	}
	// LinkedIn rejects a commentary the author already posted, naming the
	// original; the duplicate fault names an invented one.
	var original string
	if req.Commentary != "" {
		s.with(func(st map[string]any) {
			seen, _ := st["linkedin|commentary|"+a.ID].(map[string]string)
			original = seen[req.Commentary]
		})
	}
	if s.takeFault(liName, FaultDuplicate) != nil && original == "" {
		original = "urn:li:share:" + randDigits(19)
	}
	if original != "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message": "Unable to create post: Content is a duplicate of " + original,
			"status":  http.StatusUnprocessableEntity,
			"errorDetails": map[string]any{"inputErrors": []map[string]any{{
				"code": "DUPLICATE_POST", "description": "Content is a duplicate of " + original,
				"input": map[string]any{"inputPath": map[string]string{"fieldPath": "/commentary"}},
			}}},
		})
		return
	}
	urn := "urn:li:share:" + randDigits(19)
	rendered, truncated := liRender(req.Commentary)
	extra := map[string]string{"commentary": req.Commentary, "visibility": req.Visibility}
	if truncated {
		extra["truncated"] = "true"
	}
	if req.Content != nil && req.Content.Article != nil {
		extra["article"] = req.Content.Article.Source
	}
	s.record(Post{Platform: liName, ID: urn, URL: "https://www.linkedin.com/feed/update/" + urn + "/",
		AccountID: a.ID, Text: rendered, Media: media, Extra: extra})
	s.with(func(st map[string]any) {
		seen, _ := st["linkedin|commentary|"+a.ID].(map[string]string)
		if seen == nil {
			seen = map[string]string{}
			st["linkedin|commentary|"+a.ID] = seen
		}
		if req.Commentary != "" {
			seen[req.Commentary] = urn
		}
	})
	if s.takeFault(liName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	w.Header().Set("x-restli-id", urn)
	w.Header().Set("x-linkedin-id", urn)
	w.WriteHeader(http.StatusCreated)
}

// liContent checks the content of a post: every referenced image or video is
// the author's and AVAILABLE. It returns the media URNs, or the failing field
// and why.
func (s *Server) liContent(owner string, req *liPostRequest) ([]string, string, string) {
	c := req.Content
	if c == nil {
		return nil, "", ""
	}
	var urns []string
	field := "content/media/id"
	switch {
	case c.Media != nil:
		urns = []string{c.Media.ID}
	case c.MultiImage != nil:
		field = "content/multiImage/images"
		if n := len(c.MultiImage.Images); n < 2 || n > 20 {
			return nil, field, "multiImage needs 2 to 20 images"
		}
		for _, im := range c.MultiImage.Images {
			if !strings.HasPrefix(im.ID, "urn:li:image:") {
				return nil, field, "multiImage accepts only image URNs"
			}
			urns = append(urns, im.ID)
		}
	case c.Article != nil:
		if u, err := url.Parse(c.Article.Source); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, "content/article/source", "article source must be an http(s) URL"
		}
		if c.Article.Title == "" {
			return nil, "content/article/title", "article title is required"
		}
		return nil, "", ""
	default:
		return nil, "content", "content needs media, multiImage or article"
	}
	problem := ""
	s.with(func(st map[string]any) {
		for _, urn := range urns {
			as, _ := st["linkedin|asset|"+urn].(*liAsset)
			switch {
			case as == nil || as.Owner != owner:
				problem = urn + " does not exist or is not the author's"
			case as.Status != "AVAILABLE":
				problem = urn + " is " + as.Status + ", not AVAILABLE"
			}
			if problem != "" {
				return
			}
		}
	})
	if problem != "" {
		return nil, field, problem
	}
	return urns, "", ""
}

// liReserved are little text's reserved characters.
const liReserved = `\|{}@[]()<>#*_~`

// liMentionPattern is a little-text mention: @[Name](urn:li:...).
var liMentionPattern = regexp.MustCompile(`^@\[([^\]\\]*)\]\((urn:li:[a-zA-Z]+:[^)\s]+)\)`)

// liHashtagTemplate is the hashtag template {hashtag|\#|tag}.
var liHashtagTemplate = regexp.MustCompile(`^\{hashtag\|\\#\|([\p{L}\p{N}]+)\}`)

// liRender renders little text the way the LinkedIn feed shows it: escapes
// become the character, hashtags and mentions their text, and the first
// unescaped reserved character ends the text (LinkedIn's silent truncation).
func liRender(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if !strings.ContainsRune(liReserved, rune(c)) {
			b.WriteByte(c)
			i++
			continue
		}
		rest := s[i:]
		switch {
		case c == '\\' && i+1 < len(s):
			_, n := utf8.DecodeRuneInString(rest[1:])
			b.WriteString(rest[1 : 1+n])
			i += 1 + n
		case c == '#' && liWordRuneAt(rest[1:]):
			b.WriteByte('#')
			i++
			for i < len(s) && liWordRuneAt(s[i:]) {
				_, n := utf8.DecodeRuneInString(s[i:])
				b.WriteString(s[i : i+n])
				i += n
			}
		case c == '@' && liMentionPattern.MatchString(rest):
			m := liMentionPattern.FindStringSubmatch(rest)
			b.WriteString(m[1])
			i += len(m[0])
		case c == '{' && liHashtagTemplate.MatchString(rest):
			m := liHashtagTemplate.FindStringSubmatch(rest)
			b.WriteString("#" + m[1])
			i += len(m[0])
		default:
			return b.String(), true
		}
	}
	return b.String(), false
}

// liWordRuneAt reports whether s starts with a letter or digit, the runes a
// hashtag is made of.
func liWordRuneAt(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

// --- images and videos ---

func (s *Server) liImagesAction(w http.ResponseWriter, r *http.Request) {
	a := s.liREST(w, r, true)
	if a == nil {
		return
	}
	if r.URL.Query().Get("action") != "initializeUpload" {
		liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "Unsupported action")
		return
	}
	var req struct {
		InitializeUploadRequest struct {
			Owner string `json:"owner"`
		} `json:"initializeUploadRequest"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "Unable to parse the request body as JSON")
		return
	}
	if req.InitializeUploadRequest.Owner != a.ID {
		liError(w, http.StatusForbidden, 100, "ACCESS_DENIED", "Not enough permissions to upload for "+req.InitializeUploadRequest.Owner)
		return
	}
	id := "D4E10AQ" + randB64(12)
	as := &liAsset{URN: "urn:li:image:" + id, Kind: "image", Owner: a.ID, Status: "WAITING_UPLOAD"}
	s.with(func(st map[string]any) {
		st["linkedin|asset|"+as.URN] = as
		st["linkedin|upload|"+id] = as
	})
	writeJSON(w, http.StatusOK, map[string]any{"value": map[string]any{
		"uploadUrlExpiresAt": s.now().Add(time.Hour).UnixMilli(),
		"uploadUrl":          s.PublicURL() + "/linkedin/dms-uploads/" + id,
		"image":              as.URN,
	}})
}

func (s *Server) liVideosAction(w http.ResponseWriter, r *http.Request) {
	a := s.liREST(w, r, true)
	if a == nil {
		return
	}
	switch r.URL.Query().Get("action") {
	case "initializeUpload":
		var req struct {
			InitializeUploadRequest struct {
				Owner         string `json:"owner"`
				FileSizeBytes int64  `json:"fileSizeBytes"`
			} `json:"initializeUploadRequest"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "Unable to parse the request body as JSON")
			return
		}
		in := req.InitializeUploadRequest
		if in.Owner != a.ID {
			liError(w, http.StatusForbidden, 100, "ACCESS_DENIED", "Not enough permissions to upload for "+in.Owner)
			return
		}
		if in.FileSizeBytes <= 0 {
			liInputError(w, "INVALID_VALUE", "initializeUploadRequest/fileSizeBytes", "fileSizeBytes must be positive")
			return
		}
		id := "D5605AQ" + randB64(12)
		as := &liAsset{URN: "urn:li:video:" + id, Kind: "video", Owner: a.ID, Status: "WAITING_UPLOAD"}
		var instructions []map[string]any
		for first := int64(0); first < in.FileSizeBytes; first += liVideoPartSize {
			last := min(first+liVideoPartSize, in.FileSizeBytes) - 1
			instructions = append(instructions, map[string]any{
				"uploadUrl": s.PublicURL() + "/linkedin/dms-uploads/" + id + "?part=" + strconv.Itoa(len(as.Parts)),
				"firstByte": first, "lastByte": last,
			})
			as.Parts = append(as.Parts, liPart{First: first, Last: last})
		}
		s.with(func(st map[string]any) {
			st["linkedin|asset|"+as.URN] = as
			st["linkedin|upload|"+id] = as
		})
		writeJSON(w, http.StatusOK, map[string]any{"value": map[string]any{
			"uploadUrlsExpireAt": s.now().Add(time.Hour).UnixMilli(), "video": as.URN,
			"uploadInstructions": instructions, "uploadToken": "",
		}})
	case "finalizeUpload":
		var req struct {
			FinalizeUploadRequest struct {
				Video           string   `json:"video"`
				UploadedPartIDs []string `json:"uploadedPartIds"`
			} `json:"finalizeUploadRequest"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "Unable to parse the request body as JSON")
			return
		}
		fail := s.takeFault(liName, FaultMediaFetch) != nil
		in := req.FinalizeUploadRequest
		problem := ""
		s.with(func(st map[string]any) {
			as, _ := st["linkedin|asset|"+in.Video].(*liAsset)
			switch {
			case as == nil || as.Owner != a.ID || as.Kind != "video":
				problem = "unknown video " + in.Video
			case as.Finalized:
				problem = "the upload was already finalized"
			case len(in.UploadedPartIDs) != len(as.Parts):
				problem = "uploadedPartIds must list every part's ETag"
			default:
				for i, p := range as.Parts {
					if p.ETag == "" || p.ETag != in.UploadedPartIDs[i] {
						problem = "part " + strconv.Itoa(i) + " was not uploaded or its ETag does not match"
						return
					}
				}
				as.Finalized, as.Status, as.ReadsLeft, as.Fail = true, "PROCESSING", 2, fail
			}
		})
		if problem != "" {
			liInputError(w, "INVALID_VALUE", "finalizeUploadRequest", problem)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		liError(w, http.StatusBadRequest, 0, "ILLEGAL_ARGUMENT", "Unsupported action")
	}
}

// liUpload accepts the bytes of an image, or of one part of a video, at the
// upload URL that initializeUpload handed out.
func (s *Server) liUpload(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, liName)
	a := s.liAuth(w, r, true)
	if a == nil {
		return
	}
	body, size, err := readCounted(r.Body, 64<<20)
	if err == nil && size > 64<<20 {
		err = errors.New("too large")
	}
	if err != nil {
		liError(w, http.StatusBadRequest, 0, "", "Upload body could not be read")
		return
	}
	var as *liAsset
	s.with(func(st map[string]any) { as, _ = st["linkedin|upload|"+r.PathValue("id")].(*liAsset) })
	if as == nil || as.Owner != a.ID {
		liError(w, http.StatusNotFound, 0, "", "Upload URL not found")
		return
	}
	if as.Kind == "image" {
		fail := s.takeFault(liName, FaultMediaFetch) != nil
		kind := mediaKind(sniff(body))
		s.with(func(map[string]any) {
			as.Status, as.ReadsLeft = "PROCESSING", 1
			as.Fail = fail || kind != "image"
		})
		w.WriteHeader(http.StatusCreated)
		return
	}
	part, err := strconv.Atoi(r.URL.Query().Get("part"))
	problem := ""
	etag := randHex(16)
	s.with(func(map[string]any) {
		switch {
		case err != nil || part < 0 || part >= len(as.Parts):
			problem = "unknown part"
		case size != as.Parts[part].Last-as.Parts[part].First+1:
			problem = "part size does not match the upload instructions"
		default:
			as.Parts[part].ETag = etag
		}
	})
	if problem != "" {
		liError(w, http.StatusBadRequest, 0, "", problem)
		return
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusOK)
}

// liGetAsset answers an image or video status read; PROCESSING lasts a few
// reads, then AVAILABLE (or PROCESSING_FAILED).
func (s *Server) liGetAsset(w http.ResponseWriter, r *http.Request) {
	a := s.liREST(w, r, false)
	if a == nil {
		return
	}
	base := s.PublicURL()
	var out map[string]any
	s.with(func(st map[string]any) {
		as, _ := st["linkedin|asset|"+r.PathValue("urn")].(*liAsset)
		if as == nil || as.Owner != a.ID || !strings.Contains(r.URL.Path, "/"+as.Kind+"s/") {
			return
		}
		if as.Status == "PROCESSING" {
			if as.ReadsLeft > 0 {
				as.ReadsLeft--
			} else if as.Fail {
				as.Status = "PROCESSING_FAILED"
			} else {
				as.Status = "AVAILABLE"
			}
		}
		out = map[string]any{"id": as.URN, "owner": as.Owner, "status": as.Status}
		if as.Status == "AVAILABLE" {
			out["downloadUrl"] = base + "/_sim/media/" + strings.TrimPrefix(as.URN, "urn:li:") + ".jpg"
			out["downloadUrlExpiresAt"] = s.now().Add(time.Hour).UnixMilli()
		}
	})
	if out == nil {
		liError(w, http.StatusNotFound, 0, "", "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, out)
}
