package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/shared/apperr"
)

// SealedPrefix starts the name of every item attribute that holds a Sealed
// map. Rotate looks only at those.
const SealedPrefix = "sealed_"

// KeyReEncrypter is the part of the KMS client a Rotator uses
// (kms:DescribeKey, kms:ReEncryptFrom on the old key, kms:ReEncryptTo on the
// new one). It never sees a plaintext data key.
type KeyReEncrypter interface {
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	ReEncrypt(ctx context.Context, in *kms.ReEncryptInput, optFns ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
}

// Table is the part of the DynamoDB client a Rotator uses.
type Table interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// RotatorConfig configures a Rotator; zero values take the defaults.
type RotatorConfig struct {
	// KeyAttributes are the table's key attribute names; PK and SK when empty.
	KeyAttributes []string
	// PageSize is the Scan page limit; DynamoDB's 1 MB pages when zero.
	PageSize int32
	// Logger receives one event per record that could not be rotated;
	// discarded when nil.
	Logger *slog.Logger
}

// Rotator moves sealed data keys to another KMS key with KMS ReEncrypt. The
// AES-GCM ciphertexts are not touched (the key id is not part of the GCM
// additional data), so records open before, during and after a rotation.
type Rotator struct {
	kms      KeyReEncrypter
	db       Table
	keyAttrs []string
	pageSize int32
	log      *slog.Logger
}

// NewRotator returns a Rotator. It does no I/O.
func NewRotator(client KeyReEncrypter, db Table, cfg RotatorConfig) (*Rotator, error) {
	if client == nil {
		return nil, configError("a KMS client is required")
	}
	if db == nil {
		return nil, configError("a DynamoDB client is required")
	}
	if cfg.PageSize < 0 {
		return nil, configError("PageSize must not be negative")
	}
	attrs := cfg.KeyAttributes
	if len(attrs) == 0 {
		attrs = []string{"PK", "SK"}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rotator{kms: client, db: db, keyAttrs: attrs, pageSize: cfg.PageSize, log: log}, nil
}

// ReEncrypt returns s with its data key encrypted under toKeyID (id, ARN or
// alias) instead, with the same encryption context. KMS checks the stored
// context against the data key, so a record whose context was altered fails.
func (r *Rotator) ReEncrypt(ctx context.Context, s Sealed, toKeyID string) (Sealed, error) {
	if toKeyID == "" {
		return Sealed{}, apperr.New(apperr.KindInternal, "vault.reencrypt_failed", "a destination key is required")
	}
	if s.Version != FormatV1 || len(s.EncryptedKey) == 0 || len(s.Context) == 0 {
		return Sealed{}, apperr.New(apperr.KindInternal, "vault.bad_record", "the sealed record is malformed")
	}
	out, err := r.kms.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob:               s.EncryptedKey,
		SourceEncryptionContext:      s.Context,
		DestinationKeyId:             aws.String(toKeyID),
		DestinationEncryptionContext: s.Context,
	})
	if err != nil {
		return Sealed{}, kmsError(fmt.Errorf("kms re-encrypt data key from %s to %s: %w", s.KeyID, toKeyID, err), "vault.reencrypt_failed", "could not re-encrypt the data key")
	}
	if len(out.CiphertextBlob) == 0 || aws.ToString(out.KeyId) == "" {
		return Sealed{}, apperr.New(apperr.KindInternal, "vault.reencrypt_failed", "kms returned an empty re-encrypted data key")
	}
	s.KeyID = aws.ToString(out.KeyId)
	s.EncryptedKey = out.CiphertextBlob
	return s, nil
}

// RotateStats counts what Rotate did. It marshals as the rotatekeys output.
type RotateStats struct {
	Items     int `json:"items"`     // items read from the table
	Scanned   int `json:"scanned"`   // sealed_* attributes found
	Rotated   int `json:"rotated"`   // re-encrypted and written back
	Skipped   int `json:"skipped"`   // already under the destination key
	Conflicts int `json:"conflicts"` // changed by another writer meanwhile; left to it
	Failed    int `json:"failed"`    // malformed, or KMS refused to re-encrypt; logged
}

// Rotate scans table for sealed_* attributes whose key id is not the
// destination key's ARN, re-encrypts each data key under toKeyID and writes
// it back on the condition that the stored encrypted key is unchanged (a
// concurrent writer wins and counts as a conflict). A record that cannot be
// rotated counts as failed and the scan goes on; an error is returned only
// when the scan itself cannot continue, with the counts so far.
func (r *Rotator) Rotate(ctx context.Context, table, toKeyID string) (RotateStats, error) {
	var st RotateStats
	if table == "" || toKeyID == "" {
		return st, apperr.New(apperr.KindInternal, "vault.rotate_failed", "a table and a destination key are required")
	}
	desc, err := r.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(toKeyID)})
	if err != nil {
		return st, kmsError(fmt.Errorf("kms describe key %s: %w", toKeyID, err), "vault.rotate_failed", "could not resolve the destination key")
	}
	if desc.KeyMetadata == nil || aws.ToString(desc.KeyMetadata.Arn) == "" {
		return st, apperr.Newf(apperr.KindInternal, "vault.rotate_failed", "kms did not return the ARN of %s", toKeyID)
	}
	toARN := aws.ToString(desc.KeyMetadata.Arn)

	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	if r.pageSize > 0 {
		in.Limit = aws.Int32(r.pageSize)
	}
	pages := dynamodb.NewScanPaginator(r.db, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return st, apperr.Wrap(fmt.Errorf("scan %s: %w", table, err), apperr.KindInternal, "vault.rotate_failed", "could not scan the table")
		}
		for _, item := range page.Items {
			st.Items++
			if err := r.rotateItem(ctx, table, toARN, item, &st); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// rotateItem rotates every sealed_* attribute of item. It returns an error
// only for a failed write that is not a lost condition.
func (r *Rotator) rotateItem(ctx context.Context, table, toARN string, item map[string]ddbtypes.AttributeValue, st *RotateStats) error {
	names := make([]string, 0, 1)
	for name := range item {
		if strings.HasPrefix(name, SealedPrefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		st.Scanned++
		m, ok := item[name].(*ddbtypes.AttributeValueMemberM)
		var s Sealed
		if ok {
			err := attributevalue.UnmarshalMap(m.Value, &s)
			ok = err == nil
		}
		if !ok || s.Version != FormatV1 || len(s.EncryptedKey) == 0 {
			st.Failed++
			r.log.WarnContext(ctx, "vault rotate: not a sealed record", "attribute", name)
			continue
		}
		if s.KeyID == toARN {
			st.Skipped++
			continue
		}
		rotated, err := r.ReEncrypt(ctx, s, toARN)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("rotate %s: %w", name, ctx.Err())
			}
			st.Failed++
			r.log.WarnContext(ctx, "vault rotate: re-encrypt failed", "attribute", name, "key_id", s.KeyID, "error", err.Error())
			continue
		}
		key, err := r.itemKey(item)
		if err != nil {
			return err
		}
		_, err = r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           aws.String(table),
			Key:                 key,
			UpdateExpression:    aws.String("SET #a.#kid = :kid, #a.#ek = :ek"),
			ConditionExpression: aws.String("#a.#ek = :old"),
			ExpressionAttributeNames: map[string]string{
				"#a": name, "#kid": attrKeyID, "#ek": attrEncryptedKey,
			},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":kid": &ddbtypes.AttributeValueMemberS{Value: rotated.KeyID},
				":ek":  &ddbtypes.AttributeValueMemberB{Value: rotated.EncryptedKey},
				":old": &ddbtypes.AttributeValueMemberB{Value: s.EncryptedKey},
			},
		})
		var lost *ddbtypes.ConditionalCheckFailedException
		switch {
		case errors.As(err, &lost):
			st.Conflicts++
		case err != nil:
			return apperr.Wrap(fmt.Errorf("update %s in %s: %w", name, table, err), apperr.KindInternal, "vault.rotate_failed", "could not write a rotated record")
		default:
			st.Rotated++
		}
	}
	return nil
}

// itemKey picks the key attributes out of item.
func (r *Rotator) itemKey(item map[string]ddbtypes.AttributeValue) (map[string]ddbtypes.AttributeValue, error) {
	key := make(map[string]ddbtypes.AttributeValue, len(r.keyAttrs))
	for _, a := range r.keyAttrs {
		v, ok := item[a]
		if !ok {
			return nil, apperr.Newf(apperr.KindInternal, "vault.rotate_failed", "an item has no key attribute %q", a)
		}
		key[a] = v
	}
	return key, nil
}
