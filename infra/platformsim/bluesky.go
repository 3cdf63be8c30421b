package platformsim

// Bluesky: a PDS under /bluesky/xrpc (app-password sessions with rotating
// refresh JWTs and HTTP 400 ExpiredToken, uploadBlob, createRecord with a
// caller-chosen rkey — a duplicate rkey answers 500 like the reference PDS
// — getRecord, resolveHandle, getServiceAuth) and the video service under
// /bluesky/video/xrpc (uploadVideo, getJobStatus).

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/text"
)

func init() { platformRoutes = append(platformRoutes, (*Server).routesBluesky) }

const (
	bskyName         = "bluesky"
	bskyAccessTTL    = 120 * time.Minute
	bskyRefreshTTL   = 90 * 24 * time.Hour
	bskyMaxGraphemes = 300
	bskyMaxBytes     = 3000
	bskyMaxImage     = 2_000_000
	bskyMaxVideo     = 300_000_000
	bskyPostNSID     = "app.bsky.feed.post"
)

var (
	bskyTIDPattern  = regexp.MustCompile(`^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$`)
	bskyRKeyPattern = regexp.MustCompile(`^[A-Za-z0-9._:~-]{1,512}$`)
	bskyCIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)
)

type bskySession struct {
	DID     string
	Exp     time.Time
	Revoked bool
}

type bskyBlob struct {
	DID, MIME string
	Size      int
}

type bskyRecord struct {
	URI, CID string
	Value    json.RawMessage
}

type bskyJob struct {
	ID, DID string
	Blob    map[string]any
	Polls   int
	Failed  bool
}

type bskyServiceToken struct {
	DID, Aud, Lxm string
	Exp           time.Time
}

func (s *Server) routesBluesky() {
	x := "/bluesky/xrpc/"
	s.handle("POST "+x+"com.atproto.server.createSession", s.bskyCreateSession)
	s.handle("POST "+x+"com.atproto.server.refreshSession", s.bskyRefreshSession)
	s.handle("POST "+x+"com.atproto.server.deleteSession", s.bskyDeleteSession)
	s.handle("GET "+x+"com.atproto.server.getSession", s.bskyGetSession)
	s.handle("GET "+x+"com.atproto.server.getServiceAuth", s.bskyGetServiceAuth)
	s.handle("GET "+x+"com.atproto.identity.resolveHandle", s.bskyResolveHandle)
	s.handle("POST "+x+"com.atproto.repo.uploadBlob", s.bskyUploadBlob)
	s.handle("POST "+x+"com.atproto.repo.createRecord", s.bskyCreateRecord)
	s.handle("GET "+x+"com.atproto.repo.getRecord", s.bskyGetRecord)
	v := "/bluesky/video/xrpc/"
	s.handle("POST "+v+"app.bsky.video.uploadVideo", s.bskyUploadVideo)
	s.handle("GET "+v+"app.bsky.video.getJobStatus", s.bskyGetJobStatus)
}

func bskyErr(w http.ResponseWriter, status int, name, msg string) {
	writeJSON(w, status, map[string]string{"error": name, "message": msg})
}

// bskyJWT returns a JWT-shaped token (the signature is random; nothing
// verifies it but this simulator's own tables).
func (s *Server) bskyJWT(typ, scope, did string, exp time.Time) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"typ": typ, "alg": "ES256K"})
	p, _ := json.Marshal(map[string]any{"scope": scope, "sub": did, "iat": s.now().Unix(), "exp": exp.Unix(), "jti": randHex(16)})
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + randB64(64)
}

// bskyTID returns a fresh timestamp identifier.
func (s *Server) bskyTID() string {
	const alphabet = "234567abcdefghijklmnopqrstuvwxyz"
	clockID, _ := strconv.ParseUint(randHex(2), 16, 64)
	v := uint64(s.now().UnixMicro())<<10 | clockID%1024
	v &^= 1 << 63
	b := make([]byte, 13)
	for i := 12; i >= 0; i-- {
		b[i] = alphabet[v&31]
		v >>= 5
	}
	return string(b)
}

// bskyCID returns a CID-shaped random string with the given multibase prefix.
func (s *Server) bskyCID(prefix string) string {
	return prefix + strings.ToLower(bskyCIDEncoding.EncodeToString([]byte(randHex(16))))
}

func (s *Server) bskyRateHeaders(w http.ResponseWriter, limit, remaining int, window time.Duration, reset time.Time) {
	w.Header().Set("RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("RateLimit-Remaining", strconv.Itoa(remaining))
	w.Header().Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	w.Header().Set("RateLimit-Policy", strconv.Itoa(limit)+";w="+strconv.Itoa(int(window.Seconds())))
}

// bskyGenericFault answers a pending rate_limit or server_error fault.
func (s *Server) bskyGenericFault(w http.ResponseWriter) bool {
	f := s.takeFault(bskyName, FaultRateLimit, FaultServerError)
	if f == nil {
		return false
	}
	if f.Kind == FaultRateLimit {
		s.bskyRateHeaders(w, 5000, 0, time.Hour, s.now().Add(f.resetAfter()))
		bskyErr(w, http.StatusTooManyRequests, "RateLimitExceeded", "Rate Limit Exceeded")
		return true
	}
	bskyErr(w, f.status(http.StatusInternalServerError), "InternalServerError", "Internal Server Error")
	return true
}

// bskyByIdentifier finds an account by DID or handle.
func (s *Server) bskyByIdentifier(ident string) *Account {
	var out *Account
	s.with(func(map[string]any) {
		for k, a := range s.byID {
			if strings.HasPrefix(k, bskyName+"|") && (a.ID == ident || strings.EqualFold(a.Handle, ident)) {
				out = a
				return
			}
		}
	})
	return out
}

func (s *Server) bskyDIDDoc(a *Account) map[string]any {
	return map[string]any{
		"@context":    []string{"https://www.w3.org/ns/did/v1"},
		"id":          a.ID,
		"alsoKnownAs": []string{"at://" + a.Handle},
		"service": []map[string]string{{
			"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": s.PublicURL() + "/bluesky",
		}},
	}
}

// bskyAuth authenticates an access JWT and applies the generic faults.
func (s *Server) bskyAuth(w http.ResponseWriter, r *http.Request) *Account {
	slowFault(s, r, bskyName)
	tok := bearer(r)
	if tok == "" {
		bskyErr(w, http.StatusUnauthorized, "AuthenticationRequired", "Authentication Required")
		return nil
	}
	if s.takeFault(bskyName, FaultExpiredToken) != nil {
		bskyErr(w, http.StatusBadRequest, "ExpiredToken", "Token has expired")
		return nil
	}
	var sess, refresh *bskySession
	s.with(func(st map[string]any) {
		sess, _ = st["bluesky|access|"+tok].(*bskySession)
		refresh, _ = st["bluesky|refresh|"+tok].(*bskySession)
	})
	var a *Account
	switch {
	case sess != nil && s.now().After(sess.Exp):
		bskyErr(w, http.StatusBadRequest, "ExpiredToken", "Token has expired")
		return nil
	case sess != nil:
		a, _ = s.accountByID(bskyName, sess.DID)
	case refresh != nil:
		bskyErr(w, http.StatusBadRequest, "InvalidToken", "Invalid token type")
		return nil
	default:
		a, _ = s.accountByToken(bskyName, tok)
	}
	if a == nil {
		bskyErr(w, http.StatusBadRequest, "InvalidToken", "Token could not be verified")
		return nil
	}
	if s.bskyGenericFault(w) {
		return nil
	}
	return a
}

// bskyIssue starts a session for a and returns its JSON.
func (s *Server) bskyIssue(a *Account) map[string]any {
	access := s.bskyJWT("at+jwt", "com.atproto.appPass", a.ID, s.now().Add(bskyAccessTTL))
	refresh := s.bskyJWT("refresh+jwt", "com.atproto.refresh", a.ID, s.now().Add(bskyRefreshTTL))
	s.with(func(st map[string]any) {
		st["bluesky|access|"+access] = &bskySession{DID: a.ID, Exp: s.now().Add(bskyAccessTTL)}
		st["bluesky|refresh|"+refresh] = &bskySession{DID: a.ID, Exp: s.now().Add(bskyRefreshTTL)}
		a.RefreshToken = refresh
		s.issueLocked(access, refresh)
	})
	return map[string]any{
		"did": a.ID, "handle": a.Handle, "email": a.Handle + "@example.invalid", "emailConfirmed": true,
		"accessJwt": access, "refreshJwt": refresh, "active": true, "didDoc": s.bskyDIDDoc(a),
	}
}

// bskySessionsPerDay is createSession's limit per account, as a recorded
// answer gives it (RateLimit-Policy: 10;w=86400).
const bskySessionsPerDay = 10

func (s *Server) bskyCreateSession(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, bskyName)
	if s.bskyGenericFault(w) {
		return
	}
	var in struct {
		Identifier string `json:"identifier"`
		Password   string `json:"password"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.Identifier == "" || in.Password == "" {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", `Input must have the properties "identifier" and "password"`)
		return
	}
	s.count(bskyName, "create_session")
	a := s.bskyByIdentifier(in.Identifier)
	if a == nil || a.Password == "" || a.Password != in.Password {
		bskyErr(w, http.StatusUnauthorized, "AuthenticationRequired", "Invalid identifier or password")
		return
	}
	// The recorded policy: 10 sessions a day per account
	// (RateLimit-Policy: 10;w=86400), counted in fixed UTC days.
	day := s.now().UTC().Truncate(24 * time.Hour)
	used := 0
	s.with(func(st map[string]any) {
		k := "bluesky|sessions|" + a.ID + "|" + day.Format("2006-01-02")
		used, _ = st[k].(int)
		if used < bskySessionsPerDay {
			used++
			st[k] = used
		} else {
			used = bskySessionsPerDay + 1
		}
	})
	reset := day.Add(24 * time.Hour)
	if used > bskySessionsPerDay {
		s.bskyRateHeaders(w, bskySessionsPerDay, 0, 24*time.Hour, reset)
		bskyErr(w, http.StatusTooManyRequests, "RateLimitExceeded", "Rate Limit Exceeded")
		return
	}
	s.bskyRateHeaders(w, bskySessionsPerDay, bskySessionsPerDay-used, 24*time.Hour, reset)
	writeJSON(w, http.StatusOK, s.bskyIssue(a))
}

func (s *Server) bskyRefreshSession(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, bskyName)
	tok := bearer(r)
	if s.takeFault(bskyName, FaultInvalidGrant) != nil {
		bskyErr(w, http.StatusBadRequest, "ExpiredToken", "Token has been revoked")
		return
	}
	if s.bskyGenericFault(w) {
		return
	}
	var sess *bskySession
	var isAccess bool
	s.with(func(st map[string]any) {
		sess, _ = st["bluesky|refresh|"+tok].(*bskySession)
		_, isAccess = st["bluesky|access|"+tok]
	})
	switch {
	case tok == "":
		bskyErr(w, http.StatusUnauthorized, "AuthenticationRequired", "Authentication Required")
		return
	case isAccess:
		bskyErr(w, http.StatusBadRequest, "InvalidToken", "Invalid token type")
		return
	case sess == nil:
		bskyErr(w, http.StatusBadRequest, "InvalidToken", "Token could not be verified")
		return
	}
	revoked := false
	s.with(func(map[string]any) {
		revoked = sess.Revoked
		sess.Revoked = true // rotation: the presented refresh JWT is retired
	})
	if revoked {
		bskyErr(w, http.StatusBadRequest, "ExpiredToken", "Token has been revoked")
		return
	}
	if s.now().After(sess.Exp) {
		bskyErr(w, http.StatusBadRequest, "ExpiredToken", "Token has expired")
		return
	}
	a, ok := s.accountByID(bskyName, sess.DID)
	if !ok {
		bskyErr(w, http.StatusBadRequest, "AccountNotFound", "Account not found")
		return
	}
	s.count(bskyName, "token_refresh")
	out := s.bskyIssue(a)
	delete(out, "email")
	delete(out, "emailConfirmed")
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) bskyDeleteSession(w http.ResponseWriter, r *http.Request) {
	tok := bearer(r)
	s.with(func(st map[string]any) {
		if sess, ok := st["bluesky|refresh|"+tok].(*bskySession); ok {
			sess.Revoked = true
		}
	})
	w.WriteHeader(http.StatusOK)
}

func (s *Server) bskyGetSession(w http.ResponseWriter, r *http.Request) {
	a := s.bskyAuth(w, r)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"did": a.ID, "handle": a.Handle, "email": a.Handle + "@example.invalid",
		"emailConfirmed": true, "active": true, "didDoc": s.bskyDIDDoc(a)})
}

func (s *Server) bskyResolveHandle(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, bskyName)
	a := s.bskyByIdentifier(r.URL.Query().Get("handle"))
	if a == nil || strings.HasPrefix(r.URL.Query().Get("handle"), "did:") {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Unable to resolve handle")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"did": a.ID})
}

func (s *Server) bskyGetServiceAuth(w http.ResponseWriter, r *http.Request) {
	a := s.bskyAuth(w, r)
	if a == nil {
		return
	}
	q := r.URL.Query()
	if q.Get("aud") == "" {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", `Params must have the property "aud"`)
		return
	}
	exp := s.now().Add(60 * time.Second)
	if v := q.Get("exp"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || time.Unix(n, 0).Before(s.now()) || time.Unix(n, 0).After(s.now().Add(time.Hour)) {
			bskyErr(w, http.StatusBadRequest, "BadExpiration", "expiration must be in the future and within an hour")
			return
		}
		exp = time.Unix(n, 0)
	}
	tok := s.bskyJWT("JWT", q.Get("lxm"), a.ID, exp)
	s.with(func(st map[string]any) {
		st["bluesky|svc|"+tok] = &bskyServiceToken{DID: a.ID, Aud: q.Get("aud"), Lxm: q.Get("lxm"), Exp: exp}
	})
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func (s *Server) bskyStoreBlob(did, ct string, size int) map[string]any {
	cid := s.bskyCID("bafkrei")
	s.with(func(st map[string]any) { st["bluesky|blob|"+cid] = &bskyBlob{DID: did, MIME: ct, Size: size} })
	return map[string]any{"$type": "blob", "ref": map[string]string{"$link": cid}, "mimeType": ct, "size": size}
}

func (s *Server) bskyUploadBlob(w http.ResponseWriter, r *http.Request) {
	a := s.bskyAuth(w, r)
	if a == nil {
		return
	}
	body, size, err := readCounted(r.Body, bskyMaxVideo)
	if err != nil || size == 0 {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "request body is empty")
		return
	}
	if size > bskyMaxVideo {
		bskyErr(w, http.StatusBadRequest, "BlobTooLarge", "This file is too large")
		return
	}
	if s.takeFault(bskyName, FaultMediaFetch) != nil {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Could not process blob")
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "" || ct == "*/*" || ct == "application/octet-stream" {
		ct = http.DetectContentType(body)
	}
	s.count(bskyName, "upload_blob")
	writeJSON(w, http.StatusOK, map[string]any{"blob": s.bskyStoreBlob(a.ID, ct, int(size))})
}

// bskyPost is the part of an app.bsky.feed.post record the simulator checks.
type bskyPost struct {
	Type      string `json:"$type"`
	Text      *string
	CreatedAt string `json:"createdAt"`
	Facets    []struct {
		Index struct {
			ByteStart *int `json:"byteStart"`
			ByteEnd   *int `json:"byteEnd"`
		} `json:"index"`
		Features []map[string]any `json:"features"`
	} `json:"facets"`
	Embed map[string]any `json:"embed"`
}

// bskyCheckPost validates a post record like the PDS's lexicon validation,
// plus facet spans (stricter than the PDS, to catch rune-vs-byte offsets).
// It returns the blob CIDs the record references.
func (s *Server) bskyCheckPost(did string, raw json.RawMessage) ([]string, string) {
	var p bskyPost
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, "Invalid app.bsky.feed.post record: " + err.Error()
	}
	if p.Text == nil {
		return nil, `Invalid app.bsky.feed.post record: Record must have the property "text"`
	}
	txt := *p.Text
	if text.Count(platform.CountGraphemes, txt) > bskyMaxGraphemes {
		return nil, "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
	}
	if len(txt) > bskyMaxBytes {
		return nil, "Invalid app.bsky.feed.post record: Record/text must not be longer than 3000 characters"
	}
	if _, err := time.Parse(time.RFC3339Nano, p.CreatedAt); err != nil {
		return nil, `Invalid app.bsky.feed.post record: Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)`
	}
	for i, f := range p.Facets {
		st, en := f.Index.ByteStart, f.Index.ByteEnd
		if st == nil || en == nil || *st < 0 || *st >= *en || *en > len(txt) || len(f.Features) == 0 {
			return nil, "Invalid app.bsky.feed.post record: Record/facets/" + strconv.Itoa(i) + "/index is out of range"
		}
		span := txt[*st:*en]
		for _, feat := range f.Features {
			typ, _ := feat["$type"].(string)
			ok := true
			switch typ {
			case "app.bsky.richtext.facet#link":
				uri, _ := feat["uri"].(string)
				shown := strings.TrimSuffix(strings.TrimSuffix(span, "..."), "…")
				bare := strings.TrimPrefix(strings.TrimPrefix(uri, "https://"), "http://")
				ok = uri != "" && shown != "" && (strings.HasPrefix(uri, shown) || strings.HasPrefix(bare, shown))
			case "app.bsky.richtext.facet#mention":
				d, _ := feat["did"].(string)
				ok = strings.HasPrefix(span, "@") && strings.HasPrefix(d, "did:")
			case "app.bsky.richtext.facet#tag":
				tag, _ := feat["tag"].(string)
				ok = tag != "" && (span == "#"+tag || span == "＃"+tag)
			}
			if !ok {
				return nil, "Invalid app.bsky.feed.post record: Record/facets/" + strconv.Itoa(i) + " does not cover its feature (byte offsets?)"
			}
		}
	}
	var cids []string
	blobOK := func(b any, prefix string, max int) (string, bool) {
		m, _ := b.(map[string]any)
		ref, _ := m["ref"].(map[string]any)
		cid, _ := ref["$link"].(string)
		var blob *bskyBlob
		s.with(func(st map[string]any) { blob, _ = st["bluesky|blob|"+cid].(*bskyBlob) })
		if blob == nil || blob.DID != did {
			return "Could not find blob: " + cid, false
		}
		if !strings.HasPrefix(blob.MIME, prefix) {
			return "Wrong type of blob: " + blob.MIME, false
		}
		if blob.Size > max {
			return "This file is too large. It is " + strconv.Itoa(blob.Size) + " bytes but the maximum size is " + strconv.Itoa(max) + " bytes.", false
		}
		cids = append(cids, cid)
		return "", true
	}
	if p.Embed != nil {
		switch p.Embed["$type"] {
		case "app.bsky.embed.images":
			imgs, _ := p.Embed["images"].([]any)
			if len(imgs) == 0 || len(imgs) > 4 {
				return nil, "Invalid app.bsky.feed.post record: Record/embed/images must have 1 to 4 elements"
			}
			for _, x := range imgs {
				img, _ := x.(map[string]any)
				if _, ok := img["alt"].(string); !ok {
					return nil, `Invalid app.bsky.feed.post record: Record/embed/images/0 must have the property "alt"`
				}
				if msg, ok := blobOK(img["image"], "image/", bskyMaxImage); !ok {
					return nil, msg
				}
			}
		case "app.bsky.embed.video":
			if msg, ok := blobOK(p.Embed["video"], "video/", bskyMaxVideo); !ok {
				return nil, msg
			}
		case "app.bsky.embed.external":
			ext, _ := p.Embed["external"].(map[string]any)
			_, t := ext["title"].(string)
			_, d := ext["description"].(string)
			if u, _ := ext["uri"].(string); u == "" || !t || !d {
				return nil, `Invalid app.bsky.feed.post record: Record/embed/external must have the properties "uri", "title" and "description"`
			}
		default:
			return nil, "Invalid app.bsky.feed.post record: Record/embed has an unsupported $type"
		}
	}
	return cids, ""
}

func (s *Server) bskyCreateRecord(w http.ResponseWriter, r *http.Request) {
	a := s.bskyAuth(w, r)
	if a == nil {
		return
	}
	var in struct {
		Repo       string          `json:"repo"`
		Collection string          `json:"collection"`
		RKey       string          `json:"rkey"`
		Record     json.RawMessage `json:"record"`
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Wrong request encoding (Content-Type): "+ct)
		return
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Repo == "" || in.Collection == "" || len(in.Record) == 0 {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", `Input must have the properties "repo", "collection" and "record"`)
		return
	}
	if in.Repo != a.ID && !strings.EqualFold(in.Repo, a.Handle) {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Invalid repo: not the authenticated account")
		return
	}
	var typ struct {
		Type string `json:"$type"`
	}
	if err := json.Unmarshal(in.Record, &typ); err != nil || typ.Type != in.Collection {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Invalid $type: expected "+in.Collection+", got "+typ.Type)
		return
	}
	rkey := in.RKey
	switch {
	case rkey == "":
		rkey = s.bskyTID()
	case in.Collection == bskyPostNSID && !bskyTIDPattern.MatchString(rkey):
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Invalid record key for app.bsky.feed.post: must be a TID")
		return
	case !bskyRKeyPattern.MatchString(rkey) || rkey == "." || rkey == "..":
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "Invalid record key")
		return
	}
	var cids []string
	var txt string
	if in.Collection == bskyPostNSID {
		var msg string
		if cids, msg = s.bskyCheckPost(a.ID, in.Record); msg != "" {
			bskyErr(w, http.StatusBadRequest, "InvalidRequest", msg)
			return
		}
		var p struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(in.Record, &p)
		txt = p.Text
	}
	uri := "at://" + a.ID + "/" + in.Collection + "/" + rkey
	key := "bluesky|record|" + uri
	rec := &bskyRecord{URI: uri, CID: s.bskyCID("bafyrei"), Value: in.Record}
	dup := s.takeFault(bskyName, FaultDuplicate) != nil
	s.with(func(st map[string]any) {
		if _, exists := st[key]; exists {
			dup = true
			return
		}
		if !dup {
			st[key] = rec
		}
	})
	if dup {
		// The reference PDS fails a create on an existing rkey with an
		// unhandled error: HTTP 500 InternalServerError.
		bskyErr(w, http.StatusInternalServerError, "InternalServerError", "Internal Server Error")
		return
	}
	s.count(bskyName, "publish")
	extra := map[string]string{"rkey": rkey, "collection": in.Collection}
	var rp struct {
		Facets json.RawMessage `json:"facets"`
		Embed  struct {
			Type string `json:"$type"`
		} `json:"embed"`
	}
	_ = json.Unmarshal(in.Record, &rp)
	if len(rp.Facets) > 0 {
		extra["facets"] = string(rp.Facets)
	}
	if rp.Embed.Type != "" {
		extra["embed"] = rp.Embed.Type
	}
	s.record(Post{Platform: bskyName, ID: uri, URL: "https://bsky.app/profile/" + a.Handle + "/post/" + rkey,
		AccountID: a.ID, Text: txt, Media: cids, Extra: extra})
	if s.takeFault(bskyName, FaultTimeoutAfterCreate) != nil {
		dropConnection(w)
		return
	}
	// The recorded createRecord policy: 3,000 per 5 minutes.
	s.bskyRateHeaders(w, 3000, 2997, 5*time.Minute, s.now().Add(5*time.Minute))
	writeJSON(w, http.StatusOK, map[string]any{
		"uri": uri, "cid": rec.CID, "commit": map[string]string{"cid": s.bskyCID("bafyrei"), "rev": s.bskyTID()},
		"validationStatus": "valid",
	})
}

func (s *Server) bskyGetRecord(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, bskyName)
	if s.bskyGenericFault(w) {
		return
	}
	q := r.URL.Query()
	repo := q.Get("repo")
	if a := s.bskyByIdentifier(repo); a != nil {
		repo = a.ID
	}
	uri := "at://" + repo + "/" + q.Get("collection") + "/" + q.Get("rkey")
	var rec *bskyRecord
	s.with(func(st map[string]any) { rec, _ = st["bluesky|record|"+uri].(*bskyRecord) })
	if rec == nil {
		bskyErr(w, http.StatusBadRequest, "RecordNotFound", "Could not locate record: "+uri)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"uri": rec.URI, "cid": rec.CID, "value": rec.Value})
}

func (s *Server) bskyUploadVideo(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, bskyName)
	tok := bearer(r)
	var svc *bskyServiceToken
	s.with(func(st map[string]any) { svc, _ = st["bluesky|svc|"+tok].(*bskyServiceToken) })
	if svc == nil || s.now().After(svc.Exp) || !strings.HasPrefix(svc.Aud, "did:web:") || svc.Lxm != "com.atproto.repo.uploadBlob" {
		bskyErr(w, http.StatusUnauthorized, "Unauthorized", "a valid service token for com.atproto.repo.uploadBlob is required")
		return
	}
	if did := r.URL.Query().Get("did"); did != svc.DID {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "did does not match the service token")
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(ct, "video/") {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "unsupported video type "+ct)
		return
	}
	_, size, err := readCounted(r.Body, bskyMaxVideo)
	if err != nil || size == 0 || size > bskyMaxVideo {
		bskyErr(w, http.StatusBadRequest, "InvalidRequest", "video is empty or too large")
		return
	}
	job := &bskyJob{ID: randHex(8), DID: svc.DID, Blob: s.bskyStoreBlob(svc.DID, ct, int(size)),
		Failed: s.takeFault(bskyName, FaultMediaFetch) != nil}
	s.with(func(st map[string]any) { st["bluesky|job|"+job.ID] = job })
	s.count(bskyName, "upload_video")
	writeJSON(w, http.StatusOK, map[string]any{"jobStatus": map[string]any{
		"jobId": job.ID, "did": job.DID, "state": "JOB_STATE_CREATED", "progress": 0}})
}

func (s *Server) bskyGetJobStatus(w http.ResponseWriter, r *http.Request) {
	slowFault(s, r, bskyName)
	id := r.URL.Query().Get("jobId")
	var job *bskyJob
	var polls int
	s.with(func(st map[string]any) {
		if job, _ = st["bluesky|job|"+id].(*bskyJob); job != nil {
			job.Polls++
			polls = job.Polls
		}
	})
	if job == nil {
		bskyErr(w, http.StatusBadRequest, "NotFound", "job not found: "+url.QueryEscape(id))
		return
	}
	js := map[string]any{"jobId": job.ID, "did": job.DID}
	switch {
	case job.Failed:
		js["state"], js["error"], js["message"] = "JOB_STATE_FAILED", "Video processing failed", "the video could not be processed"
	case polls < 2:
		js["state"], js["progress"] = "JOB_STATE_ENCODING", 50
	default:
		js["state"], js["progress"], js["blob"] = "JOB_STATE_COMPLETED", 100, job.Blob
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobStatus": js})
}
