package vault_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/vault"
)

func TestReEncrypt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aliasA, arnA := e.newKey(t)
	aliasB, arnB := e.newKey(t)
	ctx := context.Background()
	v, err := vault.New(e.kms, vault.Config{KeyID: aliasA})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r, err := vault.NewRotator(e.kms, e.ddb, vault.RotatorConfig{})
	if err != nil {
		t.Fatalf("NewRotator: %v", err)
	}
	who := owner("site-a", "conn-a", vault.PurposeOAuthTokens)
	payload := secret(t)
	s, err := v.Seal(ctx, who, payload)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if _, err := v.Open(ctx, who, s); err != nil { // warm the cache with the old data key blob
		t.Fatalf("Open before: %v", err)
	}
	moved, err := r.ReEncrypt(ctx, s, aliasB)
	if err != nil {
		t.Fatalf("ReEncrypt: %v", err)
	}
	if s.KeyID != arnA || moved.KeyID != arnB {
		t.Errorf("key ids: got %q → %q, want %q → %q", s.KeyID, moved.KeyID, arnA, arnB)
	}
	if bytes.Equal(moved.EncryptedKey, s.EncryptedKey) {
		t.Error("encrypted key: got the old blob, want a new one")
	}
	if !bytes.Equal(moved.Ciphertext, s.Ciphertext) || !bytes.Equal(moved.Nonce, s.Nonce) {
		t.Error("ciphertext or nonce changed, want them untouched")
	}
	cold, _ := vault.NewOpener(e.kms, vault.Config{})
	for name, o := range map[string]*vault.Opener{"warm": v.Opener, "cold": cold} {
		for _, rec := range []vault.Sealed{s, moved} {
			got, err := o.Open(ctx, who, rec)
			if err != nil || !bytes.Equal(got, payload) {
				t.Errorf("%s opener, record under %s: got %x, %v; want the payload", name, rec.KeyID, got, err)
			}
		}
	}

	// A record whose stored context was altered cannot be re-encrypted:
	// KMS checks the context against the data key.
	forged := s
	forged.Context = owner("site-b", "conn-a", vault.PurposeOAuthTokens).Map()
	_, err = r.ReEncrypt(ctx, forged, aliasB)
	if e, ok := apperr.As(err); !ok || e.Code != "vault.reencrypt_failed" {
		t.Errorf("ReEncrypt of a forged context: got %v, want vault.reencrypt_failed", err)
	}
}

// fixture is one item of the rotation table.
type fixture struct {
	pk, sk  string
	attrs   map[string]vault.Context // sealed attribute → owner
	under   string                   // alias sealed under
	payload map[string][]byte
}

func TestRotate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aliasA, _ := e.newKey(t)
	aliasB, arnB := e.newKey(t)
	table := e.newTable(t)
	ctx := context.Background()
	vA, _ := vault.New(e.kms, vault.Config{KeyID: aliasA})
	vB, _ := vault.New(e.kms, vault.Config{KeyID: aliasB})

	var items []*fixture
	for i := range 7 {
		c := owner("site-1", fmt.Sprint("conn-", i), vault.PurposeOAuthTokens)
		items = append(items, &fixture{pk: "SITE#site-1", sk: "CONN#" + c.Connection, attrs: map[string]vault.Context{"sealed_credentials": c}, under: aliasA})
	}
	items = append(items,
		&fixture{pk: "SITE#site-2", sk: "META", under: aliasA, attrs: map[string]vault.Context{
			"sealed_webhook_secret": owner("site-2", "site-2", vault.PurposeWebhookSecret),
			"sealed_other":          owner("site-2", "other", vault.PurposeWebhookSecret),
		}},
		&fixture{pk: "OAUTH#state-1", sk: "META", under: aliasA, attrs: map[string]vault.Context{"sealed_pkce_verifier": owner("site-1", "state-1", vault.PurposePKCEVerifier)}},
		&fixture{pk: "SITE#site-3", sk: "CONN#new", under: aliasB, attrs: map[string]vault.Context{"sealed_credentials": owner("site-3", "new", vault.PurposeOAuthTokens)}},
		&fixture{pk: "SITE#site-1", sk: "TARGET#t1", attrs: map[string]vault.Context{}},
	)
	for _, f := range items {
		v := vA
		if f.under == aliasB {
			v = vB
		}
		f.payload = map[string][]byte{}
		sealed := map[string]vault.Sealed{}
		for attr, c := range f.attrs {
			f.payload[attr] = secret(t)
			s, err := v.Seal(ctx, c, f.payload[attr])
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			sealed[attr] = s
		}
		e.put(t, table, f.pk, f.sk, sealed)
	}
	// An attribute that looks sealed but is not.
	if _, err := e.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]ddbtypes.AttributeValue{
		"PK": &ddbtypes.AttributeValueMemberS{Value: "SITE#site-4"}, "SK": &ddbtypes.AttributeValueMemberS{Value: "META"},
		"sealed_junk": &ddbtypes.AttributeValueMemberS{Value: "not a record"},
	}}); err != nil {
		t.Fatalf("put junk: %v", err)
	}

	scans := &countingTable{Table: e.ddb}
	r, err := vault.NewRotator(e.kms, scans, vault.RotatorConfig{PageSize: 3})
	if err != nil {
		t.Fatalf("NewRotator: %v", err)
	}
	got, err := r.Rotate(ctx, table, aliasB)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	want := vault.RotateStats{Items: 12, Scanned: 12, Rotated: 10, Skipped: 1, Failed: 1}
	if got != want {
		t.Errorf("first Rotate: got %+v, want %+v", got, want)
	}
	if scans.scans < 4 {
		t.Errorf("got %d Scan pages, want at least 4 with page size 3", scans.scans)
	}

	// Every record is now under key B and opens, with a cold opener and
	// with the old warm vault.
	cold, _ := vault.NewOpener(e.kms, vault.Config{})
	for _, f := range items {
		for attr, c := range f.attrs {
			s := e.get(t, table, f.pk, f.sk, attr)
			if s.KeyID != arnB {
				t.Errorf("%s/%s %s: got key %q, want %q", f.pk, f.sk, attr, s.KeyID, arnB)
			}
			for name, o := range map[string]*vault.Opener{"cold": cold, "warm A": vA.Opener} {
				pt, err := o.Open(ctx, c, s)
				if err != nil || !bytes.Equal(pt, f.payload[attr]) {
					t.Errorf("%s/%s %s, %s opener: got %x, %v; want the payload", f.pk, f.sk, attr, name, pt, err)
				}
			}
		}
	}

	// A second run finds nothing to do.
	got, err = r.Rotate(ctx, table, arnB)
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	want = vault.RotateStats{Items: 12, Scanned: 12, Skipped: 11, Failed: 1}
	if got != want {
		t.Errorf("second Rotate: got %+v, want %+v", got, want)
	}

	// Records sealed after the rotation, under the new key, open too.
	c := owner("site-9", "conn-9", vault.PurposeOAuthTokens)
	payload := secret(t)
	s, err := vB.Seal(ctx, c, payload)
	if err != nil {
		t.Fatalf("Seal after rotation: %v", err)
	}
	if pt, err := cold.Open(ctx, c, s); err != nil || !bytes.Equal(pt, payload) {
		t.Errorf("record sealed after rotation: got %x, %v; want the payload", pt, err)
	}
}

func TestRotateConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aliasA, arnA := e.newKey(t)
	aliasB, arnB := e.newKey(t)
	table := e.newTable(t)
	ctx := context.Background()
	v, _ := vault.New(e.kms, vault.Config{KeyID: aliasA})

	contended := owner("site-1", "conn-hot", vault.PurposeOAuthTokens)
	calm := owner("site-1", "conn-calm", vault.PurposeOAuthTokens)
	for _, c := range []vault.Context{contended, calm} {
		s, err := v.Seal(ctx, c, secret(t))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		e.put(t, table, "SITE#site-1", "CONN#"+c.Connection, map[string]vault.Sealed{"sealed_credentials": s})
	}

	// A token refresh lands between Rotate's scan and its write: the
	// refresher's new record (under key A) must survive.
	fresh := secret(t)
	racing := &racingTable{Table: e.ddb, sk: "CONN#conn-hot", before: func() {
		s, err := v.Seal(ctx, contended, fresh)
		if err != nil {
			t.Errorf("concurrent Seal: %v", err)
			return
		}
		e.put(t, table, "SITE#site-1", "CONN#conn-hot", map[string]vault.Sealed{"sealed_credentials": s})
	}}
	r, _ := vault.NewRotator(e.kms, racing, vault.RotatorConfig{})
	got, err := r.Rotate(ctx, table, aliasB)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	want := vault.RotateStats{Items: 2, Scanned: 2, Rotated: 1, Conflicts: 1}
	if got != want {
		t.Errorf("Rotate: got %+v, want %+v", got, want)
	}
	s := e.get(t, table, "SITE#site-1", "CONN#conn-hot", "sealed_credentials")
	if s.KeyID != arnA {
		t.Errorf("contended record: got key %q, want the concurrent writer's %q", s.KeyID, arnA)
	}
	if pt, err := v.Open(ctx, contended, s); err != nil || !bytes.Equal(pt, fresh) {
		t.Errorf("contended record: got %x, %v; want the concurrent writer's secret", pt, err)
	}
	if s := e.get(t, table, "SITE#site-1", "CONN#conn-calm", "sealed_credentials"); s.KeyID != arnB {
		t.Errorf("calm record: got key %q, want %q", s.KeyID, arnB)
	}

	// The next run picks the contended record up.
	got, err = r.Rotate(ctx, table, aliasB)
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	want = vault.RotateStats{Items: 2, Scanned: 2, Rotated: 1, Skipped: 1}
	if got != want {
		t.Errorf("second Rotate: got %+v, want %+v", got, want)
	}
}

func TestRotateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alias, _ := e.newKey(t)
	table := e.newTable(t)
	r, _ := vault.NewRotator(e.kms, e.ddb, vault.RotatorConfig{})
	tests := []struct {
		name, table, key string
	}{
		{"no table name", "", alias},
		{"no key", table, ""},
		{"unknown key", table, "alias/does-not-exist"},
		{"unknown table", "no-such-table", alias},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := r.Rotate(context.Background(), tt.table, tt.key)
			if e, ok := apperr.As(err); !ok || e.Code != "vault.rotate_failed" {
				t.Errorf("got %v, want vault.rotate_failed", err)
			}
		})
	}
}

// countingTable counts Scan pages.
type countingTable struct {
	vault.Table
	mu    sync.Mutex
	scans int
}

func (c *countingTable) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.mu.Lock()
	c.scans++
	c.mu.Unlock()
	return c.Table.Scan(ctx, in, opts...)
}

// racingTable runs before just ahead of the first UpdateItem on sk.
type racingTable struct {
	vault.Table
	sk     string
	before func()
	once   sync.Once
}

func (r *racingTable) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if sk, ok := in.Key["SK"].(*ddbtypes.AttributeValueMemberS); ok && sk.Value == r.sk {
		r.once.Do(r.before)
	}
	return r.Table.UpdateItem(ctx, in, opts...)
}
