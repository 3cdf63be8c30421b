package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/secretscan"
)

// atRest is the first half of the secret scan of an end-to-end test, run
// while the stack is up: it gathers every credential the simulators issued
// or accept, the keys the test knows, and everything sealed in the table
// (with the plaintext data keys), and scans a full Scan of the table.
// Call the returned function after the stack stopped: it scans every log
// line (the functions' logs under state/logs and the runner's stderr).
func atRest(t *testing.T, l launched, state string, known ...string) func() {
	t.Helper()
	ctx := context.Background()
	set := secretscan.NewSet()
	set.Add("known", known...)
	set.Add("admin key", l.info["Admin key"])
	if err := set.FromRunner(ctx, l.info["Simulator"]); err != nil {
		t.Fatal(err)
	}
	cfg := moto.Config(l.info["Moto endpoint"])
	sc := secretscan.Scanner{DB: dynamodb.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), Table: "posse-local"}
	sealed, err := sc.AddSealed(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	items, found, err := sc.ScanTable(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("secret at rest: %s", f)
	}
	if sealed == 0 || items == 0 {
		t.Errorf("secret scan: %d sealed records, %d items; want a real scan", sealed, items)
	}
	return func() {
		t.Helper()
		logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
		lines, found, err := secretscan.ScanFiles(logs, set)
		if err != nil {
			t.Fatal(err)
		}
		// The site key is printed on stdout by design, never on stderr.
		n, more := secretscan.ScanText("the runner's stderr", l.stderr.String(), set)
		for _, f := range append(found, more...) {
			t.Errorf("secret at rest: %s", f)
		}
		t.Logf("secret scan: %d secrets (%v), %d sealed records, %d items, %d log lines in %d files + stderr: %s",
			set.Len(), set.Kinds(), sealed, items, lines+n, len(logs), secretscan.Summary(append(found, more...)))
	}
}
