package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/vault"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no flags", nil},
		{"no key", []string{"-table", "t"}},
		{"no table", []string{"-key", "alias/k"}},
		{"unknown flag", []string{"-table", "t", "-key", "k", "-dry-run"}},
		{"stray argument", []string{"-table", "t", "-key", "k", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if got := run(context.Background(), tt.args, &stdout, &stderr); got != 2 {
				t.Errorf("exit code: got %d, want 2", got)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}

// TestRotateAgainstMoto runs the command the way an operator would, with the
// endpoint taken from the AWS environment. It sets environment variables, so
// it does not run in parallel.
func TestRotateAgainstMoto(t *testing.T) {
	srv := mototest.Server(t)
	for _, kv := range moto.Env(srv.Endpoint()) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg := moto.Config(srv.Endpoint())
	ctx := context.Background()
	kc, db := kms.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg)

	suffix := make([]byte, 4)
	rand.Read(suffix)
	table := fmt.Sprintf("posse-rotatekeys-%x", suffix)
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("PK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("PK"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: ddbtypes.KeyTypeRange},
		},
	}); err != nil {
		t.Fatalf("create table: %v", err)
	}
	var aliases []string
	for i := range 2 {
		k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatalf("create key: %v", err)
		}
		alias := fmt.Sprintf("alias/posse-rotatekeys-%x-%d", suffix, i)
		if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: k.KeyMetadata.KeyId}); err != nil {
			t.Fatalf("create alias: %v", err)
		}
		aliases = append(aliases, alias)
	}
	v, err := vault.New(kc, vault.Config{KeyID: aliases[0]})
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	for i := range 3 {
		c := vault.Context{Site: "s", Connection: fmt.Sprint("c", i), Purpose: vault.PurposeOAuthTokens}
		s, err := v.Seal(ctx, c, []byte("generated in the test"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		av, err := attributevalue.Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]ddbtypes.AttributeValue{
			"PK": &ddbtypes.AttributeValueMemberS{Value: "SITE#s"}, "SK": &ddbtypes.AttributeValueMemberS{Value: "CONN#" + c.Connection},
			"sealed_credentials": av,
		}}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}

	var stdout, stderr bytes.Buffer
	if got := run(ctx, []string{"-table", table, "-key", aliases[1]}, &stdout, &stderr); got != 0 {
		t.Fatalf("exit code: got %d, want 0; stderr: %s", got, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 {
		t.Errorf("stdout: got %d lines, want 1: %q", n, stdout.String())
	}
	var got vault.RotateStats
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if want := (vault.RotateStats{Items: 3, Scanned: 3, Rotated: 3}); got != want {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
}
