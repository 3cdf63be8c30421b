// Package samtemplate reads an AWS SAM / CloudFormation template the way the
// local stack needs it: YAML with CloudFormation's short tags (!Ref, !Sub,
// !GetAtt ...) turned into their long forms, SAM Globals merged into each
// resource, parameters, conditions and the intrinsic functions evaluated
// against the physical ids of whatever the caller created.
//
// A template is plain data after Parse: maps, lists and scalars, with every
// intrinsic function written as a one-key map ({"Ref": "X"},
// {"Fn::Sub": ...}). An Evaluator resolves such data to concrete values.
package samtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resource types the local stack knows by name.
const (
	TypeFunction      = "AWS::Serverless::Function"
	TypeHTTPAPI       = "AWS::Serverless::HttpApi"
	TypeAPI           = "AWS::Serverless::Api"
	TypeQueue         = "AWS::SQS::Queue"
	TypeTable         = "AWS::DynamoDB::Table"
	TypeKey           = "AWS::KMS::Key"
	TypeAlias         = "AWS::KMS::Alias"
	TypeScheduleGroup = "AWS::Scheduler::ScheduleGroup"
	TypeSchedule      = "AWS::Scheduler::Schedule"
	TypeRole          = "AWS::IAM::Role"
)

// Template is a parsed template.
type Template struct {
	// Path is the file the template was loaded from (empty for Parse).
	Path string
	// Parameters by name.
	Parameters map[string]Parameter
	// Mappings for Fn::FindInMap.
	Mappings map[string]any
	// Conditions by name, unevaluated.
	Conditions map[string]any
	// Globals is the SAM Globals section as written.
	Globals map[string]any
	// Resources by logical id, with Globals already merged.
	Resources map[string]*Resource
	// Outputs by name, unevaluated.
	Outputs map[string]any
}

// Parameter is one template parameter.
type Parameter struct {
	Type           string
	Default        any // nil when the parameter has no default
	AllowedValues  []string
	AllowedPattern string
	NoEcho         bool
}

// Resource is one entry of the Resources section.
type Resource struct {
	LogicalID  string
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	Condition  string
	DependsOn  []string
}

// Dir is the folder of the template file ("." for a parsed byte slice);
// SAM resolves CodeUri relative to it.
func (t *Template) Dir() string {
	if t.Path == "" {
		return "."
	}
	return filepath.Dir(t.Path)
}

// Load reads and parses the template at path.
func Load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", path, err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	t.Path = path
	return t, nil
}

// Parse parses a template from YAML (JSON is YAML too).
func Parse(data []byte) (*Template, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode yaml: %w", err)
	}
	raw, err := convert(&doc)
	if err != nil {
		return nil, err
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("template is not a mapping")
	}
	t := &Template{
		Parameters: map[string]Parameter{},
		Mappings:   mapOf(top["Mappings"]),
		Conditions: mapOf(top["Conditions"]),
		Globals:    mapOf(top["Globals"]),
		Resources:  map[string]*Resource{},
		Outputs:    mapOf(top["Outputs"]),
	}
	for name, v := range mapOf(top["Parameters"]) {
		p, err := parseParameter(name, v)
		if err != nil {
			return nil, err
		}
		t.Parameters[name] = p
	}
	for id, v := range mapOf(top["Resources"]) {
		r, err := parseResource(id, v)
		if err != nil {
			return nil, err
		}
		t.Resources[id] = r
	}
	if len(t.Resources) == 0 {
		return nil, errors.New("template has no resources")
	}
	t.mergeGlobals()
	return t, nil
}

func parseParameter(name string, v any) (Parameter, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Parameter{}, fmt.Errorf("parameter %s is not a mapping", name)
	}
	p := Parameter{Default: m["Default"]}
	p.Type, _ = m["Type"].(string)
	p.AllowedPattern, _ = m["AllowedPattern"].(string)
	switch ne := m["NoEcho"].(type) {
	case bool:
		p.NoEcho = ne
	case string:
		p.NoEcho = strings.EqualFold(ne, "true")
	}
	if list, ok := m["AllowedValues"].([]any); ok {
		for _, a := range list {
			p.AllowedValues = append(p.AllowedValues, scalarString(a))
		}
	}
	return p, nil
}

func parseResource(id string, v any) (*Resource, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("resource %s is not a mapping", id)
	}
	r := &Resource{LogicalID: id, Properties: mapOf(m["Properties"]), Metadata: mapOf(m["Metadata"])}
	if r.Properties == nil {
		r.Properties = map[string]any{}
	}
	var okType bool
	if r.Type, okType = m["Type"].(string); !okType || r.Type == "" {
		return nil, fmt.Errorf("resource %s has no Type", id)
	}
	r.Condition, _ = m["Condition"].(string)
	switch d := m["DependsOn"].(type) {
	case string:
		r.DependsOn = []string{d}
	case []any:
		for _, x := range d {
			if s, ok := x.(string); ok {
				r.DependsOn = append(r.DependsOn, s)
			}
		}
	}
	return r, nil
}

// globalsSections maps a Globals section to the resource type it applies to.
var globalsSections = map[string]string{
	"Function":     TypeFunction,
	"Api":          TypeAPI,
	"HttpApi":      TypeHTTPAPI,
	"SimpleTable":  "AWS::Serverless::SimpleTable",
	"StateMachine": "AWS::Serverless::StateMachine",
	"LayerVersion": "AWS::Serverless::LayerVersion",
}

// mergeGlobals applies the Globals section with SAM's rules: a resource's
// own scalar wins, maps merge key by key (so Environment.Variables merge per
// variable), lists are additive with the global entries first.
func (t *Template) mergeGlobals() {
	for section, typ := range globalsSections {
		g := mapOf(t.Globals[section])
		if len(g) == 0 {
			continue
		}
		for _, r := range t.Resources {
			if r.Type != typ {
				continue
			}
			r.Properties = mergeMaps(g, r.Properties)
		}
	}
}

// mergeMaps returns global merged with local (local wins); neither input is
// modified.
func mergeMaps(global, local map[string]any) map[string]any {
	out := make(map[string]any, len(global)+len(local))
	for k, v := range global {
		out[k] = deepCopy(v)
	}
	for k, lv := range local {
		gv, ok := out[k]
		if !ok {
			out[k] = deepCopy(lv)
			continue
		}
		gm, gIsMap := gv.(map[string]any)
		lm, lIsMap := lv.(map[string]any)
		gl, gIsList := gv.([]any)
		ll, lIsList := lv.([]any)
		switch {
		case gIsMap && lIsMap && !isIntrinsic(gm) && !isIntrinsic(lm):
			out[k] = mergeMaps(gm, lm)
		case gIsList && lIsList:
			merged := append([]any{}, gl...)
			out[k] = append(merged, deepCopy(ll).([]any)...)
		default:
			out[k] = deepCopy(lv)
		}
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	default:
		return v
	}
}

// ResourcesOfType returns the resources of one type, sorted by logical id.
func (t *Template) ResourcesOfType(typ string) []*Resource {
	var out []*Resource
	for _, r := range t.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LogicalID < out[j].LogicalID })
	return out
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
