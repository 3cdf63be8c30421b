package outbound_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
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

func TestCheckNamesTheMetadataServices(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "::ffff:169.254.169.254"} {
		b, ok := outbound.Blocked(outbound.Check(netip.MustParseAddr(a)))
		if !ok || b.Reason != "the instance metadata service" {
			t.Errorf("Check(%s): got %+v, want refused as the instance metadata service", a, b)
		}
	}
}

func TestPolicyAllowsLoopbackOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	local := outbound.Policy{AllowLoopback: true}
	for _, tc := range []struct {
		addr          string
		strict, local bool // refused
	}{
		{"127.0.0.1", true, false}, {"::1", true, false}, {"::ffff:127.0.0.1", true, false},
		{"10.0.0.5", true, true}, {"169.254.169.254", true, true}, {"fd00:ec2::254", true, true},
		{"100.64.0.1", true, true}, {"fc00::1", true, true}, {"0.0.0.0", true, true}, {"224.0.0.1", true, true},
		{"1.1.1.1", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := (outbound.Policy{}).Check(a) != nil; got != tc.strict {
			t.Errorf("strict Check(%s): got refused=%v, want %v", a, got, tc.strict)
		}
		if got := local.Check(a) != nil; got != tc.local {
			t.Errorf("local Check(%s): got refused=%v, want %v", a, got, tc.local)
		}
	}
}

func TestCheckHostResolvesBeforeAnswering(t *testing.T) {
	t.Parallel()
	res := resolver{
		"evil.example":     {netip.MustParseAddr("10.0.0.5")},
		"metadata.example": {netip.MustParseAddr("169.254.169.254")},
		"half.example":     {netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("192.168.0.1")},
		"public.example":   {netip.MustParseAddr("93.184.215.14")},
		"loop.example":     {netip.MustParseAddr("127.0.0.1")},
	}
	ctx := context.Background()
	for _, tc := range []struct {
		host    string
		p       outbound.Policy
		blocked bool
	}{
		{"evil.example", outbound.Policy{}, true}, {"metadata.example", outbound.Policy{}, true},
		{"half.example", outbound.Policy{}, true}, {"loop.example", outbound.Policy{}, true},
		{"10.0.0.5", outbound.Policy{}, true}, {"evil.example", outbound.Policy{AllowLoopback: true}, true},
		{"public.example", outbound.Policy{}, false}, {"loop.example", outbound.Policy{AllowLoopback: true}, false},
	} {
		err := tc.p.CheckHost(ctx, res, tc.host)
		if _, ok := outbound.Blocked(err); ok != tc.blocked || (!tc.blocked && err != nil) {
			t.Errorf("CheckHost(%s, %+v): got %v, want blocked=%v", tc.host, tc.p, err, tc.blocked)
		}
	}
	if err := (outbound.Policy{}).CheckHost(ctx, res, "nowhere.example"); err == nil {
		t.Error("CheckHost(nowhere.example): got nil, want a resolution error")
	} else if _, ok := outbound.Blocked(err); ok {
		t.Errorf("CheckHost(nowhere.example): got %v, want an error that is not a refusal", err)
	}
}

func TestClientAllowLoopbackStillRefusesPrivateNames(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	port := itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	res := resolver{"sim.example": {netip.MustParseAddr("127.0.0.1")}, "private.example": {netip.MustParseAddr("10.0.0.5")},
		"metadata.example": {netip.MustParseAddr("169.254.169.254")}}
	c := outbound.NewClient(outbound.Options{Timeout: time.Second, AllowLoopback: true, Resolver: res})
	resp, err := c.Get("http://" + net.JoinHostPort("sim.example", port) + "/")
	if err != nil {
		t.Fatalf("GET loopback name with AllowLoopback: %v", err)
	}
	resp.Body.Close()
	for _, h := range []string{"private.example", "metadata.example"} {
		_, err := c.Get("http://" + net.JoinHostPort(h, port) + "/")
		if _, ok := outbound.Blocked(err); !ok {
			t.Errorf("GET %s with AllowLoopback: got %v, want a refusal", h, err)
		}
	}
	// The default resolver path (no Resolver) checks too.
	strict := outbound.NewClient(outbound.Options{Timeout: time.Second})
	if _, err := strict.Get("http://" + net.JoinHostPort("localhost", port) + "/"); err == nil {
		t.Error("GET localhost with the default resolver: got through, want a refusal")
	} else if _, ok := outbound.Blocked(err); !ok {
		t.Errorf("GET localhost with the default resolver: got %v, want a refusal", err)
	}
}

func TestClientRedirects(t *testing.T) {
	t.Parallel()
	var hits atomicCount
	mux := http.NewServeMux()
	mux.HandleFunc("/hop/{n}", func(w http.ResponseWriter, r *http.Request) {
		hits.add()
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			_, _ = w.Write([]byte("arrived"))
			return
		}
		http.Redirect(w, r, "/hop/"+itoa(n-1), http.StatusFound)
	})
	mux.HandleFunc("/to-private", func(w http.ResponseWriter, r *http.Request) {
		hits.add()
		http.Redirect(w, r, "http://"+net.JoinHostPort("private.example", r.URL.Query().Get("port"))+"/hop/0", http.StatusFound)
	})
	mux.HandleFunc("/to-metadata", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	port := itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	res := resolver{"media.example": {netip.MustParseAddr("127.0.0.1")}, "private.example": {netip.MustParseAddr("10.0.0.5")}}
	c := outbound.NewClient(outbound.Options{Timeout: 2 * time.Second, AllowLoopback: true, Redirects: 3, Resolver: res})
	base := "http://" + net.JoinHostPort("media.example", port)

	resp, err := c.Get(base + "/hop/3")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("three redirects: got %v %v, want 200", resp, err)
	}
	resp.Body.Close()
	hits.reset()
	if _, err := c.Get(base + "/hop/4"); !errors.Is(err, outbound.ErrTooManyRedirects) {
		t.Errorf("four redirects: got %v, want ErrTooManyRedirects", err)
	}
	if n := hits.get(); n != 4 {
		t.Errorf("four redirects: the server saw %d requests, want 4 (the fifth is never sent)", n)
	}
	hits.reset()
	_, err = c.Get(base + "/to-private?port=" + port)
	if _, ok := outbound.Blocked(err); !ok {
		t.Errorf("redirect to a name resolving to 10.0.0.5: got %v, want a refusal", err)
	}
	if n := hits.get(); n != 1 {
		t.Errorf("redirect to a private name: the server saw %d requests, want 1 (the redirect's target is never reached)", n)
	}
	_, err = c.Get(base + "/to-metadata")
	if b, ok := outbound.Blocked(err); !ok || b.Reason != "the instance metadata service" {
		t.Errorf("redirect to the metadata service: got %v, want a refusal naming it", err)
	}
	// Asked for more than MaxRedirects, a client still stops at three.
	many := outbound.NewClient(outbound.Options{Timeout: 2 * time.Second, AllowLoopback: true, Redirects: 10, Resolver: res})
	if _, err := many.Get(base + "/hop/4"); !errors.Is(err, outbound.ErrTooManyRedirects) {
		t.Errorf("Redirects: 10, four redirects: got %v, want ErrTooManyRedirects", err)
	}
}

func TestLimitBodyStopsWhileStreaming(t *testing.T) {
	t.Parallel()
	const max = 1 << 20
	var sent atomicCount
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/declared" {
			w.Header().Set("Content-Length", itoa(64<<20))
			w.WriteHeader(http.StatusOK)
			return
		}
		// An endless body with no Content-Length.
		buf := make([]byte, 32<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
			sent.addN(len(buf))
			if sent.get() > 256<<20 {
				return
			}
		}
	}))
	defer srv.Close()
	c := outbound.NewClient(outbound.Options{AllowPrivate: true, Stream: true})

	resp, err := c.Get(srv.URL + "/declared")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outbound.LimitBody(resp, max); !isTooLarge(err) {
		t.Errorf("declared 64 MiB over a 1 MiB cap: got %v, want a *TooLargeError before reading", err)
	}
	resp.Body.Close()

	resp, err = c.Get(srv.URL + "/endless")
	if err != nil {
		t.Fatal(err)
	}
	body, err := outbound.LimitBody(resp, max)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, body)
	body.Close()
	if !isTooLarge(err) || n != max {
		t.Errorf("endless body: got %d bytes and %v, want %d bytes then a *TooLargeError", n, err, max)
	}
	if s := sent.get(); s > 64<<20 {
		t.Errorf("the server sent %d bytes before the reader stopped, want the read to stop near the cap", s)
	}

	// A body of exactly the cap is read whole.
	exact := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, 1000)) }))
	defer exact.Close()
	resp, err = c.Get(exact.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = outbound.LimitBody(resp, 1000)
	if n, err := io.Copy(io.Discard, body); n != 1000 || err != nil {
		t.Errorf("body of exactly the cap: got %d, %v, want 1000, nil", n, err)
	}
	body.Close()
}

func TestStreamClientHasNoWholeRequestTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(400 * time.Millisecond)
		_, _ = w.Write([]byte("late"))
	}))
	defer srv.Close()
	c := outbound.NewClient(outbound.Options{AllowPrivate: true, Stream: true, Timeout: 100 * time.Millisecond})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "late" {
		t.Errorf("Stream: got %q, %v, want the body that arrives after the timeout", b, err)
	}
}

func isTooLarge(err error) bool {
	var tl *outbound.TooLargeError
	return errors.As(err, &tl)
}

type atomicCount struct{ n atomic.Int64 }

func (c *atomicCount) add()       { c.n.Add(1) }
func (c *atomicCount) addN(n int) { c.n.Add(int64(n)) }
func (c *atomicCount) get() int64 { return c.n.Load() }
func (c *atomicCount) reset()     { c.n.Store(0) }
