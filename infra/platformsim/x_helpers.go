package platformsim

// Helpers shared by the X, LinkedIn, Facebook and Instagram simulators. They
// hang off the xlfi namespace value, like the tbm helpers of
// threads_helpers.go, so their names cannot collide with helpers other
// platforms' files add to this package. Generic pieces (random values, media
// fetch, redirects, client accounts) come from tbm and are not written twice.

import (
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// xlfiHelpers namespaces the helpers of the X, LinkedIn, Facebook and
// Instagram simulators.
type xlfiHelpers struct{}

// xlfi is the namespace value.
var xlfi xlfiHelpers

// xlfiCode is an authorization code an authorize page issued.
type xlfiCode struct {
	ClientID    string
	RedirectURI string
	AccountID   string
	Scope       string
	Challenge   string // PKCE code_challenge (X)
	Method      string // PKCE code_challenge_method (X)
	Issued      time.Time
}

// issueCode stores c under a fresh random code of platform and returns it.
func (xlfiHelpers) issueCode(s *Server, platform string, c xlfiCode) string {
	code := tbm.b64(32)
	c.Issued = s.now()
	s.with(func(st map[string]any) { st[platform+"|code|"+code] = c })
	return code
}

// redeemCode consumes code (codes are single use, even when the exchange
// fails) and returns it when it was issued to clientID for redirectURI less
// than ttl ago.
func (xlfiHelpers) redeemCode(s *Server, platform, code, clientID, redirectURI string, ttl time.Duration) (xlfiCode, bool) {
	key := platform + "|code|" + code
	var c xlfiCode
	var ok bool
	s.with(func(st map[string]any) {
		c, ok = st[key].(xlfiCode)
		delete(st, key)
	})
	if !ok || c.ClientID != clientID || c.RedirectURI != redirectURI || s.now().Sub(c.Issued) > ttl {
		return xlfiCode{}, false
	}
	return c, true
}

// knownClientID reports whether id may start platform's authorize flow: the
// registered client's id, or any non-empty id when none is registered.
func (xlfiHelpers) knownClientID(s *Server, platform, id string) bool {
	c, ok := s.opts.Clients[platform]
	if !ok {
		return id != ""
	}
	return id != "" && c.ID == id
}

// bindRefresh makes rt the current refresh token of a. The previous one stops
// working, which is what rotating platforms do; non-rotating platforms call
// it once per consent.
func (xlfiHelpers) bindRefresh(s *Server, a *Account, rt string) {
	s.with(func(st map[string]any) {
		delete(st, a.Platform+"|refresh|"+a.RefreshToken)
		a.RefreshToken = rt
		st[a.Platform+"|refresh|"+rt] = a.ID
	})
}

// accountByRefresh returns the account whose current refresh token is rt.
func (xlfiHelpers) accountByRefresh(s *Server, platform, rt string) (*Account, bool) {
	var id string
	s.with(func(st map[string]any) { id, _ = st[platform+"|refresh|"+rt].(string) })
	if id == "" || rt == "" {
		return nil, false
	}
	a, ok := s.accountByID(platform, id)
	if !ok {
		return nil, false
	}
	var current string
	s.with(func(map[string]any) { current = a.RefreshToken })
	return a, current == rt
}

// faultStatus is the HTTP status of a server_error fault (503 unless set).
func (xlfiHelpers) faultStatus(f *Fault) int {
	if f.Status >= 500 {
		return f.Status
	}
	return http.StatusServiceUnavailable
}

// resetAfter is how far ahead a rate_limit fault's reset lies.
func (xlfiHelpers) resetAfter(f *Fault) time.Duration {
	return time.Duration(f.ResetSeconds) * time.Second
}

// mediaKind classifies a content type as "image", "video" or "".
func (xlfiHelpers) mediaKind(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case strings.HasPrefix(mt, "image/"):
		return "image"
	case strings.HasPrefix(mt, "video/"):
		return "video"
	}
	return ""
}

// sniff returns the content type of body from its first bytes.
func (xlfiHelpers) sniff(body []byte) string {
	ct := http.DetectContentType(body)
	if ct == "application/octet-stream" && len(body) >= 12 && string(body[4:8]) == "ftyp" {
		return "video/mp4"
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// --- Meta Graph API (Facebook Pages and Instagram) ---

// graphErr is a Graph API error; Meta answers HTTP 400 for most of them and
// callers classify on Code and Subcode.
type graphErr struct {
	Status    int // HTTP status; 400 when zero
	Code      int
	Subcode   int
	Message   string
	UserTitle string
	UserMsg   string
	Transient bool
}

// graphError writes e in Meta's error shape.
func (xlfiHelpers) graphError(w http.ResponseWriter, e graphErr) {
	body := map[string]any{
		"message":    e.Message,
		"type":       "OAuthException",
		"code":       e.Code,
		"fbtrace_id": "A" + tbm.b64(16),
	}
	if e.Subcode != 0 {
		body["error_subcode"] = e.Subcode
	}
	if e.Transient {
		body["is_transient"] = true
	}
	if e.UserTitle != "" {
		body["error_user_title"] = e.UserTitle
		body["error_user_msg"] = e.UserMsg
	}
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, map[string]any{"error": body})
}

// graphParams returns the request's parameters: the query plus a form or
// multipart body, or the fields of a JSON body (the Instagram API with
// Instagram Login documents JSON bodies).
func (xlfiHelpers) graphParams(r *http.Request) url.Values {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		_ = r.ParseMultipartForm(32 << 20)
	case "application/json":
		out := r.URL.Query()
		var m map[string]any
		if json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&m) == nil {
			for k, v := range m {
				switch t := v.(type) {
				case string:
					out.Set(k, t)
				case bool:
					out.Set(k, strconv.FormatBool(t))
				case float64:
					out.Set(k, strconv.FormatFloat(t, 'f', -1, 64))
				default:
					b, _ := json.Marshal(t)
					out.Set(k, string(b))
				}
			}
		}
		return out
	default:
		_ = r.ParseForm()
	}
	return r.Form
}

// graphToken is the access token of a Graph call: an "Authorization: Bearer"
// or "Authorization: OAuth" header, else the access_token parameter.
func (xlfiHelpers) graphToken(r *http.Request, p url.Values) string {
	if t := bearer(r); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "OAuth ") {
		return strings.TrimPrefix(h, "OAuth ")
	}
	return p.Get("access_token")
}

// graphBUC sets the X-Business-Use-Case-Usage header for business object id.
// A non-zero regain is the throttled state: usage at 100% and the minutes
// until calls are accepted again.
func (xlfiHelpers) graphBUC(w http.ResponseWriter, id, kind string, regain time.Duration) {
	usage, minutes := 3, 0
	if regain > 0 {
		usage, minutes = 100, int(math.Ceil(regain.Minutes()))
	}
	v, _ := json.Marshal(map[string]any{id: []map[string]any{{
		"type": kind, "call_count": usage, "total_cputime": usage / 2, "total_time": usage / 2,
		"estimated_time_to_regain_access": minutes,
	}}})
	w.Header().Set("X-Business-Use-Case-Usage", string(v))
}

// graphFaults applies the generic faults to a Graph call on business object
// id: expired_token (190/463), rate_limit (throttleCode with the usage header
// saying when access returns) and, for writes, server_error (code 2, marked
// transient). It reports whether it answered.
func (xlfiHelpers) graphFaults(s *Server, w http.ResponseWriter, platform, id, kind string, throttleCode int, throttleMsg string, write bool) bool {
	kinds := []FaultKind{FaultExpiredToken, FaultRateLimit}
	if write {
		kinds = append(kinds, FaultServerError)
	}
	f := s.takeFault(platform, kinds...)
	if f == nil {
		return false
	}
	switch f.Kind {
	case FaultExpiredToken:
		xlfi.graphError(w, graphErr{Code: 190, Subcode: 463,
			Message: "Error validating access token: Session has expired on " + s.now().Add(-time.Minute).UTC().Format("Monday, 02-Jan-06 15:04:05 MST") + "."})
	case FaultRateLimit:
		xlfi.graphBUC(w, id, kind, xlfi.resetAfter(f))
		xlfi.graphError(w, graphErr{Code: throttleCode, Message: throttleMsg})
	case FaultServerError:
		xlfi.graphError(w, graphErr{Status: xlfi.faultStatus(f), Code: 2, Transient: true,
			Message: "An unexpected error has occurred. Please retry your request later."})
	}
	return true
}

// graphTime formats t the way the Graph API does.
func (xlfiHelpers) graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-0700") }
