package mototest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"gopkg.in/yaml.v3"
)

// tableDef is the part of template.yaml's Table resource a test table needs.
// The keys and indexes carry no intrinsic functions, so plain YAML decoding
// reads them.
type tableDef struct {
	Resources struct {
		Table struct {
			Properties struct {
				AttributeDefinitions []struct {
					AttributeName string `yaml:"AttributeName"`
					AttributeType string `yaml:"AttributeType"`
				} `yaml:"AttributeDefinitions"`
				KeySchema              []keyElem `yaml:"KeySchema"`
				GlobalSecondaryIndexes []struct {
					IndexName  string    `yaml:"IndexName"`
					KeySchema  []keyElem `yaml:"KeySchema"`
					Projection struct {
						ProjectionType string `yaml:"ProjectionType"`
					} `yaml:"Projection"`
				} `yaml:"GlobalSecondaryIndexes"`
			} `yaml:"Properties"`
		} `yaml:"Table"`
	} `yaml:"Resources"`
}

type keyElem struct {
	AttributeName string `yaml:"AttributeName"`
	KeyType       string `yaml:"KeyType"`
}

// RepoRoot returns the folder holding go.mod above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Table creates a table with a unique name and the keys and indexes of
// template.yaml's Table, so each test works on its own table, and returns
// its name.
func Table(t testing.TB, db *dynamodb.Client) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatalf("read template: %v", err)
	}
	var def tableDef
	if err := yaml.Unmarshal(raw, &def); err != nil {
		t.Fatalf("parse template: %v", err)
	}
	p := def.Resources.Table.Properties
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := "test-" + hex.EncodeToString(suffix)
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest}
	for _, a := range p.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: types.ScalarAttributeType(a.AttributeType)})
	}
	keys := func(ks []keyElem) []types.KeySchemaElement {
		var out []types.KeySchemaElement
		for _, k := range ks {
			out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)})
		}
		return out
	}
	in.KeySchema = keys(p.KeySchema)
	for _, g := range p.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(g.IndexName),
			KeySchema:  keys(g.KeySchema),
			Projection: &types.Projection{ProjectionType: types.ProjectionType(g.Projection.ProjectionType)},
		})
	}
	// The name is random, so a table that already exists is ours: an SDK
	// retry of a CreateTable whose first answer was lost under load.
	var inUse *types.ResourceInUseException
	if _, err := db.CreateTable(context.Background(), in); err != nil && !errors.As(err, &inUse) {
		t.Fatalf("create test table: %v", err)
	}
	return name
}
