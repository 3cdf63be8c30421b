package stack

import (
	"fmt"
	"strings"

	"github.com/posse-dev/posse/infra/local/samtemplate"
)

// physical is what one created resource resolves to.
type physical struct {
	typ   string
	ref   any
	attrs map[string]any
	// synthetic resources answer any attribute with a made-up value.
	synthetic bool
}

// registry answers Ref and Fn::GetAtt for the stack's resources.
type registry struct {
	s        *Stack
	byID     map[string]physical
	disabled map[string]bool
}

func newRegistry(s *Stack) *registry {
	return &registry{s: s, byID: map[string]physical{}, disabled: map[string]bool{}}
}

func (r *registry) set(id, typ string, ref any, attrs map[string]any) {
	r.byID[id] = physical{typ: typ, ref: ref, attrs: attrs}
}

// Ref implements samtemplate.Resolver.
func (r *registry) Ref(id string) (any, error) {
	p, err := r.lookup(id)
	if err != nil {
		return nil, err
	}
	return p.ref, nil
}

// GetAtt implements samtemplate.Resolver.
func (r *registry) GetAtt(id, attr string) (any, error) {
	p, err := r.lookup(id)
	if err != nil {
		return nil, err
	}
	v, ok := p.attrs[attr]
	if !ok && p.synthetic {
		return fmt.Sprintf("%v-%s", p.ref, strings.ToLower(attr)), nil
	}
	if !ok {
		return nil, fmt.Errorf("%s (%s) has no attribute %s locally", id, p.typ, attr)
	}
	return v, nil
}

func (r *registry) lookup(id string) (physical, error) {
	if p, ok := r.byID[id]; ok {
		return p, nil
	}
	if r.disabled[id] {
		return physical{}, fmt.Errorf("resource %s is not created (its condition is false)", id)
	}
	if p, ok := r.implicit(id); ok {
		return p, nil
	}
	if _, ok := r.s.Template.Resources[id]; ok {
		return physical{}, fmt.Errorf("resource %s is not created yet", id)
	}
	return physical{}, fmt.Errorf("unknown resource %s", id)
}

// implicit resolves the resources SAM generates behind the scenes: a
// function's execution role (<Function>Role) and the implicit HTTP API
// (ServerlessHttpApi).
func (r *registry) implicit(id string) (physical, bool) {
	t := r.s.Template
	if base, ok := strings.CutSuffix(id, "Role"); ok {
		if fn, ok := t.Resources[base]; ok && fn.Type == samtemplate.TypeFunction {
			name := samtemplate.PhysicalName(r.s.Name, id, 64)
			return physical{typ: samtemplate.TypeRole, ref: name, attrs: roleAttrs(name), synthetic: true}, true
		}
	}
	if id == implicitHTTPAPI {
		api := r.s.implicitAPI()
		return physical{typ: samtemplate.TypeHTTPAPI, ref: api.ID, attrs: map[string]any{"ApiId": api.ID}}, true
	}
	return physical{}, false
}

// implicitHTTPAPI is the logical id SAM gives the HTTP API it creates for
// HttpApi events without an ApiId.
const implicitHTTPAPI = "ServerlessHttpApi"

func (s *Stack) implicitAPI() HTTPAPI {
	if api, ok := s.HTTPAPIs[implicitHTTPAPI]; ok {
		return api
	}
	api := HTTPAPI{LogicalID: implicitHTTPAPI, ID: apiID(s.Name, implicitHTTPAPI), StageName: "$default"}
	s.HTTPAPIs[implicitHTTPAPI] = api
	return api
}

func roleAttrs(name string) map[string]any {
	return map[string]any{
		"Arn":    fmt.Sprintf("arn:%s:iam::%s:role/%s", samtemplate.DefaultPartition, samtemplate.DefaultAccountID, name),
		"RoleId": "AROA" + samtemplate.Suffix("role/"+name, 17),
	}
}

// synthetic registers plausible ids for a resource the local stack does not
// emulate: its name property when the template sets one, else a generated
// name, and an ARN in the resource type's service.
func (r *registry) synthetic(res *samtemplate.Resource, eval *samtemplate.Evaluator) {
	region, account, part := eval.Region(), eval.AccountID(), samtemplate.DefaultPartition
	name := samtemplate.PhysicalName(r.s.Name, res.LogicalID, 64)
	for _, key := range []string{"Name", "RoleName", "LogGroupName", "TopicName", "AlarmName", "FunctionName", "BucketName", "RuleName", "StateMachineName", "PolicyName", "DashboardName"} {
		if v, ok := res.Properties[key]; ok {
			if s, err := eval.EvalString(v); err == nil && s != "" {
				name = s
			}
			break
		}
	}
	var ref any = name
	attrs := map[string]any{}
	switch res.Type {
	case samtemplate.TypeRole:
		attrs = roleAttrs(name)
	case "AWS::Logs::LogGroup":
		attrs["Arn"] = fmt.Sprintf("arn:%s:logs:%s:%s:log-group:%s:*", part, region, account, name)
	case "AWS::SNS::Topic":
		arn := fmt.Sprintf("arn:%s:sns:%s:%s:%s", part, region, account, name)
		ref = arn
		attrs["TopicArn"] = arn
		attrs["TopicName"] = name
	case "AWS::SNS::Subscription":
		ref = fmt.Sprintf("arn:%s:sns:%s:%s:%s:%s", part, region, account, name, samtemplate.SyntheticUUID(name))
	case "AWS::CloudWatch::Alarm":
		attrs["Arn"] = fmt.Sprintf("arn:%s:cloudwatch:%s:%s:alarm:%s", part, region, account, name)
	default:
		service := strings.ToLower(strings.Split(res.Type, "::")[1])
		attrs["Arn"] = fmt.Sprintf("arn:%s:%s:%s:%s:%s", part, service, region, account, name)
	}
	attrs["Name"] = name
	r.byID[res.LogicalID] = physical{typ: res.Type, ref: ref, attrs: attrs, synthetic: true}
}
