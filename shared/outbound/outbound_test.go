package outbound_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/outbound"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.9.9.9", true}, {"::1", true},
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"192.168.1.1", true},
		{"169.254.169.254", true}, {"169.254.1.1", true}, {"fe80::1", true},
		{"100.64.0.1", true}, {"100.127.255.254", true},
		{"fc00::1", true}, {"fd12:3456::1", true},
		{"224.0.0.1", true}, {"ff02::1", true}, {"0.0.0.0", true}, {"::", true},
		{"::ffff:10.0.0.1", true}, {"::ffff:127.0.0.1", true}, {"2002:a00:1::1", true},
		{"255.255.255.255", true}, {"198.18.0.1", true},
		{"93.184.215.14", false}, {"1.1.1.1", false}, {"100.128.0.1", false}, {"2606:4700::1111", false},
		{"::ffff:1.1.1.1", false}, {"2002:101:101::1", false},
	} {
		err := outbound.Check(netip.MustParseAddr(tc.addr))
		if (err != nil) != tc.blocked {
			t.Errorf("Check(%s): got %v, want blocked=%v", tc.addr, err, tc.blocked)
		}
		if b, ok := outbound.Blocked(err); tc.blocked && (!ok || b.Reason == "") {
			t.Errorf("Check(%s): got %v, want a *BlockedError with a reason", tc.addr, err)
		}
	}
}

// resolver maps names to addresses, as a DNS answer an attacker controls
// could.
type resolver map[string][]netip.Addr

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestClientRefusesNamesThatResolveToPrivateAddresses(t *testing.T) {
	t.Parallel()
	hit := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- r.Host }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := resolver{
		"loopback.example":  {netip.MustParseAddr("127.0.0.1")},
		"metadata.example":  {netip.MustParseAddr("169.254.169.254")},
		"private.example":   {netip.MustParseAddr("10.0.0.7")},
		"cgnat.example":     {netip.MustParseAddr("100.64.1.1")},
		"ula.example":       {netip.MustParseAddr("fd00::1")},
		"mapped.example":    {netip.MustParseAddr("::ffff:127.0.0.1")},
		"mixed.example":     {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")},
		"unspecified.local": {netip.MustParseAddr("0.0.0.0")},
	}
	c := outbound.NewClient(outbound.Options{Timeout: 2 * time.Second, Resolver: res})
	for name := range res {
		u := "http://" + net.JoinHostPort(name, itoa(port)) + "/hook"
		_, err := c.Post(u, "application/json", nil)
		if _, ok := outbound.Blocked(err); !ok {
			t.Errorf("POST %s: got %v, want a refusal before connecting", u, err)
		}
	}
	// An IP literal goes through the same check.
	if _, err := c.Get(srv.URL); err == nil {
		t.Errorf("GET %s: got through, want a refusal", srv.URL)
	}
	select {
	case h := <-hit:
		t.Fatalf("the server was reached (Host %s)", h)
	default:
	}
	// The local stack allows them.
	local := outbound.NewClient(outbound.Options{Timeout: 2 * time.Second, Resolver: res, AllowPrivate: true})
	resp, err := local.Post("http://"+net.JoinHostPort("loopback.example", itoa(port))+"/hook", "application/json", nil)
	if err != nil {
		t.Fatalf("AllowPrivate: %v", err)
	}
	resp.Body.Close()
	if h := <-hit; h != net.JoinHostPort("loopback.example", itoa(port)) {
		t.Errorf("Host: got %s", h)
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	reached := false
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { reached = true })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := outbound.NewClient(outbound.Options{AllowPrivate: true})
	resp, err := c.Post(srv.URL+"/hook", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || reached {
		t.Errorf("got %d (followed: %v), want the 307 itself and no request to its Location", resp.StatusCode, reached)
	}
}

func TestClientTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := outbound.NewClient(outbound.Options{AllowPrivate: true, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.Post(srv.URL, "application/json", nil)
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() || time.Since(start) > 2*time.Second {
		t.Errorf("got %v after %v, want a timeout after about 200 ms", err, time.Since(start))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
