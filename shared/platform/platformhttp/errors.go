package platformhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/posse-dev/posse/shared/apperr"
)

// Errors builds one platform's *apperr.Error values. The zero value of
// every field but Platform is a valid choice.
type Errors struct {
	// Platform is set on every error and prefixes its code ("bluesky").
	Platform string
	// Name is the platform as messages name it ("X", "LinkedIn"); Platform
	// when empty.
	Name string
	// Peer is the other side in Do's and Shape's messages: "instance"
	// reads "the instance URL is not valid", "no answer from the
	// instance"; empty reads "the URL", "the server".
	Peer string
	// StatusCode makes the HTTP status the PlatformCode of an error that
	// sets none.
	StatusCode bool
}

func (e Errors) name() string {
	if e.Name != "" {
		return e.Name
	}
	return e.Platform
}

func (e Errors) peer() string {
	if e.Peer != "" {
		return e.Peer
	}
	return "server"
}

// Annotate fills the platform fields of err: Platform, HTTPStatus, the
// PlatformCode when StatusCode is set and err has none, and Redacted from
// body when body is not nil.
func (e Errors) Annotate(err *apperr.Error, status int, body []byte) *apperr.Error {
	err.Platform = e.Platform
	err.HTTPStatus = status
	if e.StatusCode && status != 0 && err.PlatformCode == "" {
		err.PlatformCode = strconv.Itoa(status)
	}
	if body != nil {
		err.Redacted = Redact(body)
	}
	return err
}

// New is apperr.New with the platform set.
func (e Errors) New(kind apperr.Kind, code, msg string) *apperr.Error {
	return e.Annotate(apperr.New(kind, code, msg), 0, nil)
}

// Newf is apperr.Newf with the platform set.
func (e Errors) Newf(kind apperr.Kind, code, format string, args ...any) *apperr.Error {
	return e.Annotate(apperr.Newf(kind, code, format, args...), 0, nil)
}

// Wrap is apperr.Wrap with the platform set.
func (e Errors) Wrap(cause error, kind apperr.Kind, code, msg string) *apperr.Error {
	return e.Annotate(apperr.Wrap(cause, kind, code, msg), 0, nil)
}

// Shape is the error for a success answer whose body is not what the API
// documents, worded for calls named by what: ambiguous after the
// publishing write, permanent otherwise.
func (e Errors) Shape(resp Response, final bool, what string, cause error) *apperr.Error {
	return e.Annotate(apperr.Wrap(fmt.Errorf("decode %s: %w", what, cause), AmbiguousIf(final, apperr.KindPermanent),
		e.Platform+".unexpected_response", what+": unexpected response from the "+e.peer()), resp.Status, resp.Body)
}

// Unexpected is Shape for platforms whose messages name the platform
// rather than the call: "<Name> answered in an unexpected shape".
func (e Errors) Unexpected(status int, body []byte, final bool, cause error) *apperr.Error {
	return e.Annotate(apperr.Wrap(cause, AmbiguousIf(final, apperr.KindPermanent), e.Platform+".unexpected_response",
		e.name()+" answered in an unexpected shape"), status, body)
}

// Transport classifies a failure to get an answer, in the codes of Call:
// <platform>.no_response (ambiguous) when the publishing write may have
// left, else <platform>.network (transient). The URL is dropped from the
// cause so that no query parameter or upload signature reaches a log.
func (e Errors) Transport(err error, final bool) *apperr.Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if TransportKind(err, final) == apperr.KindAmbiguous {
		return e.Wrap(err, apperr.KindAmbiguous, e.Platform+".no_response",
			e.name()+" did not answer the publishing request; it may have published")
	}
	return e.Wrap(err, apperr.KindTransient, e.Platform+".network", "the request to "+e.name()+" failed before an answer")
}

// AmbiguousIf is kind, or KindAmbiguous when final: once the publishing
// write may have happened, a failure can hide a success.
func AmbiguousIf(final bool, kind apperr.Kind) apperr.Kind {
	if final {
		return apperr.KindAmbiguous
	}
	return kind
}

// TransportKind is the kind of a failure to get an answer: transient when
// the request cannot have reached the server or was not the publishing
// write, ambiguous otherwise.
func TransportKind(err error, final bool) apperr.Kind {
	return AmbiguousIf(final && !NotSent(err), apperr.KindTransient)
}

// NotSent reports whether err happened before the request left: a failed
// dial or name lookup.
func NotSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// OrStatus is code, or the HTTP status as text when code is empty.
func OrStatus(code string, status int) string {
	if code != "" {
		return code
	}
	return strconv.Itoa(status)
}

// Client sends one platform's API calls. It holds no per-account state and
// is safe for concurrent use.
type Client struct {
	Errors
	// HC sends the requests.
	HC *http.Client
	// MaxBody caps how much of an answer is read (MaxBody when 0).
	MaxBody int64
	// Classify turns a non-2xx answer into an error, for Call.
	Classify func(status int, h http.Header, body []byte, final bool) *apperr.Error
}

func (c *Client) limit() int64 {
	if c.MaxBody > 0 {
		return c.MaxBody
	}
	return MaxBody
}

// Do sends rq and returns any answer that arrives for the caller to
// classify. A call whose context is already done is not sent. Failures are
// *apperr.Error with codes <platform>.cancelled (transient),
// <platform>.bad_url (permanent) and <platform>.network (transient, or
// ambiguous when rq.Final may have left).
func (c *Client) Do(ctx context.Context, rq Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, c.Wrap(err, apperr.KindTransient, c.Platform+".cancelled", rq.What+": cancelled before sending")
	}
	resp, err := Send(ctx, c.HC, rq, c.limit())
	var be *BuildError
	switch {
	case errors.As(err, &be):
		noun := "URL"
		if c.Peer != "" {
			noun = c.Peer + " URL"
		}
		return Response{}, c.Wrap(be.Err, apperr.KindPermanent, c.Platform+".bad_url", rq.What+": the "+noun+" is not valid")
	case err != nil:
		return Response{}, c.Wrap(err, TransportKind(err, rq.Final), c.Platform+".network", rq.What+": no answer from the "+c.peer())
	}
	return resp, nil
}

// Call sends rq, turns a non-2xx answer into an error with Classify,
// decodes a 2xx JSON answer into out when out is not nil (an answer it
// cannot decode is Unexpected), and returns the answer's header. A request
// that cannot be built is <platform>.bad_request; see Transport for the
// rest.
func (c *Client) Call(ctx context.Context, rq Request, out any) (http.Header, error) {
	resp, err := Send(ctx, c.HC, rq, c.limit())
	var be *BuildError
	switch {
	case errors.As(err, &be):
		return nil, c.Wrap(be.Err, apperr.KindPermanent, c.Platform+".bad_request", "the request could not be built")
	case err != nil:
		return nil, c.Transport(err, rq.Final)
	case !resp.OK():
		return nil, c.Classify(resp.Status, resp.Header, resp.Body, rq.Final)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return nil, c.Unexpected(resp.Status, resp.Body, rq.Final, err)
		}
	}
	return resp.Header, nil
}
