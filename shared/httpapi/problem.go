package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/logging"
)

// statusOf is the one table from error kind to HTTP status.
var statusOf = map[apperr.Kind]int{
	apperr.KindInvalid:          http.StatusBadRequest,
	apperr.KindUnprocessable:    http.StatusUnprocessableEntity,
	apperr.KindNotFound:         http.StatusNotFound,
	apperr.KindMethodNotAllowed: http.StatusMethodNotAllowed,
	apperr.KindConflict:         http.StatusConflict,
	apperr.KindUnauthorized:     http.StatusUnauthorized,
	apperr.KindForbidden:        http.StatusForbidden,
	apperr.KindTooLarge:         http.StatusRequestEntityTooLarge,
	apperr.KindUnsupportedMedia: http.StatusUnsupportedMediaType,
	apperr.KindRateLimited:      http.StatusTooManyRequests,
	apperr.KindTransient:        http.StatusServiceUnavailable,
	apperr.KindPermanent:        http.StatusUnprocessableEntity,
	apperr.KindReconnect:        http.StatusConflict,
	apperr.KindAmbiguous:        http.StatusBadGateway,
	apperr.KindInternal:         http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for an error's kind.
func StatusOf(err error) int {
	if s, ok := statusOf[apperr.KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type      string           `json:"type"`
	Title     string           `json:"title"`
	Status    int              `json:"status"`
	Detail    string           `json:"detail,omitempty"`
	Code      string           `json:"code"`
	Errors    []apperr.Problem `json:"errors,omitempty"`
	RequestID string           `json:"requestId,omitempty"`
}

// writeError answers err as application/problem+json. Internal errors are
// logged in full and answered with a generic detail; nothing internal is
// ever sent to the client.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := StatusOf(err)
	p := problem{Title: http.StatusText(status), Status: status, RequestID: logging.RequestID(r.Context())}
	e, typed := apperr.As(err)
	if typed && status < 500 || typed && e.Kind != apperr.KindInternal {
		p.Code, p.Detail, p.Errors = e.Code, e.Message, e.Problems
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+999_999_999)/1_000_000_000)))
		}
	}
	if p.Code == "" {
		p.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
	}
	if status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		if !typed || e.Kind == apperr.KindInternal {
			p.Detail = "an internal error occurred; it was logged with this request id"
		}
	} else {
		log.InfoContext(r.Context(), "request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "problem_code", p.Code)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posse"`)
	}
	p.Type = "urn:posse:problem:" + p.Code
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// writePage answers one page of a listing: {"items": [...], "nextCursor"},
// items never null.
func writePage[T any](w http.ResponseWriter, items []T, next string) error {
	if items == nil {
		items = []T{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "nextCursor": next})
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// decodeJSON reads r's body into v: at most max bytes, JSON only, no
// unknown fields, exactly one value. Every failure names what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return apperr.Newf(apperr.KindUnsupportedMedia, "unsupported_media_type", "Content-Type must be application/json, got %q", mt)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, max)
	}
	if dec.More() {
		return apperr.Invalid("body", "must hold exactly one JSON value")
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, ioEOF) {
		return jsonError(err, max)
	}
	return nil
}

// jsonError turns a decoding error into a typed error naming the field.
func jsonError(err error, max int64) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return apperr.Newf(apperr.KindTooLarge, "body_too_large", "the request body is over %d bytes", max)
	case errors.Is(err, ioEOF):
		return apperr.Invalid("body", "is required (a JSON object)")
	case errors.Is(err, ioUnexpectedEOF):
		return apperr.Invalid("body", "is not complete JSON")
	case errors.As(err, &syn):
		return apperr.Invalid("body", fmt.Sprintf("is not valid JSON (at byte %d)", syn.Offset))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return apperr.Invalid("body", "must be a JSON "+jsonKind(typ.Type.Kind().String()))
		}
		return apperr.Invalid(field, "must be "+article(jsonKind(typ.Type.Kind().String())))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.Invalid(name, "is not a known field")
	}
	return apperr.Invalid("body", "could not be read as JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	}
	return goKind
}

func article(kind string) string {
	switch kind {
	case "array", "object", "integer":
		return "an " + kind
	}
	return "a " + kind
}
