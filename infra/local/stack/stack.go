// Package stack deploys a SAM template into the local AWS stand-in (moto):
// it creates the SQS queues, DynamoDB tables, KMS keys and aliases,
// Scheduler schedule groups and schedules the template declares, in
// dependency order and with every property the template sets, and resolves
// each serverless function (name, timeout, memory, environment, events)
// against the physical ids it created. Resources the local stack does not
// emulate (log groups, alarms, topics, roles, the HTTP API itself) get
// plausible synthetic ids so references to them still resolve.
package stack

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/samtemplate"
)

// SQSAPI is the part of the SQS client Deploy uses.
type SQSAPI interface {
	CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, opts ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// DynamoDBAPI is the part of the DynamoDB client Deploy uses.
type DynamoDBAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	UpdateContinuousBackups(ctx context.Context, in *dynamodb.UpdateContinuousBackupsInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateContinuousBackupsOutput, error)
}

// KMSAPI is the part of the KMS client Deploy uses.
type KMSAPI interface {
	CreateKey(ctx context.Context, in *kms.CreateKeyInput, opts ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	EnableKeyRotation(ctx context.Context, in *kms.EnableKeyRotationInput, opts ...func(*kms.Options)) (*kms.EnableKeyRotationOutput, error)
	DisableKey(ctx context.Context, in *kms.DisableKeyInput, opts ...func(*kms.Options)) (*kms.DisableKeyOutput, error)
	CreateAlias(ctx context.Context, in *kms.CreateAliasInput, opts ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
}

// SchedulerAPI is the part of the EventBridge Scheduler client Deploy uses.
type SchedulerAPI interface {
	CreateScheduleGroup(ctx context.Context, in *scheduler.CreateScheduleGroupInput, opts ...func(*scheduler.Options)) (*scheduler.CreateScheduleGroupOutput, error)
	CreateSchedule(ctx context.Context, in *scheduler.CreateScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
}

// Clients are the AWS clients Deploy talks to.
type Clients struct {
	SQS       SQSAPI
	DynamoDB  DynamoDBAPI
	KMS       KMSAPI
	Scheduler SchedulerAPI
}

// NewClients builds the clients from one AWS configuration (moto.Config).
func NewClients(cfg aws.Config) Clients {
	return Clients{
		SQS:       sqs.NewFromConfig(cfg),
		DynamoDB:  dynamodb.NewFromConfig(cfg),
		KMS:       kms.NewFromConfig(cfg),
		Scheduler: scheduler.NewFromConfig(cfg),
	}
}

// Options configure Deploy.
type Options struct {
	// Template to deploy.
	Template *samtemplate.Template
	// Parameters override the template's parameter defaults.
	Parameters map[string]string
	// StackName is AWS::StackName and the prefix of generated names.
	StackName string
	// Clients talk to moto.
	Clients Clients
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Stack is what Deploy created, by logical id.
type Stack struct {
	Name           string
	Template       *samtemplate.Template
	Queues         map[string]Queue
	Tables         map[string]Table
	Keys           map[string]Key
	Aliases        map[string]Alias
	ScheduleGroups map[string]ScheduleGroup
	HTTPAPIs       map[string]HTTPAPI
	// Schedules created from AWS::Scheduler::Schedule resources and
	// ScheduleV2 function events.
	Schedules []Schedule
	// Functions in logical id order.
	Functions []Function
	// Skipped lists resources that were not created, with the reason
	// (condition false, or a type the local stack does not emulate).
	Skipped map[string]string

	eval *samtemplate.Evaluator
	reg  *registry
}

// Queue is an SQS queue created in moto.
type Queue struct {
	LogicalID string
	Name      string
	URL       string
	ARN       string
	FIFO      bool
	// Attributes are the attributes Deploy set, as sent to CreateQueue.
	Attributes map[string]string
}

// Table is a DynamoDB table created in moto.
type Table struct {
	LogicalID string
	Name      string
	ARN       string
}

// Key is a KMS key created in moto.
type Key struct {
	LogicalID string
	ID        string
	ARN       string
}

// Alias is a KMS alias created in moto.
type Alias struct {
	LogicalID string
	Name      string
	KeyID     string
}

// ScheduleGroup is a Scheduler schedule group created in moto.
type ScheduleGroup struct {
	LogicalID string
	Name      string
	ARN       string
}

// Schedule is a Scheduler schedule created in moto.
type Schedule struct {
	// Source is the logical id, or <Function>.<Event> for a ScheduleV2 event.
	Source     string
	Name       string
	GroupName  string
	ARN        string
	Expression string
	TargetARN  string
}

// HTTPAPI is an API Gateway HTTP API the local gateway serves.
type HTTPAPI struct {
	LogicalID string
	// ID is the synthetic API id (Ref of the resource).
	ID string
	// StageName is the stage routes are served under; "$default" serves at
	// the root.
	StageName string
}

// Deploy creates the template's resources in moto.
func Deploy(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Template == nil {
		return nil, fmt.Errorf("deploy: no template")
	}
	if opts.StackName == "" {
		opts.StackName = "local"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Stack{
		Name:           opts.StackName,
		Template:       opts.Template,
		Queues:         map[string]Queue{},
		Tables:         map[string]Table{},
		Keys:           map[string]Key{},
		Aliases:        map[string]Alias{},
		ScheduleGroups: map[string]ScheduleGroup{},
		HTTPAPIs:       map[string]HTTPAPI{},
		Skipped:        map[string]string{},
	}
	s.reg = newRegistry(s)
	eval, err := samtemplate.NewEvaluator(opts.Template, samtemplate.Options{
		Parameters: opts.Parameters,
		StackName:  opts.StackName,
		Resources:  s.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", opts.StackName, err)
	}
	s.eval = eval
	order, err := opts.Template.Order()
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", opts.StackName, err)
	}
	d := &deployer{s: s, c: opts.Clients, log: opts.Logger}
	for _, id := range order {
		r := opts.Template.Resources[id]
		ok, err := eval.Enabled(r)
		if err != nil {
			return nil, fmt.Errorf("deploy %s: resource %s: %w", opts.StackName, id, err)
		}
		if !ok {
			s.Skipped[id] = "condition " + r.Condition + " is false"
			s.reg.disabled[id] = true
			continue
		}
		if err := d.create(ctx, r); err != nil {
			return nil, fmt.Errorf("deploy %s: %w", opts.StackName, err)
		}
	}
	// Functions last: their environment and events may refer to anything.
	for _, r := range opts.Template.ResourcesOfType(samtemplate.TypeFunction) {
		if s.reg.disabled[r.LogicalID] {
			continue
		}
		fn, err := d.function(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("deploy %s: function %s: %w", opts.StackName, r.LogicalID, err)
		}
		s.Functions = append(s.Functions, fn)
	}
	return s, nil
}

// Eval evaluates template data (an Outputs value, say) against the stack.
func (s *Stack) Eval(v any) (any, error) { return s.eval.Eval(v) }

// Outputs evaluates the template's Outputs section; outputs whose
// Condition is false are left out.
func (s *Stack) Outputs() (map[string]string, error) {
	out := map[string]string{}
	for name, def := range s.Template.Outputs {
		m, _ := def.(map[string]any)
		if c, ok := m["Condition"].(string); ok {
			if on, err := s.eval.Condition(c); err != nil || !on {
				continue
			}
		}
		v, err := s.eval.EvalString(m["Value"])
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// Function returns the function with a logical id.
func (s *Stack) Function(logicalID string) (Function, bool) {
	for _, f := range s.Functions {
		if f.LogicalID == logicalID {
			return f, true
		}
	}
	return Function{}, false
}

// QueueByARN returns the queue with an ARN.
func (s *Stack) QueueByARN(arn string) (Queue, bool) {
	for _, q := range s.Queues {
		if q.ARN == arn {
			return q, true
		}
	}
	return Queue{}, false
}

// Parameter returns the value a template parameter took.
func (s *Stack) Parameter(name string) (string, bool) {
	v, ok := s.eval.Parameter(name)
	if !ok {
		return "", false
	}
	return samtemplate.String(v), true
}

// deployer creates resources one by one.
type deployer struct {
	s   *Stack
	c   Clients
	log *slog.Logger
}

func (d *deployer) create(ctx context.Context, r *samtemplate.Resource) error {
	switch r.Type {
	case samtemplate.TypeQueue:
		return d.queue(ctx, r)
	case samtemplate.TypeTable:
		return d.table(ctx, r)
	case samtemplate.TypeKey:
		return d.key(ctx, r)
	case samtemplate.TypeAlias:
		return d.alias(ctx, r)
	case samtemplate.TypeScheduleGroup:
		return d.scheduleGroup(ctx, r)
	case samtemplate.TypeSchedule:
		return d.scheduleResource(ctx, r)
	case samtemplate.TypeFunction:
		return d.functionName(r)
	case samtemplate.TypeHTTPAPI:
		return d.httpAPI(r)
	default:
		d.s.reg.synthetic(r, d.s.eval)
		d.s.Skipped[r.LogicalID] = r.Type + " is not emulated locally (synthetic ids only)"
		return nil
	}
}

// props evaluates a resource's properties.
func (d *deployer) props(r *samtemplate.Resource) (map[string]any, error) {
	v, err := d.s.eval.Eval(r.Properties)
	if err != nil {
		return nil, fmt.Errorf("resource %s: %w", r.LogicalID, err)
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func (d *deployer) httpAPI(r *samtemplate.Resource) error {
	stage := "$default"
	if v, ok := r.Properties["StageName"]; ok {
		s, err := d.s.eval.EvalString(v)
		if err != nil {
			return fmt.Errorf("resource %s StageName: %w", r.LogicalID, err)
		}
		stage = s
	}
	id := apiID(d.s.Name, r.LogicalID)
	d.s.HTTPAPIs[r.LogicalID] = HTTPAPI{LogicalID: r.LogicalID, ID: id, StageName: stage}
	d.s.reg.set(r.LogicalID, r.Type, id, map[string]any{
		"ApiId":       id,
		"ApiEndpoint": fmt.Sprintf("https://%s.execute-api.%s.%s", id, d.s.eval.Region(), samtemplate.DefaultURLSuffix),
	})
	d.s.Skipped[r.LogicalID] = "served by the local gateway"
	return nil
}

// apiID is a stable 10-character API id like API Gateway's.
func apiID(stack, logicalID string) string {
	return strings.ToLower(samtemplate.Suffix(stack+"/api/"+logicalID, 10))
}

// SkippedIDs lists Skipped's keys in order.
func (s *Stack) SkippedIDs() []string {
	ids := make([]string, 0, len(s.Skipped))
	for id := range s.Skipped {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
