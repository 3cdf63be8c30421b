package lambdaenvtest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/posse-dev/posse/infra/local/samtemplate"
	"github.com/posse-dev/posse/infra/local/stack"
)

// Deploy creates template.yaml's resources in the moto that awsCfg points
// at, as the local stack does (Environment local; params override), and
// returns what it created.
func Deploy(t testing.TB, awsCfg aws.Config, params map[string]string) *stack.Stack {
	t.Helper()
	tpl, err := samtemplate.Load(filepath.Join(Root(t), "template.yaml"))
	if err != nil {
		t.Fatalf("load template: %v", err)
	}
	p := map[string]string{"Environment": "local", "AdminKeySha256": strings.Repeat("0", 64)}
	for k, v := range params {
		p[k] = v
	}
	st, err := stack.Deploy(context.Background(), stack.Options{
		Template: tpl, Parameters: p, StackName: "posse-local", Clients: stack.NewClients(awsCfg),
	})
	if err != nil {
		t.Fatalf("deploy template into moto: %v", err)
	}
	return st
}

// Function returns the deployed function logicalID, failing the test when
// the template has none.
func Function(t testing.TB, st *stack.Stack, logicalID string) *stack.Function {
	t.Helper()
	for i := range st.Functions {
		if st.Functions[i].LogicalID == logicalID {
			return &st.Functions[i]
		}
	}
	t.Fatalf("template has no %s", logicalID)
	return nil
}
