package vault_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/vault"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// env is one test's AWS resources in moto.
type env struct {
	kms *kms.Client
	ddb *dynamodb.Client
}

func newEnv(t testing.TB) env {
	t.Helper()
	cfg := mototest.Config(t)
	return env{kms: kms.NewFromConfig(cfg), ddb: dynamodb.NewFromConfig(cfg)}
}

// uniq returns a name no other test uses.
func uniq(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s-%x", prefix, b)
}

// newKey creates a symmetric KMS key with an alias and returns the alias
// name and the key ARN.
func (e env) newKey(t testing.TB) (alias, arn string) {
	t.Helper()
	ctx := context.Background()
	out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("posse vault test")})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	alias = "alias/" + uniq("posse-test")
	if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatalf("create alias: %v", err)
	}
	return alias, aws.ToString(out.KeyMetadata.Arn)
}

// newTable creates a PK/SK table and returns its name.
func (e env) newTable(t testing.TB) string {
	t.Helper()
	name := uniq("posse-test")
	_, err := e.ddb.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("PK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("PK"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: ddbtypes.KeyTypeRange},
		},
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	return name
}

// put writes one item with sealed attributes.
func (e env) put(t testing.TB, table, pk, sk string, sealed map[string]vault.Sealed) {
	t.Helper()
	item := map[string]ddbtypes.AttributeValue{
		"PK": &ddbtypes.AttributeValueMemberS{Value: pk},
		"SK": &ddbtypes.AttributeValueMemberS{Value: sk},
	}
	for name, s := range sealed {
		av, err := attributevalue.Marshal(s)
		if err != nil {
			t.Fatalf("marshal %s: %v", name, err)
		}
		item[name] = av
	}
	if _, err := e.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("put %s/%s: %v", pk, sk, err)
	}
}

// get reads one sealed attribute back.
func (e env) get(t testing.TB, table, pk, sk, attr string) vault.Sealed {
	t.Helper()
	out, err := e.ddb.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{
			"PK": &ddbtypes.AttributeValueMemberS{Value: pk},
			"SK": &ddbtypes.AttributeValueMemberS{Value: sk},
		},
	})
	if err != nil {
		t.Fatalf("get %s/%s: %v", pk, sk, err)
	}
	var s vault.Sealed
	if err := attributevalue.Unmarshal(out.Item[attr], &s); err != nil {
		t.Fatalf("unmarshal %s/%s %s: %v", pk, sk, attr, err)
	}
	return s
}

// countingKMS counts the KMS calls a vault makes.
type countingKMS struct {
	*kms.Client
	generates, decrypts atomic.Int64
}

func (c *countingKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	c.generates.Add(1)
	return c.Client.GenerateDataKey(ctx, in, opts...)
}

func (c *countingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	c.decrypts.Add(1)
	return c.Client.Decrypt(ctx, in, opts...)
}

// generateOnly is a KMS client that can do nothing but GenerateDataKey, like
// the api function's role.
type generateOnly struct{ c *kms.Client }

func (g generateOnly) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	return g.c.GenerateDataKey(ctx, in, opts...)
}

// decryptOnly is a KMS client that can do nothing but Decrypt, like the
// dispatch and webhook functions' roles.
type decryptOnly struct{ c *kms.Client }

func (d decryptOnly) Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return d.c.Decrypt(ctx, in, opts...)
}

func secret(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 64)
	rand.Read(b)
	return b
}

func owner(site, conn, purpose string) vault.Context {
	return vault.Context{Site: site, Connection: conn, Purpose: purpose}
}
