package httpapi

import (
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/site"
)

// DefaultKeyCacheTTL is how long a warm api instance trusts an API key it
// looked up: a revoked key may still pass on an instance that looked it up
// before the revocation for at most this long (the instance that revoked
// it forgets it at once).
const DefaultKeyCacheTTL = 30 * time.Second

// maxCachedKeys bounds the cache; only keys that authenticated are kept,
// so unknown keys cannot fill it.
const maxCachedKeys = 1024

// keyCache remembers successful API key lookups by the key's hash for a
// short TTL, so a warm instance does not read the key on every call.
type keyCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedKey
}

type cachedKey struct {
	key     site.Key
	expires time.Time
}

// get returns the key cached for hash, if still fresh at now.
func (c *keyCache) get(hash string, now time.Time) (site.Key, bool) {
	if c.ttl <= 0 {
		return site.Key{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || !now.Before(e.expires) {
		return site.Key{}, false
	}
	return e.key, true
}

// put caches k under hash until now+TTL.
func (c *keyCache) put(hash string, k site.Key, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedKey{}
	}
	if len(c.m) >= maxCachedKeys {
		for h, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, h)
			}
		}
		if len(c.m) >= maxCachedKeys {
			clear(c.m)
		}
	}
	c.m[hash] = cachedKey{key: k, expires: now.Add(c.ttl)}
}

// drop forgets hash (its key no longer authenticates).
func (c *keyCache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
}

// forget drops a site's key by id (revoked through this instance).
func (c *keyCache) forget(siteID, keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.m {
		if e.key.SiteID == siteID && e.key.ID == keyID {
			delete(c.m, h)
		}
	}
}
