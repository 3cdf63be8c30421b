package lambdaenvtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/posse-dev/posse/infra/local/samtemplate"
	"github.com/posse-dev/posse/infra/local/stack"
	"github.com/posse-dev/posse/shared/recurring"
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

// RequireSchedule fails the test unless the deployment holds a schedule
// for a ScheduleV2 event of logicalID with expression expr.
func RequireSchedule(t testing.TB, st *stack.Stack, logicalID, expr string) {
	t.Helper()
	for _, s := range st.Schedules {
		if strings.HasPrefix(s.Source, logicalID+".") && s.Expression == expr {
			return
		}
	}
	t.Errorf("no %s schedule for %s: %+v", expr, logicalID, st.Schedules)
}

// CheckScheduledFixture reads a recurring schedule's payload fixture and
// checks it is what Scheduler sends: the Input's source and Scheduler's
// context attributes.
func CheckScheduledFixture(t testing.TB, path, source string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ev recurring.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if ev.Source != source || !strings.HasPrefix(ev.ScheduleARN, "arn:aws:scheduler:") || ev.ExecutionID == "" || ev.AttemptNumber != "1" {
		t.Errorf("%s: got %+v, want source %s with Scheduler's context attributes", path, ev, source)
	}
	if _, err := time.Parse(time.RFC3339, ev.ScheduledTime); err != nil {
		t.Errorf("%s: scheduledTime %q: %v", path, ev.ScheduledTime, err)
	}
}
