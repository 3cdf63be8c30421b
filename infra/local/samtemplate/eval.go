package samtemplate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Pseudo parameter values the local stack uses (the ones moto answers with).
const (
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "123456789012"
	DefaultPartition = "aws"
	DefaultURLSuffix = "amazonaws.com"
)

// ErrNoValue is returned by Eval when a value is AWS::NoValue.
var ErrNoValue = errors.New("AWS::NoValue")

// Resolver answers Ref and Fn::GetAtt for resources: the physical ids of
// whatever the caller created for them.
type Resolver interface {
	Ref(logicalID string) (any, error)
	GetAtt(logicalID, attribute string) (any, error)
}

// Options configure an Evaluator.
type Options struct {
	// Parameters override parameter defaults, by name.
	Parameters map[string]string
	// StackName is AWS::StackName (default "local").
	StackName string
	// Region is AWS::Region (default DefaultRegion).
	Region string
	// AccountID is AWS::AccountId (default DefaultAccountID).
	AccountID string
	// Resources resolves Ref and Fn::GetAtt of resources.
	Resources Resolver
}

// Evaluator evaluates intrinsic functions, conditions and parameters.
type Evaluator struct {
	tpl        *Template
	opts       Options
	params     map[string]any
	conds      map[string]bool
	inProgress map[string]bool
}

// NewEvaluator checks the parameter values (overrides or defaults) against
// the template's declarations and returns an evaluator.
func NewEvaluator(t *Template, opts Options) (*Evaluator, error) {
	if opts.StackName == "" {
		opts.StackName = "local"
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	e := &Evaluator{tpl: t, opts: opts, params: map[string]any{}, conds: map[string]bool{}, inProgress: map[string]bool{}}
	names := make([]string, 0, len(t.Parameters))
	for name := range t.Parameters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := t.Parameters[name]
		val, set := opts.Parameters[name]
		if !set {
			if p.Default == nil {
				return nil, fmt.Errorf("parameter %s: no value and no default", name)
			}
			val = scalarString(p.Default)
		}
		if len(p.AllowedValues) > 0 && !contains(p.AllowedValues, val) {
			return nil, fmt.Errorf("parameter %s: %q is not one of %v", name, val, p.AllowedValues)
		}
		if p.AllowedPattern != "" {
			re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
			if err != nil {
				return nil, fmt.Errorf("parameter %s: AllowedPattern: %w", name, err)
			}
			if !re.MatchString(val) {
				return nil, fmt.Errorf("parameter %s: value does not match %s", name, p.AllowedPattern)
			}
		}
		if strings.HasPrefix(p.Type, "List<") || p.Type == "CommaDelimitedList" {
			var list []any
			for _, s := range strings.Split(val, ",") {
				list = append(list, strings.TrimSpace(s))
			}
			e.params[name] = list
		} else {
			e.params[name] = val
		}
	}
	return e, nil
}

// StackName is AWS::StackName.
func (e *Evaluator) StackName() string { return e.opts.StackName }

// Region is AWS::Region.
func (e *Evaluator) Region() string { return e.opts.Region }

// AccountID is AWS::AccountId.
func (e *Evaluator) AccountID() string { return e.opts.AccountID }

// Parameter returns a parameter's value (a string, or []any for lists).
func (e *Evaluator) Parameter(name string) (any, bool) {
	v, ok := e.params[name]
	return v, ok
}

// Enabled reports whether a resource's Condition (if any) holds.
func (e *Evaluator) Enabled(r *Resource) (bool, error) {
	if r.Condition == "" {
		return true, nil
	}
	return e.Condition(r.Condition)
}

// Condition evaluates a named condition.
func (e *Evaluator) Condition(name string) (bool, error) {
	if v, ok := e.conds[name]; ok {
		return v, nil
	}
	def, ok := e.tpl.Conditions[name]
	if !ok {
		return false, fmt.Errorf("unknown condition %s", name)
	}
	if e.inProgress[name] {
		return false, fmt.Errorf("condition %s refers to itself", name)
	}
	e.inProgress[name] = true
	defer delete(e.inProgress, name)
	v, err := e.Eval(def)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, err := asBool(v)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	e.conds[name] = b
	return b, nil
}

// Eval resolves every intrinsic function in v. Map entries and list items
// that evaluate to AWS::NoValue are dropped; a top-level AWS::NoValue
// returns ErrNoValue.
func (e *Evaluator) Eval(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if fn, arg, ok := intrinsic(x); ok {
			return e.call(fn, arg)
		}
		out := make(map[string]any, len(x))
		for k, item := range x {
			r, err := e.Eval(item)
			if errors.Is(err, ErrNoValue) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, item := range x {
			r, err := e.Eval(item)
			if errors.Is(err, ErrNoValue) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, r)
		}
		return out, nil
	default:
		return v, nil
	}
}

// EvalString evaluates v and renders it as a string.
func (e *Evaluator) EvalString(v any) (string, error) {
	r, err := e.Eval(v)
	if err != nil {
		return "", err
	}
	switch r.(type) {
	case map[string]any, []any:
		return "", fmt.Errorf("want a string, got %T", r)
	}
	return scalarString(r), nil
}

// intrinsic recognises a one-key map naming an intrinsic function.
func intrinsic(m map[string]any) (string, any, bool) {
	if len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		if k == "Condition" {
			// {"Condition": "Name"} in a condition; a policy's Condition
			// block is a map.
			_, isName := v.(string)
			return k, v, isName
		}
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, v, true
		}
	}
	return "", nil, false
}

func isIntrinsic(m map[string]any) bool {
	_, _, ok := intrinsic(m)
	return ok
}

func (e *Evaluator) call(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("!Ref wants a name, got %T", arg)
		}
		return e.ref(name)
	case "Condition":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Condition wants a name, got %T", arg)
		}
		return e.Condition(name)
	case "Fn::GetAtt":
		return e.getAtt(arg)
	case "Fn::Sub":
		return e.sub(arg)
	case "Fn::Join":
		return e.join(arg)
	case "Fn::Select":
		return e.selectFn(arg)
	case "Fn::Split":
		return e.split(arg)
	case "Fn::If":
		return e.ifFn(arg)
	case "Fn::Equals":
		args, err := e.evalList(fn, arg, 2)
		if err != nil {
			return nil, err
		}
		return canonical(args[0]) == canonical(args[1]), nil
	case "Fn::Not":
		args, err := e.evalList(fn, arg, 1)
		if err != nil {
			return nil, err
		}
		b, err := asBool(args[0])
		return !b, err
	case "Fn::And", "Fn::Or":
		args, err := e.evalList(fn, arg, -1)
		if err != nil {
			return nil, err
		}
		and := fn == "Fn::And"
		for _, a := range args {
			b, err := asBool(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			if and && !b {
				return false, nil
			}
			if !and && b {
				return true, nil
			}
		}
		return and, nil
	case "Fn::FindInMap":
		return e.findInMap(arg)
	case "Fn::Base64":
		s, err := e.EvalString(arg)
		if err != nil {
			return nil, fmt.Errorf("Fn::Base64: %w", err)
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Fn::GetAZs":
		r := e.opts.Region
		return []any{r + "a", r + "b", r + "c"}, nil
	case "Fn::ToJsonString":
		v, err := e.Eval(arg)
		if err != nil {
			return nil, fmt.Errorf("Fn::ToJsonString: %w", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("Fn::ToJsonString: %w", err)
		}
		return string(b), nil
	case "Fn::Length":
		v, err := e.Eval(arg)
		if err != nil {
			return nil, fmt.Errorf("Fn::Length: %w", err)
		}
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Length wants a list, got %T", v)
		}
		return len(l), nil
	}
	return nil, fmt.Errorf("%s is not supported locally", fn)
}

func (e *Evaluator) evalList(fn string, arg any, n int) ([]any, error) {
	l, ok := arg.([]any)
	if !ok || (n >= 0 && len(l) != n) {
		return nil, fmt.Errorf("%s wants a list of %d, got %v", fn, n, arg)
	}
	out := make([]any, len(l))
	for i, a := range l {
		v, err := e.Eval(a)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", fn, i, err)
		}
		out[i] = v
	}
	return out, nil
}

// ref resolves a parameter, pseudo parameter or resource name.
func (e *Evaluator) ref(name string) (any, error) {
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	switch name {
	case "AWS::Region":
		return e.opts.Region, nil
	case "AWS::AccountId":
		return e.opts.AccountID, nil
	case "AWS::Partition":
		return DefaultPartition, nil
	case "AWS::URLSuffix":
		return DefaultURLSuffix, nil
	case "AWS::StackName":
		return e.opts.StackName, nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/%s", DefaultPartition, e.opts.Region, e.opts.AccountID, e.opts.StackName, syntheticUUID(e.opts.StackName)), nil
	case "AWS::NotificationARNs":
		return []any{}, nil
	case "AWS::NoValue":
		return nil, ErrNoValue
	}
	if e.opts.Resources == nil {
		return nil, fmt.Errorf("!Ref %s: no resource resolver", name)
	}
	v, err := e.opts.Resources.Ref(name)
	if err != nil {
		return nil, fmt.Errorf("!Ref %s: %w", name, err)
	}
	return v, nil
}

func (e *Evaluator) getAtt(arg any) (any, error) {
	var res, attr string
	switch a := arg.(type) {
	case string:
		var ok bool
		if res, attr, ok = strings.Cut(a, "."); !ok {
			return nil, fmt.Errorf("Fn::GetAtt %q needs Resource.Attribute", a)
		}
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt wants [resource, attribute], got %v", a)
		}
		var err error
		if res, err = e.EvalString(a[0]); err != nil {
			return nil, fmt.Errorf("Fn::GetAtt resource: %w", err)
		}
		if attr, err = e.EvalString(a[1]); err != nil {
			return nil, fmt.Errorf("Fn::GetAtt attribute: %w", err)
		}
	default:
		return nil, fmt.Errorf("Fn::GetAtt wants [resource, attribute], got %T", arg)
	}
	if e.opts.Resources == nil {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no resource resolver", res, attr)
	}
	v, err := e.opts.Resources.GetAtt(res, attr)
	if err != nil {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: %w", res, attr, err)
	}
	return v, nil
}

// subVar matches ${Name}, ${Res.Attr} and ${!Literal} in Fn::Sub strings.
var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (e *Evaluator) sub(arg any) (any, error) {
	var tmpl string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub wants [string, map], got %v", a)
		}
		s, ok := a[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub template is %T, want a string", a[0])
		}
		tmpl = s
		m, ok := a[1].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub variables are %T, want a map", a[1])
		}
		for k, v := range m {
			r, err := e.Eval(v)
			if err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = r
		}
	default:
		return nil, fmt.Errorf("Fn::Sub wants a string or [string, map], got %T", arg)
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		var v any
		var err error
		if val, ok := vars[name]; ok {
			v = val
		} else if res, attr, dotted := strings.Cut(name, "."); dotted && !strings.HasPrefix(name, "AWS::") {
			v, err = e.getAtt([]any{res, attr})
		} else {
			v, err = e.ref(name)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return m
		}
		return scalarString(v)
	})
	if firstErr != nil {
		return nil, fmt.Errorf("Fn::Sub: %w", firstErr)
	}
	return out, nil
}

func (e *Evaluator) join(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) != 2 {
		return nil, fmt.Errorf("Fn::Join wants [delimiter, list], got %v", arg)
	}
	delim, err := e.EvalString(a[0])
	if err != nil {
		return nil, fmt.Errorf("Fn::Join delimiter: %w", err)
	}
	lv, err := e.Eval(a[1])
	if err != nil {
		return nil, fmt.Errorf("Fn::Join: %w", err)
	}
	list, ok := lv.([]any)
	if !ok {
		return nil, fmt.Errorf("Fn::Join wants a list, got %T", lv)
	}
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = scalarString(p)
	}
	return strings.Join(parts, delim), nil
}

func (e *Evaluator) selectFn(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) != 2 {
		return nil, fmt.Errorf("Fn::Select wants [index, list], got %v", arg)
	}
	is, err := e.EvalString(a[0])
	if err != nil {
		return nil, fmt.Errorf("Fn::Select index: %w", err)
	}
	i, err := strconv.Atoi(is)
	if err != nil {
		return nil, fmt.Errorf("Fn::Select index %q: %w", is, err)
	}
	lv, err := e.Eval(a[1])
	if err != nil {
		return nil, fmt.Errorf("Fn::Select: %w", err)
	}
	list, ok := lv.([]any)
	if !ok {
		return nil, fmt.Errorf("Fn::Select wants a list, got %T", lv)
	}
	if i < 0 || i >= len(list) {
		return nil, fmt.Errorf("Fn::Select index %d out of range (%d items)", i, len(list))
	}
	return list[i], nil
}

func (e *Evaluator) split(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) != 2 {
		return nil, fmt.Errorf("Fn::Split wants [delimiter, string], got %v", arg)
	}
	delim, err := e.EvalString(a[0])
	if err != nil {
		return nil, fmt.Errorf("Fn::Split delimiter: %w", err)
	}
	s, err := e.EvalString(a[1])
	if err != nil {
		return nil, fmt.Errorf("Fn::Split: %w", err)
	}
	var out []any
	for _, p := range strings.Split(s, delim) {
		out = append(out, p)
	}
	return out, nil
}

func (e *Evaluator) ifFn(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) != 3 {
		return nil, fmt.Errorf("Fn::If wants [condition, then, else], got %v", arg)
	}
	name, ok := a[0].(string)
	if !ok {
		return nil, fmt.Errorf("Fn::If condition is %T, want a name", a[0])
	}
	b, err := e.Condition(name)
	if err != nil {
		return nil, fmt.Errorf("Fn::If: %w", err)
	}
	if b {
		return e.Eval(a[1])
	}
	return e.Eval(a[2])
}

func (e *Evaluator) findInMap(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) < 3 {
		return nil, fmt.Errorf("Fn::FindInMap wants [map, key, key], got %v", arg)
	}
	keys := make([]string, 3)
	for i := range keys {
		s, err := e.EvalString(a[i])
		if err != nil {
			return nil, fmt.Errorf("Fn::FindInMap key %d: %w", i, err)
		}
		keys[i] = s
	}
	top := mapOf(e.tpl.Mappings[keys[0]])
	second := mapOf(top[keys[1]])
	v, ok := second[keys[2]]
	if !ok {
		if len(a) == 4 {
			if d := mapOf(a[3]); d != nil {
				if dv, ok := d["DefaultValue"]; ok {
					return e.Eval(dv)
				}
			}
		}
		return nil, fmt.Errorf("Fn::FindInMap: %s/%s/%s not found", keys[0], keys[1], keys[2])
	}
	return e.Eval(v)
}

// scalarString renders a scalar the way CloudFormation does in strings.
func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = scalarString(p)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(x)
	}
}

// canonical is the comparison form of Fn::Equals operands.
func canonical(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return scalarString(v)
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(x) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("want a boolean, got %v", v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
