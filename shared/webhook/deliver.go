package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/batch"
	"github.com/posse-dev/posse/shared/event"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/vault"
	"github.com/posse-dev/posse/shared/wake"
)

// DefaultSchedule is the wait before each retry of a failed attempt:
// after the first try fails, 5 s; then 5 min, 30 min, 2 h, 5 h, 10 h and
// 10 h. After the last, the attempt is dead.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Deliverer defaults.
const (
	// DefaultDisableAfter: an endpoint failing every attempt this long is
	// disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// DefaultTimeout bounds one POST, answer included.
	DefaultTimeout = 5 * time.Second
	// DefaultLease is how long a claim holds an attempt: well above the
	// timeout, well below the queue's visibility timeout.
	DefaultLease       = time.Minute
	DefaultConcurrency = 10
	// MaxRetryAfter caps an endpoint's Retry-After.
	MaxRetryAfter = 24 * time.Hour
	clockSkew     = time.Second
	// UserAgent is sent with every attempt.
	UserAgent = "POSSE-Webhooks/1"
)

// eventReader reads events and marks them handed on: shared/event.Store.
type eventReader interface {
	Get(ctx context.Context, siteID, id string) (event.Stored, error)
	Handed(ctx context.Context, siteID, id string) error
}

// opener opens sealed secrets: vault.Opener (kms:Decrypt on purpose
// webhook_secret only).
type opener interface {
	Open(ctx context.Context, c vault.Context, s vault.Sealed) ([]byte, error)
}

// queueAPI is the part of the SQS client the fan-out uses.
type queueAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// waker sends a message to arrive later: shared/wake.Waker on the webhook
// queue.
type waker interface {
	Send(ctx context.Context, w wake.Wake) error
}

// DelivererConfig is what a Deliverer is built from.
type DelivererConfig struct {
	Store    *Store
	Events   eventReader
	Opener   opener
	Queue    queueAPI
	QueueURL string
	Waker    waker
	// HTTP posts attempts: shared/outbound's client (public addresses
	// only, no redirects, Timeout).
	HTTP *http.Client
	// Schedule is the wait before each retry (default DefaultSchedule).
	Schedule []time.Duration
	// DisableAfter disables an endpoint that failed every attempt this long
	// (default 5 days).
	DisableAfter time.Duration
	Timeout      time.Duration
	Lease        time.Duration
	Concurrency  int
	// Metrics counts WebhookAttempts and WebhookFailures (nil: none).
	Metrics *metrics.Recorder
	Logger  *slog.Logger
	Now     func() time.Time
}

// Deliverer processes webhook queue records: fan-outs and attempts. It is
// safe for concurrent use.
type Deliverer struct {
	cfg DelivererConfig
	log *slog.Logger
}

// NewDeliverer returns a Deliverer, or an error naming what is missing. It
// does no I/O.
func NewDeliverer(cfg DelivererConfig) (*Deliverer, error) {
	if cfg.Store == nil || cfg.Events == nil || cfg.Opener == nil || cfg.Queue == nil || cfg.QueueURL == "" || cfg.Waker == nil || cfg.HTTP == nil {
		return nil, errors.New("webhook: NewDeliverer needs Store, Events, Opener, Queue, QueueURL, Waker and HTTP")
	}
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = DefaultSchedule
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DisableAfter, DefaultDisableAfter)
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.Lease, DefaultLease)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{cfg: cfg, log: log}, nil
}

// Record is one webhook queue message.
type Record struct {
	MessageID string
	Body      string
}

// Handle processes a batch, at most Concurrency records at once, and
// returns the ids of the messages that failed. It never panics.
func (d *Deliverer) Handle(ctx context.Context, recs []Record) []string {
	return batch.Failed(ctx, d.log, "webhook", recs, d.cfg.Concurrency,
		func(r Record) string { return r.MessageID }, d.HandleRecord)
}

// HandleRecord processes one message. A nil error acknowledges it.
func (d *Deliverer) HandleRecord(ctx context.Context, rec Record) error {
	m, err := event.DecodeMessage(rec.Body)
	if err != nil {
		d.log.WarnContext(ctx, "undecodable webhook message", "message_id", rec.MessageID, "body_bytes", len(rec.Body),
			"err", "the body is not a webhook message")
		return fmt.Errorf("decode message %s: %w", rec.MessageID, err)
	}
	if m.Type == event.MessageEvent {
		return d.fanOut(ctx, m)
	}
	return d.attempt(ctx, m)
}

// fanOut makes one attempt per endpoint the event goes to (each a
// conditional write: the same fan-out twice makes the same attempts) and
// sends every attempt still pending, then clears the event's pending mark.
func (d *Deliverer) fanOut(ctx context.Context, m event.Message) error {
	ev, err := d.cfg.Events.Get(ctx, m.SiteID, m.EventID)
	if apperr.Is(err, apperr.KindNotFound) {
		d.log.WarnContext(ctx, "event gone before its fan-out", "site", m.SiteID, "event_id", m.EventID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("fan out event %s: %w", m.EventID, err)
	}
	targets, err := d.targets(ctx, ev)
	if err != nil {
		return fmt.Errorf("fan out event %s: %w", m.EventID, err)
	}
	now := d.cfg.Now().UTC()
	var msgs []event.Message
	for _, e := range targets {
		a := Attempt{ID: AttemptID(ev.ID, e.ID, m.Replay), SiteID: m.SiteID, WebhookID: e.ID, EventID: ev.ID, EventType: ev.Type,
			Replay: m.Replay, State: AttemptPending, NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now, Version: 1}
		cur, _, err := d.cfg.Store.CreateAttempt(ctx, a)
		if err != nil {
			return fmt.Errorf("fan out event %s: %w", m.EventID, err)
		}
		if cur.State == AttemptPending {
			// New, or made by a fan-out that died before sending it: a
			// duplicate message is harmless, the claim decides.
			msgs = append(msgs, attemptMessage(cur))
		}
	}
	if err := d.send(ctx, msgs); err != nil {
		return fmt.Errorf("fan out event %s: %w", m.EventID, err)
	}
	if ev.Pending {
		if err := d.cfg.Events.Handed(ctx, m.SiteID, ev.ID); err != nil {
			// The sweep sends the event again; the fan-out makes nothing new.
			d.log.WarnContext(ctx, "mark event handed", "event_id", ev.ID, "err", err.Error())
		}
	}
	d.log.InfoContext(ctx, "webhook fan-out", "site", m.SiteID, "event_id", ev.ID, "event_type", string(ev.Type),
		"endpoints", len(targets), "sent", len(msgs), "replay", m.Replay != "")
	return nil
}

// targets are the endpoints an event goes to: a ping to the endpoint that
// asked for it; any other event to every enabled endpoint subscribed to
// its type.
func (d *Deliverer) targets(ctx context.Context, ev event.Stored) ([]Endpoint, error) {
	if ev.Type == event.Ping {
		var p event.PingData
		if err := json.Unmarshal(ev.Data, &p); err != nil {
			return nil, fmt.Errorf("decode ping data: %w", err)
		}
		e, err := d.cfg.Store.Get(ctx, ev.SiteID, p.WebhookID)
		if apperr.Is(err, apperr.KindNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []Endpoint{e}, nil
	}
	all, _, err := d.cfg.Store.List(ctx, ev.SiteID, 0, "")
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, e := range all {
		if e.Enabled && e.Subscribed(ev.Type) {
			out = append(out, e)
		}
	}
	return out, nil
}

func attemptMessage(a Attempt) event.Message {
	return event.Message{V: event.MessageVersion, Type: event.MessageAttempt, SiteID: a.SiteID, EventID: a.EventID,
		WebhookID: a.WebhookID, AttemptID: a.ID}
}

// send puts messages on the webhook queue in batches of 10.
func (d *Deliverer) send(ctx context.Context, msgs []event.Message) error {
	for start := 0; start < len(msgs); start += 10 {
		batch := msgs[start:min(start+10, len(msgs))]
		entries := make([]sqstypes.SendMessageBatchRequestEntry, len(batch))
		for i, m := range batch {
			entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(m.Encode())}
		}
		out, err := d.cfg.Queue.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &d.cfg.QueueURL, Entries: entries})
		if err != nil {
			return fmt.Errorf("send %d attempt messages: %w", len(entries), err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("send attempt messages: %d of %d failed (%s)", len(out.Failed), len(entries), aws.ToString(out.Failed[0].Code))
		}
	}
	return nil
}

// attempt claims an attempt, posts it and records the outcome.
func (d *Deliverer) attempt(ctx context.Context, m event.Message) error {
	a, err := d.claim(ctx, m)
	if err != nil || a == nil {
		return err
	}
	o := d.post(ctx, *a)
	return d.finish(ctx, *a, o)
}

// claim takes the attempt m names for one try: pending or retrying (and
// due), or sending under an expired lease → sending, with a new fencing
// token and lease. It returns nil when there is nothing to do now.
func (d *Deliverer) claim(ctx context.Context, m event.Message) (*Attempt, error) {
	for range 4 {
		a, err := d.cfg.Store.GetAttempt(ctx, m.SiteID, m.AttemptID)
		if apperr.Is(err, apperr.KindNotFound) {
			d.log.WarnContext(ctx, "attempt gone", "site", m.SiteID, "attempt_id", m.AttemptID)
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("claim attempt %s: %w", m.AttemptID, err)
		}
		now := d.cfg.Now().UTC()
		switch {
		case a.State.settled():
			return nil, nil
		case a.State == AttemptSending && a.LeaseUntil != nil && a.LeaseUntil.After(now):
			return nil, nil // another worker is posting it
		case a.State != AttemptSending && a.NextAttemptAt != nil && a.NextAttemptAt.After(now.Add(clockSkew)):
			return nil, d.early(ctx, a, now)
		}
		lease := now.Add(d.cfg.Lease)
		a.State, a.LeaseUntil = AttemptSending, &lease
		a.Fence++
		a.Tries++
		a.NextAttemptAt, a.WakeAt = nil, nil
		w, err := d.cfg.Store.PutAttempt(ctx, a, now)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim attempt %s: %w", m.AttemptID, err)
		}
		return &w, nil
	}
	return nil, fmt.Errorf("claim attempt %s: contended", m.AttemptID)
}

// early handles a message that came before its attempt's next try:
// acknowledged when a wake-up due at or after it is known to be in
// flight, else sent again with the right delay.
func (d *Deliverer) early(ctx context.Context, a Attempt, now time.Time) error {
	next := *a.NextAttemptAt
	if a.WakeAt != nil && !a.WakeAt.Before(next) && a.WakeAt.After(now.Add(clockSkew)) {
		return nil
	}
	if err := d.wake(ctx, a, next); err != nil {
		return err
	}
	a.WakeAt = &next
	if _, err := d.cfg.Store.PutAttempt(ctx, a, now); err != nil && !errors.Is(err, errStale) {
		d.log.WarnContext(ctx, "record attempt wake-up", "attempt_id", a.ID, "err", err.Error())
	}
	return nil
}

func (d *Deliverer) wake(ctx context.Context, a Attempt, at time.Time) error {
	return d.cfg.Waker.Send(ctx, wake.Wake{Body: attemptMessage(a).Encode(), At: at, Name: "whwake-" + a.ID,
		Description: "POSSE: next try of webhook attempt " + a.ID, What: "webhook attempt " + a.ID})
}

// outcome is what one try came to.
type outcome struct {
	try Try
	// ok: 2xx. final: not retried (410, endpoint or event gone).
	ok, final bool
	// disable, when set, disables the endpoint with this reason.
	disable string
	// retryAfter is the endpoint's Retry-After, if any.
	retryAfter time.Duration
	// failingSince is the endpoint's failure streak before this try.
	endpoint *Endpoint
}

// post sends the attempt's event to its endpoint once, signed with every
// live secret.
func (d *Deliverer) post(ctx context.Context, a Attempt) outcome {
	now := d.cfg.Now().UTC()
	o := outcome{try: Try{N: a.Tries, At: now}}
	fail := func(kind, msg string, final bool) outcome {
		o.try.ErrorKind, o.try.Error, o.final = kind, msg, final
		return o
	}
	e, err := d.cfg.Store.Get(ctx, a.SiteID, a.WebhookID)
	if apperr.Is(err, apperr.KindNotFound) {
		return fail("endpoint_deleted", "the webhook was deleted", true)
	}
	if err != nil {
		d.log.WarnContext(ctx, "read webhook", "attempt_id", a.ID, "err", err.Error())
		return fail("internal", "the webhook could not be read", false)
	}
	o.endpoint = &e
	if !e.Enabled && a.EventType != event.Ping {
		return fail("endpoint_disabled", "the webhook is disabled", true)
	}
	ev, err := d.cfg.Events.Get(ctx, a.SiteID, a.EventID)
	if apperr.Is(err, apperr.KindNotFound) {
		return fail("event_expired", "the event is past its retention", true)
	}
	if err != nil {
		d.log.WarnContext(ctx, "read event", "attempt_id", a.ID, "err", err.Error())
		return fail("internal", "the event could not be read", false)
	}
	keys, err := d.keys(ctx, e, now)
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	if err != nil {
		d.log.WarnContext(ctx, "open webhook secret", "attempt_id", a.ID, "webhook_id", e.ID, "err", err.Error())
		return fail("secret_unavailable", "the signing secret could not be opened", false)
	}
	pctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, e.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return fail("invalid_url", "the webhook's URL cannot be requested", false)
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("webhook-id", ev.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(ev.ID, ts, ev.Body, keys...))
	start := time.Now()
	resp, err := d.cfg.HTTP.Do(req)
	o.try.LatencyMS = time.Since(start).Milliseconds()
	if err != nil {
		kind, msg := classify(err, d.cfg.Timeout)
		return fail(kind, msg, false)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	o.try.StatusCode = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		o.ok = true
		return o
	case resp.StatusCode == http.StatusGone:
		o.disable = "the endpoint answered 410 Gone"
		return fail("gone", "the endpoint answered 410 Gone: it wants no more webhooks", true)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fail("redirect", fmt.Sprintf("the endpoint answered %d; redirects are not followed, register the final URL", resp.StatusCode), false)
	}
	if ra := retryAfter(resp.Header.Get("Retry-After"), now); ra > 0 {
		o.retryAfter = min(ra, MaxRetryAfter)
	}
	return fail("http_status", fmt.Sprintf("the endpoint answered %d", resp.StatusCode), false)
}

// keys opens the endpoint's current secret and, during a rotation's
// overlap, the previous one: every live signing key, current first.
func (d *Deliverer) keys(ctx context.Context, e Endpoint, now time.Time) ([][]byte, error) {
	sealed := []vault.Sealed{e.Secret}
	if e.PreviousSecret != nil && e.PreviousSecretExpiresAt != nil && e.PreviousSecretExpiresAt.After(now) {
		sealed = append(sealed, *e.PreviousSecret)
	}
	var keys [][]byte
	for _, s := range sealed {
		plain, err := d.cfg.Opener.Open(ctx, secretContext(e.SiteID, e.ID), s)
		if err != nil {
			return keys, err
		}
		k, err := DecodeSecret(string(plain))
		clear(plain)
		if err != nil {
			return keys, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// classify turns a failed request into an error kind and a message that
// holds no URL (a URL may carry a token in its query).
func classify(err error, timeout time.Duration) (string, string) {
	if b, ok := outbound.Blocked(err); ok {
		return "blocked_address", "the endpoint's address is not public (" + b.Reason + ")"
	}
	var dns *net.DNSError
	var ne net.Error
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &dns):
		return "dns", "the endpoint's host name did not resolve"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout", fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection", "the connection was refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection", "the connection was closed before an answer"
	case errors.As(err, &cert), errors.As(err, &rec):
		return "tls", "the TLS handshake failed"
	}
	return "connection", "the request failed"
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// finish records a try's outcome, fenced on the claim, and its side
// effects on the endpoint (failing since, recovered, disabled) and the
// queue (the next try's wake-up).
func (d *Deliverer) finish(ctx context.Context, a Attempt, o outcome) error {
	ctx = context.WithoutCancel(ctx)
	now := d.cfg.Now().UTC()
	a.LeaseUntil = nil
	a.History = append(a.History, o.try)
	a.StatusCode, a.LatencyMS, a.ErrorKind, a.Error = o.try.StatusCode, o.try.LatencyMS, o.try.ErrorKind, o.try.Error
	var next time.Time
	switch {
	case o.ok:
		a.State = AttemptSucceeded
	case o.final:
		a.State = AttemptFailed
	case a.Tries > len(d.cfg.Schedule):
		a.State = AttemptDead
	default:
		wait := max(d.cfg.Schedule[a.Tries-1], o.retryAfter)
		next = now.Add(wait)
		a.State, a.NextAttemptAt, a.WakeAt = AttemptRetrying, &next, &next
	}
	w, err := d.cfg.Store.PutAttempt(ctx, a, now)
	if errors.Is(err, errStale) {
		d.log.WarnContext(ctx, "webhook attempt taken over before its outcome was recorded", "attempt_id", a.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record attempt %s: %w", a.ID, err)
	}
	d.endpointState(ctx, w, o, now)
	failed := 1.0
	if o.ok {
		failed = 0
	}
	d.cfg.Metrics.Count(metrics.WebhookAttempts, nil, 1)
	d.cfg.Metrics.Count(metrics.WebhookFailures, nil, failed)
	if w.State == AttemptRetrying {
		if err := d.wake(ctx, w, next); err != nil {
			// The attempt waits in the table; the sweep sends it.
			d.log.WarnContext(ctx, "schedule next webhook try", "attempt_id", w.ID, "err", err.Error())
		}
	}
	d.log.InfoContext(ctx, "webhook attempt", "site", w.SiteID, "webhook_id", w.WebhookID, "attempt_id", w.ID, "event_id", w.EventID,
		"event_type", string(w.EventType), "try", w.Tries, "state", string(w.State), "status_code", w.StatusCode,
		"latency_ms", w.LatencyMS, "error_kind", w.ErrorKind)
	return nil
}

// endpointState updates the endpoint after a try: a success ends its
// failure streak; a failure starts one or, when it has lasted
// DisableAfter, disables the endpoint; a 410 disables it at once.
func (d *Deliverer) endpointState(ctx context.Context, a Attempt, o outcome, now time.Time) {
	if o.endpoint == nil {
		return
	}
	e := *o.endpoint
	warn := func(what string, err error) {
		if err != nil {
			d.log.WarnContext(ctx, what, "webhook_id", e.ID, "err", err.Error())
		}
	}
	switch {
	case o.ok:
		if e.FailingSince != nil {
			warn("record webhook recovery", d.cfg.Store.Recovered(ctx, e.SiteID, e.ID))
		}
	case o.disable != "":
		warn("disable webhook", d.cfg.Store.Disable(ctx, e.SiteID, e.ID, o.disable, now))
	case o.try.ErrorKind == "endpoint_disabled" || o.try.ErrorKind == "endpoint_deleted" || o.try.ErrorKind == "event_expired" ||
		o.try.ErrorKind == "internal" || o.try.ErrorKind == "secret_unavailable":
		// Not the endpoint's failure.
	default:
		cur, err := d.cfg.Store.Failing(ctx, e.SiteID, e.ID, now)
		if err != nil {
			warn("record webhook failure", err)
			return
		}
		if cur.Enabled && cur.FailingSince != nil && now.Sub(*cur.FailingSince) >= d.cfg.DisableAfter {
			reason := fmt.Sprintf("every attempt failed since %s (%s); the last: %s",
				cur.FailingSince.UTC().Format(time.RFC3339), d.cfg.DisableAfter, a.Error)
			warn("disable webhook", d.cfg.Store.Disable(ctx, e.SiteID, e.ID, reason, now))
		}
	}
}
