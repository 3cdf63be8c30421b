package stack

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/posse-dev/posse/infra/local/samtemplate"
)

// Lambda's defaults for properties a function leaves out.
const (
	defaultMemoryMB = 128
	defaultTimeout  = 3 * time.Second
	defaultHandler  = "bootstrap"
)

// Function is an AWS::Serverless::Function with everything resolved.
type Function struct {
	LogicalID     string
	Name          string
	ARN           string
	Handler       string
	Runtime       string
	Architectures []string
	MemoryMB      int
	Timeout       time.Duration
	// Environment is the resolved Environment.Variables (Globals merged).
	Environment map[string]string
	// CodeDir is CodeUri as an absolute folder.
	CodeDir string
	// BuildMethod is Metadata.BuildMethod ("makefile", "go1.x" or empty).
	BuildMethod string
	HTTPEvents  []HTTPEvent
	SQSEvents   []SQSEvent
	// Schedules are the schedules created for its ScheduleV2 events.
	Schedules []Schedule
	// Unsupported lists events of types the local stack does not run
	// ("Name (Type)").
	Unsupported []string
}

// HTTPEvent is an HttpApi event: a route on an HTTP API.
type HTTPEvent struct {
	Name string
	// API is the HTTP API the route belongs to.
	API HTTPAPI
	// Method is GET, POST... or ANY.
	Method string
	// Path is the route path, with {param} and {proxy+} variables.
	Path string
	// PayloadFormatVersion is "2.0" unless the template says otherwise.
	PayloadFormatVersion string
}

// SQSEvent is an SQS event source mapping.
type SQSEvent struct {
	Name                    string
	QueueARN                string
	BatchSize               int
	MaximumBatchingWindow   time.Duration
	ReportBatchItemFailures bool
	Enabled                 bool
	// MaximumConcurrency is ScalingConfig.MaximumConcurrency (0 = unset).
	MaximumConcurrency int
}

// EnvironmentList renders Environment as KEY=VALUE pairs, sorted.
func (f Function) EnvironmentList() []string {
	out := make([]string, 0, len(f.Environment))
	for k, v := range f.Environment {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// functionName registers a function's physical name and ARN, which other
// resources may refer to before the function itself is resolved.
func (d *deployer) functionName(r *samtemplate.Resource) error {
	name := samtemplate.PhysicalName(d.s.Name, r.LogicalID, 64)
	if v, ok := r.Properties["FunctionName"]; ok {
		s, err := d.s.eval.EvalString(v)
		if err != nil {
			return fmt.Errorf("function %s FunctionName: %w", r.LogicalID, err)
		}
		name = s
	}
	arn := fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", samtemplate.DefaultPartition, d.s.eval.Region(), d.s.eval.AccountID(), name)
	d.s.reg.set(r.LogicalID, r.Type, name, map[string]any{"Arn": arn})
	return nil
}

// function resolves a function and creates its ScheduleV2 schedules.
func (d *deployer) function(ctx context.Context, r *samtemplate.Resource) (Function, error) {
	ev := d.s.eval
	name, _ := d.s.reg.Ref(r.LogicalID)
	arn, _ := d.s.reg.GetAtt(r.LogicalID, "Arn")
	f := Function{
		LogicalID: r.LogicalID,
		Name:      samtemplate.String(name),
		ARN:       samtemplate.String(arn),
		Handler:   defaultHandler,
		MemoryMB:  defaultMemoryMB,
		Timeout:   defaultTimeout,
	}
	get := func(key string) (any, bool, error) {
		v, ok := r.Properties[key]
		if !ok {
			return nil, false, nil
		}
		out, err := ev.Eval(v)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", key, err)
		}
		return out, true, nil
	}
	for key, dst := range map[string]*string{"Handler": &f.Handler, "Runtime": &f.Runtime} {
		v, ok, err := get(key)
		if err != nil {
			return f, err
		}
		if ok {
			*dst = samtemplate.String(v)
		}
	}
	if v, ok, err := get("MemorySize"); err != nil {
		return f, err
	} else if ok {
		n, valid := samtemplate.Int(v)
		if !valid {
			return f, fmt.Errorf("MemorySize %v is not a number", v)
		}
		f.MemoryMB = n
	}
	if v, ok, err := get("Timeout"); err != nil {
		return f, err
	} else if ok {
		n, valid := samtemplate.Int(v)
		if !valid {
			return f, fmt.Errorf("the function's Timeout %v is not a number", v)
		}
		f.Timeout = time.Duration(n) * time.Second
	}
	if v, ok, err := get("Architectures"); err != nil {
		return f, err
	} else if ok {
		list, _ := v.([]any)
		for _, a := range list {
			f.Architectures = append(f.Architectures, samtemplate.String(a))
		}
	}
	f.Environment = map[string]string{}
	if v, ok, err := get("Environment"); err != nil {
		return f, err
	} else if ok {
		vars, _ := v.(map[string]any)["Variables"].(map[string]any)
		for k, x := range vars {
			f.Environment[k] = samtemplate.String(x)
		}
	}
	code := "."
	if v, ok, err := get("CodeUri"); err != nil {
		return f, err
	} else if ok {
		if s, isString := v.(string); isString {
			code = s
		} else {
			return f, fmt.Errorf("CodeUri %v: only a local folder is supported", v)
		}
	}
	if !filepath.IsAbs(code) {
		code = filepath.Join(d.s.Template.Dir(), code)
	}
	f.CodeDir = filepath.Clean(code)
	if bm, ok := r.Metadata["BuildMethod"]; ok {
		f.BuildMethod = samtemplate.String(bm)
	}
	events, _ := r.Properties["Events"].(map[string]any)
	names := make([]string, 0, len(events))
	for n := range events {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, en := range names {
		if err := d.event(ctx, r, &f, en, events[en]); err != nil {
			return f, fmt.Errorf("event %s: %w", en, err)
		}
	}
	return f, nil
}

func (d *deployer) event(ctx context.Context, r *samtemplate.Resource, f *Function, name string, raw any) error {
	m, _ := raw.(map[string]any)
	typ := samtemplate.String(m["Type"])
	rawProps, _ := m["Properties"].(map[string]any)
	pv, err := d.s.eval.Eval(rawProps)
	if err != nil {
		return err
	}
	p, _ := pv.(map[string]any)
	if p == nil {
		p = map[string]any{}
	}
	switch typ {
	case "HttpApi":
		api, err := d.eventAPI(rawProps)
		if err != nil {
			return err
		}
		ev := HTTPEvent{Name: name, API: api, Method: "ANY", Path: "$default", PayloadFormatVersion: "2.0"}
		if v := samtemplate.String(p["Method"]); v != "" {
			ev.Method = strings.ToUpper(v)
		}
		if v := samtemplate.String(p["Path"]); v != "" {
			ev.Path = v
		}
		if v := samtemplate.String(p["PayloadFormatVersion"]); v != "" {
			ev.PayloadFormatVersion = v
		}
		f.HTTPEvents = append(f.HTTPEvents, ev)
	case "SQS":
		ev := SQSEvent{Name: name, QueueARN: samtemplate.String(p["Queue"]), BatchSize: 10, Enabled: true}
		if n, ok := samtemplate.Int(p["BatchSize"]); ok {
			ev.BatchSize = n
		}
		if n, ok := samtemplate.Int(p["MaximumBatchingWindowInSeconds"]); ok {
			ev.MaximumBatchingWindow = time.Duration(n) * time.Second
		}
		if b, ok := samtemplate.Bool(p["Enabled"]); ok {
			ev.Enabled = b
		}
		if types, ok := p["FunctionResponseTypes"].([]any); ok {
			for _, t := range types {
				if samtemplate.String(t) == "ReportBatchItemFailures" {
					ev.ReportBatchItemFailures = true
				}
			}
		}
		if sc, ok := p["ScalingConfig"].(map[string]any); ok {
			ev.MaximumConcurrency, _ = samtemplate.Int(sc["MaximumConcurrency"])
		}
		f.SQSEvents = append(f.SQSEvents, ev)
	case "ScheduleV2":
		// SAM names the schedule <Function><Event> and creates a role for it.
		if samtemplate.String(p["Name"]) == "" {
			p["Name"] = r.LogicalID + name
		}
		role := samtemplate.String(p["RoleArn"])
		if role == "" {
			role = roleAttrs(samtemplate.PhysicalName(d.s.Name, r.LogicalID+name+"Role", 64))["Arn"].(string)
		}
		target := map[string]any{"Arn": f.ARN, "RoleArn": role}
		for _, k := range []string{"Input", "RetryPolicy", "DeadLetterConfig"} {
			if v, ok := p[k]; ok {
				target[k] = v
			}
		}
		p["Target"] = target
		sc, err := d.createSchedule(ctx, r.LogicalID+"."+name, p)
		if err != nil {
			return err
		}
		f.Schedules = append(f.Schedules, sc)
	default:
		f.Unsupported = append(f.Unsupported, name+" ("+typ+")")
	}
	return nil
}

// eventAPI finds the HTTP API an HttpApi event attaches to: the resource its
// ApiId refers to, or SAM's implicit API.
func (d *deployer) eventAPI(raw map[string]any) (HTTPAPI, error) {
	ref, ok := raw["ApiId"]
	if !ok {
		return d.s.implicitAPI(), nil
	}
	if m, isMap := ref.(map[string]any); isMap {
		if id, isRef := m["Ref"].(string); isRef {
			if api, found := d.s.HTTPAPIs[id]; found {
				return api, nil
			}
		}
	}
	id, err := d.s.eval.EvalString(ref)
	if err != nil {
		return HTTPAPI{}, fmt.Errorf("ApiId: %w", err)
	}
	for _, api := range d.s.HTTPAPIs {
		if api.ID == id {
			return api, nil
		}
	}
	return HTTPAPI{}, fmt.Errorf("ApiId %s is not an HTTP API of this template", id)
}
