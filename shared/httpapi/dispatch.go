package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/compose"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/queue"
	"github.com/posse-dev/posse/shared/target"
)

// Dispatch limits (the bad-input rules and DynamoDB's item size).
const (
	MaxDispatchTargets = 25
	MaxCustomMessage   = 2000 // characters (code points)
	maxPostIDLength    = 128
	maxRevisionLength  = 64
	maxTitleChars      = 500
	maxExcerptChars    = 5000
	maxBodyBytes       = 100_000
	maxURLLength       = 2048
	maxMedia           = 20
	maxAltTextChars    = 1500
	maxOverrideChars   = 10_000
)

// snapshotSaver stores post snapshots (shared/compose.Snapshots).
type snapshotSaver interface {
	Save(ctx context.Context, siteID string, p compose.Post) (bool, error)
}

// publisherRegistry gives the adapter of a platform (shared/platform/
// registry.Registry); the API only calls Capabilities and Validate.
type publisherRegistry interface {
	Publisher(p platform.Name) (platform.Publisher, bool)
}

// addDispatchRoutes registers POST /v1/dispatch and /v1/dispatch/bulk.
func (s *Server) addDispatchRoutes() {
	s.add("POST", "/v1/dispatch", SiteKey, s.dispatch)
	s.add("POST", "/v1/dispatch/bulk", SiteKey, s.dispatchBulk)
}

// revisionField is post.revision: a JSON string or integer, kept as text
// (CMSs number revisions).
type revisionField string

// UnmarshalJSON implements json.Unmarshaler. Its error names the field
// itself: since Go 1.27 encoding/json no longer adds the path to an error a
// custom unmarshaler returns.
func (f *revisionField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = revisionField(s)
		return nil
	}
	if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
		return &json.UnmarshalTypeError{Value: "number " + string(b), Type: reflect.TypeFor[string](), Field: "post.revision"}
	}
	*f = revisionField(b)
	return nil
}

// dispatchMedia is one media item of a dispatched post.
type dispatchMedia struct {
	URL     string `json:"url"`
	Kind    string `json:"kind"`
	AltText string `json:"altText"`
}

// dispatchPost is the post of a dispatch request.
type dispatchPost struct {
	PostID   string          `json:"postId"`
	Revision revisionField   `json:"revision"`
	Title    string          `json:"title"`
	Excerpt  string          `json:"excerpt"`
	URL      string          `json:"url"`
	Body     string          `json:"body"`
	Media    []dispatchMedia `json:"media"`
}

// dispatchRequest is the body of POST /v1/dispatch.
type dispatchRequest struct {
	Post          *dispatchPost `json:"post"`
	TargetIDs     []string      `json:"targetIds"`
	CustomMessage string        `json:"customMessage"`
	// RequestAIAssets asks for each AI-enabled target's text to be written
	// by the AI router at the first publish attempt.
	RequestAIAssets bool `json:"requestAiAssets"`
	// Overrides are editor-approved texts by target id, published as they
	// are (validated like composed text).
	Overrides map[string]string `json:"overrides"`
	// Variants asks for an A/B test: 2 to 4 wordings (each a customMessage
	// and/or overrides) or {"count": n} written by the AI router, assigned
	// across the targets.
	Variants json.RawMessage `json:"variants"`
}

// aiRequest is what a dispatch or schedule asks of AI.
type aiRequest struct {
	adapt     bool
	overrides map[string]string
}

// checkAIRequest validates requestAiAssets and overrides against the
// request's targets. With requestAiAssets and no provider configured it
// answers ai_not_configured at once: nothing is queued.
func (s *Server) checkAIRequest(adapt bool, overrides map[string]string, ids []string, ps *problems) (aiRequest, error) {
	if adapt && !s.d.AIConfigured {
		return aiRequest{}, apperr.Unprocessable("ai_not_configured",
			"requestAiAssets needs an LLM provider, and this deployment has none configured (see the README: turning AI on); nothing was queued",
			[]apperr.Problem{{Field: "requestAiAssets", Message: "no LLM provider is configured"}})
	}
	keys := make([]string, 0, len(overrides))
	for id := range overrides {
		keys = append(keys, id)
	}
	slices.Sort(keys)
	for _, id := range keys {
		f := "overrides." + id
		switch text := overrides[id]; {
		case !slices.Contains(ids, id):
			ps.add(f, "names a target that is not in targetIds")
		case strings.TrimSpace(text) == "":
			ps.add(f, "must not be empty")
		case utf8.RuneCountInString(text) > maxOverrideChars:
			ps.add(f, "must be at most %d characters", maxOverrideChars)
		}
	}
	return aiRequest{adapt: adapt, overrides: overrides}, nil
}

// dispatchResponse is the answer of POST /v1/dispatch.
type dispatchResponse struct {
	PostID     string            `json:"postId"`
	Revision   string            `json:"revision"`
	Deliveries []ledger.Delivery `json:"deliveries"`
	// Created is how many deliveries this call created; the others existed
	// (the same revision was dispatched to those targets before).
	Created int `json:"created"`
}

// problems collects validation problems.
type problems []apperr.Problem

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, apperr.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// checkPost validates the post and returns its snapshot.
func checkPost(in *dispatchPost, ps *problems) compose.Post {
	if in == nil {
		ps.add("post", "is required")
		return compose.Post{}
	}
	p := compose.Post{
		PostID: strings.TrimSpace(in.PostID), Revision: strings.TrimSpace(string(in.Revision)),
		Title: in.Title, Excerpt: in.Excerpt, URL: strings.TrimSpace(in.URL), Body: in.Body, Media: []platform.Media{},
	}
	checkID := func(field, v string, max int) {
		switch {
		case v == "":
			ps.add(field, "is required")
		case len(v) > max:
			ps.add(field, "must be at most %d characters", max)
		case strings.ContainsFunc(v, func(r rune) bool { return r == '#' || unicode.IsSpace(r) || unicode.IsControl(r) }) || !utf8.ValidString(v):
			ps.add(field, "must not contain '#', spaces or control characters")
		}
	}
	checkID("post.postId", p.PostID, maxPostIDLength)
	checkID("post.revision", p.Revision, maxRevisionLength)
	checkChars := func(field, v string, max int) {
		if n := utf8.RuneCountInString(v); n > max {
			ps.add(field, "must be at most %d characters, got %d", max, n)
		}
	}
	checkChars("post.title", p.Title, maxTitleChars)
	checkChars("post.excerpt", p.Excerpt, maxExcerptChars)
	if len(p.Body) > maxBodyBytes {
		ps.add("post.body", "must be at most %d bytes, got %d", maxBodyBytes, len(p.Body))
	}
	if p.URL == "" {
		ps.add("post.url", "is required (the post's canonical URL)")
	} else if !httpURL(p.URL) {
		ps.add("post.url", "must be an absolute http(s) URL of at most %d characters", maxURLLength)
	}
	if len(in.Media) > maxMedia {
		ps.add("post.media", "must hold at most %d items, got %d", maxMedia, len(in.Media))
	}
	for i, m := range in.Media {
		f := fmt.Sprintf("post.media[%d]", i)
		u := strings.TrimSpace(m.URL)
		if !httpURL(u) {
			ps.add(f+".url", "must be an absolute http(s) URL (the platforms fetch media from it)")
		}
		kind := platform.MediaKind(strings.TrimSpace(m.Kind))
		if kind != platform.Image && kind != platform.Video {
			ps.add(f+".kind", `must be "image" or "video"`)
		}
		checkChars(f+".altText", m.AltText, maxAltTextChars)
		p.Media = append(p.Media, platform.Media{URL: u, Kind: kind, AltText: m.AltText})
	}
	return p
}

// httpURL reports whether s is an absolute http(s) URL with a host.
func httpURL(s string) bool {
	if len(s) > maxURLLength {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// checkTargetIDs validates the target id list.
func checkTargetIDs(ids []string, ps *problems) {
	switch {
	case len(ids) == 0:
		ps.add("targetIds", "must name at least one target")
	case len(ids) > MaxDispatchTargets:
		ps.add("targetIds", "must name at most %d targets, got %d", MaxDispatchTargets, len(ids))
	}
	seen := map[string]int{}
	for i, id := range ids {
		if j, ok := seen[id]; ok {
			ps.add(fmt.Sprintf("targetIds[%d]", i), "repeats targetIds[%d] (%s)", j, id)
			continue
		}
		seen[id] = i
	}
}

// reconnectAction is how a site reconnects an account of platform p.
func reconnectAction(p platform.Name) string {
	if p == platform.Bluesky || p == platform.Mastodon {
		return "POST /v1/connections with new " + string(p) + " credentials"
	}
	return "POST /v1/connections/" + string(p) + "/authorize, then follow the authorization URL"
}

// planned is one target's composed delivery.
type planned struct {
	t    target.Target
	post platform.Post
	// ai is the delivery's AI adaptation: pending, an override, or nil.
	ai *ledger.AIInfo
	// variant is the A/B variant the target was given; "" without variants.
	variant string
}

// dispatch validates everything, answers 422 with every problem before
// anything is written, else snapshots the post, creates the deliveries
// (idempotently) and enqueues them.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.d.Targets == nil || s.d.Deliveries == nil || s.d.Snapshots == nil || s.d.Publishers == nil || s.d.Queue == nil || s.d.Connections == nil {
		return errNotConfigured("dispatch dependency")
	}
	ctx := r.Context()
	var in dispatchRequest
	if err := decodeJSON(w, r, s.d.MaxBodyBytes, &in); err != nil {
		return err
	}
	post, plans, err := s.planRequest(ctx, p.SiteID, in, in.RequestAIAssets, "dispatch_rejected", "nothing was queued")
	if err != nil {
		return err
	}
	noteEntity(r, "post", post.PostID+"@"+post.Revision)
	if s.tx != nil {
		return s.dispatchTx(w, r, p, post, plans)
	}

	if _, err := s.d.Snapshots.Save(ctx, p.SiteID, post); err != nil {
		return err
	}
	ds, created, err := s.d.Deliveries.CreateAll(ctx, newDeliveries(p.SiteID, post, plans))
	if err != nil {
		return err
	}
	resp := dispatchResponse{PostID: post.PostID, Revision: post.Revision, Deliveries: ds}
	var out []queue.Outgoing
	for i, d := range ds {
		if created[i] {
			resp.Created++
		}
		// A delivery still queued gets a message, new or not: after a
		// failed send, dispatching again enqueues it at once (a duplicate
		// message is acknowledged by the dispatcher).
		if d.State == ledger.StateQueued {
			out = append(out, queue.Outgoing{ID: d.ID, Body: ledger.DeliveryMessage(p.SiteID, d.ID).Encode()})
		}
	}
	if err := s.enqueue(ctx, out); err != nil {
		return err
	}
	s.d.Logger.InfoContext(ctx, "dispatched", "site", p.SiteID, "post_id", post.PostID, "revision", post.Revision,
		"deliveries", len(ds), "created", resp.Created, "enqueued", len(out))
	return writeJSON(w, http.StatusAccepted, resp)
}

// dispatchTx is dispatch's write in one transaction: snapshot, deliveries,
// Idempotency-Key answer and audit entry; then one SendMessageBatch.
func (s *Server) dispatchTx(w http.ResponseWriter, r *http.Request, p Principal, post compose.Post, plans []planned) error {
	ctx := r.Context()
	tw := &txWrite{siteID: p.SiteID, post: post, news: newDeliveries(p.SiteID, post, plans), idem: idemOf(r),
		status: http.StatusAccepted, answer: func(ds []ledger.Delivery, created []bool) any {
			return newDispatchResponse(post, ds, created)
		}}
	if n := noteOf(r); n != nil && s.tx.audit != nil {
		if e, ok := s.auditEntry(r, p, "/v1/dispatch", http.StatusAccepted, "", n); ok {
			tw.entry = &e
			n.audited = true
		}
	}
	ds, created, body, err := s.write(ctx, tw)
	if err != nil {
		if n := noteOf(r); n != nil {
			n.audited = false
		}
		return err
	}
	out := queuedMessages(p.SiteID, ds)
	if err := s.enqueue(ctx, out); err != nil {
		s.releaseAfter(ctx, tw)
		return err
	}
	resp := newDispatchResponse(post, ds, created)
	s.d.Logger.InfoContext(ctx, "dispatched", "site", p.SiteID, "post_id", post.PostID, "revision", post.Revision,
		"deliveries", len(ds), "created", resp.Created, "enqueued", len(out))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(body)
	return nil
}

// newDispatchResponse is the answer of a dispatch that returned ds.
func newDispatchResponse(post compose.Post, ds []ledger.Delivery, created []bool) dispatchResponse {
	resp := dispatchResponse{PostID: post.PostID, Revision: post.Revision, Deliveries: ds}
	for _, c := range created {
		if c {
			resp.Created++
		}
	}
	return resp
}

// queuedMessages are the messages of ds's queued deliveries: new or not
// (after a failed send, dispatching again enqueues them at once; a
// duplicate message is acknowledged by the dispatcher).
func queuedMessages(siteID string, ds []ledger.Delivery) []queue.Outgoing {
	var out []queue.Outgoing
	for _, d := range ds {
		if d.State == ledger.StateQueued {
			out = append(out, queue.Outgoing{ID: d.ID, Body: ledger.DeliveryMessage(siteID, d.ID).Encode()})
		}
	}
	return out
}

// planRequest validates a dispatch body and plans its targets (adapt: AI
// adaptation asked for). Every problem is one 422 with code, whose message
// starts with nothing ("nothing was queued"); nothing is written.
func (s *Server) planRequest(ctx context.Context, siteID string, in dispatchRequest, adapt bool, code, nothing string) (compose.Post, []planned, error) {
	var ps problems
	post := checkPost(in.Post, &ps)
	checkTargetIDs(in.TargetIDs, &ps)
	custom := checkCustom(in.CustomMessage, &ps)
	air, err := s.checkAIRequest(adapt, in.Overrides, in.TargetIDs, &ps)
	if err != nil {
		return post, nil, err
	}
	vp := s.checkVariants(in.Variants, adapt, in.Overrides, in.TargetIDs, &ps)
	if len(ps) == 0 {
		var plans []planned
		if vp.n() > 0 {
			plans, ps, err = s.planVariants(ctx, siteID, planInput{post: post, custom: custom, ids: in.TargetIDs, air: air}, vp)
		} else {
			plans, ps, err = s.plan(ctx, siteID, post, custom, in.TargetIDs, air)
		}
		if err != nil || len(ps) == 0 {
			return post, plans, err
		}
	}
	return post, nil, apperr.Unprocessable(code, nothing+": "+ps[0].Field+": "+ps[0].Message+more(len(ps)), ps)
}

// enqueue sends delivery messages; what cannot be sent is a 503 that says
// the deliveries stay queued for the sweep.
func (s *Server) enqueue(ctx context.Context, out []queue.Outgoing) error {
	if len(out) == 0 {
		return nil
	}
	err := s.d.Queue.Send(ctx, out)
	if err == nil {
		return nil
	}
	n := len(out)
	if se, ok := err.(*queue.SendError); ok {
		n = len(se.Failed)
	}
	e := apperr.Wrap(err, apperr.KindTransient, "enqueue_failed", fmt.Sprintf(
		"%d of %d deliveries were recorded but their messages could not be put on the dispatch queue. "+
			"They stay queued, and the sweep re-enqueues queued deliveries within minutes; sending this request "+
			"again (with the same Idempotency-Key, if any) enqueues them now and never creates a second delivery.", n, len(out)))
	e.RetryAfter = 30 * time.Second
	return e
}

func more(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" (and %d more problems)", n-1)
}

// plan loads the targets and their connections, composes each target's
// text and runs its adapter's Validate. It returns every problem, per
// target, in the order of ids.
func (s *Server) plan(ctx context.Context, siteID string, post compose.Post, custom string, ids []string, air aiRequest) ([]planned, problems, error) {
	targets, err := s.d.Targets.GetMany(ctx, siteID, ids)
	if err != nil {
		return nil, nil, err
	}
	conns, err := s.connectionsOf(ctx, siteID, targets)
	if err != nil {
		return nil, nil, err
	}
	plans, ps := s.planWith(siteID, post, custom, ids, air, targets, conns)
	return plans, ps, nil
}

// planWith is plan on targets and connections already read.
func (s *Server) planWith(siteID string, post compose.Post, custom string, ids []string, air aiRequest,
	targets map[string]target.Target, conns map[string]connection.Connection) ([]planned, problems) {
	var ps problems
	var unknown []string
	for i, id := range ids {
		if _, ok := targets[id]; !ok {
			unknown = append(unknown, id)
			ps.add(fmt.Sprintf("targetIds[%d]", i), "%s is not a target of this site", strconv.Quote(id))
		}
	}
	if len(unknown) > 0 {
		// Listed first, all together, so a CMS can show them at once.
		ps = append(problems{{Field: "targetIds", Message: "unknown targets: " + strings.Join(unknown, ", ")}}, ps...)
	}
	var plans []planned
	for _, id := range ids {
		t, ok := targets[id]
		if !ok {
			continue
		}
		f := "targets[" + id + "]"
		if !t.Active {
			ps.add(f+".active", "target %q is inactive; activate it (PATCH /v1/targets/%s with {\"active\": true}) or leave it out", t.Name, id)
			continue
		}
		c, ok := conns[t.ConnectionID]
		switch {
		case !ok:
			ps.add(f+".connectionId", "target %q names connection %s, which no longer exists; point the target at another connection (PATCH /v1/targets/%s)", t.Name, t.ConnectionID, id)
			continue
		case c.Status == connection.StatusBroken:
			ps.add(f, "target %q cannot be dispatched to: its %s connection %s is broken%s; reconnect the account (%s), then dispatch again",
				t.Name, c.Platform, c.ID, reason(c.StatusReason), reconnectAction(c.Platform))
			continue
		}
		pub, ok := s.d.Publishers.Publisher(t.Platform)
		if !ok {
			ps.add(f, "target %q is on %s, which this deployment cannot publish to", t.Name, t.Platform)
			continue
		}
		lim := compose.LimitOf(pub.Capabilities())
		res := compose.Compose(compose.Input{Post: post, CustomMessage: custom, Defaults: t.Defaults}, lim)
		pp := platform.Post{
			DeliveryID: ledger.DeliveryID(siteID, post.PostID, post.Revision, id),
			Text:       res.Text, Link: res.Link, Title: post.Title, Media: slices.Clone(post.Media), Options: t.Defaults.Options,
		}
		var info *ledger.AIInfo
		if text, ok := air.overrides[id]; ok {
			pp.Text = strings.TrimSpace(text)
			info = &ledger.AIInfo{Source: ledger.AIOverride, Settings: t.AI}
			if n := lim.Count(pp.Text); !lim.Fits(pp.Text) {
				ps.add("overrides."+id, "is %d characters as %s counts them (%s); the limit is %d%s", n, t.Platform, lim.Rule, lim.Max, byteCap(lim.MaxBytes))
			}
			for _, vp := range pub.Validate(pp) {
				ps.add("overrides."+id+"."+vp.Field, "%s", vp.Message)
			}
		} else {
			if air.adapt && t.AI.Enabled {
				info = &ledger.AIInfo{Source: ledger.AIPending, Settings: t.AI}
			}
			for _, vp := range pub.Validate(pp) {
				ps.add(f+"."+vp.Field, "%s", vp.Message)
			}
		}
		plans = append(plans, planned{t: t, post: pp, ai: info})
	}
	return plans, ps
}

func byteCap(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" and at most %d bytes", n)
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// connectionBatch reads a site's connections in one call
// (shared/connection.Service.GetMany); without it connectionsOf reads them
// one by one.
type connectionBatch interface {
	GetMany(ctx context.Context, siteID string, ids []string) (map[string]connection.Connection, error)
}

// connectionsOf reads the connections targets name, in one batch or concurrently; a
// connection the site no longer has is absent from the result.
func (s *Server) connectionsOf(ctx context.Context, siteID string, targets map[string]target.Target) (map[string]connection.Connection, error) {
	ids := map[string]bool{}
	for _, t := range targets {
		ids[t.ConnectionID] = true
	}
	if many, ok := s.d.Connections.(connectionBatch); ok {
		// One BatchGetItem for every connection (call economy).
		out, err := many.GetMany(ctx, siteID, slices.Sorted(maps.Keys(ids)))
		if err != nil {
			return nil, fmt.Errorf("read connections: %w", err)
		}
		return out, nil
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		out   = make(map[string]connection.Connection, len(ids))
		first error
	)
	for id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.d.Connections.Get(ctx, siteID, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case apperr.Is(err, apperr.KindNotFound):
			case err != nil:
				if first == nil {
					first = fmt.Errorf("read connection %s: %w", id, err)
				}
			default:
				out[id] = c
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}
