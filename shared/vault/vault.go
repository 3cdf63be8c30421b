// Package vault seals and opens the secrets POSSE keeps for a site — platform
// OAuth tokens, PKCE verifiers, webhook secrets — with KMS envelope
// encryption: each secret gets its own AES-256 data key from KMS
// GenerateDataKey, is encrypted with AES-256-GCM, and is stored as a Sealed
// record next to the encrypted data key. A Context (site, connection,
// purpose) binds the record to its owner through both the KMS encryption
// context and the GCM additional data.
//
// The privileges are split as architecture §3 requires: a Sealer needs only
// kms:GenerateDataKey (the internet-facing api function), an Opener needs
// only kms:Decrypt (dispatch, webhook), a Vault is both (refresh), and a
// Rotator moves data keys to a new KMS key with kms:ReEncrypt without
// touching the ciphertexts (the operator's rotatekeys command).
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/posse-dev/posse/shared/apperr"
)

// KeyGenerator is the part of the KMS client a Sealer uses: a client limited
// to kms:GenerateDataKey is enough.
type KeyGenerator interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
}

// KeyDecrypter is the part of the KMS client an Opener uses (kms:Decrypt).
type KeyDecrypter interface {
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// KeyClient is what a Vault, which both seals and opens, uses.
type KeyClient interface {
	KeyGenerator
	KeyDecrypter
}

// Config configures the vault types. Each constructor reads only the fields
// it needs; zero values take the documented defaults.
type Config struct {
	// KeyID is the KMS key new secrets are sealed under: key id, key ARN,
	// alias name (alias/posse-dev) or alias ARN. Required by NewSealer and New.
	KeyID string
	// Rand is the source of nonces; crypto/rand.Reader when nil.
	Rand io.Reader
	// CacheTTL is how long an Opener keeps a decrypted data key;
	// DefaultCacheTTL when zero.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached data keys; DefaultCacheSize
	// when zero, no cache at all when negative.
	CacheSize int
	// Now is the clock of the cache; time.Now when nil.
	Now func() time.Time
	// Logger receives debug events (never a secret); discarded when nil.
	Logger *slog.Logger
}

func (cfg Config) logger() *slog.Logger {
	if cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return cfg.Logger
}

// Sealer encrypts secrets. It can only create records, never read them.
type Sealer struct {
	kms   KeyGenerator
	keyID string
	rand  io.Reader
	log   *slog.Logger
}

// NewSealer returns a Sealer that seals under cfg.KeyID with client. It does
// no I/O.
func NewSealer(client KeyGenerator, cfg Config) (*Sealer, error) {
	if client == nil {
		return nil, configError("a KMS client is required")
	}
	if cfg.KeyID == "" {
		return nil, configError("KeyID is required to seal")
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	return &Sealer{kms: client, keyID: cfg.KeyID, rand: r, log: cfg.logger()}, nil
}

// Seal encrypts plaintext for the owner c. It asks KMS for a fresh data key
// under the configured key and c's encryption context, encrypts with
// AES-256-GCM and forgets the plaintext data key.
func (s *Sealer) Seal(ctx context.Context, c Context, plaintext []byte) (Sealed, error) {
	if err := c.Validate(); err != nil {
		return Sealed{}, err
	}
	nonce := make([]byte, NonceSize)
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return Sealed{}, apperr.Wrap(fmt.Errorf("read nonce for %s: %w", c, err), apperr.KindInternal, "vault.seal_failed", "could not seal the secret")
	}
	ec := c.Map()
	out, err := s.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: ec,
	})
	if err != nil {
		return Sealed{}, kmsError(fmt.Errorf("kms generate data key under %s for %s: %w", s.keyID, c, err), "vault.seal_failed", "could not seal the secret")
	}
	defer clear(out.Plaintext)
	if len(out.Plaintext) != dataKeySize || len(out.CiphertextBlob) == 0 || aws.ToString(out.KeyId) == "" {
		return Sealed{}, apperr.New(apperr.KindInternal, "vault.seal_failed", "kms returned an unusable data key")
	}
	aead, err := newGCM(out.Plaintext)
	if err != nil {
		return Sealed{}, apperr.Wrap(fmt.Errorf("seal %s: %w", c, err), apperr.KindInternal, "vault.seal_failed", "could not seal the secret")
	}
	sealed := Sealed{
		Version:      FormatV1,
		KeyID:        aws.ToString(out.KeyId),
		EncryptedKey: out.CiphertextBlob,
		Nonce:        nonce,
		Ciphertext:   aead.Seal(nil, nonce, plaintext, canonical(ec)),
		Context:      ec,
	}
	s.log.DebugContext(ctx, "vault sealed", "site", c.Site, "purpose", c.Purpose, "key_id", sealed.KeyID)
	return sealed, nil
}

// Opener decrypts Sealed records, keeping recently used data keys in a
// bounded cache so a warm function does not call KMS for every open. It is
// safe for concurrent use.
type Opener struct {
	kms   KeyDecrypter
	cache *keyCache // nil when caching is off
	log   *slog.Logger
}

// NewOpener returns an Opener that decrypts data keys with client. It does
// no I/O.
func NewOpener(client KeyDecrypter, cfg Config) (*Opener, error) {
	if client == nil {
		return nil, configError("a KMS client is required")
	}
	if cfg.CacheTTL < 0 {
		return nil, configError("CacheTTL must not be negative")
	}
	o := &Opener{kms: client, log: cfg.logger()}
	if cfg.CacheSize >= 0 {
		ttl, size, now := cfg.CacheTTL, cfg.CacheSize, cfg.Now
		if ttl == 0 {
			ttl = DefaultCacheTTL
		}
		if size == 0 {
			size = DefaultCacheSize
		}
		if now == nil {
			now = time.Now
		}
		o.cache = newKeyCache(ttl, size, now)
	}
	return o, nil
}

// Open decrypts s for the owner c. c must come from where the record was
// found (the item's keys), not from s: a record whose stored context is not
// c — one copied to another site, connection or purpose — is rejected, and
// KMS and AES-GCM check c again. A tampered record fails; Open never returns
// unauthenticated bytes. The caller should clear the result after use.
func (o *Opener) Open(ctx context.Context, c Context, s Sealed) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := checkRecord(s); err != nil {
		return nil, apperr.Wrap(fmt.Errorf("open %s: %w", c, err), apperr.KindInternal, "vault.bad_record", "the sealed record is malformed")
	}
	ec := c.Map()
	if !maps.Equal(s.Context, ec) {
		return nil, apperr.Newf(apperr.KindInternal, "vault.context_mismatch", "the sealed record belongs to another owner than %s", c)
	}
	aad := canonical(ec)
	key := make([]byte, dataKeySize)
	defer clear(key)
	id := ""
	if o.cache != nil {
		id = cacheID(s.EncryptedKey, aad)
	}
	if o.cache == nil || !o.cache.get(id, s.KeyID, key) {
		if err := o.decryptKey(ctx, c, s, ec, key); err != nil {
			return nil, err
		}
		if o.cache != nil {
			o.cache.put(id, s.KeyID, key)
		}
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, apperr.Wrap(fmt.Errorf("open %s: %w", c, err), apperr.KindInternal, "vault.open_failed", "could not open the sealed secret")
	}
	plaintext, err := aead.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		return nil, apperr.Wrap(fmt.Errorf("open %s: aes-gcm: %w", c, err), apperr.KindInternal, "vault.open_failed", "could not open the sealed secret")
	}
	return plaintext, nil
}

// decryptKey asks KMS for the data key of s and copies it into key.
func (o *Opener) decryptKey(ctx context.Context, c Context, s Sealed, ec map[string]string, key []byte) error {
	out, err := o.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: s.EncryptedKey, EncryptionContext: ec})
	if err != nil {
		return kmsError(fmt.Errorf("kms decrypt data key for %s: %w", c, err), "vault.open_failed", "could not open the sealed secret")
	}
	defer clear(out.Plaintext)
	if len(out.Plaintext) != dataKeySize {
		return apperr.New(apperr.KindInternal, "vault.open_failed", "kms returned an unusable data key")
	}
	if got := aws.ToString(out.KeyId); got != s.KeyID {
		return apperr.Newf(apperr.KindInternal, "vault.open_failed", "the sealed record names key %q but its data key is under %q", s.KeyID, got)
	}
	copy(key, out.Plaintext)
	o.log.DebugContext(ctx, "vault data key decrypted", "site", c.Site, "purpose", c.Purpose, "key_id", s.KeyID)
	return nil
}

// Purge drops and zeroes every cached data key.
func (o *Opener) Purge() {
	if o.cache != nil {
		o.cache.purge()
	}
}

// Vault seals and opens: for a function allowed both kms:GenerateDataKey and
// kms:Decrypt (refresh).
type Vault struct {
	*Sealer
	*Opener
}

// New returns a Vault that seals under cfg.KeyID and opens with a cache. It
// does no I/O.
func New(client KeyClient, cfg Config) (*Vault, error) {
	if client == nil {
		return nil, configError("a KMS client is required")
	}
	s, err := NewSealer(client, cfg)
	if err != nil {
		return nil, err
	}
	o, err := NewOpener(client, cfg)
	if err != nil {
		return nil, err
	}
	return &Vault{Sealer: s, Opener: o}, nil
}

// checkRecord rejects a record Open cannot use before any KMS call.
func checkRecord(s Sealed) error {
	switch {
	case s.Version != FormatV1:
		return fmt.Errorf("unknown format version %d", s.Version)
	case len(s.Nonce) != NonceSize:
		return fmt.Errorf("nonce is %d bytes, want %d", len(s.Nonce), NonceSize)
	case len(s.EncryptedKey) == 0:
		return errors.New("no encrypted data key")
	case s.KeyID == "":
		return errors.New("no key id")
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

func configError(msg string) error {
	return apperr.New(apperr.KindInternal, "vault.config", "vault config: "+msg)
}

// retryableKMSCodes are KMS error codes that clear on their own.
var retryableKMSCodes = map[string]bool{
	"ThrottlingException":        true,
	"KMSInternalException":       true,
	"KeyUnavailableException":    true,
	"DependencyTimeoutException": true,
}

// kmsError wraps a failed KMS call as an internal error, retryable when KMS
// was throttling or briefly unavailable.
func kmsError(err error, code, message string) *apperr.Error {
	e := apperr.Wrap(err, apperr.KindInternal, code, message)
	var api smithy.APIError
	if errors.As(err, &api) && retryableKMSCodes[api.ErrorCode()] {
		e.Retryable = true
	}
	return e
}
