package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/local/samtemplate"
	"github.com/posse-dev/posse/infra/local/stack"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// clients are concrete SDK clients for reading moto back.
type clients struct {
	sqs       *sqs.Client
	ddb       *dynamodb.Client
	kms       *kms.Client
	scheduler *scheduler.Client
}

func newClients(t *testing.T) clients {
	cfg := mototest.Config(t)
	return clients{sqs.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg), kms.NewFromConfig(cfg), scheduler.NewFromConfig(cfg)}
}

func deploy(t *testing.T, path string, params map[string]string, stackName string) *stack.Stack {
	t.Helper()
	tpl, err := samtemplate.Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	st, err := stack.Deploy(context.Background(), stack.Options{
		Template:   tpl,
		Parameters: params,
		StackName:  stackName,
		Clients:    stack.NewClients(mototest.Config(t)),
	})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	return st
}

// TestDeployMatchesTemplate deploys the test template and the project's own
// template, then reads every resource back from moto and compares it with
// what the template says.
func TestDeployMatchesTemplate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		path   string
		params map[string]string
	}{
		{"testdata", filepath.Join("..", "testdata", "template.yaml"), map[string]string{"Environment": "stk-match", "Fifo": "true"}},
		{"repository", filepath.Join("..", "..", "..", "template.yaml"), map[string]string{"Environment": "dev", "AdminKeySha256": strings.Repeat("0f", 32)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClients(t)
			st := deploy(t, tc.path, tc.params, "posse-"+tc.params["Environment"])
			if len(st.Queues) == 0 {
				t.Fatalf("no queues created")
			}
			checkQueues(t, c, st)
			checkTables(t, c, st)
			checkKeys(t, c, st)
			checkScheduler(t, c, st)
			if tc.name == "repository" {
				checkSkipped(t, st)
			}
		})
	}
}

// evalProps evaluates a resource's properties against the stack.
func evalProps(t *testing.T, st *stack.Stack, id string) map[string]any {
	t.Helper()
	v, err := st.Eval(st.Template.Resources[id].Properties)
	if err != nil {
		t.Fatalf("evaluate %s: %v", id, err)
	}
	return v.(map[string]any)
}

func checkQueues(t *testing.T, c clients, st *stack.Stack) {
	for id, q := range st.Queues {
		p := evalProps(t, st, id)
		out, err := c.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(q.URL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("queue %s: %v", id, err)
		}
		if name := samtemplate.String(p["QueueName"]); name != "" && name != q.Name {
			t.Errorf("queue %s: name %q, template says %q", id, q.Name, name)
		}
		if got := out.Attributes["QueueArn"]; got != q.ARN {
			t.Errorf("queue %s: arn %q, stack says %q", id, got, q.ARN)
		}
		for key, want := range p {
			if key == "QueueName" || key == "Tags" {
				continue
			}
			got, ok := out.Attributes[key]
			if !ok {
				// moto keeps some attributes (RedriveAllowPolicy) without
				// returning them from GetQueueAttributes: read its state.
				got, ok = motoQueueField(t, q.Name, key)
			}
			if !ok {
				t.Errorf("queue %s: moto has no attribute %s (template sets %v)", id, key, want)
				continue
			}
			switch want.(type) {
			case map[string]any, []any:
				if !sameJSON(t, got, want) {
					t.Errorf("queue %s: %s = %s, template says %v", id, key, got, want)
				}
			default:
				if w := samtemplate.String(want); got != w {
					t.Errorf("queue %s: %s = %q, template says %q", id, key, got, w)
				}
			}
		}
		// The redrive policy must point at the DLQ the template names.
		if rp, ok := p["RedrivePolicy"].(map[string]any); ok {
			dlq, found := st.QueueByARN(samtemplate.String(rp["deadLetterTargetArn"]))
			if !found {
				t.Errorf("queue %s: redrive target %v is not a queue of the stack", id, rp["deadLetterTargetArn"])
			} else if !strings.Contains(out.Attributes["RedrivePolicy"], dlq.ARN) {
				t.Errorf("queue %s: RedrivePolicy %s does not name %s", id, out.Attributes["RedrivePolicy"], dlq.ARN)
			}
		}
	}
}

// motoQueueField reads a queue attribute from moto's state dump
// (/moto-api/data.json), where attributes are snake_case fields.
func motoQueueField(t *testing.T, queue, attribute string) (string, bool) {
	t.Helper()
	resp, err := http.Get(mototest.Server(t).Endpoint() + "/moto-api/data.json")
	if err != nil {
		t.Fatalf("moto state: %v", err)
	}
	defer resp.Body.Close()
	var state struct {
		SQS struct {
			Queue []map[string]any `json:"Queue"`
		} `json:"sqs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatalf("decode moto state: %v", err)
	}
	field := snake(attribute)
	for _, q := range state.SQS.Queue {
		if q["_name"] == queue || q["name"] == queue {
			v, ok := q[field].(string)
			return v, ok
		}
	}
	return "", false
}

// snake turns RedriveAllowPolicy into redrive_allow_policy.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sameJSON compares a JSON attribute with template data, numbers and
// numeric strings alike.
func sameJSON(t *testing.T, got string, want any) bool {
	var g any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("attribute %q is not JSON: %v", got, err)
		return false
	}
	b, _ := json.Marshal(want)
	var w any
	_ = json.Unmarshal(b, &w)
	return reflect.DeepEqual(normalize(g), normalize(w))
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case float64:
		return fmt.Sprint(x)
	default:
		return fmt.Sprint(x)
	}
}

func checkTables(t *testing.T, c clients, st *stack.Stack) {
	ctx := context.Background()
	for id, tbl := range st.Tables {
		p := evalProps(t, st, id)
		out, err := c.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tbl.Name)})
		if err != nil {
			t.Fatalf("table %s: %v", id, err)
		}
		d := out.Table
		if got, want := keyString(d.KeySchema), keyList(p["KeySchema"]); got != want {
			t.Errorf("table %s: keys %s, template says %s", id, got, want)
		}
		var gotAttrs, wantAttrs []string
		for _, a := range d.AttributeDefinitions {
			gotAttrs = append(gotAttrs, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
		}
		for _, a := range p["AttributeDefinitions"].([]any) {
			m := a.(map[string]any)
			wantAttrs = append(wantAttrs, samtemplate.String(m["AttributeName"])+":"+samtemplate.String(m["AttributeType"]))
		}
		sort.Strings(gotAttrs)
		sort.Strings(wantAttrs)
		if !reflect.DeepEqual(gotAttrs, wantAttrs) {
			t.Errorf("table %s: attributes %v, template says %v", id, gotAttrs, wantAttrs)
		}
		if want := samtemplate.String(p["BillingMode"]); want != "" {
			if d.BillingModeSummary == nil || string(d.BillingModeSummary.BillingMode) != want {
				t.Errorf("table %s: billing %v, template says %s", id, d.BillingModeSummary, want)
			}
		}
		gsis := map[string]ddbtypes.GlobalSecondaryIndexDescription{}
		for _, g := range d.GlobalSecondaryIndexes {
			gsis[aws.ToString(g.IndexName)] = g
		}
		wantGSIs, _ := p["GlobalSecondaryIndexes"].([]any)
		if len(gsis) != len(wantGSIs) {
			t.Errorf("table %s: %d GSIs, template says %d", id, len(gsis), len(wantGSIs))
		}
		for _, w := range wantGSIs {
			wm := w.(map[string]any)
			name := samtemplate.String(wm["IndexName"])
			g, ok := gsis[name]
			if !ok {
				t.Errorf("table %s: GSI %s missing", id, name)
				continue
			}
			if got, want := keyString(g.KeySchema), keyList(wm["KeySchema"]); got != want {
				t.Errorf("table %s GSI %s: keys %s, template says %s", id, name, got, want)
			}
			proj := wm["Projection"].(map[string]any)
			if got, want := string(g.Projection.ProjectionType), samtemplate.String(proj["ProjectionType"]); got != want {
				t.Errorf("table %s GSI %s: projection %s, template says %s", id, name, got, want)
			}
			if nk, ok := proj["NonKeyAttributes"].([]any); ok {
				var want []string
				for _, a := range nk {
					want = append(want, samtemplate.String(a))
				}
				if !reflect.DeepEqual(g.Projection.NonKeyAttributes, want) {
					t.Errorf("table %s GSI %s: non-key attributes %v, template says %v", id, name, g.Projection.NonKeyAttributes, want)
				}
			}
		}
		if ttl, ok := p["TimeToLiveSpecification"].(map[string]any); ok {
			out, err := c.ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tbl.Name)})
			if err != nil {
				t.Fatalf("table %s ttl: %v", id, err)
			}
			d := out.TimeToLiveDescription
			if got, want := aws.ToString(d.AttributeName), samtemplate.String(ttl["AttributeName"]); got != want {
				t.Errorf("table %s: ttl attribute %q, template says %q", id, got, want)
			}
			if d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled {
				t.Errorf("table %s: ttl status %s, want ENABLED", id, d.TimeToLiveStatus)
			}
		}
		if pitr, ok := p["PointInTimeRecoverySpecification"].(map[string]any); ok {
			if on, _ := samtemplate.Bool(pitr["PointInTimeRecoveryEnabled"]); on {
				out, err := c.ddb.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(tbl.Name)})
				if err != nil {
					t.Fatalf("table %s backups: %v", id, err)
				}
				if got := out.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus; got != ddbtypes.PointInTimeRecoveryStatusEnabled {
					t.Errorf("table %s: PITR %s, want ENABLED", id, got)
				}
			}
		}
	}
}

func keyString(ks []ddbtypes.KeySchemaElement) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	return strings.Join(parts, ",")
}

func keyList(v any) string {
	var parts []string
	for _, k := range v.([]any) {
		m := k.(map[string]any)
		parts = append(parts, samtemplate.String(m["AttributeName"])+":"+samtemplate.String(m["KeyType"]))
	}
	return strings.Join(parts, ",")
}

func checkKeys(t *testing.T, c clients, st *stack.Stack) {
	ctx := context.Background()
	for id, k := range st.Keys {
		p := evalProps(t, st, id)
		out, err := c.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.ID)})
		if err != nil {
			t.Fatalf("key %s: %v", id, err)
		}
		if got, want := aws.ToString(out.KeyMetadata.Description), samtemplate.String(p["Description"]); got != want {
			t.Errorf("key %s: description %q, template says %q", id, got, want)
		}
		if want, ok := samtemplate.Bool(p["EnableKeyRotation"]); ok {
			rot, err := c.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(k.ID)})
			if err != nil {
				t.Fatalf("key %s rotation: %v", id, err)
			}
			if rot.KeyRotationEnabled != want {
				t.Errorf("key %s: rotation %v, template says %v", id, rot.KeyRotationEnabled, want)
			}
		}
	}
	for id, a := range st.Aliases {
		p := evalProps(t, st, id)
		out, err := c.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(samtemplate.String(p["AliasName"]))})
		if err != nil {
			t.Fatalf("alias %s: %v", id, err)
		}
		if got := aws.ToString(out.KeyMetadata.KeyId); got != a.KeyID {
			t.Errorf("alias %s points at %s, template says %s", id, got, a.KeyID)
		}
	}
}

func checkScheduler(t *testing.T, c clients, st *stack.Stack) {
	ctx := context.Background()
	for id, g := range st.ScheduleGroups {
		p := evalProps(t, st, id)
		out, err := c.scheduler.GetScheduleGroup(ctx, &scheduler.GetScheduleGroupInput{Name: aws.String(g.Name)})
		if err != nil {
			t.Fatalf("schedule group %s: %v", id, err)
		}
		if got, want := aws.ToString(out.Name), samtemplate.String(p["Name"]); got != want {
			t.Errorf("schedule group %s: name %q, template says %q", id, got, want)
		}
	}
	for _, sc := range st.Schedules {
		out, err := c.scheduler.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String(sc.Name), GroupName: aws.String(sc.GroupName)})
		if err != nil {
			t.Fatalf("schedule %s: %v", sc.Source, err)
		}
		if got := aws.ToString(out.ScheduleExpression); got != sc.Expression {
			t.Errorf("schedule %s: expression %q, want %q", sc.Source, got, sc.Expression)
		}
		if got := aws.ToString(out.Target.Arn); got != sc.TargetARN {
			t.Errorf("schedule %s: target %q, want %q", sc.Source, got, sc.TargetARN)
		}
	}
}

// TestDeployResolvesFunctions checks what the runner needs from a function:
// name, limits, merged and resolved environment, events.
func TestDeployResolvesFunctions(t *testing.T) {
	t.Parallel()
	st := deploy(t, filepath.Join("..", "testdata", "template.yaml"), map[string]string{"Environment": "stk-fn"}, "stk-fn")
	fn, ok := st.Function("EchoFunction")
	if !ok {
		t.Fatalf("EchoFunction missing")
	}
	if fn.Name != "echo-stk-fn" || fn.Timeout != 4*time.Second || fn.MemoryMB != 128 || fn.Handler != "bootstrap" {
		t.Errorf("got name %q timeout %v memory %d handler %q, want echo-stk-fn 4s 128 bootstrap", fn.Name, fn.Timeout, fn.MemoryMB, fn.Handler)
	}
	if want := "arn:aws:lambda:us-east-1:123456789012:function:echo-stk-fn"; fn.ARN != want {
		t.Errorf("ARN: got %q, want %q", fn.ARN, want)
	}
	if !strings.HasSuffix(fn.CodeDir, filepath.Join("testdata", "echofn")) || fn.BuildMethod != "go1.x" {
		t.Errorf("code: got %q (%q), want testdata/echofn (go1.x)", fn.CodeDir, fn.BuildMethod)
	}
	work := st.Queues["WorkQueue"]
	wantEnv := map[string]string{
		"ECHO_OUTPUT_QUEUE_URL": st.Queues["OutputQueue"].URL,
		"ECHO_ENV":              "stk-fn",
		"ECHO_OVERRIDDEN":       "local",
		"ECHO_ADMIN_KEY_SHA256": strings.Repeat("0", 64),
		"ECHO_WORK_QUEUE_ARN":   work.ARN,
		"ECHO_TABLE":            "echo-stk-fn",
		"ECHO_KEY":              "alias/echo-stk-fn",
		"ECHO_ROLE":             "arn:aws:iam::123456789012:role/" + samtemplate.PhysicalName("stk-fn", "SchedulerRole", 64),
	}
	if !reflect.DeepEqual(fn.Environment, wantEnv) {
		t.Errorf("environment:\n got %v\nwant %v", fn.Environment, wantEnv)
	}
	if !strings.HasPrefix(work.URL, "http://") || !strings.HasSuffix(work.URL, "/echo-stk-fn-work") {
		t.Errorf("queue Ref: got %q, want the moto queue URL", work.URL)
	}
	var routes []string
	for _, e := range fn.HTTPEvents {
		routes = append(routes, e.Method+" "+e.Path+" @"+e.API.StageName)
	}
	sort.Strings(routes)
	wantRoutes := []string{"ANY /echo/{proxy+} @v1", "GET /health @v1", "GET /items/{id} @v1", "POST /sites @v1", "POST /sites/{site}/keys @v1"}
	if !reflect.DeepEqual(routes, wantRoutes) {
		t.Errorf("routes: got %v, want %v", routes, wantRoutes)
	}
	if len(fn.SQSEvents) != 2 {
		t.Fatalf("SQS events: got %d, want 2", len(fn.SQSEvents))
	}
	for _, e := range fn.SQSEvents {
		switch e.Name {
		case "Work":
			if e.QueueARN != work.ARN || e.BatchSize != 5 || e.MaximumBatchingWindow != time.Second || !e.ReportBatchItemFailures {
				t.Errorf("Work: got %+v", e)
			}
		case "Plain":
			if e.BatchSize != 10 || e.ReportBatchItemFailures {
				t.Errorf("Plain: got %+v, want BatchSize 10 without ReportBatchItemFailures", e)
			}
		}
	}
	if len(fn.Schedules) != 1 || fn.Schedules[0].Name != "EchoFunctionTick" || fn.Schedules[0].GroupName != "echo-stk-fn" || fn.Schedules[0].TargetARN != fn.ARN {
		t.Errorf("schedules: got %+v", fn.Schedules)
	}
	if _, ok := st.Queues["FifoQueue"]; ok {
		t.Errorf("FifoQueue created although its condition is false")
	}
	if reason := st.Skipped["Unused"]; !strings.Contains(reason, "condition") {
		t.Errorf("Unused: skipped for %q, want a condition reason", reason)
	}
	outs, err := st.Outputs()
	if err != nil {
		t.Fatalf("Outputs: %v", err)
	}
	if got, want := outs["WorkQueueUrl"], work.URL; got != want {
		t.Errorf("output WorkQueueUrl: got %q, want %q", got, want)
	}
	if got := outs["LogsArn"]; got != "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/echo-stk-fn:*" {
		t.Errorf("output LogsArn: got %q", got)
	}
	if _, ok := outs["FifoUrl"]; ok {
		t.Errorf("output FifoUrl present although its condition is false")
	}
	api := st.HTTPAPIs["Api"]
	if got, want := outs["ApiUrl"], "https://"+api.ID+".execute-api.us-east-1.amazonaws.com/v1"; got != want {
		t.Errorf("output ApiUrl: got %q, want %q", got, want)
	}
}

// checkSkipped: the project's CloudWatch dashboard and alarms are not
// emulated; they are skipped with the names the template gives them, so
// outputs that name them still resolve.
func checkSkipped(t *testing.T, st *stack.Stack) {
	for _, id := range []string{"Dashboard", "WebhookSuccessRateAlarm", "DispatchDLQDepthAlarm"} {
		if reason := st.Skipped[id]; !strings.Contains(reason, "not emulated") {
			t.Errorf("%s: skipped for %q, want not emulated", id, reason)
		}
	}
	outs, err := st.Outputs()
	if err != nil {
		t.Fatalf("Outputs: %v", err)
	}
	if got := outs["DashboardUrl"]; !strings.HasSuffix(got, "#dashboards:name=posse-dev") {
		t.Errorf("output DashboardUrl: got %q, want the dashboard posse-dev", got)
	}
}

// TestDeployFIFO covers generated names: a FIFO queue without a QueueName.
func TestDeployFIFO(t *testing.T) {
	t.Parallel()
	st := deploy(t, filepath.Join("..", "testdata", "template.yaml"), map[string]string{"Environment": "stk-fifo", "Fifo": "true"}, "stk-fifo")
	q, ok := st.Queues["FifoQueue"]
	if !ok {
		t.Fatalf("FifoQueue missing")
	}
	if !q.FIFO || !strings.HasPrefix(q.Name, "stk-fifo-FifoQueue-") || !strings.HasSuffix(q.Name, ".fifo") {
		t.Errorf("got %+v, want a generated .fifo name", q)
	}
}
