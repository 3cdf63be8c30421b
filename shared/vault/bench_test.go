package vault_test

import (
	"context"
	"testing"

	"github.com/posse-dev/posse/shared/vault"
)

// warmRecord seals one record in moto and returns a vault whose KMS calls
// are counted.
func warmRecord(b testing.TB, cfg vault.Config) (*vault.Vault, *countingKMS, vault.Context, vault.Sealed) {
	b.Helper()
	e := newEnv(b)
	alias, _ := e.newKey(b)
	counter := &countingKMS{Client: e.kms}
	cfg.KeyID = alias
	v, err := vault.New(counter, cfg)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	who := owner("site-bench", "conn-bench", vault.PurposeOAuthTokens)
	s, err := v.Seal(context.Background(), who, secret(b))
	if err != nil {
		b.Fatalf("Seal: %v", err)
	}
	return v, counter, who, s
}

// TestKMSCallsPerThousandOpens is the data-key cache's goal: a warm
// dispatcher opening the same connection's credentials 1,000 times calls KMS
// at most once.
func TestKMSCallsPerThousandOpens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    vault.Config
		minKMS int64
		maxKMS int64
	}{
		{name: "cache on", cfg: vault.Config{}, minKMS: 1, maxKMS: 1},
		{name: "cache off", cfg: vault.Config{CacheSize: -1}, minKMS: 1000, maxKMS: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, counter, who, s := warmRecord(t, tt.cfg)
			for range 1000 {
				if _, err := v.Open(context.Background(), who, s); err != nil {
					t.Fatalf("Open: %v", err)
				}
			}
			got := counter.decrypts.Load()
			if got < tt.minKMS || got > tt.maxKMS {
				t.Errorf("got %d KMS Decrypt calls per 1,000 opens, want %d–%d", got, tt.minKMS, tt.maxKMS)
			}
			t.Logf("%s: %d KMS calls per 1,000 opens", tt.name, got)
		})
	}
}

// BenchmarkOpenCached opens one warm record over and over; it reports the
// KMS calls per 1,000 opens next to ns/op.
func BenchmarkOpenCached(b *testing.B) {
	v, counter, who, s := warmRecord(b, vault.Config{})
	ctx := context.Background()
	if _, err := v.Open(ctx, who, s); err != nil { // warm
		b.Fatalf("Open: %v", err)
	}
	before := counter.decrypts.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Open(ctx, who, s); err != nil {
			b.Fatalf("Open: %v", err)
		}
	}
	b.ReportMetric(float64(counter.decrypts.Load()-before)*1000/float64(b.N), "kms_calls/1k_opens")
}

// BenchmarkOpenUncached is the floor to compare with: every open calls KMS
// (moto over loopback HTTP here, a network round trip in AWS).
func BenchmarkOpenUncached(b *testing.B) {
	v, counter, who, s := warmRecord(b, vault.Config{CacheSize: -1})
	ctx := context.Background()
	before := counter.decrypts.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Open(ctx, who, s); err != nil {
			b.Fatalf("Open: %v", err)
		}
	}
	b.ReportMetric(float64(counter.decrypts.Load()-before)*1000/float64(b.N), "kms_calls/1k_opens")
}

// BenchmarkOpenCachedParallel is BenchmarkOpenCached from every P.
func BenchmarkOpenCachedParallel(b *testing.B) {
	v, counter, who, s := warmRecord(b, vault.Config{})
	ctx := context.Background()
	if _, err := v.Open(ctx, who, s); err != nil {
		b.Fatalf("Open: %v", err)
	}
	before := counter.decrypts.Load()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Open(ctx, who, s); err != nil {
				b.Errorf("Open: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(counter.decrypts.Load()-before)*1000/float64(b.N), "kms_calls/1k_opens")
}
