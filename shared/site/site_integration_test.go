package site_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/site"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func newStore(t *testing.T, now func() time.Time) *site.Store {
	t.Helper()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	return site.NewStore(db, mototest.Table(t, db), now, nil)
}

func TestSiteStoreAgainstMoto(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := newStore(t, func() time.Time { return clock })

	a, err := s.Create(ctx, site.NewSite{Name: " Blog ", Timezone: "Europe/Berlin", ReturnURL: "https://blog.example/cb"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if a.Name != "Blog" || !strings.HasPrefix(a.ID, "site_") {
		t.Fatalf("Create: got %+v, want trimmed name and a site_ id", a)
	}
	if _, err := s.Create(ctx, site.NewSite{Name: "x", Timezone: "Nowhere/Land", ReturnURL: "https://x"}); apperr.KindOf(err) != apperr.KindInvalid {
		t.Fatalf("Create with a bad zone: got %v, want an invalid error", err)
	}
	b, _ := s.Create(ctx, site.NewSite{Name: "Shop", Timezone: "UTC", ReturnURL: "https://shop.example"})

	first, next, err := s.List(ctx, 1, "")
	if err != nil || len(first) != 1 || next == "" {
		t.Fatalf("List page 1: got %d sites, cursor %q, err %v; want 1 and a cursor", len(first), next, err)
	}
	second, _, err := s.List(ctx, 1, next)
	if err != nil || len(second) != 1 || second[0].ID == first[0].ID {
		t.Fatalf("List page 2: got %+v, %v; want the other site", second, err)
	}
	if _, _, err := s.List(ctx, 1, "bm90LWEtY3Vyc29y"); apperr.KindOf(err) != apperr.KindInvalid {
		t.Fatalf("List with a forged cursor: got %v, want invalid", err)
	}

	k, secret, err := s.IssueKey(ctx, a.ID, "cms")
	if err != nil {
		t.Fatalf("IssueKey: %v", err)
	}
	if !strings.HasPrefix(secret, site.KeyPrefix) || k.Hash != site.HashKey(secret) || k.Hint != secret[len(secret)-4:] {
		t.Fatalf("IssueKey: got key %+v for secret of length %d", k, len(secret))
	}
	if _, _, err := s.IssueKey(ctx, "site_missing", "x"); apperr.KindOf(err) != apperr.KindNotFound {
		t.Fatalf("IssueKey for a missing site: got %v, want not_found", err)
	}

	got, err := s.Authenticate(ctx, secret)
	if err != nil || got.SiteID != a.ID || got.LastUsedAt == nil {
		t.Fatalf("Authenticate: got %+v, %v; want site %s with last use recorded", got, err, a.ID)
	}
	keys, err := s.Keys(ctx, a.ID)
	if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(clock) {
		t.Fatalf("Keys: got %+v, %v; want one key last used at %v", keys, err, clock)
	}
	if others, _ := s.Keys(ctx, b.ID); len(others) != 0 {
		t.Fatalf("Keys of another site: got %d, want 0", len(others))
	}
	if _, err := s.Authenticate(ctx, secret+"x"); !errors.Is(err, site.ErrUnknownKey) {
		t.Fatalf("Authenticate a wrong key: got %v, want ErrUnknownKey", err)
	}

	if err := s.RevokeKey(ctx, b.ID, k.ID); apperr.KindOf(err) != apperr.KindNotFound {
		t.Fatalf("RevokeKey through another site: got %v, want not_found", err)
	}
	if err := s.RevokeKey(ctx, a.ID, k.ID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if err := s.RevokeKey(ctx, a.ID, k.ID); err != nil {
		t.Fatalf("RevokeKey twice: got %v, want nil", err)
	}
	if _, err := s.Authenticate(ctx, secret); !errors.Is(err, site.ErrUnknownKey) {
		t.Fatalf("Authenticate a revoked key: got %v, want ErrUnknownKey", err)
	}
	keys, _ = s.Keys(ctx, a.ID)
	if len(keys) != 1 || keys[0].RevokedAt == nil {
		t.Fatalf("Keys after revoke: got %+v, want the key marked revoked", keys)
	}
}
