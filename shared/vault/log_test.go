package vault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/shared/vault"
)

// keyRecorder keeps a copy of every plaintext data key KMS hands out, so the
// test can look for them in the logs.
type keyRecorder struct {
	*kms.Client
	mu   sync.Mutex
	keys [][]byte
}

func (k *keyRecorder) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	out, err := k.Client.GenerateDataKey(ctx, in, opts...)
	if err == nil {
		k.mu.Lock()
		k.keys = append(k.keys, bytes.Clone(out.Plaintext))
		k.mu.Unlock()
	}
	return out, err
}

func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alias, _ := e.newKey(t)
	ctx := context.Background()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &keyRecorder{Client: e.kms}
	v, err := vault.New(rec, vault.Config{KeyID: alias, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	who := owner("site-a", "conn-a", vault.PurposeOAuthTokens)
	payload := []byte(`{"access_token":"` + hex.EncodeToString(secret(t)) + `"}`)
	s, err := v.Seal(ctx, who, payload)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	for range 3 {
		if _, err := v.Open(ctx, who, s); err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	bad := s
	bad.Ciphertext = bytes.Clone(s.Ciphertext)
	bad.Ciphertext[0] ^= 1
	if _, err := v.Open(ctx, who, bad); err == nil {
		t.Fatal("Open of a tampered record: got nil error, want one")
	} else {
		log.Error("open failed", "error", err) // as a caller would log it
	}
	if len(rec.keys) != 1 {
		t.Fatalf("got %d data keys generated, want 1", len(rec.keys))
	}

	logs := buf.Bytes()
	t.Logf("captured logs:\n%s", logs)
	secrets := map[string][]byte{"plaintext": payload}
	for i, k := range rec.keys {
		secrets[fmt.Sprint("data key ", i)] = k
	}
	for name, b := range secrets {
		for enc, s := range map[string]string{
			"raw":       string(b),
			"base64":    base64.StdEncoding.EncodeToString(b),
			"base64url": base64.RawURLEncoding.EncodeToString(b),
			"hex":       hex.EncodeToString(b),
		} {
			if bytes.Contains(logs, []byte(s)) || (enc == "hex" && bytes.Contains(bytes.ToLower(logs), []byte(s))) {
				t.Errorf("logs contain the %s (%s)", name, enc)
			}
		}
	}
	// The access token alone, as JSON would escape it or not.
	if bytes.Contains(logs, payload[len(`{"access_token":"`):len(payload)-2]) {
		t.Error("logs contain the access token")
	}
}
