package platform_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
)

// names maps host names to addresses, as a DNS answer a CMS's attacker
// controls could.
type names map[string][]netip.Addr

func (r names) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func wantCode(t *testing.T, err error, kind apperr.Kind, code string) {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("got %v, want %s/%s", err, kind, code)
	}
}

func TestOpenMediaRefusesAddressesThatAreNotPublic(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/v.mp4", func(w http.ResponseWriter, _ *http.Request) { hits.Add(1); _, _ = w.Write([]byte("video")) })
	mux.HandleFunc("/bounce", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+net.JoinHostPort("intranet.example", r.URL.Query().Get("port"))+"/v.mp4", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	res := names{
		"cms.example":      {netip.MustParseAddr("127.0.0.1")},
		"intranet.example": {netip.MustParseAddr("10.0.0.5")},
		"metadata.example": {netip.MustParseAddr("169.254.169.254")},
		"cgnat.example":    {netip.MustParseAddr("100.64.0.9")},
		"ula.example":      {netip.MustParseAddr("fd12::1")},
	}
	// Loopback allowed, as on the local stack: the other classes stay refused.
	hc := outbound.NewClient(outbound.Options{Stream: true, Redirects: outbound.MaxRedirects, AllowLoopback: true, Resolver: res})
	ctx := context.Background()
	for _, host := range []string{"intranet.example", "metadata.example", "cgnat.example", "ula.example"} {
		_, err := platform.OpenMedia(ctx, hc, platform.Media{URL: "http://" + net.JoinHostPort(host, port) + "/v.mp4"}, 1<<20)
		wantCode(t, err, apperr.KindPermanent, "media_blocked")
	}
	_, err := platform.OpenMedia(ctx, hc, platform.Media{URL: "http://" + net.JoinHostPort("cms.example", port) + "/bounce?port=" + port}, 1<<20)
	wantCode(t, err, apperr.KindPermanent, "media_blocked")
	if n := hits.Load(); n != 0 {
		t.Fatalf("the media was served %d times, want 0", n)
	}
	// Outside the local stack, loopback is refused too.
	strict := platform.MediaClient(false)
	_, err = platform.OpenMedia(ctx, strict, platform.Media{URL: srv.URL + "/v.mp4"}, 1<<20)
	wantCode(t, err, apperr.KindPermanent, "media_blocked")
	// And a public-looking allowed name gets through.
	s, err := platform.OpenMedia(ctx, hc, platform.Media{URL: "http://" + net.JoinHostPort("cms.example", port) + "/v.mp4"}, 1<<20)
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	s.Close()
}

// serveBytes answers /sized/N and /unsized/N with N bytes, written as they
// go, counting what it wrote.
func serveBytes(t *testing.T, written *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		sized := false
		if _, err := fmtSscan(r.URL.Path, "/sized/", &n); err == nil {
			sized = true
		} else if _, err := fmtSscan(r.URL.Path, "/unsized/", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		if sized {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		block := bytes.Repeat([]byte{7}, 32<<10)
		for n > 0 {
			k, err := w.Write(block[:min(n, int64(len(block)))])
			written.Add(int64(k))
			if err != nil {
				return
			}
			n -= int64(k)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fmtSscan(path, prefix string, n *int64) (int, error) {
	if len(path) <= len(prefix) || path[:len(prefix)] != prefix {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseInt(path[len(prefix):], 10, 64)
	*n = v
	return 1, err
}

func TestOpenMediaCapsWhileStreaming(t *testing.T) {
	t.Parallel()
	var written atomic.Int64
	srv := serveBytes(t, &written)
	hc := outbound.NewClient(outbound.Options{Stream: true, AllowLoopback: true, Timeout: 2 * time.Second})
	ctx := context.Background()
	const mib = 1 << 20

	// A declared length over the cap is refused before the body is read.
	_, err := platform.OpenMedia(ctx, hc, platform.Media{URL: srv.URL + "/sized/" + strconv.Itoa(512*mib)}, mib)
	wantCode(t, err, apperr.KindPermanent, "media_too_large")

	// Without a declared length, reading stops at the cap.
	written.Store(0)
	_, err = platform.OpenMedia(ctx, hc, platform.Media{URL: srv.URL + "/unsized/" + strconv.Itoa(512*mib)}, mib)
	wantCode(t, err, apperr.KindPermanent, "media_too_large")
	if w := written.Load(); w > 64*mib {
		t.Errorf("the server wrote %d bytes before the download stopped, want it stopped near the 1 MiB cap", w)
	}

	// A sized body streams: Size is known and the bytes come in order.
	s, err := platform.OpenMedia(ctx, hc, platform.Media{URL: srv.URL + "/sized/" + strconv.Itoa(3*mib)}, 4*mib)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size != 3*mib || s.ContentType != "video/mp4" {
		t.Errorf("sized: got Size %d, type %q, want %d, video/mp4", s.Size, s.ContentType, 3*mib)
	}
	n1, _ := io.Copy(io.Discard, s.Next(mib))
	n2, _ := io.Copy(io.Discard, s.Next(4*mib))
	if n1 != mib || n2 != 2*mib || s.Err() != nil {
		t.Errorf("sized chunks: got %d then %d (%v), want %d then %d", n1, n2, s.Err(), mib, 2*mib)
	}
	s.Close()

	// An unsized body under the cap is spooled to a file: its size is known
	// before the upload starts.
	s, err = platform.OpenMedia(ctx, hc, platform.Media{URL: srv.URL + "/unsized/" + strconv.Itoa(2*mib)}, 4*mib)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size != 2*mib {
		t.Errorf("unsized: got Size %d, want %d", s.Size, 2*mib)
	}
	if n, _ := io.Copy(io.Discard, s); n != 2*mib {
		t.Errorf("unsized: read %d bytes, want %d", n, 2*mib)
	}
	s.Close()
}

func TestMediaStreamReportsACutDownload(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write(make([]byte, 1000))
		// The handler returns early: the connection closes short.
	}))
	defer srv.Close()
	s, err := platform.OpenMedia(context.Background(), outbound.NewClient(outbound.Options{AllowLoopback: true, Stream: true}), platform.Media{URL: srv.URL + "/v.mp4"}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _ = io.Copy(io.Discard, s.Next(s.Size))
	upload := io.ErrClosedPipe // what an upload fed by the stream might report
	wantCode(t, s.Cause(upload), apperr.KindTransient, "media_fetch")
}
