package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/samtemplate"
)

// queue creates an SQS queue with every attribute the template sets.
func (d *deployer) queue(ctx context.Context, r *samtemplate.Resource) error {
	p, err := d.props(r)
	if err != nil {
		return err
	}
	fifo, _ := samtemplate.Bool(p["FifoQueue"])
	name := samtemplate.String(p["QueueName"])
	if name == "" {
		max := 80
		if fifo {
			max = 75
		}
		name = samtemplate.PhysicalName(d.s.Name, r.LogicalID, max)
		if fifo {
			name += ".fifo"
		}
	}
	attrs := map[string]string{}
	for k, v := range p {
		if k == "QueueName" || k == "Tags" {
			continue
		}
		attrs[k] = attributeString(v)
	}
	out, err := d.c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(name),
		Attributes: attrs,
		Tags:       tagMap(p["Tags"]),
	})
	if err != nil {
		return fmt.Errorf("create queue %s (%s): %w", name, r.LogicalID, err)
	}
	url := aws.ToString(out.QueueUrl)
	got, err := d.c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("read arn of queue %s: %w", name, err)
	}
	arn := got.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	d.s.Queues[r.LogicalID] = Queue{LogicalID: r.LogicalID, Name: name, URL: url, ARN: arn, FIFO: fifo, Attributes: attrs}
	d.s.reg.set(r.LogicalID, r.Type, url, map[string]any{"Arn": arn, "QueueName": name, "QueueUrl": url})
	d.log.Debug("created queue", "logical_id", r.LogicalID, "name", name)
	return nil
}

// attributeString renders a property as an SQS attribute value: JSON for
// maps and lists (RedrivePolicy, RedriveAllowPolicy, Policy), else text.
func attributeString(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return samtemplate.String(v)
}

func tagMap(v any) map[string]string {
	list, _ := v.([]any)
	if len(list) == 0 {
		if m, ok := v.(map[string]any); ok {
			out := map[string]string{}
			for k, x := range m {
				out[k] = samtemplate.String(x)
			}
			return out
		}
		return nil
	}
	out := map[string]string{}
	for _, item := range list {
		m, _ := item.(map[string]any)
		out[samtemplate.String(m["Key"])] = samtemplate.String(m["Value"])
	}
	return out
}

// cfnTable is AWS::DynamoDB::Table's properties, decoded leniently.
type cfnTable struct {
	TableName            string
	BillingMode          string
	TableClass           string
	AttributeDefinitions []struct {
		AttributeName string
		AttributeType string
	}
	KeySchema                 []cfnKey
	GlobalSecondaryIndexes    []cfnIndex
	LocalSecondaryIndexes     []cfnIndex
	ProvisionedThroughput     *cfnThroughput
	DeletionProtectionEnabled flexBool
	StreamSpecification       *struct{ StreamViewType string }
	SSESpecification          *struct {
		SSEEnabled     flexBool
		SSEType        string
		KMSMasterKeyId string
	}
	TimeToLiveSpecification *struct {
		AttributeName string
		Enabled       flexBool
	}
	PointInTimeRecoverySpecification *struct {
		PointInTimeRecoveryEnabled flexBool
		RecoveryPeriodInDays       flexInt
	}
	Tags []struct{ Key, Value string }
}

type cfnKey struct {
	AttributeName string
	KeyType       string
}

type cfnIndex struct {
	IndexName  string
	KeySchema  []cfnKey
	Projection struct {
		ProjectionType   string
		NonKeyAttributes []string
	}
	ProvisionedThroughput *cfnThroughput
}

type cfnThroughput struct {
	ReadCapacityUnits  flexInt
	WriteCapacityUnits flexInt
}

// flexBool accepts true, "true" and "false".
type flexBool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want a boolean, got %s", data)
	}
	*b = flexBool(v)
	return nil
}

// flexInt accepts 5 and "5".
type flexInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *flexInt) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %s", data)
	}
	*n = flexInt(v)
	return nil
}

func decodeProps(p map[string]any, into any) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode properties: %w", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("decode properties: %w", err)
	}
	return nil
}

func keySchema(ks []cfnKey) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, len(ks))
	for i, k := range ks {
		out[i] = ddbtypes.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: ddbtypes.KeyType(k.KeyType)}
	}
	return out
}

func throughput(t *cfnThroughput) *ddbtypes.ProvisionedThroughput {
	if t == nil {
		return nil
	}
	return &ddbtypes.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(int64(t.ReadCapacityUnits)), WriteCapacityUnits: aws.Int64(int64(t.WriteCapacityUnits))}
}

func projection(ix cfnIndex) *ddbtypes.Projection {
	p := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(ix.Projection.ProjectionType)}
	if len(ix.Projection.NonKeyAttributes) > 0 {
		p.NonKeyAttributes = ix.Projection.NonKeyAttributes
	}
	return p
}

// table creates a DynamoDB table with its keys, indexes, billing, SSE and
// stream settings, then TTL and point-in-time recovery.
func (d *deployer) table(ctx context.Context, r *samtemplate.Resource) error {
	p, err := d.props(r)
	if err != nil {
		return err
	}
	var t cfnTable
	if err := decodeProps(p, &t); err != nil {
		return fmt.Errorf("table %s: %w", r.LogicalID, err)
	}
	name := t.TableName
	if name == "" {
		name = samtemplate.PhysicalName(d.s.Name, r.LogicalID, 255)
	}
	in := &dynamodb.CreateTableInput{
		TableName:                 aws.String(name),
		KeySchema:                 keySchema(t.KeySchema),
		ProvisionedThroughput:     throughput(t.ProvisionedThroughput),
		DeletionProtectionEnabled: aws.Bool(bool(t.DeletionProtectionEnabled)),
	}
	if t.BillingMode != "" {
		in.BillingMode = ddbtypes.BillingMode(t.BillingMode)
	}
	if t.TableClass != "" {
		in.TableClass = ddbtypes.TableClass(t.TableClass)
	}
	for _, a := range t.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: ddbtypes.ScalarAttributeType(a.AttributeType),
		})
	}
	for _, ix := range t.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{
			IndexName: aws.String(ix.IndexName), KeySchema: keySchema(ix.KeySchema),
			Projection: projection(ix), ProvisionedThroughput: throughput(ix.ProvisionedThroughput),
		})
	}
	for _, ix := range t.LocalSecondaryIndexes {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, ddbtypes.LocalSecondaryIndex{
			IndexName: aws.String(ix.IndexName), KeySchema: keySchema(ix.KeySchema), Projection: projection(ix),
		})
	}
	if s := t.StreamSpecification; s != nil && s.StreamViewType != "" {
		in.StreamSpecification = &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewType(s.StreamViewType)}
	}
	if s := t.SSESpecification; s != nil {
		sse := &ddbtypes.SSESpecification{Enabled: aws.Bool(bool(s.SSEEnabled))}
		if s.SSEType != "" {
			sse.SSEType = ddbtypes.SSEType(s.SSEType)
		}
		if s.KMSMasterKeyId != "" {
			sse.KMSMasterKeyId = aws.String(s.KMSMasterKeyId)
		}
		in.SSESpecification = sse
	}
	for _, tag := range t.Tags {
		in.Tags = append(in.Tags, ddbtypes.Tag{Key: aws.String(tag.Key), Value: aws.String(tag.Value)})
	}
	out, err := d.c.DynamoDB.CreateTable(ctx, in)
	if err != nil {
		return fmt.Errorf("create table %s (%s): %w", name, r.LogicalID, err)
	}
	arn := aws.ToString(out.TableDescription.TableArn)
	attrs := map[string]any{"Arn": arn}
	if out.TableDescription.LatestStreamArn != nil {
		attrs["StreamArn"] = aws.ToString(out.TableDescription.LatestStreamArn)
	}
	if ttl := t.TimeToLiveSpecification; ttl != nil && ttl.AttributeName != "" {
		if _, err := d.c.DynamoDB.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{
				AttributeName: aws.String(ttl.AttributeName), Enabled: aws.Bool(bool(ttl.Enabled)),
			},
		}); err != nil {
			return fmt.Errorf("set ttl of table %s: %w", name, err)
		}
	}
	if pitr := t.PointInTimeRecoverySpecification; pitr != nil && bool(pitr.PointInTimeRecoveryEnabled) {
		spec := &ddbtypes.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)}
		if pitr.RecoveryPeriodInDays > 0 {
			spec.RecoveryPeriodInDays = aws.Int32(int32(pitr.RecoveryPeriodInDays))
		}
		if _, err := d.c.DynamoDB.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
			TableName: aws.String(name), PointInTimeRecoverySpecification: spec,
		}); err != nil {
			return fmt.Errorf("enable point-in-time recovery of table %s: %w", name, err)
		}
	}
	d.s.Tables[r.LogicalID] = Table{LogicalID: r.LogicalID, Name: name, ARN: arn}
	d.s.reg.set(r.LogicalID, r.Type, name, attrs)
	d.log.Debug("created table", "logical_id", r.LogicalID, "name", name)
	return nil
}

// key creates a KMS key, with rotation when the template enables it.
func (d *deployer) key(ctx context.Context, r *samtemplate.Resource) error {
	p, err := d.props(r)
	if err != nil {
		return err
	}
	in := &kms.CreateKeyInput{Description: aws.String(samtemplate.String(p["Description"]))}
	if v := samtemplate.String(p["KeyUsage"]); v != "" {
		in.KeyUsage = kmstypes.KeyUsageType(v)
	}
	if v := samtemplate.String(p["KeySpec"]); v != "" {
		in.KeySpec = kmstypes.KeySpec(v)
	}
	if pol, ok := p["KeyPolicy"]; ok {
		in.Policy = aws.String(attributeString(pol))
	}
	if mr, ok := samtemplate.Bool(p["MultiRegion"]); ok {
		in.MultiRegion = aws.Bool(mr)
	}
	for k, v := range tagMap(p["Tags"]) {
		in.Tags = append(in.Tags, kmstypes.Tag{TagKey: aws.String(k), TagValue: aws.String(v)})
	}
	out, err := d.c.KMS.CreateKey(ctx, in)
	if err != nil {
		return fmt.Errorf("create key %s: %w", r.LogicalID, err)
	}
	id, arn := aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
	if rot, _ := samtemplate.Bool(p["EnableKeyRotation"]); rot {
		rin := &kms.EnableKeyRotationInput{KeyId: aws.String(id)}
		if days, ok := samtemplate.Int(p["RotationPeriodInDays"]); ok {
			rin.RotationPeriodInDays = aws.Int32(int32(days))
		}
		if _, err := d.c.KMS.EnableKeyRotation(ctx, rin); err != nil {
			return fmt.Errorf("enable rotation of key %s: %w", r.LogicalID, err)
		}
	}
	if enabled, ok := samtemplate.Bool(p["Enabled"]); ok && !enabled {
		if _, err := d.c.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)}); err != nil {
			return fmt.Errorf("disable key %s: %w", r.LogicalID, err)
		}
	}
	d.s.Keys[r.LogicalID] = Key{LogicalID: r.LogicalID, ID: id, ARN: arn}
	d.s.reg.set(r.LogicalID, r.Type, id, map[string]any{"Arn": arn, "KeyId": id})
	d.log.Debug("created key", "logical_id", r.LogicalID, "key_id", id)
	return nil
}

// alias creates a KMS alias.
func (d *deployer) alias(ctx context.Context, r *samtemplate.Resource) error {
	p, err := d.props(r)
	if err != nil {
		return err
	}
	name, target := samtemplate.String(p["AliasName"]), samtemplate.String(p["TargetKeyId"])
	if _, err := d.c.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(target)}); err != nil {
		return fmt.Errorf("create alias %s: %w", name, err)
	}
	d.s.Aliases[r.LogicalID] = Alias{LogicalID: r.LogicalID, Name: name, KeyID: target}
	d.s.reg.set(r.LogicalID, r.Type, name, map[string]any{})
	return nil
}

// scheduleGroup creates a Scheduler schedule group.
func (d *deployer) scheduleGroup(ctx context.Context, r *samtemplate.Resource) error {
	p, err := d.props(r)
	if err != nil {
		return err
	}
	name := samtemplate.String(p["Name"])
	if name == "" {
		name = samtemplate.PhysicalName(d.s.Name, r.LogicalID, 64)
	}
	in := &scheduler.CreateScheduleGroupInput{Name: aws.String(name)}
	for k, v := range tagMap(p["Tags"]) {
		in.Tags = append(in.Tags, schedtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := d.c.Scheduler.CreateScheduleGroup(ctx, in)
	if err != nil {
		return fmt.Errorf("create schedule group %s: %w", name, err)
	}
	arn := aws.ToString(out.ScheduleGroupArn)
	d.s.ScheduleGroups[r.LogicalID] = ScheduleGroup{LogicalID: r.LogicalID, Name: name, ARN: arn}
	d.s.reg.set(r.LogicalID, r.Type, name, map[string]any{"Arn": arn})
	return nil
}

// scheduleResource creates an AWS::Scheduler::Schedule.
func (d *deployer) scheduleResource(ctx context.Context, r *samtemplate.Resource) error {
	p, err := d.props(r)
	if err != nil {
		return err
	}
	if samtemplate.String(p["Name"]) == "" {
		p["Name"] = samtemplate.PhysicalName(d.s.Name, r.LogicalID, 64)
	}
	sc, err := d.createSchedule(ctx, r.LogicalID, p)
	if err != nil {
		return err
	}
	d.s.reg.set(r.LogicalID, r.Type, sc.Name, map[string]any{"Arn": sc.ARN})
	return nil
}

// createSchedule creates a schedule from properties shaped like
// AWS::Scheduler::Schedule's (Name, GroupName, ScheduleExpression, Target...).
func (d *deployer) createSchedule(ctx context.Context, source string, p map[string]any) (Schedule, error) {
	name := samtemplate.String(p["Name"])
	in := &scheduler.CreateScheduleInput{
		Name:               aws.String(name),
		ScheduleExpression: aws.String(samtemplate.String(p["ScheduleExpression"])),
		FlexibleTimeWindow: &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
	}
	for key, dst := range map[string]**string{
		"GroupName":                  &in.GroupName,
		"Description":                &in.Description,
		"ScheduleExpressionTimezone": &in.ScheduleExpressionTimezone,
		"KmsKeyArn":                  &in.KmsKeyArn,
	} {
		if v := samtemplate.String(p[key]); v != "" {
			*dst = aws.String(v)
		}
	}
	if v := samtemplate.String(p["State"]); v != "" {
		in.State = schedtypes.ScheduleState(v)
	}
	for key, dst := range map[string]**time.Time{"StartDate": &in.StartDate, "EndDate": &in.EndDate} {
		if v := samtemplate.String(p[key]); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return Schedule{}, fmt.Errorf("schedule %s %s %q: %w", name, key, v, err)
			}
			*dst = aws.Time(t)
		}
	}
	if ftw, ok := p["FlexibleTimeWindow"].(map[string]any); ok {
		w := &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowMode(samtemplate.String(ftw["Mode"]))}
		if m, ok := samtemplate.Int(ftw["MaximumWindowInMinutes"]); ok {
			w.MaximumWindowInMinutes = aws.Int32(int32(m))
		}
		in.FlexibleTimeWindow = w
	}
	tp, _ := p["Target"].(map[string]any)
	target := &schedtypes.Target{Arn: aws.String(samtemplate.String(tp["Arn"])), RoleArn: aws.String(samtemplate.String(tp["RoleArn"]))}
	if v, ok := tp["Input"]; ok {
		target.Input = aws.String(attributeString(v))
	}
	if rp, ok := tp["RetryPolicy"].(map[string]any); ok {
		target.RetryPolicy = &schedtypes.RetryPolicy{}
		if n, ok := samtemplate.Int(rp["MaximumEventAgeInSeconds"]); ok {
			target.RetryPolicy.MaximumEventAgeInSeconds = aws.Int32(int32(n))
		}
		if n, ok := samtemplate.Int(rp["MaximumRetryAttempts"]); ok {
			target.RetryPolicy.MaximumRetryAttempts = aws.Int32(int32(n))
		}
	}
	if dl, ok := tp["DeadLetterConfig"].(map[string]any); ok {
		if arn := samtemplate.String(dl["Arn"]); arn != "" {
			target.DeadLetterConfig = &schedtypes.DeadLetterConfig{Arn: aws.String(arn)}
		}
	}
	if sp, ok := tp["SqsParameters"].(map[string]any); ok {
		target.SqsParameters = &schedtypes.SqsParameters{MessageGroupId: aws.String(samtemplate.String(sp["MessageGroupId"]))}
	}
	in.Target = target
	out, err := d.c.Scheduler.CreateSchedule(ctx, in)
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule %s (%s): %w", name, source, err)
	}
	sc := Schedule{
		Source: source, Name: name, GroupName: aws.ToString(in.GroupName), ARN: aws.ToString(out.ScheduleArn),
		Expression: aws.ToString(in.ScheduleExpression), TargetARN: aws.ToString(target.Arn),
	}
	if sc.GroupName == "" {
		sc.GroupName = "default"
	}
	d.s.Schedules = append(d.s.Schedules, sc)
	sort.Slice(d.s.Schedules, func(i, j int) bool { return d.s.Schedules[i].Source < d.s.Schedules[j].Source })
	d.log.Debug("created schedule", "source", source, "name", name, "expression", sc.Expression)
	return sc, nil
}
