package templatecheck

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/posse-dev/posse/shared/vault"
)

// statements returns every IAM statement of a function's inline policies.
func statements(fn *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	pols := get(fn, "Properties", "Policies")
	if pols == nil {
		return nil
	}
	for _, p := range pols.Content {
		st := get(p, "Statement")
		if st == nil {
			continue
		}
		for _, s := range st.Content {
			if s.Kind == yaml.MappingNode {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestWebhookFunctionOpensOnlyWebhookSecrets: the webhook function may
// decrypt with the vault key only under the webhook secrets' encryption
// context, never seal, never read the platform secret.
func TestWebhookFunctionOpensOnlyWebhookSecrets(t *testing.T) {
	t.Parallel()
	root := load(t)
	fn := get(root, "Resources", "WebhookFunction")
	if fn == nil {
		t.Fatal("template has no WebhookFunction")
	}
	decrypts := 0
	for _, st := range statements(fn) {
		actions := scalars(get(st, "Action"))
		for _, a := range actions {
			l := strings.ToLower(a)
			if strings.HasPrefix(l, "kms:generate") || strings.HasPrefix(l, "secretsmanager:") || l == "*" || l == "kms:*" {
				t.Errorf("WebhookFunction is granted %q", a)
			}
		}
		if !slices.ContainsFunc(actions, grantsDecrypt) {
			continue
		}
		decrypts++
		cond := get(st, "Condition", "StringEquals", "kms:EncryptionContext:"+vault.ContextPurpose)
		if cond == nil || cond.Value != vault.PurposeWebhookSecret {
			t.Errorf("WebhookFunction's decrypt statement %v: want Condition StringEquals kms:EncryptionContext:%s = %s",
				scalars(st), vault.ContextPurpose, vault.PurposeWebhookSecret)
		}
	}
	if decrypts != 1 {
		t.Errorf("WebhookFunction: %d statements grant decrypt, want exactly the conditioned one", decrypts)
	}
	for _, p := range get(fn, "Properties", "Policies").Content {
		if p.Kind == yaml.MappingNode && get(p, "Statement") == nil {
			for _, s := range scalars(p) {
				if grantsDecrypt(s) {
					t.Errorf("WebhookFunction's policy template %v grants decrypt without the condition", scalars(p))
				}
			}
		}
	}
	ev := get(fn, "Properties", "Events", "WebhookQueue", "Properties")
	if v := get(ev, "Queue"); v == nil || v.Value != "WebhookQueue.Arn" {
		t.Errorf("WebhookFunction's event source: got %v, want the webhook queue", scalars(v))
	}
	if !slices.Contains(scalars(get(ev, "FunctionResponseTypes")), "ReportBatchItemFailures") {
		t.Error("WebhookFunction's SQS event source does not report batch item failures")
	}
}

// TestEventWritersMaySendToTheWebhookQueue: the functions that record
// events or send them again (api: ping and replay; dispatch; sweep;
// refresh: connection events) can
// send to the webhook queue, and Scheduler can deliver webhook retries.
func TestEventWritersMaySendToTheWebhookQueue(t *testing.T) {
	t.Parallel()
	root := load(t)
	for _, id := range []string{"ApiFunction", "DispatchFunction", "SweepFunction", "RefreshFunction", "WebhookFunction"} {
		pols := scalars(get(root, "Resources", id, "Properties", "Policies"))
		ok := false
		for i, s := range pols {
			// SQSSendMessagePolicy: {QueueName: WebhookQueue.QueueName}, or a
			// statement with sqs:SendMessage on WebhookQueue.Arn.
			if s == "WebhookQueue.QueueName" && i > 0 && slices.Contains(pols[:i], "SQSSendMessagePolicy") {
				ok = true
			}
		}
		for _, st := range statements(get(root, "Resources", id)) {
			if slices.Contains(scalars(get(st, "Action")), "sqs:SendMessage") && slices.Contains(scalars(get(st, "Resource")), "WebhookQueue.Arn") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s cannot send to the webhook queue", id)
		}
	}
	if !slices.Contains(scalars(get(root, "Resources", "SchedulerRole", "Properties", "Policies")), "WebhookQueue.Arn") {
		t.Error("SchedulerRole cannot send webhook retries to the webhook queue")
	}
	if a := get(root, "Resources", "WebhookDLQDepthAlarm"); a == nil || get(a, "Properties", "Dimensions") == nil {
		t.Error("the webhook DLQ has no depth alarm")
	}
}
