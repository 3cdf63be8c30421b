// Package schedules does EventBridge Scheduler's job for the local stack:
// moto stores schedules but never fires them. A Ticker lists the schedules
// in moto every ~250 ms and fires the due ones into their targets:
//
//   - at(yyyy-mm-ddThh:mm:ss) once, in ScheduleExpressionTimezone (UTC by
//     default), then deletes the schedule when its ActionAfterCompletion is
//     DELETE;
//   - rate(N minute|minutes|hour|hours|day|days) N after creation (or
//     StartDate), then every N;
//   - cron(minutes hours day-of-month month day-of-week year) without the
//     L, W and # forms (unsupported expressions are logged once);
//
// honouring State DISABLED, StartDate and EndDate. Targets: an SQS queue
// ARN gets SendMessage(Input) (with SqsParameters.MessageGroupId and a
// deduplication id for FIFO queues); a Lambda function ARN invokes that
// function asynchronously with Input, or with Scheduler's default event
// when Input is empty. Deliveries that fail go to the target's
// DeadLetterConfig queue when it has one. The flexible time window is
// ignored: schedules fire at the start of their window.
package schedules

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SchedulerAPI is the part of the Scheduler client the ticker uses.
type SchedulerAPI interface {
	ListSchedules(ctx context.Context, in *scheduler.ListSchedulesInput, opts ...func(*scheduler.Options)) (*scheduler.ListSchedulesOutput, error)
	GetSchedule(ctx context.Context, in *scheduler.GetScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.GetScheduleOutput, error)
	DeleteSchedule(ctx context.Context, in *scheduler.DeleteScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error)
}

// SQSAPI is the part of the SQS client the ticker uses.
type SQSAPI interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Invoker runs a function; *lambdaenv.Pool is one.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Options configure a Ticker.
type Options struct {
	Scheduler SchedulerAPI
	SQS       SQSAPI
	// Function returns the function a Lambda target names (by function
	// name); nil or false means the target is unknown locally.
	Function func(name string) (Invoker, bool)
	// Groups limits the ticker to these schedule groups (default: all).
	Groups []string
	// Interval between passes (default 250 ms).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Ticker fires due schedules.
type Ticker struct {
	opts   Options
	mu     sync.Mutex
	state  map[string]*entry // by schedule ARN
	warned map[string]bool
	queues map[string]string // queue ARN → URL
	async  sync.WaitGroup
}

// entry is what the ticker remembers about one schedule.
type entry struct {
	modified time.Time
	detail   *scheduler.GetScheduleOutput
	expr     expression
	oneTime  bool
	at       time.Time // a one-time schedule's due time
	next     time.Time // zero: nothing more to fire
	fired    bool      // a one-time schedule that has fired
}

// New returns a Ticker; it does no I/O.
func New(opts Options) *Ticker {
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Ticker{opts: opts, state: map[string]*entry{}, warned: map[string]bool{}, queues: map[string]string{}}
}

// Run ticks until ctx ends, then waits for the function invocations it
// started.
func (t *Ticker) Run(ctx context.Context) {
	tick := time.NewTicker(t.opts.Interval)
	defer tick.Stop()
	for {
		if err := t.Tick(ctx); err != nil && ctx.Err() == nil {
			t.warnOnce("tick:"+err.Error(), "schedule pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			t.async.Wait()
			return
		case <-tick.C:
		}
	}
}

// Tick makes one pass: list, refresh changed schedules, fire due ones. It
// must not run concurrently with itself (Run calls it).
func (t *Ticker) Tick(ctx context.Context) error {
	summaries, err := t.list(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range summaries {
		arn := aws.ToString(s.Arn)
		seen[arn] = true
		e, err := t.refresh(ctx, s)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.warnOnce("get:"+arn+err.Error(), "read schedule", "schedule", arn, "error", err)
			continue
		}
		if e != nil {
			t.maybeFire(ctx, arn, e)
		}
	}
	t.mu.Lock()
	for arn := range t.state {
		if !seen[arn] {
			delete(t.state, arn)
		}
	}
	t.mu.Unlock()
	return nil
}

func (t *Ticker) list(ctx context.Context) ([]schedtypes.ScheduleSummary, error) {
	groups := t.opts.Groups
	if len(groups) == 0 {
		groups = []string{""}
	}
	var out []schedtypes.ScheduleSummary
	for _, g := range groups {
		in := &scheduler.ListSchedulesInput{}
		if g != "" {
			in.GroupName = aws.String(g)
		}
		for {
			page, err := t.opts.Scheduler.ListSchedules(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("list schedules: %w", err)
			}
			out = append(out, page.Schedules...)
			if aws.ToString(page.NextToken) == "" {
				break
			}
			in.NextToken = page.NextToken
		}
	}
	return out, nil
}

// refresh returns the schedule's entry, reading it again when it is new or
// was modified. A nil entry means the schedule cannot fire locally.
func (t *Ticker) refresh(ctx context.Context, s schedtypes.ScheduleSummary) (*entry, error) {
	arn := aws.ToString(s.Arn)
	modified := aws.ToTime(s.LastModificationDate)
	t.mu.Lock()
	e, ok := t.state[arn]
	t.mu.Unlock()
	if ok && e.modified.Equal(modified) {
		return e, nil
	}
	d, err := t.opts.Scheduler.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: s.Name, GroupName: s.GroupName})
	if err != nil {
		var nf *schedtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("get schedule %s: %w", aws.ToString(s.Name), err)
	}
	// A schedule that cannot fire locally is remembered as inert, so it is
	// not read again until it changes.
	inert := &entry{modified: modified, detail: d}
	loc := time.UTC
	if tz := aws.ToString(d.ScheduleExpressionTimezone); tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			t.warnOnce("tz:"+arn+tz, "unknown schedule time zone; schedule skipped", "schedule", arn, "timezone", tz)
			t.remember(arn, inert)
			return inert, nil
		}
	}
	anchor := aws.ToTime(d.CreationDate)
	if d.StartDate != nil {
		anchor = *d.StartDate
	}
	if anchor.IsZero() {
		anchor = t.opts.Now()
	}
	expr, err := parseExpression(aws.ToString(d.ScheduleExpression), loc, anchor)
	if err != nil {
		t.warnOnce("expr:"+arn+aws.ToString(d.ScheduleExpression), "schedule not fired locally", "schedule", arn, "error", err)
		t.remember(arn, inert)
		return inert, nil
	}
	ne := &entry{modified: modified, detail: d, expr: expr}
	switch x := expr.(type) {
	case atExpr:
		ne.oneTime, ne.at, ne.next = true, x.at, x.at
		if ok && e.fired && e.oneTime && e.at.Equal(x.at) {
			// Modified without moving its time: it has fired already.
			ne.fired, ne.next = true, time.Time{}
		}
	default:
		if ok && !e.oneTime {
			// Modified: carry on from now rather than replaying the past.
			ne.next, _ = expr.next(t.opts.Now())
		} else {
			// rate: anchor + N; cron: the first match after the anchor.
			ne.next, _ = expr.next(anchor)
		}
	}
	t.remember(arn, ne)
	return ne, nil
}

func (t *Ticker) remember(arn string, e *entry) {
	t.mu.Lock()
	t.state[arn] = e
	t.mu.Unlock()
}

// maybeFire fires e when it is due.
func (t *Ticker) maybeFire(ctx context.Context, arn string, e *entry) {
	now := t.opts.Now()
	if e.next.IsZero() || now.Before(e.next) {
		return
	}
	due := e.next
	d := e.detail
	// Work out what comes after this fire first (recurring schedules skip
	// anything missed rather than firing a backlog).
	if e.oneTime {
		e.next, e.fired = time.Time{}, true
	} else {
		e.next, _ = e.expr.next(now)
	}
	if d.StartDate != nil && due.Before(*d.StartDate) {
		return
	}
	if d.EndDate != nil && due.After(*d.EndDate) {
		e.next = time.Time{}
		return
	}
	if d.State == schedtypes.ScheduleStateDisabled {
		return
	}
	t.fire(ctx, d, due)
	if e.oneTime && d.ActionAfterCompletion == schedtypes.ActionAfterCompletionDelete {
		if _, err := t.opts.Scheduler.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: d.Name, GroupName: d.GroupName}); err != nil {
			t.opts.Logger.Warn("delete completed schedule", "schedule", arn, "error", err)
		}
	}
}

// fire delivers one schedule invocation to its target.
func (t *Ticker) fire(ctx context.Context, d *scheduler.GetScheduleOutput, due time.Time) {
	target := d.Target
	if target == nil {
		return
	}
	arn := aws.ToString(d.Arn)
	targetARN := aws.ToString(target.Arn)
	execID := newID()
	input := aws.ToString(target.Input)
	if input == "" {
		input = defaultEvent(arn, due, execID)
	} else {
		input = substitute(input, arn, due, execID)
	}
	log := t.opts.Logger.With("schedule", aws.ToString(d.GroupName)+"/"+aws.ToString(d.Name), "target", targetARN)
	parts := strings.SplitN(targetARN, ":", 7)
	if len(parts) < 6 {
		t.warnOnce("target:"+targetARN, "schedule target is not an ARN", "schedule", arn, "target", targetARN)
		return
	}
	switch parts[2] {
	case "sqs":
		err := t.send(ctx, targetARN, input, target.SqsParameters, arn, due)
		if err != nil {
			log.Error("schedule delivery failed", "error", err)
			t.deadLetter(ctx, target, input, err, log)
			return
		}
		log.Info("schedule fired", "due", due.Format(time.RFC3339))
	case "lambda":
		name := parts[5]
		if len(parts) == 7 {
			name, _, _ = strings.Cut(parts[6], ":")
		}
		if t.opts.Function == nil {
			t.warnOnce("fn:"+name, "schedule targets an unknown function", "target", targetARN)
			return
		}
		fn, ok := t.opts.Function(name)
		if !ok {
			t.warnOnce("fn:"+name, "schedule targets an unknown function", "target", targetARN)
			return
		}
		log.Info("schedule fired", "due", due.Format(time.RFC3339))
		// Scheduler invokes Lambda asynchronously.
		t.async.Add(1)
		go func() {
			defer t.async.Done()
			if _, err := fn.Invoke(ctx, []byte(input)); err != nil && ctx.Err() == nil {
				log.Error("scheduled invocation failed", "error", err)
			}
		}()
	default:
		t.warnOnce("svc:"+targetARN, "schedule target type is not emulated locally", "target", targetARN)
	}
}

func (t *Ticker) send(ctx context.Context, queueARN, body string, params *schedtypes.SqsParameters, scheduleARN string, due time.Time) error {
	url, err := t.queueURL(ctx, queueARN)
	if err != nil {
		return err
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}
	if strings.HasSuffix(queueARN, ".fifo") {
		group := "default"
		if params != nil && aws.ToString(params.MessageGroupId) != "" {
			group = aws.ToString(params.MessageGroupId)
		}
		sum := sha256.Sum256([]byte(scheduleARN + "@" + due.UTC().Format(time.RFC3339)))
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = aws.String(hex.EncodeToString(sum[:16]))
	}
	if _, err := t.opts.SQS.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send to %s: %w", queueARN, err)
	}
	return nil
}

func (t *Ticker) queueURL(ctx context.Context, arn string) (string, error) {
	t.mu.Lock()
	url, ok := t.queues[arn]
	t.mu.Unlock()
	if ok {
		return url, nil
	}
	parts := strings.Split(arn, ":")
	if len(parts) != 6 {
		return "", fmt.Errorf("%q is not a queue ARN", arn)
	}
	out, err := t.opts.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("find queue %s: %w", arn, err)
	}
	url = aws.ToString(out.QueueUrl)
	t.mu.Lock()
	t.queues[arn] = url
	t.mu.Unlock()
	return url, nil
}

// deadLetter sends an undeliverable event to the target's DLQ, with the
// attributes Scheduler adds.
func (t *Ticker) deadLetter(ctx context.Context, target *schedtypes.Target, body string, cause error, log *slog.Logger) {
	if target.DeadLetterConfig == nil || aws.ToString(target.DeadLetterConfig.Arn) == "" {
		return
	}
	dlq := aws.ToString(target.DeadLetterConfig.Arn)
	url, err := t.queueURL(ctx, dlq)
	if err == nil {
		attr := func(v string) sqstypes.MessageAttributeValue {
			return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
		_, err = t.opts.SQS.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"ERROR_CODE":    attr("TargetUnavailable"),
				"ERROR_MESSAGE": attr(cause.Error()),
				"TARGET_ARN":    attr(aws.ToString(target.Arn)),
			},
		})
	}
	if err != nil {
		log.Error("send to schedule dead-letter queue", "dlq", dlq, "error", err)
	}
}

// defaultEvent is what Scheduler delivers to a templated target without
// Input.
func defaultEvent(scheduleARN string, due time.Time, id string) string {
	parts := strings.Split(scheduleARN, ":")
	region, account := "", ""
	if len(parts) > 4 {
		region, account = parts[3], parts[4]
	}
	b, _ := json.Marshal(map[string]any{
		"version":     "0",
		"id":          id,
		"detail-type": "Scheduled Event",
		"source":      "aws.scheduler",
		"account":     account,
		"time":        due.UTC().Format(time.RFC3339),
		"region":      region,
		"resources":   []string{scheduleARN},
		"detail":      "{}",
	})
	return string(b)
}

// substitute fills Scheduler's context attributes in Input.
func substitute(input, scheduleARN string, due time.Time, execID string) string {
	return strings.NewReplacer(
		"<aws.scheduler.schedule-arn>", scheduleARN,
		"<aws.scheduler.scheduled-time>", due.UTC().Format(time.RFC3339),
		"<aws.scheduler.execution-id>", execID,
		"<aws.scheduler.attempt-number>", strconv.Itoa(1),
	).Replace(input)
}

func (t *Ticker) warnOnce(key, msg string, args ...any) {
	t.mu.Lock()
	seen := t.warned[key]
	t.warned[key] = true
	t.mu.Unlock()
	if !seen {
		t.opts.Logger.Warn(msg, args...)
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
