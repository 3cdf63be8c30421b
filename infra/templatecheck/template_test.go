package templatecheck

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// load returns template.yaml's root mapping node.
func load(t *testing.T) *yaml.Node {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatalf("read template: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse template: %v", err)
	}
	return doc.Content[0]
}

// get walks mapping keys; nil when a key is missing.
func get(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// resources returns the logical ids of resources of type typ.
func resources(root *yaml.Node, typ string) []string {
	var out []string
	res := get(root, "Resources")
	for i := 0; i+1 < len(res.Content); i += 2 {
		if v := get(res.Content[i+1], "Type"); v != nil && v.Value == typ {
			out = append(out, res.Content[i].Value)
		}
	}
	return out
}

// scalars returns every key and scalar value below n.
func scalars(n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, scalars(c)...)
	}
	return out
}

// grantsDecrypt reports whether an IAM action (or SAM policy template name)
// would let a role decrypt with KMS.
func grantsDecrypt(s string) bool {
	l := strings.ToLower(strings.TrimSpace(s))
	switch {
	case l == "kms:*", l == "*", strings.HasPrefix(l, "kms:decrypt"), strings.HasPrefix(l, "kms:reencrypt"),
		l == "kms:d*", l == "kms:de*", l == "kms:dec*", strings.Contains(l, "kmsdecryptpolicy"):
		return true
	}
	return false
}

func TestApiFunctionCanSealButNeverDecrypt(t *testing.T) {
	t.Parallel()
	root := load(t)
	fn := get(root, "Resources", "ApiFunction")
	if fn == nil {
		t.Fatal("template has no ApiFunction")
	}
	policies := get(fn, "Properties", "Policies")
	var hasGenerate bool
	for _, s := range scalars(policies) {
		if grantsDecrypt(s) {
			t.Errorf("ApiFunction's policies grant %q: the internet-facing function must never hold kms:Decrypt", s)
		}
		if strings.EqualFold(s, "kms:GenerateDataKey") {
			hasGenerate = true
		}
	}
	if !hasGenerate {
		t.Errorf("ApiFunction's policies lack kms:GenerateDataKey: it must be able to seal credentials")
	}
	for _, s := range scalars(get(root, "Resources", "Key", "Properties", "KeyPolicy")) {
		if strings.Contains(s, "ApiFunction") {
			t.Errorf("the key policy names ApiFunction (%q): grant the api role nothing there", s)
		}
	}
}

func TestGrantsDecryptCatchesVariants(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"kms:Decrypt", "KMS:DECRYPT", "kms:*", "kms:ReEncryptFrom", "KMSDecryptPolicy", "*"} {
		if !grantsDecrypt(s) {
			t.Errorf("grantsDecrypt(%q): got false, want true", s)
		}
	}
	for _, s := range []string{"kms:GenerateDataKey", "kms:Encrypt", "sqs:SendMessage"} {
		if grantsDecrypt(s) {
			t.Errorf("grantsDecrypt(%q): got true, want false", s)
		}
	}
}

func TestEveryFunctionRunsTheSameWay(t *testing.T) {
	t.Parallel()
	root := load(t)
	globals := get(root, "Globals", "Function")
	setting := func(fn *yaml.Node, key string) *yaml.Node {
		if v := get(fn, "Properties", key); v != nil {
			return v
		}
		return get(globals, key)
	}
	fns := resources(root, "AWS::Serverless::Function")
	if len(fns) == 0 {
		t.Fatal("template declares no functions")
	}
	for _, id := range fns {
		fn := get(root, "Resources", id)
		if v := setting(fn, "Runtime"); v == nil || v.Value != "provided.al2023" {
			t.Errorf("%s Runtime: got %v, want provided.al2023", id, scalars(v))
		}
		if v := setting(fn, "Handler"); v == nil || v.Value != "bootstrap" {
			t.Errorf("%s Handler: got %v, want bootstrap", id, scalars(v))
		}
		if v := scalars(setting(fn, "Architectures")); len(v) != 1 || v[0] != "arm64" {
			t.Errorf("%s Architectures: got %v, want [arm64]", id, v)
		}
		if v := get(fn, "Metadata", "BuildMethod"); v == nil || v.Value != "makefile" {
			t.Errorf("%s Metadata.BuildMethod: got %v, want makefile", id, scalars(v))
		}
		if v := get(fn, "Properties", "FunctionName"); v == nil || !strings.Contains(v.Value, "${Environment}") {
			t.Errorf("%s FunctionName: got %v, want it named by ${Environment}", id, scalars(v))
		}
	}
}

func TestQueuesAreRedriveSafe(t *testing.T) {
	t.Parallel()
	root := load(t)
	dispatchTimeout := 60
	if v := get(root, "Resources", "DispatchFunction", "Properties", "Timeout"); v != nil {
		dispatchTimeout, _ = strconv.Atoi(v.Value)
	}
	visNode := get(root, "Resources", "DispatchQueue", "Properties", "VisibilityTimeout")
	if visNode.Tag == "!Ref" { // a parameter: its default is what deploys
		visNode = get(root, "Parameters", visNode.Value, "Default")
	}
	vis, _ := strconv.Atoi(visNode.Value)
	if vis < 6*dispatchTimeout {
		t.Errorf("DispatchQueue VisibilityTimeout: got %d, want >= 6 x the dispatch timeout (%d)", vis, 6*dispatchTimeout)
	}
	for _, q := range []string{"DispatchQueue", "WebhookQueue"} {
		props := get(root, "Resources", q, "Properties")
		n, _ := strconv.Atoi(get(props, "RedrivePolicy", "maxReceiveCount").Value)
		if n < 5 {
			t.Errorf("%s maxReceiveCount: got %d, want >= 5", q, n)
		}
		dlq := strings.TrimSuffix(get(props, "RedrivePolicy", "deadLetterTargetArn").Value, ".Arn")
		if get(root, "Resources", dlq, "Properties", "RedriveAllowPolicy") == nil {
			t.Errorf("%s's DLQ %s has no RedriveAllowPolicy: console redrive back to the source would fail", q, dlq)
		}
	}
	for _, id := range resources(root, "AWS::SQS::Queue") {
		if v := get(root, "Resources", id, "Properties", "SqsManagedSseEnabled"); v == nil || v.Value != "true" {
			t.Errorf("%s: SSE is not on", id)
		}
	}
}

// grant is one Allow statement of a function's inline policies: its actions
// and resources, each resource as written ("!GetAtt DispatchDLQ.Arn").
type grant struct {
	actions, resources []string
}

// grants returns the statements of fn's inline policies, those under an
// !If included.
func grants(fn *yaml.Node) []grant {
	var out []grant
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.MappingNode && get(n, "Effect") != nil {
			g := grant{actions: scalars(get(n, "Action"))}
			res := get(n, "Resource")
			if res != nil && res.Kind == yaml.SequenceNode {
				for _, r := range res.Content {
					g.resources = append(g.resources, strings.TrimSpace(r.Tag+" "+r.Value))
				}
			} else if res != nil {
				g.resources = []string{strings.TrimSpace(res.Tag + " " + res.Value)}
			}
			out = append(out, g)
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	for _, p := range get(fn, "Properties", "Policies").Content {
		walk(get(p, "Statement"))
	}
	return out
}

// TestMoveTaskPermissionsAreExactlyTheConsoleRedrives: the api function may
// run the dispatch DLQ's message move tasks (/v1/queue/move-task) with the
// minimum permissions SQS documents for DLQ redrive, on the DLQ alone; no
// other function may start, list or cancel a move task.
func TestMoveTaskPermissionsAreExactlyTheConsoleRedrives(t *testing.T) {
	t.Parallel()
	root := load(t)
	isMove := func(a string) bool { return strings.Contains(strings.ToLower(a), "messagemovetask") }
	onDLQ := map[string]bool{}
	for _, g := range grants(get(root, "Resources", "ApiFunction")) {
		for _, a := range g.actions {
			if strings.Contains(a, "*") && strings.HasPrefix(strings.ToLower(a), "sqs:") {
				t.Errorf("ApiFunction grants %q: name SQS actions one by one", a)
			}
			if isMove(a) && (len(g.resources) != 1 || g.resources[0] != "!GetAtt DispatchDLQ.Arn") {
				t.Errorf("ApiFunction grants %s on %v, want on the dispatch DLQ only", a, g.resources)
			}
		}
		for _, r := range g.resources {
			if r == "!GetAtt DispatchDLQ.Arn" {
				for _, a := range g.actions {
					onDLQ[a] = true
				}
			}
		}
	}
	// Start: StartMessageMoveTask, ReceiveMessage, DeleteMessage,
	// GetQueueAttributes on the DLQ; cancel: CancelMessageMoveTask and the
	// same three; list: ListMessageMoveTasks, GetQueueAttributes.
	want := []string{"sqs:CancelMessageMoveTask", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ListMessageMoveTasks",
		"sqs:ReceiveMessage", "sqs:StartMessageMoveTask"}
	var got []string
	for a := range onDLQ {
		got = append(got, a)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ApiFunction's actions on the dispatch DLQ: got %v, want exactly %v", got, want)
	}
	// ... and SendMessage on the destination, the dispatch queue.
	var sends bool
	for _, p := range get(root, "Resources", "ApiFunction", "Properties", "Policies").Content {
		if q := get(p, "SQSSendMessagePolicy", "QueueName"); q != nil && q.Value == "DispatchQueue.QueueName" {
			sends = true
		}
	}
	if !sends {
		t.Error("ApiFunction cannot send to the dispatch queue: a move task back to source needs sqs:SendMessage there")
	}
	for _, id := range resources(root, "AWS::Serverless::Function") {
		if id == "ApiFunction" {
			continue
		}
		for _, s := range scalars(get(root, "Resources", id, "Properties", "Policies")) {
			if isMove(s) {
				t.Errorf("%s's policies grant %s: only the api function runs move tasks", id, s)
			}
		}
	}
	if v := get(root, "Resources", "ApiFunction", "Properties", "Environment", "Variables", "POSSE_DISPATCH_DLQ_ARN"); v == nil || v.Value != "DispatchDLQ.Arn" {
		t.Errorf("ApiFunction's POSSE_DISPATCH_DLQ_ARN: got %v, want !GetAtt DispatchDLQ.Arn", scalars(v))
	}
}

// TestSQSEventSourcesAreBounded: every SQS event source has a
// ScalingConfig.MaximumConcurrency (a parameter whose default is what
// deploys), so a burst on one queue cannot take the account's Lambda
// concurrency from the api; AWS takes 2 to 1,000.
func TestSQSEventSourcesAreBounded(t *testing.T) {
	t.Parallel()
	root := load(t)
	found := 0
	for _, fn := range resources(root, "AWS::Serverless::Function") {
		events := get(root, "Resources", fn, "Properties", "Events")
		for i := 0; events != nil && i+1 < len(events.Content); i += 2 {
			ev := events.Content[i+1]
			if v := get(ev, "Type"); v == nil || v.Value != "SQS" {
				continue
			}
			found++
			name := fn + "." + events.Content[i].Value
			mc := get(ev, "Properties", "ScalingConfig", "MaximumConcurrency")
			if mc == nil {
				t.Errorf("%s: no ScalingConfig.MaximumConcurrency", name)
				continue
			}
			if mc.Tag == "!Ref" {
				mc = get(root, "Parameters", mc.Value, "Default")
			}
			if n, err := strconv.Atoi(mc.Value); err != nil || n < 2 || n > 1000 {
				t.Errorf("%s: MaximumConcurrency %q, want 2 to 1000", name, mc.Value)
			}
		}
	}
	if found == 0 {
		t.Fatal("no SQS event source found in the template")
	}
}
