package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/schedule"
	"github.com/posse-dev/posse/shared/target"
)

// Bulk dispatch limits: posts per call (the body itself is limited to
// Deps.MaxBodyBytes, 1 MiB by default) and concurrent item writes.
const (
	MaxBulkItems    = 100
	maxBulkItemID   = 128
	bulkConcurrency = 8
)

// Item outcomes of a bulk dispatch.
const (
	bulkQueued    = "queued"     // deliveries recorded and their messages sent
	bulkScheduled = "scheduled"  // a schedule with scheduled deliveries
	bulkRejected  = "rejected"   // problems: nothing of the item was written
	bulkNotQueued = "not_queued" // written, but its messages could not be sent
)

// bulkItem is one post of a bulk dispatch.
type bulkItem struct {
	// ID is the item's own idempotency key, unique within the call.
	ID              string        `json:"id"`
	Post            *dispatchPost `json:"post"`
	TargetIDs       []string      `json:"targetIds"`
	CustomMessage   string        `json:"customMessage"`
	RequestAIAssets bool          `json:"requestAiAssets"`
	ScheduledFor    string        `json:"scheduledFor"`
	Timezone        string        `json:"timezone"`
}

// bulkRequest is the body of POST /v1/dispatch/bulk.
type bulkRequest struct {
	Items []json.RawMessage `json:"items"`
}

// bulkDelivery is a delivery as a bulk answer shows it.
type bulkDelivery struct {
	ID       string       `json:"id"`
	TargetID string       `json:"targetId"`
	Platform string       `json:"platform"`
	State    ledger.State `json:"state"`
}

// bulkResult is one item's outcome.
type bulkResult struct {
	Index      int              `json:"index"`
	ID         string           `json:"id"`
	Status     string           `json:"status"`
	PostID     string           `json:"postId,omitempty"`
	Revision   string           `json:"revision,omitempty"`
	ScheduleID string           `json:"scheduleId,omitempty"`
	Created    int              `json:"created"`
	Replayed   bool             `json:"replayed,omitempty"`
	Deliveries []bulkDelivery   `json:"deliveries"`
	Code       string           `json:"code,omitempty"`
	Detail     string           `json:"detail,omitempty"`
	Problems   []apperr.Problem `json:"problems,omitempty"`
	item       *bulkItem
	raw        json.RawMessage
	plans      []planned
	post       compose.Post
	when       *schedule.When
	claim      *idempotency.Claim
	write      *txWrite
	msgs       []queue.Outgoing
	custom     string
}

// bulkResponse is the 207 answer of a bulk dispatch.
type bulkResponse struct {
	Items     []bulkResult `json:"items"`
	Queued    int          `json:"queued"`
	Scheduled int          `json:"scheduled"`
	Rejected  int          `json:"rejected"`
	NotQueued int          `json:"notQueued"`
}

// dispatchBulk validates every item, queues the valid ones (each item in
// one transaction: snapshot, deliveries and the item's idempotency
// record; then SendMessageBatch in tens) or schedules them, and answers
// 207 with one result per item. An item with problems does not stop the
// others. An item id already used with the same item answers its first
// result (replayed); with another item, a problem.
func (s *Server) dispatchBulk(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.Targets == nil || s.d.Deliveries == nil || s.d.Snapshots == nil || s.d.Publishers == nil ||
		s.d.Queue == nil || s.d.Connections == nil || s.d.Idempotency == nil || s.tx == nil {
		return errNotConfigured("bulk dispatch dependency")
	}
	ctx := r.Context()
	var in bulkRequest
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	switch {
	case in.Items == nil:
		return apperr.Invalid("items", "is required: 1 to 100 posts")
	case len(in.Items) == 0:
		return apperr.Unprocessable("bulk_rejected", "items: must hold 1 to 100 posts", []apperr.Problem{{Field: "items", Message: "must hold 1 to 100 posts"}})
	case len(in.Items) > MaxBulkItems:
		return apperr.Newf(apperr.KindTooLarge, "too_many_items", "items: a bulk dispatch takes at most %d posts, got %d; split it", MaxBulkItems, len(in.Items))
	}
	results := make([]*bulkResult, len(in.Items))
	var dup problems
	seen := map[string]int{}
	for i, raw := range in.Items {
		res := &bulkResult{Index: i, raw: raw, Deliveries: []bulkDelivery{}}
		results[i] = res
		var it bulkItem
		if err := decodeStrict(raw, &it); err != nil {
			res.reject("items["+fmt.Sprint(i)+"]", "is not a bulk item: "+err.Error())
			continue
		}
		res.item, res.ID = &it, it.ID
		if j, ok := seen[it.ID]; ok && it.ID != "" {
			dup.add(fmt.Sprintf("items[%d].id", i), "repeats items[%d].id (%s): each item needs its own id", j, it.ID)
			continue
		}
		seen[it.ID] = i
	}
	if len(dup) > 0 {
		return apperr.Unprocessable("duplicate_item_ids", "nothing was queued: "+dup[0].Field+": "+dup[0].Message+more(len(dup)), dup)
	}
	if err := s.planBulk(ctx, p.SiteID, results); err != nil {
		return err
	}
	sem := make(chan struct{}, bulkConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	// Scheduled items first, one by one in order: items scheduling the
	// same post revision meet the one-schedule-per-post rule in the order
	// sent. Queued items then run concurrently.
	for _, res := range results {
		if res.Status != "" || res.when == nil || first != nil {
			continue
		}
		first = s.bulkWrite(ctx, p, res)
	}
	for _, res := range results {
		if res.Status != "" || res.when != nil || first != nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.bulkWrite(ctx, p, res); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		// An AWS failure: the items written so far are answered (and
		// their messages sent) when the call is sent again; meanwhile the
		// sweep enqueues their deliveries.
		for _, res := range results {
			s.releaseItem(ctx, res)
		}
		return first
	}
	s.bulkEnqueue(ctx, results)
	s.finishBulk(ctx, results)
	noteEntity(r, "bulk", fmt.Sprintf("%d items", len(results)))
	resp := bulkResponse{Items: make([]bulkResult, len(results))}
	for i, res := range results {
		resp.Items[i] = *res
		switch res.Status {
		case bulkQueued:
			resp.Queued++
		case bulkScheduled:
			resp.Scheduled++
		case bulkNotQueued:
			resp.NotQueued++
		default:
			resp.Rejected++
		}
	}
	s.d.Logger.InfoContext(ctx, "bulk dispatched", "site", p.SiteID, "items", len(results), "queued", resp.Queued,
		"scheduled", resp.Scheduled, "rejected", resp.Rejected, "not_queued", resp.NotQueued)
	return writeJSON(w, http.StatusMultiStatus, resp)
}

// decodeStrict decodes one item: no unknown fields.
func decodeStrict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return fmt.Errorf("%s must be %s", ute.Field, ute.Type)
		}
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// reject marks the item rejected with one problem.
func (res *bulkResult) reject(field, msg string) {
	res.Status, res.Code = bulkRejected, "item_rejected"
	res.Problems = append(res.Problems, apperr.Problem{Field: field, Message: msg})
	res.Detail = "nothing of this item was queued: " + field + ": " + msg
}

// rejectAll marks the item rejected with ps, their fields under
// items[i].
func (res *bulkResult) rejectAll(ps problems) {
	for _, p := range ps {
		res.reject(fmt.Sprintf("items[%d].%s", res.Index, p.Field), p.Message)
	}
	res.Detail = "nothing of this item was queued: " + res.Problems[0].Field + ": " + res.Problems[0].Message + more(len(res.Problems))
}

// planBulk validates every item and plans its targets, reading the
// call's targets and connections once.
func (s *Server) planBulk(ctx context.Context, siteID string, results []*bulkResult) error {
	var defaults []string
	defaultsRead := false
	var all []string
	for _, res := range results {
		if res.item == nil {
			continue
		}
		it := res.item
		if it.TargetIDs == nil {
			if !defaultsRead {
				var err error
				if defaults, err = s.defaultTargets(ctx, siteID); err != nil {
					return err
				}
				defaultsRead = true
			}
			it.TargetIDs = defaults
		}
		all = append(all, it.TargetIDs...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	targets := map[string]target.Target{}
	for start := 0; start < len(all); start += 100 {
		got, err := s.d.Targets.GetMany(ctx, siteID, all[start:min(start+100, len(all))])
		if err != nil {
			return err
		}
		for id, t := range got {
			targets[id] = t
		}
	}
	conns, err := s.connectionsOf(ctx, siteID, targets)
	if err != nil {
		return err
	}
	var zone string
	for _, res := range results {
		if res.item == nil {
			continue
		}
		it := res.item
		var ps problems
		switch {
		case it.ID == "":
			ps.add("id", "is required: the item's own idempotency key")
		case len(it.ID) > maxBulkItemID || idempotency.CheckKey(it.ID) != "":
			ps.add("id", "must be 1 to %d printable ASCII characters without spaces", maxBulkItemID)
		}
		post := checkPost(it.Post, &ps)
		if len(it.TargetIDs) == 0 && it.Post != nil {
			ps.add("targetIds", "names no target and the site has no active target to default to")
		} else {
			checkTargetIDs(it.TargetIDs, &ps)
		}
		custom := checkCustom(it.CustomMessage, &ps)
		if it.RequestAIAssets && !s.d.AIConfigured {
			ps.add("requestAiAssets", "no LLM provider is configured")
		}
		if it.ScheduledFor != "" || it.Timezone != "" {
			if s.d.Schedules == nil {
				ps.add("scheduledFor", "this deployment has no scheduler")
			} else {
				if zone == "" {
					st, err := s.d.Sites.Get(ctx, siteID)
					if err != nil {
						return err
					}
					zone = st.Timezone
				}
				when, timeErr, err := resolveTime(schedule.Request{ScheduledFor: it.ScheduledFor, Timezone: it.Timezone, DefaultZone: zone}, s.d.Now())
				switch {
				case err != nil:
					ps = append(ps, problemsOf(err, "scheduledFor")...)
				case timeErr != nil:
					ps = append(ps, problemsOf(timeErr, "scheduledFor")...)
				default:
					res.when = &when
				}
			}
		}
		res.PostID, res.Revision = post.PostID, post.Revision
		if len(ps) == 0 {
			air := aiRequest{adapt: it.RequestAIAssets}
			res.plans, ps = s.planWith(siteID, post, custom, it.TargetIDs, air, targets, conns)
		}
		if len(ps) > 0 {
			res.rejectAll(ps)
			continue
		}
		res.post = post
		res.custom = custom
	}
	return nil
}

// problemsOf is err's problems, or one naming field.
func problemsOf(err error, field string) problems {
	if e, ok := apperr.As(err); ok {
		if len(e.Problems) > 0 {
			return problems(e.Problems)
		}
		return problems{{Field: field, Message: e.Message}}
	}
	return problems{{Field: field, Message: "is not valid"}}
}

// defaultTargets are the site's active targets: the targets of an item
// that names none.
func (s *Server) defaultTargets(ctx context.Context, siteID string) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		ts, next, err := s.d.Targets.List(ctx, siteID, 100, cursor)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if t.Active {
				ids = append(ids, t.ID)
			}
		}
		if next == "" {
			return ids, nil
		}
		cursor = next
	}
}

// itemKey is the idempotency key of a bulk item id; the fingerprint
// covers the item as sent.
func itemKey(id string) string { return "bulk-item:" + id }

// bulkWrite writes one valid item, holding its id (an idempotency key)
// while it runs: queued (the snapshot, then every delivery of the item in
// one write: all or none) or scheduled (the schedule service's
// one-schedule-per-post rule and token bucket). An item id used before
// answers as then. The id's answer is stored once the item's messages are
// sent (finishBulk).
func (s *Server) bulkWrite(ctx context.Context, p Principal, res *bulkResult) error {
	fp := idempotency.Fingerprint("POST", "/v1/dispatch/bulk#item", res.raw)
	if res.when != nil {
		claim, stored, err := s.d.Idempotency.Begin(ctx, p.SiteID, itemKey(res.ID), fp)
		switch {
		case stored != nil || errors.Is(err, idempotency.ErrReused) || errors.Is(err, idempotency.ErrInFlight):
			return s.bulkReplay(p, res, stored, err)
		case err != nil:
			return err
		}
		res.claim = &claim
		return s.bulkSchedule(ctx, p, res)
	}
	// Queued: one transaction holds the snapshot (kept when the revision
	// has one), every delivery of the item and the item's answer under its
	// id, conditional on the id being free.
	res.write = &txWrite{siteID: p.SiteID, post: res.post, news: newDeliveries(p.SiteID, res.post, res.plans),
		idem: &txIdem{key: itemKey(res.ID), fingerprint: fp}, status: http.StatusOK,
		answer: func(ds []ledger.Delivery, created []bool) any {
			out := *res
			out.Status = bulkQueued
			out.fill(ds, created)
			return out
		}}
	ds, created, _, err := s.write(ctx, res.write)
	if errors.Is(err, errKeyTaken) {
		res.write = nil
		stored, lerr := s.tx.idem.Lookup(ctx, p.SiteID, itemKey(res.ID), fp)
		if lerr == nil && stored == nil {
			lerr = idempotency.ErrInFlight // freed in between: the client retries
		}
		if lerr != nil && !errors.Is(lerr, idempotency.ErrReused) && !errors.Is(lerr, idempotency.ErrInFlight) {
			return lerr
		}
		return s.bulkReplay(p, res, stored, lerr)
	}
	if err != nil {
		return err
	}
	res.Status = bulkQueued
	res.fill(ds, created)
	res.msgs = queuedMessages(p.SiteID, ds)
	return nil
}

// releaseItem frees an item's id: nothing of it is stored as its answer.
func (s *Server) releaseItem(ctx context.Context, res *bulkResult) {
	if res.claim == nil {
		return
	}
	if err := s.d.Idempotency.Release(context.WithoutCancel(ctx), *res.claim); err != nil {
		s.d.Logger.ErrorContext(ctx, "bulk item id not released", "err", err)
	}
	res.claim = nil
}

// finishBulk stores each written item's result as its id's answer; an
// item not queued frees its id, so sending it again enqueues it.
func (s *Server) finishBulk(ctx context.Context, results []*bulkResult) {
	for _, res := range results {
		if res.write != nil && res.Status == bulkNotQueued {
			s.releaseAfter(ctx, res.write) // its answer was stored with it
		}
		if res.claim == nil {
			continue
		}
		if res.Status != bulkQueued && res.Status != bulkScheduled {
			s.releaseItem(ctx, res)
			continue
		}
		b, err := json.Marshal(res)
		if err == nil {
			err = s.d.Idempotency.Complete(context.WithoutCancel(ctx), *res.claim,
				idempotency.Response{Status: http.StatusOK, ContentType: "application/json", Body: b})
		}
		if err != nil {
			s.d.Logger.ErrorContext(ctx, "bulk item answer not stored", "err", err)
		}
	}
}

// fill sets the item's deliveries.
func (res *bulkResult) fill(ds []ledger.Delivery, created []bool) {
	res.Deliveries, res.Created = make([]bulkDelivery, len(ds)), 0
	for i, d := range ds {
		res.Deliveries[i] = bulkDelivery{ID: d.ID, TargetID: d.TargetID, Platform: string(d.Platform), State: d.State}
		if created[i] {
			res.Created++
		}
	}
}

// bulkReplay answers an item whose id was used before (stored, or err
// from claiming it): its first result, or a problem when the id served
// another item or is still in use. A replayed queued item's messages are
// sent again (a duplicate message is acknowledged by the dispatcher).
func (s *Server) bulkReplay(p Principal, res *bulkResult, stored *idempotency.Response, err error) error {
	switch {
	case errors.Is(err, idempotency.ErrReused):
		res.reject(fmt.Sprintf("items[%d].id", res.Index), "was used with a different item; use a new id")
		return nil
	case errors.Is(err, idempotency.ErrInFlight):
		res.reject(fmt.Sprintf("items[%d].id", res.Index), "an item with this id is being processed; retry after it finishes")
		res.Code = "item_in_flight"
		return nil
	}
	var first bulkResult
	if err := json.Unmarshal(stored.Body, &first); err != nil {
		return fmt.Errorf("decode stored bulk item: %w", err)
	}
	idx := res.Index
	*res = first
	res.Index, res.Replayed = idx, true
	if res.Status == bulkQueued {
		for _, d := range res.Deliveries {
			if d.State == ledger.StateQueued {
				res.msgs = append(res.msgs, queue.Outgoing{ID: d.ID, Body: ledger.DeliveryMessage(p.SiteID, d.ID).Encode()})
			}
		}
	}
	return nil
}

// bulkSchedule creates a scheduled item's schedule.
func (s *Server) bulkSchedule(ctx context.Context, p Principal, res *bulkResult) error {
	it := res.item
	sch, ds, err := s.d.Schedules.Create(ctx, schedule.NewSchedule{
		SiteID: p.SiteID, Post: res.post, TargetIDs: it.TargetIDs, CustomMessage: res.custom, When: *res.when,
		RequestAIAssets: it.RequestAIAssets, Deliveries: newDeliveries(p.SiteID, res.post, res.plans),
	})
	if err != nil {
		s.releaseItem(ctx, res)
		if e, ok := apperr.As(err); ok && (e.Kind == apperr.KindUnprocessable || e.Kind == apperr.KindConflict || e.Kind == apperr.KindInvalid) {
			ps := problems(e.Problems)
			if len(ps) == 0 {
				ps = problems{{Field: "scheduledFor", Message: e.Message}}
			}
			res.rejectAll(ps)
			res.Code = e.Code
			return nil
		}
		return err
	}
	res.Status, res.ScheduleID = bulkScheduled, sch.ID
	created := make([]bool, len(ds))
	for i := range created {
		created[i] = true
	}
	res.fill(ds, created)
	return nil
}

// bulkEnqueue sends every queued item's messages in batches of ten; an
// item whose messages could not all be sent is not_queued (its deliveries
// stay queued for the sweep, and its id is freed so sending the item
// again enqueues them at once).
func (s *Server) bulkEnqueue(ctx context.Context, results []*bulkResult) {
	var out []queue.Outgoing
	for _, res := range results {
		out = append(out, res.msgs...)
	}
	if len(out) == 0 {
		return
	}
	err := s.d.Queue.Send(ctx, out)
	if err == nil {
		return
	}
	failed := map[string]bool{}
	var se *queue.SendError
	if errors.As(err, &se) {
		for _, id := range se.Failed {
			failed[id] = true
		}
	}
	for _, res := range results {
		bad := false
		for _, m := range res.msgs {
			bad = bad || se == nil || failed[m.ID]
		}
		if !bad {
			continue
		}
		res.Status, res.Code = bulkNotQueued, "enqueue_failed"
		res.Detail = "the item's deliveries were recorded but their messages could not be put on the dispatch queue; " +
			"they stay queued and the sweep enqueues them within minutes, or send the item again (same id) to enqueue them now"
	}
	s.d.Logger.WarnContext(ctx, "bulk messages not sent", "failed", len(failed), "err", err)
}
