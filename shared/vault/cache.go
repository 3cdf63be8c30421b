package vault

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// Cache defaults.
const (
	DefaultCacheTTL  = 5 * time.Minute
	DefaultCacheSize = 1000
)

// keyCache holds plaintext data keys for a bounded time and number, least
// recently used first out. Keys leave it zeroed: on expiry, on eviction and
// on purge. Callers get a copy, so zeroing never races with a reader.
type keyCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	order *list.List               // front = most recently used; values are *cacheEntry
	byID  map[string]*list.Element // cache id → element of order
}

type cacheEntry struct {
	id      string
	keyID   string // the KMS key ARN the data key was decrypted under
	key     []byte
	expires time.Time
}

func newKeyCache(ttl time.Duration, max int, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, max: max, now: now, order: list.New(), byID: make(map[string]*list.Element)}
}

// cacheID is sha256(encrypted data key) followed by the canonical context.
func cacheID(encryptedKey, canonicalContext []byte) string {
	sum := sha256.Sum256(encryptedKey)
	return string(sum[:]) + string(canonicalContext)
}

// get copies the cached data key for id into dst and reports whether there
// was one that has not expired and was decrypted under keyID.
func (c *keyCache) get(id, keyID string, dst []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return false
	}
	if e.keyID != keyID || len(dst) != len(e.key) {
		return false
	}
	copy(dst, e.key)
	c.order.MoveToFront(el)
	return true
}

// put stores a copy of key under id, dropping expired entries and then the
// least recently used ones to stay within max.
func (c *keyCache) put(id, keyID string, key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if el, ok := c.byID[id]; ok {
		c.remove(el)
	}
	c.dropExpired(now)
	for c.order.Len() >= c.max {
		c.remove(c.order.Back())
	}
	e := &cacheEntry{id: id, keyID: keyID, key: append([]byte(nil), key...), expires: now.Add(c.ttl)}
	c.byID[id] = c.order.PushFront(e)
}

// dropExpired removes every entry that has expired at now.
func (c *keyCache) dropExpired(now time.Time) {
	for el := c.order.Back(); el != nil; {
		prev := el.Prev()
		if !now.Before(el.Value.(*cacheEntry).expires) {
			c.remove(el)
		}
		el = prev
	}
}

// remove unlinks el and zeroes its key. The caller holds mu.
func (c *keyCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	clear(e.key)
	delete(c.byID, e.id)
	c.order.Remove(el)
}

// purge drops and zeroes every entry.
func (c *keyCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.order.Back(); el != nil; el = c.order.Back() {
		c.remove(el)
	}
}

// len returns the number of entries, expired or not.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
