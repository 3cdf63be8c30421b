package samtemplate

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeResolver answers Ref and GetAtt from maps.
type fakeResolver struct {
	refs  map[string]any
	attrs map[string]any // "Res.Attr"
}

func (f fakeResolver) Ref(id string) (any, error) {
	if v, ok := f.refs[id]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("no resource %s", id)
}

func (f fakeResolver) GetAtt(id, attr string) (any, error) {
	if v, ok := f.attrs[id+"."+attr]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("no attribute %s.%s", id, attr)
}

const testTemplate = `
Parameters:
  Env:
    Type: String
    Default: local
    AllowedValues: [local, dev, prod]
  Hash:
    Type: String
    AllowedPattern: "^[0-9a-f]{4}$"
    Default: abcd
  Zones:
    Type: CommaDelimitedList
    Default: "a, b,c"
  Empty:
    Type: String
    Default: ""
Mappings:
  Sizes:
    local: {Memory: 128}
    prod: {Memory: 1024}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
  HasEmpty: !Not [!Equals [!Ref Empty, ""]]
  Both: !And [!Condition NotProd, !Equals [a, a]]
  Either: !Or [!Condition IsProd, !Condition HasEmpty]
Globals:
  Function:
    Timeout: 30
    MemorySize: 256
    Layers: [g1]
    Environment:
      Variables:
        A: global-a
        B: !Ref Env
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub q-${Env}
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DLQ.Arn
        maxReceiveCount: 5
  DLQ:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "q-${Env}-dlq"
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 60
      Layers: [l1]
      Environment:
        Variables:
          A: local-a
          C: !GetAtt [Queue, QueueName]
      Events:
        E:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Condition: IsProd
    DependsOn: Fn
    Properties:
      AlarmName: x
`

func mustParse(t *testing.T, src string) *Template {
	t.Helper()
	tpl, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tpl
}

func TestParseShortTags(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, testTemplate)
	q := tpl.Resources["Queue"]
	if got, want := q.Properties["QueueName"], map[string]any{"Fn::Sub": "q-${Env}"}; !reflect.DeepEqual(got, want) {
		t.Errorf("QueueName: got %v, want %v", got, want)
	}
	rp := q.Properties["RedrivePolicy"].(map[string]any)
	if got, want := rp["deadLetterTargetArn"], map[string]any{"Fn::GetAtt": []any{"DLQ", "Arn"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("GetAtt short form: got %v, want %v", got, want)
	}
	if got, want := rp["maxReceiveCount"], 5; got != want {
		t.Errorf("maxReceiveCount: got %#v, want %#v", got, want)
	}
	if got, want := tpl.Conditions["NotProd"], map[string]any{"Fn::Not": []any{map[string]any{"Condition": "IsProd"}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("!Condition: got %v, want %v", got, want)
	}
	if got := tpl.Resources["Alarm"]; got.Condition != "IsProd" || !reflect.DeepEqual(got.DependsOn, []string{"Fn"}) {
		t.Errorf("Alarm: got condition %q depends %v", got.Condition, got.DependsOn)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"unknown tag":  "Resources:\n  A:\n    Type: X\n    Properties: {P: !Nope x}\n",
		"no resources": "Parameters: {}\n",
		"no type":      "Resources:\n  A:\n    Properties: {}\n",
		"bad getatt":   "Resources:\n  A:\n    Type: X\n    Properties: {P: !GetAtt nodot}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(src)); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}

func TestGlobalsMerge(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, testTemplate)
	p := tpl.Resources["Fn"].Properties
	if got, want := p["Timeout"], 60; got != want {
		t.Errorf("Timeout: got %v, want %v (function wins)", got, want)
	}
	if got, want := p["MemorySize"], 256; got != want {
		t.Errorf("MemorySize: got %v, want %v (from Globals)", got, want)
	}
	if got, want := p["Layers"], []any{"g1", "l1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Layers: got %v, want %v (lists are additive)", got, want)
	}
	vars := p["Environment"].(map[string]any)["Variables"].(map[string]any)
	want := map[string]any{
		"A": "local-a",
		"B": map[string]any{"Ref": "Env"},
		"C": map[string]any{"Fn::GetAtt": []any{"Queue", "QueueName"}},
	}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("Variables: got %v, want %v", vars, want)
	}
	// The Globals section itself is untouched.
	gv := tpl.Globals["Function"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if got := gv["A"]; got != "global-a" {
		t.Errorf("Globals mutated: A = %v", got)
	}
}

func newEval(t *testing.T, tpl *Template, params map[string]string) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(tpl, Options{
		Parameters: params,
		StackName:  "stk",
		Resources: fakeResolver{
			refs: map[string]any{"Queue": "https://q/url", "DLQ": "https://q/dlq"},
			attrs: map[string]any{
				"Queue.Arn":       "arn:aws:sqs:us-east-1:123456789012:q-local",
				"Queue.QueueName": "q-local",
				"DLQ.Arn":         "arn:aws:sqs:us-east-1:123456789012:q-local-dlq",
			},
		},
	})
	if err != nil {
		t.Fatalf("NewEvaluator: %v", err)
	}
	return e
}

func TestEval(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, testTemplate)
	e := newEval(t, tpl, nil)
	tests := []struct {
		name string
		in   string // YAML
		want any
	}{
		{"ref param", "!Ref Env", "local"},
		{"ref list param", "!Ref Zones", []any{"a", "b", "c"}},
		{"ref resource", "!Ref Queue", "https://q/url"},
		{"pseudo region", "!Ref AWS::Region", "us-east-1"},
		{"pseudo account", "!Ref AWS::AccountId", "123456789012"},
		{"pseudo partition", "!Ref AWS::Partition", "aws"},
		{"pseudo suffix", "!Ref AWS::URLSuffix", "amazonaws.com"},
		{"pseudo stack", "!Ref AWS::StackName", "stk"},
		{"getatt dotted", "!GetAtt Queue.Arn", "arn:aws:sqs:us-east-1:123456789012:q-local"},
		{"getatt list", "!GetAtt [Queue, QueueName]", "q-local"},
		{"getatt long", "{Fn::GetAtt: [Queue, QueueName]}", "q-local"},
		{"sub string", "!Sub 'arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${Queue.QueueName}/${Env}'", "arn:aws:sqs:us-east-1:123456789012:q-local/local"},
		{"sub literal", "!Sub '${!Literal}-${Env}'", "${Literal}-local"},
		{"sub map", "!Sub ['${X}-${Env}', {X: !Ref Queue}]", "https://q/url-local"},
		{"sub long", "{Fn::Sub: 'x-${Env}'}", "x-local"},
		{"join", "!Join ['-', [a, !Ref Env, 3]]", "a-local-3"},
		{"join list param", "!Join [':', !Ref Zones]", "a:b:c"},
		{"select", "!Select [1, [x, y, z]]", "y"},
		{"select split", "!Select [2, !Split [',', 'p,q,r']]", "r"},
		{"split", "!Split ['/', a/b]", []any{"a", "b"}},
		{"if false", "!If [IsProd, big, small]", "small"},
		{"if long", "{Fn::If: [NotProd, yes, no]}", "yes"},
		{"equals", "!Equals [!Ref Env, local]", true},
		{"not", "!Not [!Equals [a, b]]", true},
		{"and", "!And [!Condition NotProd, !Condition Both]", true},
		{"or", "!Or [!Condition IsProd, !Condition Either]", false},
		{"findinmap", "!FindInMap [Sizes, !Ref Env, Memory]", 128},
		{"base64", "!Base64 hi", "aGk="},
		{"novalue in map", "{a: 1, b: !Ref AWS::NoValue}", map[string]any{"a": 1}},
		{"if novalue in list", "[a, !If [IsProd, b, !Ref AWS::NoValue]]", []any{"a"}},
		{"plain", "{k: [1, true, 'OFF']}", map[string]any{"k": []any{1, true, "OFF"}}},
		{"policy condition block", "{Condition: {StringEquals: {a: !Ref Env}}}", map[string]any{"Condition": map[string]any{"StringEquals": map[string]any{"a": "local"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "Resources:\n  X:\n    Type: T\n    Properties:\n      V: " + tt.in + "\n"
			x := mustParse(t, src)
			got, err := e.Eval(x.Resources["X"].Properties["V"])
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	t.Parallel()
	e := newEval(t, mustParse(t, testTemplate), nil)
	for name, v := range map[string]any{
		"unknown ref":       map[string]any{"Ref": "Nope"},
		"unknown attribute": map[string]any{"Fn::GetAtt": []any{"Queue", "Nope"}},
		"sub unknown":       map[string]any{"Fn::Sub": "${Nope}"},
		"select range":      map[string]any{"Fn::Select": []any{"5", []any{"a"}}},
		"unknown condition": map[string]any{"Fn::If": []any{"Nope", "a", "b"}},
		"unsupported":       map[string]any{"Fn::ImportValue": "x"},
		"findinmap missing": map[string]any{"Fn::FindInMap": []any{"Sizes", "dev", "Memory"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.Eval(v); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
	if _, err := e.Eval(map[string]any{"Ref": "AWS::NoValue"}); !errors.Is(err, ErrNoValue) {
		t.Errorf("top-level NoValue: got %v, want ErrNoValue", err)
	}
}

func TestParameters(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, testTemplate)
	e := newEval(t, tpl, map[string]string{"Env": "prod", "Hash": "0f0f"})
	if v, _ := e.Parameter("Env"); v != "prod" {
		t.Errorf("Env: got %v, want prod", v)
	}
	if ok, err := e.Condition("IsProd"); err != nil || !ok {
		t.Errorf("IsProd: got %v, %v, want true", ok, err)
	}
	if ok, err := e.Enabled(tpl.Resources["Alarm"]); err != nil || !ok {
		t.Errorf("Alarm enabled: got %v, %v, want true", ok, err)
	}
	for name, params := range map[string]map[string]string{
		"not allowed":    {"Env": "staging"},
		"pattern":        {"Hash": "XYZ1"},
		"pattern anchor": {"Hash": "abcd0"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewEvaluator(tpl, Options{Parameters: params}); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
	noDefault := mustParse(t, "Parameters:\n  P: {Type: String}\nResources:\n  X: {Type: T}\n")
	if _, err := NewEvaluator(noDefault, Options{}); err == nil || !strings.Contains(err.Error(), "parameter P") {
		t.Errorf("missing parameter: got %v, want an error naming P", err)
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, testTemplate)
	order, err := tpl.Order()
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	for _, pair := range [][2]string{{"DLQ", "Queue"}, {"Queue", "Fn"}, {"Fn", "Alarm"}} {
		if pos[pair[0]] > pos[pair[1]] {
			t.Errorf("order %v: %s must come before %s", order, pair[0], pair[1])
		}
	}
	cyclic := mustParse(t, "Resources:\n  A: {Type: T, Properties: {P: !Ref B}}\n  B: {Type: T, Properties: {P: !Sub '${A.Arn}'}}\n  C: {Type: T}\n")
	if _, err := cyclic.Order(); err == nil || !strings.Contains(err.Error(), "A, B") {
		t.Errorf("cycle: got %v, want an error naming A, B", err)
	}
}

// TestRepositoryTemplate parses the project's own template.yaml.
func TestRepositoryTemplate(t *testing.T) {
	t.Parallel()
	tpl, err := Load(filepath.Join("..", "..", "..", "template.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	order, err := tpl.Order()
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	for _, pair := range [][2]string{{"DispatchDLQ", "DispatchQueue"}, {"Key", "KeyAlias"}, {"Table", "ApiFunction"}} {
		a, okA := pos[pair[0]]
		b, okB := pos[pair[1]]
		if okA && okB && a > b {
			t.Errorf("%s must come before %s", pair[0], pair[1])
		}
	}
	for _, fn := range tpl.ResourcesOfType(TypeFunction) {
		vars, _ := fn.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		if _, ok := vars["POSSE_TABLE"]; !ok {
			t.Errorf("%s: Globals variable POSSE_TABLE not merged", fn.LogicalID)
		}
	}
	e, err := NewEvaluator(tpl, Options{Parameters: map[string]string{"AdminKeySha256": strings.Repeat("ab", 32)}})
	if err != nil {
		t.Fatalf("NewEvaluator: %v", err)
	}
	for name, want := range map[string]bool{"IsProd": false, "HasAlarmEmail": false} {
		if got, err := e.Condition(name); err != nil || got != want {
			t.Errorf("%s: got %v, %v, want %v", name, got, err, want)
		}
	}
}
