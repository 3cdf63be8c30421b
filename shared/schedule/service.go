package schedule

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/queue"
)

// Defaults of Config.
const (
	DefaultDirectWithin = 5 * time.Second
	DefaultFireLease    = 2 * time.Minute
	// retryAttempts and maxEventAge are the Scheduler target's retry policy:
	// Scheduler's own maximum, so a fire survives a long queue outage
	// before it goes to the scheduler DLQ.
	retryAttempts = 185
	maxEventAge   = 24 * 60 * 60
)

// deliveryLedger is what the service needs of the delivery ledger
// (ledger.Store).
type deliveryLedger interface {
	CreateAll(ctx context.Context, ds []ledger.NewDelivery) ([]ledger.Delivery, []bool, error)
	Get(ctx context.Context, siteID, id string) (ledger.Delivery, error)
	Cancel(ctx context.Context, siteID, id string) (ledger.Delivery, error)
	Activate(ctx context.Context, siteID, id, scheduleID string) (ledger.Delivery, bool, error)
	ReviseScheduled(ctx context.Context, n ledger.NewDelivery) (ledger.Delivery, error)
	DeleteScheduled(ctx context.Context, siteID, id, scheduleID string) error
}

// snapshotStore keeps post snapshots (compose.Snapshots).
type snapshotStore interface {
	Save(ctx context.Context, siteID string, p compose.Post) (bool, error)
	Get(ctx context.Context, siteID, postID, revision string) (compose.Snapshot, error)
}

// schedulerAPI is the part of the EventBridge Scheduler client the service
// calls.
type schedulerAPI interface {
	CreateSchedule(ctx context.Context, in *scheduler.CreateScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
	UpdateSchedule(ctx context.Context, in *scheduler.UpdateScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.UpdateScheduleOutput, error)
	DeleteSchedule(ctx context.Context, in *scheduler.DeleteScheduleInput, opts ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error)
}

// sqsAPI sends a schedule due within seconds straight to the dispatch
// queue.
type sqsAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// enqueuer sends delivery messages in batches (queue.Client).
type enqueuer interface {
	Send(ctx context.Context, msgs []queue.Outgoing) error
}

// eventPublisher puts an event's message on the webhook queue.
type eventPublisher interface {
	Publish(ctx context.Context, siteID, eventID string) error
}

// Config is what a Service is built from. DB, Table and Ledger are always
// needed; the api function adds Snapshots, the Scheduler settings and SQS;
// the dispatch function, which only fires schedules, adds Queue.
type Config struct {
	DB     dynamoAPI
	Table  string
	Ledger deliveryLedger
	// Snapshots keeps the post snapshot (create) and gives it back to
	// compose again (change of targets or text).
	Snapshots snapshotStore

	// Scheduler, Group, QueueARN, RoleARN and DLQARN write the one-time
	// schedules: in Group, targeting the dispatch queue (QueueARN) with
	// RoleArn, failed fires to the scheduler DLQ.
	Scheduler schedulerAPI
	Group     string
	QueueARN  string
	RoleARN   string
	DLQARN    string
	// Limits pace Scheduler calls and retry throttled ones.
	Limits Limits

	// SQS and QueueURL send a schedule due within DirectWithin (default 5 s)
	// to the dispatch queue directly, with a delay: Scheduler refuses a
	// time in the past, and a time a few seconds ahead may be past by the
	// time it arrives.
	SQS          sqsAPI
	QueueURL     string
	DirectWithin time.Duration

	// Queue enqueues a fired schedule's delivery messages.
	Queue enqueuer
	// Events hands schedule.fired to the webhook queue
	// (shared/event.Publisher); nil leaves it to the sweep.
	Events eventPublisher
	// FireLease bounds a fire in progress: a duplicate fire waits for it, a
	// fire that died is taken over after it (default 2 min).
	FireLease time.Duration

	Logger *slog.Logger
	Now    func() time.Time
	// PaceNow and Sleep are the rate limiter's clock and wait (defaults
	// time.Now and a timer honouring ctx). They are apart from Now, which
	// dates schedules: a test that freezes Now must not freeze the pace.
	PaceNow func() time.Time
	Sleep   func(ctx context.Context, d time.Duration) error
	// Rand is the backoff jitter in [0, 1); nil is math/rand/v2.
	Rand func() float64
	// NewID returns a new schedule id; nil is IDPrefix + 16 random bytes.
	NewID func() (string, error)
}

// Service creates, changes, cancels, lists and fires schedules. It is safe
// for concurrent use.
type Service struct {
	cfg   Config
	store store
	limit *limiter
	log   *slog.Logger
}

// New returns a Service, or an error naming what is missing. It does no
// I/O.
func New(cfg Config) (*Service, error) {
	var missing []string
	if cfg.DB == nil {
		missing = append(missing, "DB")
	}
	if cfg.Table == "" {
		missing = append(missing, "Table")
	}
	if cfg.Ledger == nil {
		missing = append(missing, "Ledger")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("schedule: New needs %s", strings.Join(missing, ", "))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DirectWithin <= 0 {
		cfg.DirectWithin = DefaultDirectWithin
	}
	if cfg.FireLease <= 0 {
		cfg.FireLease = DefaultFireLease
	}
	if cfg.NewID == nil {
		cfg.NewID = newID
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: store{db: cfg.DB, table: cfg.Table},
		limit: newLimiter(cfg.Limits, cfg.PaceNow, cfg.Sleep, cfg.Rand), log: log}, nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate schedule id: %w", err)
	}
	return IDPrefix + idEncoding.EncodeToString(b), nil
}

// writable checks that the service can write Scheduler schedules.
func (s *Service) writable() error {
	var missing []string
	for name, ok := range map[string]bool{
		"Scheduler": s.cfg.Scheduler != nil, "Group": s.cfg.Group != "", "QueueARN": s.cfg.QueueARN != "",
		"RoleARN": s.cfg.RoleARN != "", "Snapshots": s.cfg.Snapshots != nil, "SQS": s.cfg.SQS != nil, "QueueURL": s.cfg.QueueURL != "",
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("schedule: not configured to write schedules: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// NewSchedule is the input of Create.
type NewSchedule struct {
	SiteID        string
	Post          compose.Post
	TargetIDs     []string
	CustomMessage string
	// RequestAIAssets and Overrides are kept on the schedule (see Schedule).
	RequestAIAssets bool
	Overrides       map[string]string
	When            When
	// Deliveries are the composed and validated deliveries, one per target
	// in the order of TargetIDs; Create sets their State and ScheduleID.
	Deliveries []ledger.NewDelivery
}

// Create writes a schedule: the post snapshot, the schedule item and its
// deliveries (scheduled), then the Scheduler schedule. A target that
// already has a delivery of this post revision (dispatched, or in another
// schedule) is a conflict, before anything is written. When the Scheduler
// schedule cannot be created everything is rolled back and the error is
// transient; when even the rollback fails, the schedule is left failed
// and the error names it.
func (s *Service) Create(ctx context.Context, n NewSchedule) (Schedule, []ledger.Delivery, error) {
	if err := s.writable(); err != nil {
		return Schedule{}, nil, err
	}
	if len(n.Deliveries) == 0 || len(n.Deliveries) != len(n.TargetIDs) {
		return Schedule{}, nil, fmt.Errorf("create schedule: %d deliveries for %d targets", len(n.Deliveries), len(n.TargetIDs))
	}
	id, err := s.cfg.NewID()
	if err != nil {
		return Schedule{}, nil, err
	}
	news := make([]ledger.NewDelivery, len(n.Deliveries))
	ids := make([]string, len(n.Deliveries))
	for i, d := range n.Deliveries {
		d.State, d.ScheduleID = ledger.StateScheduled, id
		news[i] = d
		ids[i] = ledger.DeliveryID(d.SiteID, d.PostID, d.Revision, d.TargetID)
	}
	if err := s.checkFree(ctx, n.SiteID, n.Post.PostID, n.Post.Revision, id, news); err != nil {
		return Schedule{}, nil, err
	}
	if _, err := s.cfg.Snapshots.Save(ctx, n.SiteID, n.Post); err != nil {
		return Schedule{}, nil, fmt.Errorf("create schedule: %w", err)
	}
	now := s.cfg.Now().UTC()
	r := record{Schedule: Schedule{
		ID: id, SiteID: n.SiteID, PostID: n.Post.PostID, Revision: n.Post.Revision,
		TargetIDs: slices.Clone(n.TargetIDs), CustomMessage: n.CustomMessage, DeliveryIDs: ids,
		RequestAIAssets: n.RequestAIAssets, Overrides: maps.Clone(n.Overrides),
		State: StateScheduled, Version: 1, ScheduledFor: n.When.At.UTC(), Timezone: n.When.Zone, Resolution: n.When.Resolution,
		SchedulerName: SchedulerName(id), Via: s.via(n.When.At), CreatedAt: now, UpdatedAt: now,
	}, MaxVersion: 1}
	r, err = s.store.create(ctx, r)
	if err != nil {
		return Schedule{}, nil, fmt.Errorf("create schedule: %w", err)
	}
	ds, created, err := s.cfg.Ledger.CreateAll(ctx, news)
	if err != nil {
		return Schedule{}, nil, s.rollbackCreate(ctx, r, nil, false, fmt.Errorf("create deliveries of schedule %s: %w", id, err))
	}
	var mine []string
	var taken problems
	for i, d := range ds {
		switch {
		case created[i]:
			mine = append(mine, d.ID)
		case d.ScheduleID != id:
			// Another dispatch or schedule created it since the check.
			taken.add(fmt.Sprintf("targets[%s]", d.TargetID), "%s", takenBy(d))
		}
	}
	if len(taken) > 0 {
		return Schedule{}, nil, s.rollbackCreate(ctx, r, mine, false, takenError(n.Post.PostID, n.Post.Revision, taken))
	}
	if err := s.arm(ctx, r, false); err != nil {
		return Schedule{}, nil, s.rollbackCreate(ctx, r, mine, true, err)
	}
	s.log.InfoContext(ctx, "schedule created", "site", r.SiteID, "schedule_id", r.ID, "post_id", r.PostID,
		"deliveries", len(ds), "scheduled_for", r.ScheduledFor.Format(time.RFC3339), "via", r.Via)
	return r.Schedule, ds, nil
}

// problems collects per-field problems.
type problems []apperr.Problem

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// takenBy says what holds a delivery that a schedule wanted to create.
func takenBy(d ledger.Delivery) string {
	if d.ScheduleID != "" {
		return fmt.Sprintf("delivery %s of this post revision to target %s belongs to schedule %s (%s)", d.ID, d.TargetID, d.ScheduleID, d.State)
	}
	return fmt.Sprintf("this post revision was already dispatched to target %s (delivery %s, %s)", d.TargetID, d.ID, d.State)
}

// takenError is the conflict of targets that already have a delivery of
// the revision.
func takenError(postID, revision string, ps problems) error {
	e := apperr.Newf(apperr.KindConflict, "already_dispatched",
		"nothing was scheduled: post %s revision %s already has a delivery to %d of these targets (%s). A revision is published to a target once: "+
			"change the existing schedule (PATCH /v1/schedules/{id}), or schedule a new revision", postID, revision, len(ps), ps[0].Message)
	e.Problems = ps
	return e
}

// checkFree returns a conflict when any of news already has a delivery
// that does not belong to schedule id.
func (s *Service) checkFree(ctx context.Context, siteID, postID, revision, id string, news []ledger.NewDelivery) error {
	var taken problems
	for _, n := range news {
		did := ledger.DeliveryID(n.SiteID, n.PostID, n.Revision, n.TargetID)
		d, err := s.cfg.Ledger.Get(ctx, siteID, did)
		switch {
		case apperr.Is(err, apperr.KindNotFound):
		case err != nil:
			return fmt.Errorf("check delivery %s: %w", did, err)
		case d.ScheduleID != id:
			taken.add(fmt.Sprintf("targets[%s]", n.TargetID), "%s", takenBy(d))
		}
	}
	if len(taken) > 0 {
		return takenError(postID, revision, taken)
	}
	return nil
}

// rollbackCreate undoes a schedule that could not be created: its new
// deliveries, the Scheduler schedule (when it may exist) and the item. It
// returns cause, or, when the rollback fails too, an error saying the
// schedule is left failed.
func (s *Service) rollbackCreate(ctx context.Context, r record, deliveryIDs []string, armed bool, cause error) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for _, id := range deliveryIDs {
		if err := s.cfg.Ledger.DeleteScheduled(ctx, r.SiteID, id, r.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if armed {
		// A Scheduler error may be ambiguous (the schedule was created
		// after all). A fire of a schedule that does not exist does
		// nothing, but delete it anyway.
		if err := s.unarm(ctx, r); err != nil {
			s.log.WarnContext(ctx, "rolled back schedule left in Scheduler", "site", r.SiteID, "schedule_id", r.ID, "err", err)
		}
	}
	if len(errs) == 0 {
		if err := s.store.remove(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		s.log.WarnContext(ctx, "schedule rolled back", "site", r.SiteID, "schedule_id", r.ID, "err", cause)
		if apperr.KindOf(cause) == apperr.KindInternal {
			return apperr.Wrap(cause, apperr.KindTransient, "schedule_not_created",
				"the schedule could not be created and nothing was scheduled; try again")
		}
		return cause
	}
	rollback := errors.Join(errs...)
	s.log.ErrorContext(ctx, "schedule rollback failed", "site", r.SiteID, "schedule_id", r.ID, "err", rollback, "cause", cause)
	s.markFailed(ctx, r, "the schedule could not be created")
	return apperr.Wrap(fmt.Errorf("%w; rollback: %w", cause, rollback), apperr.KindTransient, "schedule_failed",
		fmt.Sprintf("the schedule could not be created; schedule %s is left failed and will not publish. Cancel it "+
			"(DELETE /v1/schedules/%s) before scheduling this revision again", r.ID, r.ID))
}

// markFailed records that a schedule that has not fired cannot fire, best
// effort.
func (s *Service) markFailed(ctx context.Context, r record, why string) {
	for range 3 {
		if r.State != StateScheduled {
			return
		}
		r.State, r.Failure, r.UpdatedAt = StateFailed, why, s.cfg.Now().UTC()
		_, err := s.store.put(ctx, r)
		if err == nil {
			return
		}
		cur, gerr := s.store.get(ctx, r.SiteID, r.ID)
		if gerr != nil || !errors.Is(err, errStale) {
			s.log.ErrorContext(ctx, "mark schedule failed", "site", r.SiteID, "schedule_id", r.ID, "err", err)
			return
		}
		r = cur
	}
}

// via decides how a schedule at at reaches the queue.
func (s *Service) via(at time.Time) string {
	if !at.After(s.cfg.Now().Add(s.cfg.DirectWithin)) {
		return ViaQueue
	}
	return ViaScheduler
}

// arm makes r fire: it writes its Scheduler schedule (creating or
// replacing it, update says which is expected), or, for a schedule due
// within seconds, sends its fire message to the queue with a delay.
func (s *Service) arm(ctx context.Context, r record, update bool) error {
	msg := ledger.ScheduleMessage(r.SiteID, r.ID, r.Version).Encode()
	if r.Via == ViaQueue {
		delay := int32(math.Ceil(r.ScheduledFor.Sub(s.cfg.Now()).Seconds()))
		delay = max(0, min(delay, 900))
		_, err := s.cfg.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.cfg.QueueURL, MessageBody: &msg, DelaySeconds: delay})
		if err != nil {
			return fmt.Errorf("send schedule %s v%d to the dispatch queue: %w", r.ID, r.Version, err)
		}
		if update {
			// An earlier version may still wait in Scheduler; its fire would
			// be stale, but remove it.
			if err := s.unarm(ctx, r); err != nil {
				s.log.WarnContext(ctx, "remove replaced Scheduler schedule", "schedule_id", r.ID, "err", err)
			}
		}
		return nil
	}
	in := s.createInput(r, msg)
	create := func(ctx context.Context) error {
		_, err := s.cfg.Scheduler.CreateSchedule(ctx, in)
		return err
	}
	replace := func(ctx context.Context) error {
		_, err := s.cfg.Scheduler.UpdateSchedule(ctx, updateInput(in))
		return err
	}
	first, second, firstOp, secondOp := create, replace, "create", "update"
	if update {
		first, second, firstOp, secondOp = replace, create, "update", "create"
	}
	err := s.limit.do(ctx, firstOp+" Scheduler schedule "+r.SchedulerName, first)
	var exists *schedtypes.ConflictException
	var missing *schedtypes.ResourceNotFoundException
	if !update && errors.As(err, &exists) || update && errors.As(err, &missing) {
		// Create: a retry of our own earlier call created it. Update: it
		// fired into a stale no-op and was deleted after completion, or was
		// sent via the queue. Either way, write it the other way.
		err = s.limit.do(ctx, secondOp+" Scheduler schedule "+r.SchedulerName, second)
	}
	if err != nil {
		return fmt.Errorf("write Scheduler schedule %s of %s v%d: %w", r.SchedulerName, r.ID, r.Version, err)
	}
	return nil
}

// createInput is r's Scheduler schedule.
func (s *Service) createInput(r record, msg string) *scheduler.CreateScheduleInput {
	expr, zone := Expression(r.When())
	in := &scheduler.CreateScheduleInput{
		Name:                       aws.String(r.SchedulerName),
		GroupName:                  aws.String(s.cfg.Group),
		ScheduleExpression:         aws.String(expr),
		ScheduleExpressionTimezone: aws.String(zone),
		FlexibleTimeWindow:         &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		ActionAfterCompletion:      schedtypes.ActionAfterCompletionDelete,
		State:                      schedtypes.ScheduleStateEnabled,
		Description:                aws.String(truncate("POSSE: post "+r.PostID+" revision "+r.Revision+", schedule "+r.ID+" v"+strconv.Itoa(r.Version), 512)),
		Target: &schedtypes.Target{
			Arn:         aws.String(s.cfg.QueueARN),
			RoleArn:     aws.String(s.cfg.RoleARN),
			Input:       aws.String(msg),
			RetryPolicy: &schedtypes.RetryPolicy{MaximumRetryAttempts: aws.Int32(retryAttempts), MaximumEventAgeInSeconds: aws.Int32(maxEventAge)},
		},
	}
	if s.cfg.DLQARN != "" {
		in.Target.DeadLetterConfig = &schedtypes.DeadLetterConfig{Arn: aws.String(s.cfg.DLQARN)}
	}
	return in
}

// updateInput is the UpdateSchedule form of in: UpdateSchedule replaces
// every setting, ActionAfterCompletion included.
func updateInput(in *scheduler.CreateScheduleInput) *scheduler.UpdateScheduleInput {
	return &scheduler.UpdateScheduleInput{
		Name: in.Name, GroupName: in.GroupName, ScheduleExpression: in.ScheduleExpression,
		ScheduleExpressionTimezone: in.ScheduleExpressionTimezone, FlexibleTimeWindow: in.FlexibleTimeWindow,
		ActionAfterCompletion: in.ActionAfterCompletion, State: in.State, Description: in.Description, Target: in.Target,
	}
}

// unarm deletes r's Scheduler schedule; one that is gone is not an error.
func (s *Service) unarm(ctx context.Context, r record) error {
	err := s.limit.do(ctx, "delete Scheduler schedule "+r.SchedulerName, func(ctx context.Context) error {
		_, err := s.cfg.Scheduler.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(r.SchedulerName), GroupName: aws.String(s.cfg.Group)})
		return err
	})
	var missing *schedtypes.ResourceNotFoundException
	if errors.As(err, &missing) {
		return nil
	}
	return err
}

// Expression returns the Scheduler at() expression of w and the time zone
// it is evaluated in: w's zone, or UTC when w's wall time in its zone is
// ambiguous (the hour the clocks go back), so Scheduler cannot pick the
// other occurrence.
func Expression(w When) (string, string) {
	loc, err := LoadZone(w.Zone)
	zone := w.Zone
	if err != nil {
		loc, zone = time.UTC, "UTC"
	}
	local := w.At.In(loc)
	if len(instantsOf(local, loc)) > 1 {
		local, zone = w.At.UTC(), "UTC"
	}
	return "at(" + local.Format(wallLayout) + ")", zone
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Get returns a site's schedule; another site's is not found.
func (s *Service) Get(ctx context.Context, siteID, id string) (Schedule, error) {
	r, err := s.store.get(ctx, siteID, id)
	if err != nil {
		return Schedule{}, err
	}
	return r.Schedule, nil
}

// List returns up to limit of a site's schedules matching f, soonest
// first, after cursor ("" starts at the soonest), and the next page's
// cursor ("" at the end). A cursor is bound to its site.
func (s *Service) List(ctx context.Context, siteID string, f Filter, limit int, cursor string) ([]Schedule, string, error) {
	rs, next, err := s.store.list(ctx, siteID, f, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	out := make([]Schedule, len(rs))
	for i, r := range rs {
		out[i] = r.Schedule
	}
	return out, next, nil
}

// Overdue lists up to limit schedules, across sites, that should have fired
// before before (still scheduled) or whose fire stalled (firing past its
// lease), oldest first: the sweep reports them.
func (s *Service) Overdue(ctx context.Context, before time.Time, limit int) ([]Ref, error) {
	return s.store.overdue(ctx, before, limit)
}

// Deliveries reads a schedule's deliveries, in the order of its targets;
// one that no longer exists is left out.
func (s *Service) Deliveries(ctx context.Context, sch Schedule) ([]ledger.Delivery, error) {
	out := make([]ledger.Delivery, 0, len(sch.DeliveryIDs))
	for _, id := range sch.DeliveryIDs {
		d, err := s.cfg.Ledger.Get(ctx, sch.SiteID, id)
		if apperr.Is(err, apperr.KindNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read deliveries of schedule %s: %w", sch.ID, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Post returns the snapshot a schedule's deliveries are composed from.
func (s *Service) Post(ctx context.Context, siteID, postID, revision string) (compose.Post, error) {
	if s.cfg.Snapshots == nil {
		return compose.Post{}, errors.New("schedule: no snapshot store configured")
	}
	snap, err := s.cfg.Snapshots.Get(ctx, siteID, postID, revision)
	if err != nil {
		return compose.Post{}, fmt.Errorf("read post %s revision %s: %w", postID, revision, err)
	}
	return snap.Post, nil
}

// notChangeable is the conflict of a change or cancel of a schedule that
// is past changing.
func notChangeable(r record, action string) error {
	switch r.State {
	case StateFiring, StateFired:
		at := r.ScheduledFor
		if r.FiredAt != nil {
			at = *r.FiredAt
		}
		return apperr.Newf(apperr.KindConflict, "already_fired",
			"schedule %s already fired (at %s), so it cannot be %s; a delivery not yet being published can still be cancelled with POST /v1/deliveries/{id}/cancel (deliveries: %s)",
			r.ID, at.UTC().Format(time.RFC3339), action, strings.Join(r.DeliveryIDs, ", "))
	case StateCancelled:
		return apperr.Newf(apperr.KindConflict, "cancelled", "schedule %s was cancelled, so it cannot be %s", r.ID, action)
	case StateFailed:
		return apperr.Newf(apperr.KindConflict, "failed", "schedule %s failed (%s), so it cannot be %s; cancel it and schedule the post again", r.ID, r.Failure, action)
	}
	return apperr.Newf(apperr.KindConflict, "not_changeable", "schedule %s is %s, so it cannot be %s", r.ID, r.State, action)
}

// Changeable returns nil when sch has not fired and is not cancelled or
// failed, so it can still be changed (action says what is refused, for the
// message); else the conflict Update or Cancel would answer.
func Changeable(sch Schedule, action string) error {
	if sch.State == StateScheduled {
		return nil
	}
	return notChangeable(record{Schedule: sch}, action)
}
