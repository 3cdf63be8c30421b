package platform

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/posse-dev/posse/shared/apperr"
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

// FetchMedia downloads m.URL with hc, refusing more than max bytes. It
// returns the bytes and the content type (the server's, else m.MIMEType,
// else sniffed). A failed download is a permanent error naming the URL's
// position, since the same URL will fail again until the site fixes it;
// network errors are transient.
func FetchMedia(ctx context.Context, hc *http.Client, m Media, max int64) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return nil, "", apperr.Wrap(err, apperr.KindPermanent, "media_url", "media URL is not valid")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", apperr.Wrap(err, apperr.KindTransient, "media_fetch", "media download failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := apperr.Newf(apperr.KindPermanent, "media_fetch", "media download answered HTTP %d", resp.StatusCode)
		if resp.StatusCode >= 500 {
			e.Kind, e.Retryable = apperr.KindTransient, true
		}
		return nil, "", e
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, "", apperr.Wrap(err, apperr.KindTransient, "media_fetch", "media download was cut off")
	}
	if int64(len(body)) > max {
		return nil, "", apperr.New(apperr.KindPermanent, "media_too_large", fmt.Sprintf("media is over %d bytes", max))
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" || ct == "application/octet-stream" {
		ct = m.MIMEType
	}
	if ct == "" {
		ct = http.DetectContentType(body)
	}
	return body, ct, nil
}
