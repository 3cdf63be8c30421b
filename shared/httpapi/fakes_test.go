package httpapi

import (
	"context"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/audit"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/idempotency"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/stats"
	"github.com/posse-dev/posse/shared/target"
)

// writes counts every write the fakes accepted, so a test can assert that
// a rejected request wrote nothing.
type writes struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *writes) add(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == nil {
		w.n = map[string]int{}
	}
	w.n[what]++
}

func (w *writes) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.n {
		n += v
	}
	return n
}

func (w *writes) get(what string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[what]
}

// connMap is a connectionService over fixed connections ("site/id").
type connMap struct {
	mu sync.Mutex
	m  map[string]connection.Connection
}

func (c *connMap) Get(_ context.Context, siteID, id string) (connection.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[siteID+"/"+id]; ok {
		return v, nil
	}
	return connection.Connection{}, apperr.NotFound("connection")
}

func (c *connMap) Authorize(context.Context, connection.AuthorizeRequest) (connection.Authorization, error) {
	return connection.Authorization{}, errors.New("not in this fake")
}

func (c *connMap) Callback(context.Context, platform.Name, url.Values) (string, error) {
	return "", errors.New("not in this fake")
}

func (c *connMap) Connect(context.Context, string, connection.ManualRequest) (connection.Connection, error) {
	return connection.Connection{}, errors.New("not in this fake")
}

// List pages through the site's connections by id; the cursor is the
// last id of the page before.
func (c *connMap) List(_ context.Context, siteID string, limit int, cursor string) ([]connection.Connection, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []connection.Connection
	for k, v := range c.m {
		if strings.HasPrefix(k, siteID+"/") && v.ID > cursor {
			all = append(all, v)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	if len(all) > limit {
		return all[:limit], all[limit-1].ID, nil
	}
	return all, "", nil
}

func (c *connMap) Delete(context.Context, string, string) error {
	return errors.New("not in this fake")
}

func (c *connMap) RequestValidation(context.Context, string, string) (connection.Connection, error) {
	return connection.Connection{}, errors.New("not in this fake")
}

// memTargets is an in-memory targetStore over a connMap.
type memTargets struct {
	mu    sync.Mutex
	w     *writes
	conns *connMap
	m     map[string]target.Target // "site/id"
	n     int
}

func (s *memTargets) Create(ctx context.Context, siteID string, in target.Input) (target.Target, error) {
	if in.ConnectionID == nil || in.Name == nil {
		return target.Target{}, apperr.Invalid("connectionId", "is required")
	}
	c, err := s.conns.Get(ctx, siteID, *in.ConnectionID)
	if err != nil {
		return target.Target{}, apperr.Unprocessable("unknown_connection", "connectionId", []apperr.Problem{{Field: "connectionId", Message: "is not a connection of this site"}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	t := target.Target{ID: "tgt_" + string(rune('a'+s.n)), SiteID: siteID, ConnectionID: c.ID, Platform: c.Platform, Name: *in.Name, Active: true,
		Defaults: target.Defaults{IncludeLink: true, Hashtags: []string{}, Options: map[string]string{}}}
	if in.Active != nil {
		t.Active = *in.Active
	}
	t.AI = target.DefaultAI
	if in.AI != nil {
		t.AI = *in.AI
	}
	if d := in.Defaults; d != nil {
		if d.Options != nil {
			t.Defaults.Options = *d.Options
		}
		if d.Hashtags != nil {
			t.Defaults.Hashtags = *d.Hashtags
		}
		if d.MessageTemplate != nil {
			t.Defaults.MessageTemplate = *d.MessageTemplate
		}
	}
	s.m[siteID+"/"+t.ID] = t
	s.w.add("target")
	return t, nil
}

func (s *memTargets) Get(_ context.Context, siteID, id string) (target.Target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[siteID+"/"+id]
	if !ok {
		return target.Target{}, apperr.NotFound("target")
	}
	return t, nil
}

func (s *memTargets) GetMany(_ context.Context, siteID string, ids []string) (map[string]target.Target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]target.Target{}
	for _, id := range ids {
		if t, ok := s.m[siteID+"/"+id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

func (s *memTargets) List(_ context.Context, siteID string, _ int, _ string) ([]target.Target, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []target.Target
	for _, t := range s.m {
		if t.SiteID == siteID {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, "", nil
}

func (s *memTargets) Update(ctx context.Context, siteID, id string, in target.Input) (target.Target, error) {
	t, err := s.Get(ctx, siteID, id)
	if err != nil {
		return target.Target{}, err
	}
	if in.Active != nil {
		t.Active = *in.Active
	}
	if in.Name != nil {
		t.Name = *in.Name
	}
	if in.AI != nil {
		t.AI = *in.AI
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[siteID+"/"+id] = t
	s.w.add("target")
	return t, nil
}

func (s *memTargets) Delete(ctx context.Context, siteID, id string) error {
	if _, err := s.Get(ctx, siteID, id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, siteID+"/"+id)
	s.w.add("target")
	return nil
}

// memLedger is an in-memory deliveryLedger with the ledger's rules for
// the operator actions.
type memLedger struct {
	mu sync.Mutex
	w  *writes
	m  map[string]ledger.Delivery // "site/id"
	// filters records List's filters.
	filters []ledger.Filter
}

func (l *memLedger) CreateAll(_ context.Context, ds []ledger.NewDelivery) ([]ledger.Delivery, []bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ledger.Delivery, len(ds))
	created := make([]bool, len(ds))
	for i, n := range ds {
		id := ledger.DeliveryID(n.SiteID, n.PostID, n.Revision, n.TargetID)
		if d, ok := l.m[n.SiteID+"/"+id]; ok {
			out[i] = d
			continue
		}
		d := ledger.Delivery{ID: id, SiteID: n.SiteID, PostID: n.PostID, Revision: n.Revision, TargetID: n.TargetID, ConnectionID: n.ConnectionID,
			Platform: n.Platform, State: ledger.StateQueued, Text: n.Text, Link: n.Link, Title: n.Title, Media: n.Media, Options: n.Options,
			RateLimitPerHour: n.RateLimitPerHour, AI: n.AI, Variant: n.Variant, CreatedAt: time.Unix(1_800_000_000, 0).UTC()}
		l.m[n.SiteID+"/"+id] = d
		out[i], created[i] = d, true
		l.w.add("delivery")
	}
	return out, created, nil
}

func (l *memLedger) Get(_ context.Context, siteID, id string) (ledger.Delivery, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.m[siteID+"/"+id]
	if !ok {
		return ledger.Delivery{}, apperr.NotFound("delivery")
	}
	return d, nil
}

func (l *memLedger) List(_ context.Context, siteID string, f ledger.Filter, _ int, _ string) ([]ledger.Delivery, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.filters = append(l.filters, f)
	var out []ledger.Delivery
	for _, d := range l.m {
		if d.SiteID == siteID && (f.State == "" || d.State == f.State) && (f.PostID == "" || d.PostID == f.PostID) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, "", nil
}

func (l *memLedger) change(siteID, id string, f func(d *ledger.Delivery) error) (ledger.Delivery, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.m[siteID+"/"+id]
	if !ok {
		return ledger.Delivery{}, apperr.NotFound("delivery")
	}
	if err := f(&d); err != nil {
		return ledger.Delivery{}, err
	}
	l.m[siteID+"/"+id] = d
	l.w.add("delivery")
	return d, nil
}

func (l *memLedger) Cancel(_ context.Context, siteID, id string) (ledger.Delivery, error) {
	return l.change(siteID, id, func(d *ledger.Delivery) error {
		if !d.State.Claimable() {
			return apperr.New(apperr.KindConflict, "not_cancellable", "no")
		}
		d.State = ledger.StateCancelled
		return nil
	})
}

func (l *memLedger) RequestRetry(_ context.Context, siteID, id string, confirm bool) (ledger.Delivery, error) {
	return l.change(siteID, id, func(d *ledger.Delivery) error {
		switch {
		case d.State == ledger.StateSent:
			return apperr.New(apperr.KindConflict, "already_sent", "sent")
		case d.State == ledger.StateUnknown && !confirm:
			return apperr.New(apperr.KindConflict, "confirmation_required", "confirm")
		case d.State != ledger.StateFailed && d.State != ledger.StateDead && d.State != ledger.StateUnknown:
			return apperr.New(apperr.KindConflict, "not_retryable", "no")
		}
		d.State = ledger.StateQueued
		return nil
	})
}

func (l *memLedger) Resolve(_ context.Context, siteID, id, u, pid string) (ledger.Delivery, error) {
	return l.change(siteID, id, func(d *ledger.Delivery) error {
		if d.State != ledger.StateUnknown {
			return apperr.New(apperr.KindConflict, "not_unknown", "no")
		}
		d.State, d.PlatformURL, d.PlatformPostID = ledger.StateSent, u, pid
		return nil
	})
}

func (l *memLedger) CountByState(_ context.Context, siteID string) (map[ledger.State]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[ledger.State]int{}
	for _, s := range ledger.States {
		out[s] = 0
	}
	for _, d := range l.m {
		if d.SiteID == siteID {
			out[d.State]++
		}
	}
	return out, nil
}

// memSnapshots records saved posts.
type memSnapshots struct {
	w     *writes
	mu    sync.Mutex
	posts []compose.Post
}

func (s *memSnapshots) Save(_ context.Context, _ string, p compose.Post) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts = append(s.posts, p)
	s.w.add("snapshot")
	return true, nil
}

// memQueue is a queueOps that records sends; failSends makes Send fail.
type memQueue struct {
	w         *writes
	mu        sync.Mutex
	sent      []queue.Outgoing
	failSends bool
	status    queue.Status
	dead      []queue.DeadLetter
	redrives  []queue.RedriveFilter
	dryRuns   []bool
	// Move tasks: moveTasks is what MoveTasks answers (newest first);
	// moveRates records each StartMoveTask; a running first task makes
	// StartMoveTask answer a TaskRunningError, as SQS does.
	moveTasks []queue.MoveTask
	moveRates []int
}

func (q *memQueue) Send(_ context.Context, msgs []queue.Outgoing) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failSends {
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		return &queue.SendError{Failed: ids, Err: errors.New("sqs: service unavailable")}
	}
	q.sent = append(q.sent, msgs...)
	q.w.add("message")
	return nil
}

func (q *memQueue) Status(context.Context) (queue.Status, error) { return q.status, nil }

func (q *memQueue) DeadLetters(_ context.Context, siteID string, scan int) ([]queue.DeadLetter, int, error) {
	return q.dead, scan, nil
}

func (q *memQueue) Redrive(_ context.Context, siteID string, f queue.RedriveFilter, dryRun bool, scan int) (queue.Redrive, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.redrives = append(q.redrives, f)
	q.dryRuns = append(q.dryRuns, dryRun)
	if !dryRun {
		q.w.add("redrive")
	}
	return queue.Redrive{DryRun: dryRun, Scanned: scan, Selected: []queue.DeadLetter{}, Moved: []string{}, Failed: []string{}, NotDeleted: []string{}}, nil
}

func (q *memQueue) StartMoveTask(_ context.Context, perSecond int) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveRates = append(q.moveRates, perSecond)
	if len(q.moveTasks) > 0 && q.moveTasks[0].Active() {
		return "", &queue.TaskRunningError{Task: q.moveTasks[0]}
	}
	h := "handle-" + strconv.Itoa(len(q.moveRates))
	q.moveTasks = append([]queue.MoveTask{{Status: queue.TaskRunning, TaskHandle: h, MaxMessagesPerSecond: perSecond}}, q.moveTasks...)
	return h, nil
}

func (q *memQueue) MoveTasks(context.Context, int) ([]queue.MoveTask, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queue.MoveTask{}, q.moveTasks...), nil
}

func (q *memQueue) CancelMoveTask(context.Context) (queue.MoveTask, int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.moveTasks) == 0 || q.moveTasks[0].Status != queue.TaskRunning {
		return queue.MoveTask{}, 0, queue.ErrNoRunningTask
	}
	t := q.moveTasks[0]
	q.moveTasks[0].Status = queue.TaskCancelling
	return t, t.MessagesMoved, nil
}

// memIdem is an in-memory idempotencyStore with the real store's rules.
type memIdem struct {
	mu   sync.Mutex
	w    *writes
	keys map[string]*memIdemKey
	n    int
}

type memIdemKey struct {
	fp, token string
	done      bool
	resp      idempotency.Response
}

func (s *memIdem) Begin(_ context.Context, siteID, key, fp string) (idempotency.Claim, *idempotency.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := siteID + "#" + key
	if got, ok := s.keys[k]; ok {
		switch {
		case got.fp != fp:
			return idempotency.Claim{}, nil, idempotency.ErrReused
		case !got.done:
			return idempotency.Claim{}, nil, idempotency.ErrInFlight
		}
		r := got.resp
		return idempotency.Claim{}, &r, nil
	}
	s.n++
	s.keys[k] = &memIdemKey{fp: fp, token: strconv.Itoa(s.n)}
	return idempotency.Claim{}, nil, nil
}

func (s *memIdem) Complete(_ context.Context, c idempotency.Claim, r idempotency.Response) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.keys {
		if !v.done {
			v.done, v.resp = true, r
		}
	}
	s.w.add("idempotency")
	return nil
}

func (s *memIdem) Release(_ context.Context, c idempotency.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.keys {
		if !v.done {
			delete(s.keys, k)
		}
	}
	return nil
}

func (s *memIdem) inFlight(siteID, key, fp string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[siteID+"#"+key] = &memIdemKey{fp: fp}
}

// memAudit records entries.
type memAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *memAudit) Record(_ context.Context, e audit.Entry) (audit.Entry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e.ID = "aud_" + strconv.Itoa(len(a.entries)+1)
	a.entries = append(a.entries, e)
	return e, nil
}

func (a *memAudit) List(_ context.Context, siteID string, _ int, _ string) ([]audit.Entry, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Entry
	for i := len(a.entries) - 1; i >= 0; i-- {
		if a.entries[i].SiteID == siteID {
			out = append(out, a.entries[i])
		}
	}
	return out, "", nil
}

func (a *memAudit) all() []audit.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Entry(nil), a.entries...)
}

// memAnalytics records the range asked for.
type memAnalytics struct {
	mu       sync.Mutex
	from, to time.Time
}

func (a *memAnalytics) Query(_ context.Context, _ string, from, to time.Time) (stats.Report, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.from, a.to = from, to
	return stats.Report{From: from.Format(stats.DateLayout), To: to.Format(stats.DateLayout), ByPlatform: []stats.PlatformTotals{}}, nil
}
