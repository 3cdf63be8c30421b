package platformhttp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// RetryAfter reads a Retry-After header given in seconds. ok is false when
// the header is absent or not a whole number of seconds (the HTTP-date
// form is not read: no platform sends it).
func RetryAfter(h http.Header) (d time.Duration, ok bool) {
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// EpochReset reads header name as a Unix time in seconds (Bluesky's
// RateLimit-Reset, X's x-rate-limit-reset).
func EpochReset(h http.Header, name string) (time.Time, bool) {
	n, err := strconv.ParseInt(h.Get(name), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// ISOReset reads header name as an RFC 3339 time (Mastodon's
// X-RateLimit-Reset).
func ISOReset(h http.Header, name string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, h.Get(name))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// UntilReset is the wait from now until reset, rounded up to the second
// (Mastodon's reset has microseconds: rounding to the nearest second could
// retry before it); a reset already past waits one second.
func UntilReset(reset, now time.Time) time.Duration {
	if d := reset.Sub(now); d > 0 {
		return ((d + time.Second - 1) / time.Second) * time.Second
	}
	return time.Second
}

// RateLimitWait is the wait a rate-limited answer asks for: until reset
// (see UntilReset) when the platform's reset header was read (hasReset),
// else Retry-After, else def.
func RateLimitWait(h http.Header, reset time.Time, hasReset bool, now time.Time, def time.Duration) time.Duration {
	if hasReset {
		return UntilReset(reset, now)
	}
	if d, ok := RetryAfter(h); ok {
		return d
	}
	return def
}

// RegainWait reads Meta's X-Business-Use-Case-Usage header: the longest
// estimated_time_to_regain_access (minutes) of any entry. ok is false when
// the header is absent, unreadable or gives no positive estimate.
func RegainWait(h http.Header) (d time.Duration, ok bool) {
	var usage map[string][]struct {
		Regain int `json:"estimated_time_to_regain_access"`
	}
	if json.Unmarshal([]byte(h.Get("X-Business-Use-Case-Usage")), &usage) != nil {
		return 0, false
	}
	var longest int
	for _, entries := range usage {
		for _, u := range entries {
			longest = max(longest, u.Regain)
		}
	}
	if longest <= 0 {
		return 0, false
	}
	return time.Duration(longest) * time.Minute, true
}
