package platformsim

// Helpers every platform's simulator uses: random ids and tokens, the
// generic faults, fetching media the way a platform's crawler would, and
// sniffing media types.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// randHex returns n random bytes from crypto/rand as hex.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("platformsim: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// randB64 returns n random bytes from crypto/rand as unpadded base64url.
func randB64(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("platformsim: crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// randDigits returns a random decimal number of n digits with no leading zero.
func randDigits(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		lo := int64(0)
		if i == 0 {
			lo = 1
		}
		v, err := rand.Int(rand.Reader, big.NewInt(10-lo))
		if err != nil {
			panic(fmt.Sprintf("platformsim: crypto/rand: %v", err))
		}
		sb.WriteByte(byte('0' + lo + v.Int64()))
	}
	return sb.String()
}

// slowFault applies a pending FaultSlow of platform: it sleeps DelayMillis or
// until the request is cancelled.
func slowFault(s *Server, r *http.Request, platform string) {
	f := s.takeFault(platform, FaultSlow)
	if f == nil || f.DelayMillis <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(f.DelayMillis) * time.Millisecond)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

// status is the HTTP status of a server_error fault: its Status when that
// is a 5xx, else def, the platform's usual one.
func (f *Fault) status(def int) int {
	if f.Status >= 500 {
		return f.Status
	}
	return def
}

// resetAfter is how far ahead a rate_limit fault's reset lies.
func (f *Fault) resetAfter() time.Duration {
	return time.Duration(f.ResetSeconds) * time.Second
}

// isLoopbackHost reports whether host (without port) is a loopback name or
// address: 127.0.0.0/8, ::1 or localhost.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fetchClient is the short-timeout client the simulators pull media with.
var fetchClient = &http.Client{Timeout: 5 * time.Second}

// fetchMedia downloads rawURL the way a platform's crawler would, but only from a
// loopback host: anything else counts as a failed download. It refuses
// bodies over max bytes.
func fetchMedia(ctx context.Context, rawURL string, max int64) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "", fmt.Errorf("fetch media: %q is not an http(s) URL", rawURL)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, "", fmt.Errorf("fetch media: host %q is not loopback; the simulator does not leave the machine", u.Hostname())
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetch media: %w", err)
	}
	resp, err := fetchClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetch media: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("fetch media: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, "", fmt.Errorf("fetch media: %w", err)
	}
	if int64(len(body)) > max {
		return nil, "", errors.New("fetch media: too large")
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = http.DetectContentType(body)
	}
	return body, ct, nil
}

// urlPattern finds http(s) URLs in text the way the platforms' link
// detectors roughly do.
var urlPattern = regexp.MustCompile(`https?://[^\s<>"]+[^\s<>"\.,;:!?\)\]'"]`)

// findURLs returns the URLs found in text.
func findURLs(text string) []string { return urlPattern.FindAllString(text, -1) }

// mediaKind classifies a content type as "image", "video" or "".
func mediaKind(contentType string) string {
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
func sniff(body []byte) string {
	ct := http.DetectContentType(body)
	if ct == "application/octet-stream" && len(body) >= 12 && string(body[4:8]) == "ftyp" {
		return "video/mp4"
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// readCounted reads r to its end, or to max+1 bytes, keeping only the first
// 512 (enough to sniff): the simulator accepts large uploads without
// holding them.
func readCounted(r io.Reader, max int64) (head []byte, n int64, err error) {
	head = make([]byte, 512)
	k, err := io.ReadFull(io.LimitReader(r, max+1), head)
	head = head[:k]
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return head, int64(k), nil
	}
	if err != nil {
		return head, int64(k), err
	}
	rest, err := io.Copy(io.Discard, io.LimitReader(r, max+1-int64(k)))
	return head, int64(k) + rest, err
}
