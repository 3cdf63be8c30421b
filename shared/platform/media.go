package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/outbound"
)

// Identity is who an access token belongs to, as the platform reports it.
type Identity struct {
	ID     string `json:"id"`
	Handle string `json:"handle"`
	Name   string `json:"name,omitempty"`
}

// Identifier is implemented by adapters that can ask the platform "who am
// I" with an account's token (connection validation).
type Identifier interface {
	WhoAmI(ctx context.Context, acct Account) (Identity, error)
}

// MediaClient is the client for media URLs when an adapter is given none:
// the outbound policy (public addresses only, up to three redirects each
// checked again), bodies bounded by the caller's context. Media URLs come
// from the CMS, so they never go through a platform's own client.
func MediaClient(allowLoopback bool) *http.Client {
	return outbound.NewClient(outbound.Options{Timeout: 20 * time.Second, Stream: true, Redirects: outbound.MaxRedirects, AllowLoopback: allowLoopback})
}

// MediaStream is an open media download, read once from start to end while
// it is uploaded, so a file is never held whole in memory. Size is exact
// before the first byte is read: the server's Content-Length or, when it
// sends none, the size of a temporary file the body was spooled to.
type MediaStream struct {
	// Size is the number of bytes the stream holds.
	Size int64
	// ContentType is the server's type, else Media.MIMEType, else sniffed.
	ContentType string

	r     *bufio.Reader
	close func() error
	read  int64
	err   error
}

// Read implements io.Reader. A body that ends before Size bytes fails
// with io.ErrUnexpectedEOF; the first failure is kept for Err.
func (s *MediaStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	if errors.Is(err, io.EOF) && s.read < s.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// Next is a reader of the stream's next n bytes: one chunk of an upload.
func (s *MediaStream) Next(n int64) io.Reader { return io.LimitReader(s, n) }

// Close releases the download (and removes a spooled file).
func (s *MediaStream) Close() error { return s.close() }

// Err is the download's failure as a transient *apperr.Error, or nil.
func (s *MediaStream) Err() error {
	if s.err == nil {
		return nil
	}
	return apperr.Wrap(s.err, apperr.KindTransient, "media_fetch", "media download was cut off")
}

// Cause is s.Err() when the download failed, else err: an upload that
// failed because its source did is reported as the download's failure
// (its body was never complete, so the platform did not take it).
func (s *MediaStream) Cause(err error) error {
	if e := s.Err(); e != nil {
		return e
	}
	return err
}

// OpenMedia starts downloading m.URL with hc (give it MediaClient's
// policy), refusing more than max bytes before reading when the server
// declares its length and while reading when it does not. The caller reads
// the stream once and closes it. A URL that fails or points at an address
// the policy refuses is a permanent error naming it by position, since the
// same URL will fail again until the site fixes it; network errors and 5xx
// answers are transient.
func OpenMedia(ctx context.Context, hc *http.Client, m Media, max int64) (*MediaStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindPermanent, "media_url", "media URL is not valid")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if b, ok := outbound.Blocked(err); ok {
			return nil, apperr.Wrap(err, apperr.KindPermanent, "media_blocked", "media URL points at an address that is not public ("+b.Reason+")")
		}
		if errors.Is(err, outbound.ErrTooManyRedirects) {
			return nil, apperr.Wrap(err, apperr.KindPermanent, "media_fetch", fmt.Sprintf("media URL redirects more than %d times", outbound.MaxRedirects))
		}
		return nil, apperr.Wrap(err, apperr.KindTransient, "media_fetch", "media download failed")
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		e := apperr.Newf(apperr.KindPermanent, "media_fetch", "media download answered HTTP %d", resp.StatusCode)
		if resp.StatusCode >= 500 {
			e.Kind, e.Retryable = apperr.KindTransient, true
		}
		return nil, e
	}
	tooLarge := apperr.New(apperr.KindPermanent, "media_too_large", fmt.Sprintf("media is over %d bytes", max))
	body, err := outbound.LimitBody(resp, max)
	if err != nil {
		resp.Body.Close()
		return nil, tooLarge
	}
	s := &MediaStream{Size: resp.ContentLength, close: body.Close}
	src := io.Reader(body)
	if s.Size < 0 {
		// No declared length: spool to a temporary file so the size is
		// known before the upload starts, without holding the body.
		f, n, err := spool(body)
		body.Close()
		if err != nil {
			var tl *outbound.TooLargeError
			if errors.As(err, &tl) {
				return nil, tooLarge
			}
			return nil, apperr.Wrap(err, apperr.KindTransient, "media_fetch", "media download was cut off")
		}
		s.Size, src = n, f
		s.close = func() error { f.Close(); return os.Remove(f.Name()) }
	}
	s.r = bufio.NewReaderSize(src, 64<<10)
	s.ContentType = resp.Header.Get("Content-Type")
	if s.ContentType == "" || s.ContentType == "application/octet-stream" {
		s.ContentType = m.MIMEType
	}
	if s.ContentType == "" {
		head, _ := s.r.Peek(512)
		s.ContentType = http.DetectContentType(head)
	}
	return s, nil
}

// spool copies r to a new temporary file and rewinds it.
func spool(r io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "posse-media-*")
	if err != nil {
		return nil, 0, fmt.Errorf("spool media: %w", err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, fmt.Errorf("spool media: %w", err)
	}
	return f, n, nil
}

// FetchMedia downloads m.URL whole with hc, refusing more than max bytes:
// for small media (images) uploaded in one request. Errors are OpenMedia's.
func FetchMedia(ctx context.Context, hc *http.Client, m Media, max int64) ([]byte, string, error) {
	s, err := OpenMedia(ctx, hc, m, max)
	if err != nil {
		return nil, "", err
	}
	defer s.Close()
	body := make([]byte, s.Size)
	if _, err := io.ReadFull(s, body); err != nil {
		return nil, "", s.Cause(err)
	}
	return body, s.ContentType, nil
}
