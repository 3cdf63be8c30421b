package platformsim

// Meta Graph API helpers shared by the Facebook, Instagram and Threads
// simulators: Meta's error object, request parameters and tokens, the
// X-Business-Use-Case-Usage header and the generic faults in Graph shapes.

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
func graphError(w http.ResponseWriter, e graphErr) {
	body := map[string]any{
		"message":    e.Message,
		"type":       "OAuthException",
		"code":       e.Code,
		"fbtrace_id": "A" + randB64(16),
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
func graphParams(r *http.Request) url.Values {
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
func graphToken(r *http.Request, p url.Values) string {
	if t := headerToken(r); t != "" {
		return t
	}
	return p.Get("access_token")
}

// headerToken is the token of an "Authorization: Bearer" or
// "Authorization: OAuth" header, or "".
func headerToken(r *http.Request) string {
	if t := bearer(r); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "OAuth ") {
		return strings.TrimPrefix(h, "OAuth ")
	}
	return ""
}

// graphBUC sets the X-Business-Use-Case-Usage header for business object id.
// A non-zero regain is the throttled state: usage at 100% and the minutes
// until calls are accepted again.
func graphBUC(w http.ResponseWriter, id, kind string, regain time.Duration) {
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
func graphFaults(s *Server, w http.ResponseWriter, platform, id, kind string, throttleCode int, throttleMsg string, write bool) bool {
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
		graphError(w, graphErr{Code: 190, Subcode: 463,
			Message: "Error validating access token: Session has expired on " + s.now().Add(-time.Minute).UTC().Format("Monday, 02-Jan-06 15:04:05 MST") + "."})
	case FaultRateLimit:
		graphBUC(w, id, kind, f.resetAfter())
		graphError(w, graphErr{Code: throttleCode, Message: throttleMsg})
	case FaultServerError:
		graphError(w, graphErr{Status: f.status(http.StatusServiceUnavailable), Code: 2, Transient: true,
			Message: "An unexpected error has occurred. Please retry your request later."})
	}
	return true
}

// graphTime formats t the way the Graph API does.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-0700") }
