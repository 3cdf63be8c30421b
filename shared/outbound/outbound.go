// Package outbound is the one HTTP policy for URLs a caller chose (webhook
// endpoints, media URLs a CMS sends, Mastodon instances): it connects only
// to public addresses, checked at dial time on the address actually dialled
// (a net.Dialer Control hook), so neither a name that resolves to a private
// address nor DNS rebinding between a check and the connection can reach
// the function's network, loopback or the instance metadata service. A
// redirect is followed only when the caller asks, at most MaxRedirects
// times, each to a connection dialled under the same check; answers are
// read through a size cap as they stream (LimitBody).
//
// Refused: loopback (allowed only on the local stack, POSSE_ENV=local),
// private (RFC 1918), link-local, the metadata services (169.254.169.254,
// fd00:ec2::254, 169.254.170.2, 100.100.100.200), carrier-grade NAT
// (100.64/10), unique-local IPv6 (fc00::/7), multicast, unspecified,
// broadcast, and the reserved, documentation and benchmarking ranges.
//
// Platform API base URLs set by configuration are not caller-chosen and
// keep their own client.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// BlockedError is the refusal of an address that is not public.
type BlockedError struct {
	Addr   netip.Addr
	Reason string
}

// Error implements error.
func (e *BlockedError) Error() string {
	return fmt.Sprintf("outbound: %s is not a public address (%s)", e.Addr, e.Reason)
}

// blocked are the ranges no outbound request may reach, besides what
// netip.Addr's own predicates catch.
var blocked = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("fec0::/10"), "site local"},
}

// metadata are the cloud metadata services (each also in a blocked range;
// named for the message): EC2's over IPv4 and IPv6, ECS task metadata,
// and Alibaba's.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("100.100.100.200"),
}

// Check returns a *BlockedError when addr is not a public unicast address:
// loopback, private, link-local (and the metadata service), carrier-grade
// NAT, unique-local IPv6, multicast, unspecified, and the other special
// ranges. An IPv4-mapped IPv6 address is judged as its IPv4 address.
func Check(addr netip.Addr) error {
	a := addr.Unmap()
	reason := ""
	switch {
	case !a.IsValid():
		reason = "not an address"
	case isMetadata(a):
		reason = "the instance metadata service"
	case a.IsUnspecified():
		reason = "unspecified"
	case a.IsLoopback():
		reason = "loopback"
	case a.IsPrivate():
		reason = "private"
	case a.IsLinkLocalUnicast():
		reason = "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		reason = "multicast"
	}
	if reason == "" {
		for _, b := range blocked {
			if b.prefix.Contains(a) {
				reason = b.reason
				break
			}
		}
	}
	if reason == "" && a.Is6() {
		// 6to4 and Teredo carry an IPv4 address the packets may end at.
		if p := netip.MustParsePrefix("2002::/16"); p.Contains(a) {
			b := a.As16()
			if err := Check(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); err != nil {
				reason = "6to4 of a blocked IPv4 address"
			}
		}
	}
	if reason != "" {
		return &BlockedError{Addr: addr, Reason: reason}
	}
	return nil
}

func isMetadata(a netip.Addr) bool {
	for _, m := range metadata {
		if a == m {
			return true
		}
	}
	return false
}

// Policy is which addresses may be dialled: public ones, and loopback when
// AllowLoopback (the local stack only).
type Policy struct {
	AllowLoopback bool
}

// Check returns Check(addr)'s refusal unless the policy allows addr.
func (p Policy) Check(addr netip.Addr) error {
	if p.AllowLoopback && addr.Unmap().IsLoopback() {
		return nil
	}
	return Check(addr)
}

// Control is a net.Dialer Control hook that refuses every address the
// policy refuses. It sees the address actually dialled, after name
// resolution.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbound: cannot check address %q: %w", address, err)
	}
	return p.Check(ap.Addr())
}

// Control is a net.Dialer Control hook that refuses every address Check
// refuses (public addresses only).
func Control(network, address string, c syscall.RawConn) error {
	return Policy{}.Control(network, address, c)
}

// CheckHost resolves host with r (net.DefaultResolver when nil) and returns
// a *BlockedError when any address it resolves to is refused by p: for a
// check before credentials are sent (a connect-time check); the dial-time
// check still guards the connection itself. An IP literal is checked as
// it is; a name that does not resolve is an error that is not a
// *BlockedError.
func (p Policy) CheckHost(ctx context.Context, r Resolver, host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(a)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("outbound: resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("outbound: %s has no address", host)
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return err
		}
	}
	return nil
}

// MaxRedirects is the most redirects a client follows.
const MaxRedirects = 3

// ErrTooManyRedirects is the error of a request redirected more than the
// client follows.
var ErrTooManyRedirects = errors.New("outbound: too many redirects")

// Options shape a Client.
type Options struct {
	// Timeout bounds a whole request, answer included (default 5 s). With
	// Stream it bounds only the dial, the TLS handshake and the wait for the
	// answer's headers.
	Timeout time.Duration
	// Stream leaves reading the answer to the caller's context, for bodies
	// read as a stream while they are uploaded elsewhere (media).
	Stream bool
	// Redirects is how many redirects to follow, at most MaxRedirects; 0
	// follows none (the 3xx answer is returned as it is). Each one dials
	// under the same check.
	Redirects int
	// AllowLoopback allows loopback addresses: only for the local stack
	// (POSSE_ENV=local), whose simulator and receivers listen on
	// 127.0.0.1. Every other refused class stays refused.
	AllowLoopback bool
	// AllowPrivate turns the address check off entirely: for tests whose
	// servers sit on loopback and that test something else.
	AllowPrivate bool
	// Resolver resolves names; net.DefaultResolver when nil. Tests give one
	// that maps names to private addresses.
	Resolver Resolver
}

// Resolver resolves a host name to addresses.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// NewClient returns an HTTP client for caller-chosen URLs: no proxy from
// the environment, o.Redirects redirects at most (none by default), the
// timeout, and a dialer that refuses addresses the policy refuses unless
// AllowPrivate.
func NewClient(o Options) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	if !o.AllowPrivate {
		d.Control = Policy{AllowLoopback: o.AllowLoopback}.Control
	}
	dial := d.DialContext
	if o.Resolver != nil {
		dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			return dialResolved(ctx, d, o.Resolver, network, address)
		}
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          50,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	c := &http.Client{Transport: tr, CheckRedirect: checkRedirect(min(o.Redirects, MaxRedirects))}
	if !o.Stream {
		c.Timeout = o.Timeout
	}
	return c
}

// checkRedirect follows at most n redirects, to http(s) URLs only; with n
// 0 the 3xx answer is returned as it is.
func checkRedirect(n int) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if n <= 0 {
			return http.ErrUseLastResponse
		}
		if len(via) > n {
			return ErrTooManyRedirects
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("outbound: redirect to a %s URL", req.URL.Scheme)
		}
		return nil
	}
}

// TooLargeError is the error of an answer longer than its cap.
type TooLargeError struct{ Max int64 }

// Error implements error.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("outbound: the answer is over %d bytes", e.Max)
}

// LimitBody caps resp's body at max bytes as it is read: a declared
// Content-Length over max fails at once, and reading past max fails with a
// *TooLargeError instead of a short read, so a body is never read whole to
// learn its size. The returned body closes resp's.
func LimitBody(resp *http.Response, max int64) (io.ReadCloser, error) {
	if resp.ContentLength > max {
		return nil, &TooLargeError{Max: max}
	}
	return &limited{rc: resp.Body, left: max, max: max}, nil
}

type limited struct {
	rc        io.ReadCloser
	left, max int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte tells a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := l.rc.Read(one[:])
		if n > 0 {
			return 0, &TooLargeError{Max: l.max}
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limited) Close() error { return l.rc.Close() }

// dialResolved resolves address's host with r and dials each address in
// turn (the dialer's Control hook checks each).
func dialResolved(ctx context.Context, d *net.Dialer, r Resolver, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("outbound: %w", err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("outbound: resolve %s: %w", host, err)
	}
	var first error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("outbound: %s has no address", host)
	}
	return nil, first
}

// Blocked returns the *BlockedError in err's chain, if any: the request
// was refused before it left.
func Blocked(err error) (*BlockedError, bool) {
	var b *BlockedError
	ok := errors.As(err, &b)
	return b, ok
}
