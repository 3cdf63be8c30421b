package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/target"
)

// queueOps is what the API needs of the dispatch queue and its DLQ
// (shared/queue.Client).
type queueOps interface {
	Send(ctx context.Context, msgs []queue.Outgoing) error
	Status(ctx context.Context) (queue.Status, error)
	DeadLetters(ctx context.Context, siteID string, scan int) ([]queue.DeadLetter, int, error)
	Redrive(ctx context.Context, siteID string, f queue.RedriveFilter, dryRun bool, scan int) (queue.Redrive, error)
	StartMoveTask(ctx context.Context, perSecond int) (string, error)
	MoveTasks(ctx context.Context, max int) ([]queue.MoveTask, error)
	CancelMoveTask(ctx context.Context) (queue.MoveTask, int64, error)
}

// addQueueRoutes registers the queue operation routes.
func (s *Server) addQueueRoutes() {
	s.add("GET", "/v1/queue/status", SiteKey, s.queueStatus)
	s.add("GET", "/v1/queue/dead-letters", SiteKey, s.deadLetters)
	s.add("POST", "/v1/queue/redrive", SiteKey, s.redrive)
	s.add("POST", "/v1/queue/move-task", AdminKey, s.startMoveTask)
	s.add("GET", "/v1/queue/move-task", AdminKey, s.listMoveTasks)
	s.add("DELETE", "/v1/queue/move-task", AdminKey, s.cancelMoveTask)
}

func (s *Server) queueOps() (queueOps, error) {
	if s.d.Queue == nil {
		return nil, errNotConfigured("queue")
	}
	return s.d.Queue, nil
}

// queueDepth is one queue in GET /v1/queue/status.
type queueDepth struct {
	queue.Depth
	// OldestAgeSeconds: see queueStatus.
	OldestAgeSeconds int64 `json:"oldestAgeSeconds"`
}

// queueStatusBody is the answer of GET /v1/queue/status.
type queueStatusBody struct {
	CheckedAt       time.Time            `json:"checkedAt"`
	DispatchQueue   queueDepth           `json:"dispatchQueue"`
	DeadLetterQueue queueDepth           `json:"deadLetterQueue"`
	Deliveries      map[ledger.State]int `json:"deliveries"`
}

// oldestQueuedPages bounds how far queueStatus pages through the site's
// queued deliveries to find the oldest.
const oldestQueuedPages = 10

// queueStatus answers the depth of both queues from their SQS attributes
// (visible, in flight, delayed: queue-wide numbers, as SQS keeps them) and
// this site's deliveries by state. SQS attributes carry no oldest-message
// age, so dispatchQueue.oldestAgeSeconds is the age of this site's oldest
// queued delivery (the backlog the site waits on; CloudWatch's
// ApproximateAgeOfOldestMessage, which the alarm watches, is the
// queue-wide figure), and deadLetterQueue.oldestAgeSeconds is sampled from
// the DLQ's messages (their first send to the dispatch queue). 0 means
// none.
func (s *Server) queueStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	q, err := s.queueOps()
	if err != nil {
		return err
	}
	dl, err := s.deliveries()
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := q.Status(ctx)
	if err != nil {
		return err
	}
	counts, err := dl.CountByState(ctx, p.SiteID)
	if err != nil {
		return err
	}
	now := s.d.Now()
	body := queueStatusBody{
		CheckedAt:       now.UTC(),
		DispatchQueue:   queueDepth{Depth: st.Dispatch},
		DeadLetterQueue: queueDepth{Depth: st.DLQ},
		Deliveries:      counts,
	}
	if !st.OldestDeadLetter.IsZero() {
		body.DeadLetterQueue.OldestAgeSeconds = max(0, int64(now.Sub(st.OldestDeadLetter)/time.Second))
	}
	if counts[ledger.StateQueued] > 0 {
		oldest, err := s.oldestQueued(ctx, dl, p.SiteID)
		if err != nil {
			return err
		}
		if !oldest.IsZero() {
			body.DispatchQueue.OldestAgeSeconds = max(0, int64(now.Sub(oldest)/time.Second))
		}
	}
	return writeJSON(w, http.StatusOK, body)
}

// oldestQueued returns when the site's oldest queued delivery was created,
// paging through at most oldestQueuedPages pages (newest first).
func (s *Server) oldestQueued(ctx context.Context, dl deliveryLedger, siteID string) (time.Time, error) {
	var oldest time.Time
	cursor := ""
	for range oldestQueuedPages {
		page, next, err := dl.List(ctx, siteID, ledger.Filter{State: ledger.StateQueued}, ledger.MaxListLimit, cursor)
		if err != nil {
			return time.Time{}, err
		}
		for _, d := range page {
			if oldest.IsZero() || d.CreatedAt.Before(oldest) {
				oldest = d.CreatedAt
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return oldest, nil
}

// scanParam reads ?scan= (1..queue.MaxScan, default queue.DefaultScan).
func scanParam(v string) (int, error) {
	if v == "" {
		return queue.DefaultScan, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > queue.MaxScan {
		return 0, apperr.Invalid("scan", "must be a whole number from 1 to "+strconv.Itoa(queue.MaxScan))
	}
	return n, nil
}

// deadLetters lists what is in the DLQ for this site, with the delivery
// each message names. Reading never moves or deletes a message (see
// shared/queue: VisibilityTimeout 0; each read adds one to a message's
// receive count, which decides nothing in the DLQ).
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, p Principal) error {
	q, err := s.queueOps()
	if err != nil {
		return err
	}
	scan, err := scanParam(r.URL.Query().Get("scan"))
	if err != nil {
		return err
	}
	items, scanned, err := q.DeadLetters(r.Context(), p.SiteID, scan)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "scanned": scanned})
}

// redriveFilter is the filter of POST /v1/queue/redrive.
type redriveFilter struct {
	Platform string `json:"platform"`
	TargetID string `json:"targetId"`
	Status   string `json:"status"`
	Since    string `json:"since"`
}

// redriveBody is the body of POST /v1/queue/redrive.
type redriveBody struct {
	Filter redriveFilter `json:"filter"`
	DryRun bool          `json:"dryRun"`
	// Scan is how many DLQ messages to look at (default 100).
	Scan *int `json:"scan"`
}

// redrive moves this site's DLQ messages the filter chooses back to the
// dispatch queue (or, with dryRun, lists them). Messages of other sites
// are never moved: moving the whole DLQ (StartMessageMoveTask) is an
// operator's action, from the SQS console or POST /v1/queue/move-task with
// the admin key, not a site's.
func (s *Server) redrive(w http.ResponseWriter, r *http.Request, p Principal) error {
	q, err := s.queueOps()
	if err != nil {
		return err
	}
	var in redriveBody
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	var ps problems
	f := queue.RedriveFilter{TargetID: strings.TrimSpace(in.Filter.TargetID)}
	if v := strings.TrimSpace(in.Filter.Platform); v != "" {
		f.Platform = platform.Name(v)
		if !f.Platform.Valid() {
			ps.add("filter.platform", "%q is not a platform; use one of %s", v, platformNames())
		}
	}
	if f.TargetID != "" && !target.ValidID(f.TargetID) {
		ps.add("filter.targetId", "%q is not a target id", f.TargetID)
	}
	if st, err := queryState(strings.TrimSpace(in.Filter.Status), "filter.status"); err != nil {
		e, _ := apperr.As(err)
		ps = append(ps, e.Problems...)
	} else {
		f.State = st
	}
	if v := strings.TrimSpace(in.Filter.Since); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			ps.add("filter.since", "must be an RFC 3339 time with an offset, e.g. 2026-05-01T09:30:00+02:00")
		}
		f.Since = t
	}
	scan := queue.DefaultScan
	if in.Scan != nil {
		if *in.Scan < 1 || *in.Scan > queue.MaxScan {
			ps.add("scan", "must be from 1 to %d", queue.MaxScan)
		}
		scan = *in.Scan
	}
	if len(ps) > 0 {
		return apperr.InvalidProblems(ps)
	}
	if in.DryRun {
		noteAction(r, "queue.redrive_dry_run")
	}
	res, err := q.Redrive(r.Context(), p.SiteID, f, in.DryRun, scan)
	if err != nil {
		return apperr.Wrap(err, apperr.KindTransient, "redrive_failed",
			"no selected message could be moved back to the dispatch queue; they are still in the DLQ, try again")
	}
	s.d.Logger.InfoContext(r.Context(), "redrive", "site", p.SiteID, "dry_run", in.DryRun, "scanned", res.Scanned,
		"selected", len(res.Selected), "moved", len(res.Moved), "failed", len(res.Failed), "not_deleted", len(res.NotDeleted))
	return writeJSON(w, http.StatusOK, res)
}

// moveTaskBody is the optional body of POST /v1/queue/move-task.
type moveTaskBody struct {
	// MaxMessagesPerSecond caps the move (1..500); absent lets SQS choose.
	MaxMessagesPerSecond *int `json:"maxMessagesPerSecond"`
}

// startMoveTask starts an SQS message move task that sends every message of
// the dispatch DLQ, of every site, back to the dispatch queue: what the SQS
// console's "Start DLQ redrive" does, for operators without the console.
// It is safe because the dispatcher claims each delivery in the ledger: a
// message whose delivery is already settled does nothing. SQS runs one task
// per DLQ at a time: a second start answers 409 naming the running one.
func (s *Server) startMoveTask(w http.ResponseWriter, r *http.Request, _ Principal) error {
	q, err := s.queueOps()
	if err != nil {
		return err
	}
	var in moveTaskBody
	if err := s.decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	rate := 0
	if in.MaxMessagesPerSecond != nil {
		if rate = *in.MaxMessagesPerSecond; rate < 1 || rate > queue.MaxMoveRate {
			return apperr.Invalid("maxMessagesPerSecond", "must be from 1 to "+strconv.Itoa(queue.MaxMoveRate)+"; leave it out to let SQS choose")
		}
	}
	handle, err := q.StartMoveTask(r.Context(), rate)
	var running *queue.TaskRunningError
	if errors.As(err, &running) {
		t := running.Task
		if t.Status == "" {
			return apperr.New(apperr.KindConflict, "move_task_running",
				"a move task already runs on the dispatch DLQ (SQS allows one at a time); see GET /v1/queue/move-task")
		}
		return apperr.Newf(apperr.KindConflict, "move_task_running",
			"move task %s already runs on the dispatch DLQ (%s since %s, %d of %d messages moved); SQS allows one at a time: wait for it, or cancel it with DELETE /v1/queue/move-task",
			t.TaskHandle, t.Status, t.StartedAt.Format(time.RFC3339), t.MessagesMoved, t.MessagesToMove)
	}
	if err != nil {
		return err
	}
	s.d.Logger.InfoContext(r.Context(), "move task started", "max_messages_per_second", rate)
	w.Header().Set("Location", "/v1/queue/move-task")
	body := map[string]any{"taskHandle": handle}
	if rate > 0 {
		body["maxMessagesPerSecond"] = rate
	}
	return writeJSON(w, http.StatusAccepted, body)
}

// listMoveTasks answers the dispatch DLQ's most recent move tasks, newest
// first, as SQS's ListMessageMoveTasks keeps them (at most ten).
func (s *Server) listMoveTasks(w http.ResponseWriter, r *http.Request, _ Principal) error {
	q, err := s.queueOps()
	if err != nil {
		return err
	}
	tasks, err := q.MoveTasks(r.Context(), 0)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": tasks})
}

// cancelMoveTask cancels the dispatch DLQ's running move task; messages
// already moved stay in the dispatch queue.
func (s *Server) cancelMoveTask(w http.ResponseWriter, r *http.Request, _ Principal) error {
	q, err := s.queueOps()
	if err != nil {
		return err
	}
	t, moved, err := q.CancelMoveTask(r.Context())
	if errors.Is(err, queue.ErrNoRunningTask) {
		return apperr.New(apperr.KindNotFound, "no_running_move_task", "no move task runs on the dispatch DLQ")
	}
	if err != nil {
		return err
	}
	s.d.Logger.InfoContext(r.Context(), "move task cancelled", "moved", moved)
	return writeJSON(w, http.StatusOK, map[string]any{"taskHandle": t.TaskHandle, "status": queue.TaskCancelling, "approximateMessagesMoved": moved})
}

func platformNames() string {
	names := make([]string, len(platform.All))
	for i, p := range platform.All {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}
