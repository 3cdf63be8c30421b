package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/shared/apperr"
)

func testContext(conn string) Context {
	return Context{Site: "site-1", Connection: conn, Purpose: PurposeOAuthTokens}
}

func randomSecret(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 48)
	rand.Read(b)
	return b
}

// newFakeVault returns a Vault over a fake KMS with the given cache settings.
func newFakeVault(t testing.TB, f *fakeKMS, cfg Config) *Vault {
	t.Helper()
	cfg.KeyID = "alias/posse-test"
	v, err := New(f, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func mustSeal(t testing.TB, v *Vault, c Context, secret []byte) Sealed {
	t.Helper()
	s, err := v.Seal(context.Background(), c, secret)
	if err != nil {
		t.Fatalf("Seal(%s): %v", c, err)
	}
	return s
}

func mustOpen(t testing.TB, v *Vault, c Context, s Sealed, want []byte) {
	t.Helper()
	got, err := v.Open(context.Background(), c, s)
	if err != nil {
		t.Fatalf("Open(%s): %v", c, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Open(%s): got %x, want %x", c, got, want)
	}
}

func TestOpenerCache(t *testing.T) {
	t.Parallel()
	// step opens record i (of 3) after advancing the clock by wait, then
	// checks the total number of KMS Decrypt calls.
	type step struct {
		wait      time.Duration
		open      int
		decrypts  int64
		cacheSize int // entries expected afterwards; -1 = do not check
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "warm record hits",
			steps: []step{
				{open: 0, decrypts: 1, cacheSize: 1},
				{open: 0, decrypts: 1, cacheSize: 1},
				{open: 0, decrypts: 1, cacheSize: 1},
			},
		},
		{
			name: "default ttl expires after five minutes",
			steps: []step{
				{open: 0, decrypts: 1, cacheSize: 1},
				{wait: 5*time.Minute - time.Nanosecond, open: 0, decrypts: 1, cacheSize: 1},
				{wait: time.Nanosecond, open: 0, decrypts: 2, cacheSize: 1},
				{wait: time.Minute, open: 0, decrypts: 2, cacheSize: 1},
			},
		},
		{
			name: "custom ttl",
			cfg:  Config{CacheTTL: time.Second},
			steps: []step{
				{open: 0, decrypts: 1, cacheSize: 1},
				{wait: 999 * time.Millisecond, open: 0, decrypts: 1, cacheSize: 1},
				{wait: time.Millisecond, open: 0, decrypts: 2, cacheSize: 1},
			},
		},
		{
			name: "expired entries are dropped when another key is cached",
			cfg:  Config{CacheTTL: time.Minute},
			steps: []step{
				{open: 0, decrypts: 1, cacheSize: 1},
				{open: 1, decrypts: 2, cacheSize: 2},
				{wait: time.Minute, open: 2, decrypts: 3, cacheSize: 1},
			},
		},
		{
			name: "size bound evicts the least recently used",
			cfg:  Config{CacheSize: 2},
			steps: []step{
				{open: 0, decrypts: 1, cacheSize: 1},
				{open: 1, decrypts: 2, cacheSize: 2},
				{open: 0, decrypts: 2, cacheSize: 2}, // 0 is now the most recent
				{open: 2, decrypts: 3, cacheSize: 2}, // evicts 1
				{open: 0, decrypts: 3, cacheSize: 2},
				{open: 1, decrypts: 4, cacheSize: 2}, // evicts 2
				{open: 2, decrypts: 5, cacheSize: 2},
			},
		},
		{
			name: "negative size disables the cache",
			cfg:  Config{CacheSize: -1},
			steps: []step{
				{open: 0, decrypts: 1, cacheSize: -1},
				{open: 0, decrypts: 2, cacheSize: -1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeKMS()
			clk := newClock()
			cfg := tt.cfg
			cfg.Now = clk.Now
			v := newFakeVault(t, f, cfg)
			var recs []Sealed
			var secrets [][]byte
			for i := range 3 {
				secrets = append(secrets, randomSecret(t))
				recs = append(recs, mustSeal(t, v, testContext(fmt.Sprint("conn-", i)), secrets[i]))
			}
			for i, st := range tt.steps {
				clk.Advance(st.wait)
				mustOpen(t, v, testContext(fmt.Sprint("conn-", st.open)), recs[st.open], secrets[st.open])
				if got := f.decrypts.Load(); got != st.decrypts {
					t.Fatalf("step %d: got %d KMS Decrypt calls, want %d", i, got, st.decrypts)
				}
				if st.cacheSize >= 0 && v.cache != nil {
					if got := v.cache.len(); got != st.cacheSize {
						t.Fatalf("step %d: got %d cached keys, want %d", i, got, st.cacheSize)
					}
				}
			}
			if v.cache == nil && tt.cfg.CacheSize >= 0 {
				t.Fatalf("got no cache, want one")
			}
			if got := f.generates.Load(); got != 3 {
				t.Errorf("got %d GenerateDataKey calls, want 3", got)
			}
		})
	}
}

func TestOpenerCacheBindsContext(t *testing.T) {
	t.Parallel()
	f := newFakeKMS()
	v := newFakeVault(t, f, Config{})
	secret := randomSecret(t)
	c := testContext("conn-a")
	s := mustSeal(t, v, c, secret)
	mustOpen(t, v, c, s, secret) // warms the cache

	// The same record, its stored context rewritten to another owner: it
	// passes the stored-context check, must miss the cache and be refused
	// by KMS.
	other := testContext("conn-b")
	moved := s
	moved.Context = other.Map()
	if _, err := v.Open(context.Background(), other, moved); err == nil {
		t.Fatal("Open of a record moved to another connection: got nil error, want one")
	}
	if got := f.decrypts.Load(); got != 2 {
		t.Errorf("got %d KMS Decrypt calls, want 2 (the moved record must not hit the cache)", got)
	}

	// A warm key must not be handed out for a record claiming another key id.
	relabeled := s
	relabeled.KeyID = "arn:aws:kms:us-east-1:123456789012:key/other"
	if _, err := v.Open(context.Background(), c, relabeled); err == nil {
		t.Fatal("Open of a record with a changed key id: got nil error, want one")
	}
}

func TestOpenWarmTampered(t *testing.T) {
	t.Parallel()
	f := newFakeVault(t, newFakeKMS(), Config{})
	secret := randomSecret(t)
	c := testContext("conn-a")
	s := mustSeal(t, f, c, secret)
	mustOpen(t, f, c, s, secret) // the data key is cached from here on

	tests := []struct {
		name   string
		tamper func(*Sealed)
		code   string
	}{
		{"ciphertext bit", func(s *Sealed) { s.Ciphertext[0] ^= 1 }, "vault.open_failed"},
		{"tag bit", func(s *Sealed) { s.Ciphertext[len(s.Ciphertext)-1] ^= 0x80 }, "vault.open_failed"},
		{"truncated ciphertext", func(s *Sealed) { s.Ciphertext = s.Ciphertext[:len(s.Ciphertext)-1] }, "vault.open_failed"},
		{"nonce bit", func(s *Sealed) { s.Nonce[5] ^= 1 }, "vault.open_failed"},
		{"short nonce", func(s *Sealed) { s.Nonce = s.Nonce[:8] }, "vault.bad_record"},
		{"encrypted key bit", func(s *Sealed) { s.EncryptedKey[3] ^= 1 }, "vault.open_failed"},
		{"unknown version", func(s *Sealed) { s.Version = 2 }, "vault.bad_record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad := cloneSealed(s)
			tt.tamper(&bad)
			got, err := f.Open(context.Background(), c, bad)
			if err == nil {
				t.Fatalf("got plaintext %x and nil error, want an error", got)
			}
			if got != nil {
				t.Errorf("got plaintext %x alongside the error, want nil", got)
			}
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.KindInternal || e.Code != tt.code {
				t.Errorf("got error %v, want kind internal, code %s", err, tt.code)
			}
		})
	}
}

func cloneSealed(s Sealed) Sealed {
	s.EncryptedKey = bytes.Clone(s.EncryptedKey)
	s.Nonce = bytes.Clone(s.Nonce)
	s.Ciphertext = bytes.Clone(s.Ciphertext)
	return s
}

func TestOpenerConcurrent(t *testing.T) {
	t.Parallel()
	f := newFakeKMS()
	clk := newClock()
	v := newFakeVault(t, f, Config{CacheSize: 3, CacheTTL: time.Second, Now: clk.Now})
	const records = 5
	var recs []Sealed
	var secrets [][]byte
	for i := range records {
		secrets = append(secrets, randomSecret(t))
		recs = append(recs, mustSeal(t, v, testContext(fmt.Sprint("conn-", i)), secrets[i]))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				n := (g + i) % records
				if i%50 == 0 {
					clk.Advance(300 * time.Millisecond)
				}
				got, err := v.Open(context.Background(), testContext(fmt.Sprint("conn-", n)), recs[n])
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, secrets[n]) {
					errs <- fmt.Errorf("record %d: got %x, want %x", n, got, secrets[n])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := v.cache.len(); got > 3 {
		t.Errorf("got %d cached keys, want at most 3", got)
	}
}

func TestKeyCacheZeroes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		drop func(t *testing.T, c *keyCache, clk *clock)
	}{
		{"expired on get", func(t *testing.T, c *keyCache, clk *clock) {
			clk.Advance(time.Minute)
			if c.get("a", "k", make([]byte, 32)) {
				t.Error("get after the ttl: got a hit, want a miss")
			}
		}},
		{"expired on put", func(t *testing.T, c *keyCache, clk *clock) {
			clk.Advance(time.Minute)
			c.put("b", "k", bytes.Repeat([]byte{2}, 32))
		}},
		{"evicted", func(_ *testing.T, c *keyCache, _ *clock) {
			c.put("b", "k", bytes.Repeat([]byte{2}, 32))
			c.put("c", "k", bytes.Repeat([]byte{3}, 32))
		}},
		{"replaced", func(_ *testing.T, c *keyCache, _ *clock) { c.put("a", "k", bytes.Repeat([]byte{4}, 32)) }},
		{"purged", func(_ *testing.T, c *keyCache, _ *clock) { c.purge() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			c := newKeyCache(time.Minute, 2, clk.Now)
			key := bytes.Repeat([]byte{1}, 32)
			c.put("a", "k", key)
			clear(key) // the cache must hold its own copy
			held := c.byID["a"].Value.(*cacheEntry).key
			dst := make([]byte, 32)
			if !c.get("a", "k", dst) || !bytes.Equal(dst, bytes.Repeat([]byte{1}, 32)) {
				t.Fatalf("get: got %x, want the cached key", dst)
			}
			tt.drop(t, c, clk)
			if !bytes.Equal(held, make([]byte, 32)) {
				t.Errorf("dropped key: got %x, want zeroes", held)
			}
			if !bytes.Equal(dst, bytes.Repeat([]byte{1}, 32)) {
				t.Errorf("copy handed out: got %x, want it untouched by the drop", dst)
			}
		})
	}
}

func TestSealUsesInjectedNonceAndZeroesDataKey(t *testing.T) {
	t.Parallel()
	f := newFakeKMS()
	nonce := []byte("0123456789ab")
	rec := &recordingKMS{fakeKMS: f}
	s, err := NewSealer(rec, Config{KeyID: "alias/posse-test", Rand: bytes.NewReader(nonce)})
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	sealed, err := s.Seal(context.Background(), testContext("conn-a"), []byte("hello"))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if !bytes.Equal(sealed.Nonce, nonce) {
		t.Errorf("nonce: got %q, want %q", sealed.Nonce, nonce)
	}
	if sealed.Version != FormatV1 || sealed.KeyID != f.arn {
		t.Errorf("record: got version %d key %q, want %d %q", sealed.Version, sealed.KeyID, FormatV1, f.arn)
	}
	if !bytes.Equal(rec.lastPlaintext, make([]byte, 32)) {
		t.Errorf("data key after Seal: got %x, want zeroes", rec.lastPlaintext)
	}
}

// recordingKMS keeps the slice GenerateDataKey returned, to check that the
// vault zeroes it.
type recordingKMS struct {
	*fakeKMS
	lastPlaintext []byte
}

func (r *recordingKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	out, err := r.fakeKMS.GenerateDataKey(ctx, in, opts...)
	if err == nil {
		r.lastPlaintext = out.Plaintext
	}
	return out, err
}

func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	failing := newFakeKMS()
	failing.err = throttled
	broken := newFakeKMS()
	broken.err = errors.New("AccessDeniedException: not allowed")
	tests := []struct {
		name      string
		run       func() error
		code      string
		retryable bool
	}{
		{"empty site", func() error {
			_, err := newFakeVault(t, newFakeKMS(), Config{}).Seal(ctx, Context{Connection: "c", Purpose: "p"}, []byte("x"))
			return err
		}, "vault.invalid_context", false},
		{"empty purpose on open", func() error {
			_, err := newFakeVault(t, newFakeKMS(), Config{}).Open(ctx, Context{Site: "s", Connection: "c"}, Sealed{})
			return err
		}, "vault.invalid_context", false},
		{"nonce source fails", func() error {
			s, _ := NewSealer(newFakeKMS(), Config{KeyID: "k", Rand: iotest.ErrReader(errors.New("no entropy"))})
			_, err := s.Seal(ctx, testContext("c"), []byte("x"))
			return err
		}, "vault.seal_failed", false},
		{"kms throttles seal", func() error {
			_, err := newFakeVault(t, failing, Config{}).Seal(ctx, testContext("c"), []byte("x"))
			return err
		}, "vault.seal_failed", true},
		{"kms denies open", func() error {
			v := newFakeVault(t, newFakeKMS(), Config{})
			s := mustSeal(t, v, testContext("c"), []byte("x"))
			o, _ := NewOpener(broken, Config{})
			_, err := o.Open(ctx, testContext("c"), s)
			return err
		}, "vault.open_failed", false},
		{"missing key id", func() error {
			_, err := NewSealer(newFakeKMS(), Config{})
			return err
		}, "vault.config", false},
		{"nil client", func() error {
			_, err := NewOpener(nil, Config{})
			return err
		}, "vault.config", false},
		{"negative ttl", func() error {
			_, err := NewOpener(newFakeKMS(), Config{CacheTTL: -time.Second})
			return err
		}, "vault.config", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.run()
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("got error %v, want an *apperr.Error", err)
			}
			if e.Kind != apperr.KindInternal || e.Code != tt.code || e.Retryable != tt.retryable {
				t.Errorf("got kind %s code %s retryable %v, want internal %s %v", e.Kind, e.Code, e.Retryable, tt.code, tt.retryable)
			}
		})
	}
}

func TestCanonicalIsUnambiguous(t *testing.T) {
	t.Parallel()
	a := canonical(Context{Site: "ab", Connection: "c", Purpose: "p"}.Map())
	b := canonical(Context{Site: "a", Connection: "bc", Purpose: "p"}.Map())
	if bytes.Equal(a, b) {
		t.Error("canonical: got equal encodings for different contexts, want different")
	}
	m := map[string]string{"site": "s", "purpose": "p", "connection": "c"}
	if got, want := canonical(m), canonical(Context{Site: "s", Connection: "c", Purpose: "p"}.Map()); !bytes.Equal(got, want) {
		t.Errorf("canonical: got %q, want %q (key order must not matter)", got, want)
	}
}
