// Package apperr is POSSE's error taxonomy: every error that crosses a package
// boundary and has to steer a decision (an HTTP status, a retry, a reconnect)
// carries a Kind, whether it is retryable, when to retry, and — for platform
// failures — the platform's own code and a redacted copy of its response.
//
// Callers decide with errors.As / KindOf, never by matching strings. The HTTP
// edge maps kinds to statuses in one table (shared/httpapi).
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error. The zero value is KindInternal's string form's
// absence; use the constants.
type Kind string

// The kinds of architecture §7.
const (
	KindInvalid          Kind = "invalid"                // the caller sent something wrong; do not retry as is
	KindNotFound         Kind = "not_found"              // the entity does not exist (or belongs to another site)
	KindConflict         Kind = "conflict"               // the entity is not in a state that allows this
	KindUnauthorized     Kind = "unauthorized"           // missing or bad credentials
	KindForbidden        Kind = "forbidden"              // authenticated, but not allowed
	KindRateLimited      Kind = "rate_limited"           // wait until RetryAfter, then retry
	KindTransient        Kind = "transient"              // nothing was written; safe to retry with backoff
	KindPermanent        Kind = "permanent"              // the platform rejected it; retrying will not help
	KindReconnect        Kind = "reconnect"              // the token is dead; the account must be reconnected
	KindAmbiguous        Kind = "ambiguous"              // the write may have happened; reconcile before retrying
	KindInternal         Kind = "internal"               // a bug or an unexpected failure of our own
	KindTooLarge         Kind = "too_large"              // the request body is over the limit
	KindUnprocessable    Kind = "unprocessable"          // well-formed, but fails validation rules (422)
	KindMethodNotAllowed Kind = "method_not_allowed"     // the path exists, the method does not
	KindUnsupportedMedia Kind = "unsupported_media_type" // the body is not JSON
)

// Problem names one field that failed validation and why.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the typed error. Build one with New or the helpers below.
type Error struct {
	Kind       Kind
	Code       string    // a stable machine code, e.g. "invalid_json", "x.duplicate"
	Message    string    // safe to show to the API client
	Problems   []Problem // per-field details for invalid / unprocessable
	Retryable  bool
	RetryAfter time.Duration // zero when unknown
	// Platform fields, set by adapters.
	Platform     string // "x", "linkedin", ...
	PlatformCode string // the platform's own error code, as text
	HTTPStatus   int    // the platform's HTTP status, when the error came from one
	Redacted     string // the platform's response body with secrets removed, for logs
	Err          error  // the cause; logged, never sent to clients
}

// Error implements error. It never includes Redacted, so printing an error
// cannot leak a response body into a log line by accident.
func (e *Error) Error() string {
	s := string(e.Kind)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind with a client-safe message. Retryable is set
// from the kind's default.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Retryable: defaultRetryable(kind)}
}

// Newf is New with a formatted message.
func Newf(kind Kind, code, format string, args ...any) *Error {
	return New(kind, code, fmt.Sprintf(format, args...))
}

// Wrap returns an error of kind that wraps err. The message is client-safe;
// err is kept for logs only.
func Wrap(err error, kind Kind, code, message string) *Error {
	e := New(kind, code, message)
	e.Err = err
	return e
}

// Invalid is a 400-class error naming the field that is wrong.
func Invalid(field, message string) *Error {
	e := New(KindInvalid, "invalid_request", field+": "+message)
	e.Problems = []Problem{{Field: field, Message: message}}
	return e
}

// InvalidProblems is a 400-class error listing every field problem found;
// its message names the first.
func InvalidProblems(ps []Problem) *Error {
	msg := "the request is not valid"
	if len(ps) > 0 {
		msg = ps[0].Field + ": " + ps[0].Message
		if len(ps) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(ps)-1)
		}
	}
	e := New(KindInvalid, "invalid_request", msg)
	e.Problems = ps
	return e
}

// Unprocessable is a 422-class error listing every problem found.
func Unprocessable(code, message string, problems []Problem) *Error {
	e := New(KindUnprocessable, code, message)
	e.Problems = problems
	return e
}

// NotFound says the entity does not exist for this caller.
func NotFound(what string) *Error {
	return New(KindNotFound, "not_found", what+" not found")
}

func defaultRetryable(k Kind) bool {
	switch k {
	case KindRateLimited, KindTransient:
		return true
	}
	return false
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// KindOf returns the kind of the first *Error in err's chain, or KindInternal
// when there is none (an untyped error is a bug until proven otherwise).
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return KindInternal
}

// Is reports whether err has kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
