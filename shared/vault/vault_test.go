package vault_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/vault"
)

// Compile-time proof of the privilege split: the api's sealer is built from
// a client that can only GenerateDataKey, the dispatcher's opener from one
// that can only Decrypt.
var (
	_ vault.KeyGenerator = generateOnly{}
	_ vault.KeyDecrypter = decryptOnly{}
)

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alias, arn := e.newKey(t)
	table := e.newTable(t)
	ctx := context.Background()

	sealer, err := vault.NewSealer(generateOnly{e.kms}, vault.Config{KeyID: alias})
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	opener, err := vault.NewOpener(decryptOnly{e.kms}, vault.Config{})
	if err != nil {
		t.Fatalf("NewOpener: %v", err)
	}
	tests := []struct {
		name    string
		owner   vault.Context
		payload []byte
	}{
		{"oauth tokens", owner("site-1", "conn-1", vault.PurposeOAuthTokens), secret(t)},
		{"pkce verifier", owner("site-1", "state-1", vault.PurposePKCEVerifier), secret(t)[:43]},
		{"webhook secret", owner("site-2", "site-2", vault.PurposeWebhookSecret), secret(t)[:32]},
		{"large payload", owner("site-2", "conn-9", vault.PurposeOAuthTokens), bytes.Repeat(secret(t), 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := sealer.Seal(ctx, tt.owner, tt.payload)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if s.Version != vault.FormatV1 || s.KeyID != arn || len(s.Nonce) != vault.NonceSize {
				t.Errorf("record: got version %d key %q nonce %d bytes, want %d %q %d", s.Version, s.KeyID, len(s.Nonce), vault.FormatV1, arn, vault.NonceSize)
			}
			if bytes.Contains(s.Ciphertext, tt.payload) {
				t.Error("ciphertext contains the plaintext")
			}
			// Through DynamoDB and back, as the services store it.
			e.put(t, table, "SITE#"+tt.owner.Site, "CONN#"+tt.owner.Connection+"#"+tt.owner.Purpose, map[string]vault.Sealed{"sealed_secret": s})
			stored := e.get(t, table, "SITE#"+tt.owner.Site, "CONN#"+tt.owner.Connection+"#"+tt.owner.Purpose, "sealed_secret")
			got, err := opener.Open(ctx, tt.owner, stored)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.payload) {
				t.Errorf("Open: got %d bytes %x…, want the %d sealed bytes", len(got), got[:min(8, len(got))], len(tt.payload))
			}
		})
	}
}

func TestOpenWrongOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alias, _ := e.newKey(t)
	ctx := context.Background()
	v, err := vault.New(e.kms, vault.Config{KeyID: alias})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	right := owner("site-a", "conn-a", vault.PurposeOAuthTokens)
	payload := secret(t)
	s, err := v.Seal(ctx, right, payload)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if got, err := v.Open(ctx, right, s); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("Open by the owner: got %x, %v; want the payload", got, err)
	}

	tests := []struct {
		name string
		as   vault.Context
	}{
		{"wrong site", owner("site-b", "conn-a", vault.PurposeOAuthTokens)},
		{"wrong connection", owner("site-a", "conn-b", vault.PurposeOAuthTokens)},
		{"wrong purpose", owner("site-a", "conn-a", vault.PurposeWebhookSecret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// As copied: the stored context still names the real owner.
			if got, err := v.Open(ctx, tt.as, s); err == nil || got != nil {
				t.Errorf("copied record: got %x, %v; want no plaintext and an error", got, err)
			} else if e, _ := apperr.As(err); e == nil || e.Code != "vault.context_mismatch" {
				t.Errorf("copied record: got %v, want code vault.context_mismatch", err)
			}
			// Copied with its stored context rewritten to match: KMS (moto
			// enforces the encryption context) must refuse the data key.
			forged := s
			forged.Context = tt.as.Map()
			for _, o := range []struct {
				name string
				open func() ([]byte, error)
			}{
				{"warm vault", func() ([]byte, error) { return v.Open(ctx, tt.as, forged) }},
				{"cold opener", func() ([]byte, error) {
					o, _ := vault.NewOpener(e.kms, vault.Config{})
					return o.Open(ctx, tt.as, forged)
				}},
			} {
				got, err := o.open()
				if err == nil || got != nil {
					t.Errorf("forged context, %s: got %x, %v; want no plaintext and an error", o.name, got, err)
				} else if e, _ := apperr.As(err); e == nil || e.Code != "vault.open_failed" || e.Kind != apperr.KindInternal {
					t.Errorf("forged context, %s: got %v, want internal vault.open_failed", o.name, err)
				}
			}
		})
	}
}

func TestOpenTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alias, _ := e.newKey(t)
	_, otherARN := e.newKey(t)
	ctx := context.Background()
	v, err := vault.New(e.kms, vault.Config{KeyID: alias})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	who := owner("site-a", "conn-a", vault.PurposeOAuthTokens)
	payload := secret(t)
	s, err := v.Seal(ctx, who, payload)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if _, err := v.Open(ctx, who, s); err != nil { // warm the cache
		t.Fatalf("Open: %v", err)
	}
	tests := []struct {
		name   string
		tamper func(*vault.Sealed)
	}{
		{"ciphertext", func(s *vault.Sealed) { s.Ciphertext[len(s.Ciphertext)/2] ^= 0x01 }},
		{"tag", func(s *vault.Sealed) { s.Ciphertext[len(s.Ciphertext)-1] ^= 0x01 }},
		{"ciphertext truncated", func(s *vault.Sealed) { s.Ciphertext = s.Ciphertext[:len(s.Ciphertext)-4] }},
		{"ciphertext extended", func(s *vault.Sealed) { s.Ciphertext = append(s.Ciphertext, 0) }},
		{"nonce", func(s *vault.Sealed) { s.Nonce[0] ^= 0x01 }},
		{"encrypted key, first byte", func(s *vault.Sealed) { s.EncryptedKey[0] ^= 0x01 }},
		{"encrypted key, last byte", func(s *vault.Sealed) { s.EncryptedKey[len(s.EncryptedKey)-1] ^= 0x01 }},
		{"encrypted key truncated", func(s *vault.Sealed) { s.EncryptedKey = s.EncryptedKey[:len(s.EncryptedKey)-1] }},
		{"key id of another key", func(s *vault.Sealed) { s.KeyID = otherARN }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, warm := range []bool{true, false} {
				bad := s
				bad.Ciphertext = bytes.Clone(s.Ciphertext)
				bad.Nonce = bytes.Clone(s.Nonce)
				bad.EncryptedKey = bytes.Clone(s.EncryptedKey)
				tt.tamper(&bad)
				o := v.Opener
				if !warm {
					o, _ = vault.NewOpener(e.kms, vault.Config{CacheSize: -1})
				}
				got, err := o.Open(ctx, who, bad)
				if err == nil || got != nil {
					t.Fatalf("warm=%v: got %x, %v; want no plaintext and an error", warm, got, err)
				}
				if e, ok := apperr.As(err); !ok || e.Kind != apperr.KindInternal || e.Code != "vault.open_failed" {
					t.Errorf("warm=%v: got %v, want internal vault.open_failed", warm, err)
				}
				if bytes.Contains([]byte(err.Error()), payload) {
					t.Errorf("warm=%v: the error message contains the plaintext", warm)
				}
			}
		})
	}
}
