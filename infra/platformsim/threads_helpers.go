package platformsim

// Helpers shared by the Threads, TikTok, Bluesky and Mastodon simulators.
// They hang off the tbm namespace value so their names cannot collide with
// helpers other platforms' files add to this package.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// tbmHelpers namespaces the helpers of the Threads, TikTok, Bluesky and
// Mastodon simulators.
type tbmHelpers struct{}

// tbm is the namespace value.
var tbm tbmHelpers

// hex returns n random bytes from crypto/rand as hex.
func (tbmHelpers) hex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("platformsim: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// b64 returns n random bytes from crypto/rand as unpadded base64url.
func (tbmHelpers) b64(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("platformsim: crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// digits returns a random decimal number of n digits with no leading zero.
func (tbmHelpers) digits(n int) string {
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

// slow applies a pending FaultSlow of platform: it sleeps DelayMillis or
// until the request is cancelled.
func (tbmHelpers) slow(s *Server, r *http.Request, platform string) {
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

// isLoopbackHost reports whether host (without port) is a loopback name or
// address: 127.0.0.0/8, ::1 or localhost.
func (tbmHelpers) isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tbmFetchClient is the short-timeout client the simulators pull media with.
var tbmFetchClient = &http.Client{Timeout: 5 * time.Second}

// fetch downloads rawURL the way a platform's crawler would, but only from a
// loopback host: anything else counts as a failed download. It refuses
// bodies over max bytes.
func (tbmHelpers) fetch(ctx context.Context, rawURL string, max int64) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "", fmt.Errorf("fetch media: %q is not an http(s) URL", rawURL)
	}
	if !tbm.isLoopbackHost(u.Hostname()) {
		return nil, "", fmt.Errorf("fetch media: host %q is not loopback; the simulator does not leave the machine", u.Hostname())
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetch media: %w", err)
	}
	resp, err := tbmFetchClient.Do(req)
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

// redirectWith answers 302 to redirectURI with params added to its query and
// an optional fragment.
func (tbmHelpers) redirectWith(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, fragment string) {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" || u.Host == "" {
		http.Error(w, "redirect_uri is not an absolute URL", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	u.Fragment = fragment
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// tbmURLPattern finds http(s) URLs in text the way the platforms' link
// detectors roughly do.
var tbmURLPattern = regexp.MustCompile(`https?://[^\s<>"]+[^\s<>"\.,;:!?\)\]'"]`)

// urls returns the URLs found in text.
func (tbmHelpers) urls(text string) []string { return tbmURLPattern.FindAllString(text, -1) }

// clientAccount returns the account the OAuth authorize page of platform
// approves for clientID, creating it (with an id from newID) on first use.
func (tbmHelpers) clientAccount(s *Server, platform, clientID, handlePrefix string, newID func() string) *Account {
	key := platform + "|clientacct|" + clientID
	var id string
	s.with(func(st map[string]any) { id, _ = st[key].(string) })
	if id != "" {
		if a, ok := s.accountByID(platform, id); ok {
			return a
		}
	}
	id = newID()
	s.AddAccount(Account{Platform: platform, ID: id, Handle: handlePrefix + id})
	s.with(func(st map[string]any) { st[key] = id })
	a, _ := s.accountByID(platform, id)
	return a
}

// setRefresh sets a's refresh token under the simulator's lock.
func (tbmHelpers) setRefresh(s *Server, a *Account, rt string) {
	s.with(func(map[string]any) { a.RefreshToken = rt })
}

// s256 is the PKCE S256 code challenge of verifier.
func (tbmHelpers) s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// clientIDOK reports whether id is platform's registered client id (any
// non-empty id when none is registered): for authorize pages, which see no
// secret.
func (tbmHelpers) clientIDOK(s *Server, platform, id string) bool {
	c, ok := s.opts.Clients[platform]
	if !ok {
		return id != ""
	}
	return c.ID == id
}

// clientSecretOK reports whether secret is the registered secret of
// platform's client (any non-empty secret when none is registered).
func (tbmHelpers) clientSecretOK(s *Server, platform, secret string) bool {
	c, ok := s.opts.Clients[platform]
	if !ok {
		return secret != ""
	}
	return c.Secret == secret
}
