package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/schedule"
)

// scheduleService is what the schedule routes need (shared/schedule.Service).
type scheduleService interface {
	Create(ctx context.Context, n schedule.NewSchedule) (schedule.Schedule, []ledger.Delivery, error)
	Get(ctx context.Context, siteID, id string) (schedule.Schedule, error)
	List(ctx context.Context, siteID string, f schedule.Filter, limit int, cursor string) ([]schedule.Schedule, string, error)
	Update(ctx context.Context, siteID, id string, c schedule.Change) (schedule.Schedule, []ledger.Delivery, error)
	Cancel(ctx context.Context, siteID, id string) (schedule.Schedule, []ledger.Delivery, error)
	Deliveries(ctx context.Context, sch schedule.Schedule) ([]ledger.Delivery, error)
	Post(ctx context.Context, siteID, postID, revision string) (compose.Post, error)
}

// addScheduleRoutes registers the schedule routes.
func (s *Server) addScheduleRoutes() {
	s.add("POST", "/v1/schedules", SiteKey, s.createSchedule)
	s.add("GET", "/v1/schedules", SiteKey, s.listSchedules)
	s.add("GET", "/v1/schedules/{id}", SiteKey, s.getSchedule)
	s.add("PATCH", "/v1/schedules/{id}", SiteKey, s.updateSchedule)
	s.add("DELETE", "/v1/schedules/{id}", SiteKey, s.cancelSchedule)
}

// scheduleRequest is the body of POST /v1/schedules: a dispatch request
// and when.
type scheduleRequest struct {
	Post          *dispatchPost `json:"post"`
	TargetIDs     []string      `json:"targetIds"`
	CustomMessage string        `json:"customMessage"`
	ScheduledFor  string        `json:"scheduledFor"`
	Timezone      string        `json:"timezone"`
	// RequestAIAssets and Overrides are as in a dispatch request; the
	// text is adapted when the schedule fires.
	RequestAIAssets bool              `json:"requestAiAssets"`
	Overrides       map[string]string `json:"overrides"`
	// Variants is as in a dispatch request.
	Variants json.RawMessage `json:"variants"`
}

// schedulePatch is the body of PATCH /v1/schedules/{id}; absent fields
// keep their value.
type schedulePatch struct {
	ScheduledFor  *string   `json:"scheduledFor"`
	Timezone      *string   `json:"timezone"`
	TargetIDs     *[]string `json:"targetIds"`
	CustomMessage *string   `json:"customMessage"`
}

// scheduleView is a schedule as the API shows it.
type scheduleView struct {
	ID            string         `json:"id"`
	State         schedule.State `json:"state"`
	Version       int            `json:"version"`
	PostID        string         `json:"postId"`
	Revision      string         `json:"revision"`
	TargetIDs     []string       `json:"targetIds"`
	CustomMessage string         `json:"customMessage"`
	// ScheduledFor is the instant in the schedule's zone, with its offset;
	// ScheduledForUTC the same instant in UTC; LocalTime the wall time.
	ScheduledFor    string               `json:"scheduledFor"`
	ScheduledForUTC string               `json:"scheduledForUtc"`
	LocalTime       string               `json:"localTime"`
	Timezone        string               `json:"timezone"`
	Resolution      *schedule.Resolution `json:"resolution,omitempty"`
	SchedulerName   string               `json:"schedulerName"`
	DeliveryIDs     []string             `json:"deliveryIds"`
	Deliveries      []ledger.Delivery    `json:"deliveries,omitempty"`
	CreatedAt       time.Time            `json:"createdAt"`
	UpdatedAt       time.Time            `json:"updatedAt"`
	FiredAt         *time.Time           `json:"firedAt,omitempty"`
	CancelledAt     *time.Time           `json:"cancelledAt,omitempty"`
	Failure         string               `json:"failure,omitempty"`
}

func viewOf(sch schedule.Schedule, ds []ledger.Delivery) scheduleView {
	w := sch.When()
	v := scheduleView{
		ID: sch.ID, State: sch.State, Version: sch.Version, PostID: sch.PostID, Revision: sch.Revision,
		TargetIDs: sch.TargetIDs, CustomMessage: sch.CustomMessage,
		ScheduledFor: w.InZone().Format(time.RFC3339), ScheduledForUTC: sch.ScheduledFor.UTC().Format(time.RFC3339),
		LocalTime: w.Local(), Timezone: sch.Timezone, Resolution: sch.Resolution, SchedulerName: sch.SchedulerName,
		DeliveryIDs: sch.DeliveryIDs, Deliveries: ds, CreatedAt: sch.CreatedAt, UpdatedAt: sch.UpdatedAt,
		FiredAt: sch.FiredAt, CancelledAt: sch.CancelledAt, Failure: sch.Failure,
	}
	if v.TargetIDs == nil {
		v.TargetIDs = []string{}
	}
	if v.DeliveryIDs == nil {
		v.DeliveryIDs = []string{}
	}
	return v
}

// schedules returns the schedule service and checks what composing needs.
func (s *Server) schedules(compose bool) (scheduleService, error) {
	if s.d.Schedules == nil {
		return nil, errNotConfigured("schedule service")
	}
	if compose && (s.d.Targets == nil || s.d.Publishers == nil || s.d.Connections == nil) {
		return nil, errNotConfigured("schedule dependency")
	}
	return s.d.Schedules, nil
}

// scheduleID returns the {id} of the path; one that cannot be a schedule
// id is not found (it never reaches a key).
func scheduleID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !schedule.ValidID(id) {
		return "", apperr.NotFound("schedule")
	}
	return id, nil
}

// checkCustom validates a custom message and returns it trimmed.
func checkCustom(in string, ps *problems) string {
	custom := strings.TrimSpace(in)
	if n := utf8.RuneCountInString(custom); n > MaxCustomMessage {
		ps.add("customMessage", "must be at most %d characters, got %d", MaxCustomMessage, n)
	}
	return custom
}

// newDeliveries turns plan's composed targets into the ledger's input.
func newDeliveries(siteID string, post compose.Post, plans []planned) []ledger.NewDelivery {
	news := make([]ledger.NewDelivery, len(plans))
	for i, pl := range plans {
		news[i] = ledger.NewDelivery{
			SiteID: siteID, PostID: post.PostID, Revision: post.Revision, TargetID: pl.t.ID, ConnectionID: pl.t.ConnectionID,
			Platform: pl.t.Platform, Text: pl.post.Text, Link: pl.post.Link, Title: pl.post.Title, Media: pl.post.Media,
			Options: pl.post.Options, RateLimitPerHour: pl.t.HourlyRateLimit, AI: pl.ai, Variant: pl.variant,
		}
	}
	return news
}

// scheduleRejected is the 422 of a schedule request with problems. A
// problem with the time alone keeps its own code and message (the
// spring-forward gap, a time in the past).
func scheduleRejected(timeErr error, ps problems) error {
	if e, ok := apperr.As(timeErr); ok && len(ps) == 0 {
		return e
	}
	if e, ok := apperr.As(timeErr); ok {
		ps = append(problems(e.Problems), ps...)
		if len(e.Problems) > 0 {
			// The time's own message is the precise one.
			ps[0].Message = e.Message
		}
	}
	return apperr.Unprocessable("schedule_rejected", "nothing was scheduled: "+ps[0].Field+": "+ps[0].Message+more(len(ps)), ps)
}

// resolveTime resolves a requested time: a syntax error or unknown zone is
// returned as err (400); a time the rules refuse (past, gap, too far) as
// timeErr (422), to be reported with the other problems.
func resolveTime(req schedule.Request, now time.Time) (w schedule.When, timeErr, err error) {
	w, err = schedule.Resolve(req, now)
	switch {
	case err == nil:
		return w, nil, nil
	case apperr.Is(err, apperr.KindUnprocessable):
		return schedule.When{}, err, nil
	}
	return schedule.When{}, nil, err
}

// createSchedule validates like a dispatch (every problem at once, nothing
// written), resolves the time, and creates the schedule with one
// scheduled delivery per target.
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.schedules(true)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var in scheduleRequest
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	st, err := s.d.Sites.Get(ctx, p.SiteID)
	if err != nil {
		return err
	}
	when, timeErr, err := resolveTime(schedule.Request{ScheduledFor: in.ScheduledFor, Timezone: in.Timezone, DefaultZone: st.Timezone}, s.d.Now())
	if err != nil {
		return err
	}
	var ps problems
	post := checkPost(in.Post, &ps)
	checkTargetIDs(in.TargetIDs, &ps)
	custom := checkCustom(in.CustomMessage, &ps)
	air, err := s.checkAIRequest(in.RequestAIAssets, in.Overrides, in.TargetIDs, &ps)
	if err != nil {
		return err
	}
	vp := s.checkVariants(in.Variants, in.RequestAIAssets, in.Overrides, in.TargetIDs, &ps)
	if timeErr != nil || len(ps) > 0 {
		return scheduleRejected(timeErr, ps)
	}
	var plans []planned
	if vp.n() > 0 {
		plans, ps, err = s.planVariants(ctx, p.SiteID, planInput{post: post, custom: custom, ids: in.TargetIDs, air: air}, vp)
	} else {
		plans, ps, err = s.plan(ctx, p.SiteID, post, custom, in.TargetIDs, air)
	}
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		return scheduleRejected(nil, ps)
	}
	noteAction(r, "schedule.create")
	sch, ds, err := svc.Create(ctx, schedule.NewSchedule{
		SiteID: p.SiteID, Post: post, TargetIDs: in.TargetIDs, CustomMessage: custom, When: when,
		RequestAIAssets: air.adapt, Overrides: air.overrides,
		Deliveries: newDeliveries(p.SiteID, post, plans),
	})
	if err != nil {
		return err
	}
	noteEntity(r, "schedule", sch.ID)
	w.Header().Set("Location", "/v1/schedules/"+sch.ID)
	return writeJSON(w, http.StatusCreated, viewOf(sch, ds))
}

// listSchedules answers GET /v1/schedules?state&from&to&limit&cursor:
// soonest first, without their deliveries.
func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.schedules(false)
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := schedule.Filter{State: schedule.State(q.Get("state"))}
	if f.State != "" && !f.State.Valid() {
		names := make([]string, len(schedule.States))
		for i, st := range schedule.States {
			names[i] = string(st)
		}
		return apperr.Invalid("state", "must be one of "+strings.Join(names, ", "))
	}
	if f.From, err = queryTime(r, "from"); err != nil {
		return err
	}
	if f.To, err = queryTime(r, "to"); err != nil {
		return err
	}
	items, next, err := svc.List(r.Context(), p.SiteID, f, limit, q.Get("cursor"))
	if err != nil {
		return err
	}
	views := make([]scheduleView, len(items))
	for i, sch := range items {
		views[i] = viewOf(sch, nil)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": views, "nextCursor": next})
}

// getSchedule answers GET /v1/schedules/{id} with its deliveries.
func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.schedules(false)
	if err != nil {
		return err
	}
	id, err := scheduleID(r)
	if err != nil {
		return err
	}
	sch, err := svc.Get(r.Context(), p.SiteID, id)
	if err != nil {
		return err
	}
	ds, err := svc.Deliveries(r.Context(), sch)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewOf(sch, ds))
}

// updateSchedule changes the time, targets or text of a schedule that has
// not fired. A local time without timezone is read in the schedule's own
// zone; a new timezone needs a new scheduledFor.
func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.schedules(true)
	if err != nil {
		return err
	}
	ctx := r.Context()
	id, err := scheduleID(r)
	if err != nil {
		return err
	}
	var in schedulePatch
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	switch {
	case in.ScheduledFor == nil && in.Timezone == nil && in.TargetIDs == nil && in.CustomMessage == nil:
		return apperr.Invalid("body", "must change at least one of scheduledFor, timezone, targetIds, customMessage")
	case in.Timezone != nil && in.ScheduledFor == nil:
		return apperr.Invalid("timezone", "can only change together with scheduledFor (the time to read in it)")
	}
	sch, err := svc.Get(ctx, p.SiteID, id)
	if err != nil {
		return err
	}
	if err := schedule.Changeable(sch, "changed"); err != nil {
		return err
	}
	noteEntity(r, "schedule", id)
	noteAction(r, "schedule.update")
	c := schedule.Change{IfVersion: sch.Version}
	var timeErr error
	if in.ScheduledFor != nil {
		req := schedule.Request{ScheduledFor: *in.ScheduledFor, DefaultZone: sch.Timezone}
		if in.Timezone != nil {
			req.Timezone = *in.Timezone
		}
		when, terr, err := resolveTime(req, s.d.Now())
		if err != nil {
			return err
		}
		c.When, timeErr = &when, terr
	}
	var ps problems
	if (in.TargetIDs != nil || in.CustomMessage != nil) && len(sch.DeliveryIDs) > 0 && s.d.Deliveries != nil {
		// A/B variants are planned once, across all the targets: changing
		// the targets or the text would mix them up.
		d, err := s.d.Deliveries.Get(ctx, p.SiteID, sch.DeliveryIDs[0])
		if err != nil && !apperr.Is(err, apperr.KindNotFound) {
			return err
		}
		if d.Variant != "" {
			field := "targetIds"
			if in.TargetIDs == nil {
				field = "customMessage"
			}
			return apperr.Unprocessable("schedule_has_variants", "this schedule publishes A/B variants; its targets and text cannot change: cancel it and schedule again",
				[]apperr.Problem{{Field: field, Message: "cannot change on a schedule with variants"}})
		}
	}
	if in.TargetIDs != nil || in.CustomMessage != nil {
		ids, custom := sch.TargetIDs, sch.CustomMessage
		if in.TargetIDs != nil {
			ids = *in.TargetIDs
			checkTargetIDs(ids, &ps)
		}
		if in.CustomMessage != nil {
			custom = checkCustom(*in.CustomMessage, &ps)
		}
		// The schedule's AI choices stay; an override of a target no
		// longer in the list is dropped with it.
		overrides := map[string]string{}
		for id, text := range sch.Overrides {
			if slices.Contains(ids, id) {
				overrides[id] = text
			}
		}
		air := aiRequest{adapt: sch.RequestAIAssets, overrides: overrides}
		if timeErr == nil && len(ps) == 0 {
			post, err := svc.Post(ctx, p.SiteID, sch.PostID, sch.Revision)
			if err != nil {
				return err
			}
			var plans []planned
			if plans, ps, err = s.plan(ctx, p.SiteID, post, custom, ids, air); err != nil {
				return err
			}
			c.TargetIDs, c.CustomMessage, c.Deliveries = ids, &custom, newDeliveries(p.SiteID, post, plans)
		}
	}
	if timeErr != nil || len(ps) > 0 {
		return scheduleRejected(timeErr, ps)
	}
	sch, ds, err := svc.Update(ctx, p.SiteID, id, c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewOf(sch, ds))
}

// cancelSchedule cancels a schedule that has not fired, with its
// deliveries.
func (s *Server) cancelSchedule(w http.ResponseWriter, r *http.Request, p Principal) error {
	svc, err := s.schedules(false)
	if err != nil {
		return err
	}
	id, err := scheduleID(r)
	if err != nil {
		return err
	}
	noteEntity(r, "schedule", id)
	noteAction(r, "schedule.cancel")
	sch, ds, err := svc.Cancel(r.Context(), p.SiteID, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewOf(sch, ds))
}
