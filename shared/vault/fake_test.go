package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// fakeKMS is a hand-written KMS for unit tests: data keys are random, the
// "encrypted" key is a random handle, and Decrypt enforces the encryption
// context like KMS does. It hands out copies, since the vault zeroes what it
// gets.
type fakeKMS struct {
	arn string
	err error // returned by every call when set

	mu   sync.Mutex
	keys map[string]fakeKey

	generates atomic.Int64
	decrypts  atomic.Int64
}

type fakeKey struct {
	key []byte
	ec  map[string]string
}

func newFakeKMS() *fakeKMS {
	return &fakeKMS{arn: "arn:aws:kms:us-east-1:123456789012:key/fake", keys: make(map[string]fakeKey)}
}

var errFakeNoKey = errors.New("fake kms: InvalidCiphertextException")

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	f.generates.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	key := make([]byte, 32)
	edk := make([]byte, 24)
	rand.Read(key)
	rand.Read(edk)
	f.mu.Lock()
	f.keys[string(edk)] = fakeKey{key: append([]byte(nil), key...), ec: maps.Clone(in.EncryptionContext)}
	f.mu.Unlock()
	return &kms.GenerateDataKeyOutput{KeyId: aws.String(f.arn), Plaintext: key, CiphertextBlob: edk}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.decrypts.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	k, ok := f.keys[string(in.CiphertextBlob)]
	f.mu.Unlock()
	if !ok || !maps.Equal(k.ec, in.EncryptionContext) {
		return nil, errFakeNoKey
	}
	return &kms.DecryptOutput{KeyId: aws.String(f.arn), Plaintext: append([]byte(nil), k.key...)}, nil
}

// throttled is the error KMS answers when over its request quota.
var throttled = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
