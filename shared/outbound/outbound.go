// Package outbound is the HTTP client for URLs a caller chose (webhook
// endpoints now; media and Mastodon instances later): it connects only to
// public addresses, checked at dial time on the address actually dialled
// (a net.Dialer Control hook), so neither a name that resolves to a private
// address nor DNS rebinding between a check and the connection can reach
// the function's network, loopback or the instance metadata service. It
// follows no redirects and bounds every request.
package outbound

import (
	"context"
	"errors"
	"fmt"
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

// metadata is the cloud instance metadata address (link-local, named for
// the message).
var metadata = netip.MustParseAddr("169.254.169.254")

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
	case a == metadata:
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

// Control is a net.Dialer Control hook that refuses every address Check
// refuses. It sees the address actually dialled, after name resolution.
func Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbound: cannot check address %q: %w", address, err)
	}
	return Check(ap.Addr())
}

// Options shape a Client.
type Options struct {
	// Timeout bounds a whole request, answer included (default 5 s).
	Timeout time.Duration
	// AllowPrivate turns the address check off: only for the local stack
	// (POSSE_ENV=local), whose endpoints listen on loopback.
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
// the environment, no redirects (the 3xx answer is returned as it is), the
// timeout, and a dialer that refuses addresses that are not public unless
// AllowPrivate.
func NewClient(o Options) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	if !o.AllowPrivate {
		d.Control = Control
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
	return &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

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
