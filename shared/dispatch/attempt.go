package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
)

// POSSE's own waits: deferrals that are not the platform's answer.
const (
	codePlatformBlock   = "posse.platform_block"
	codeTargetRateLimit = "posse.target_rate_limit"
)

// blockScope is the limiter scope of a block a platform reported for a
// connection.
func blockScope(d ledger.Delivery) string {
	return ratelimit.BlockScope(string(d.Platform), d.ConnectionID)
}

// targetScope is the limiter scope of a target's hourly limit.
func targetScope(d ledger.Delivery) string { return "target:" + d.TargetID }

// attempt publishes a claimed delivery once and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, lease *ledger.Lease, rec Record) (result, error) {
	stop := d.heartbeat(ctx, lease, rec)
	o := d.publish(ctx, lease)
	stop()
	return d.finish(ctx, lease, o)
}

// publish runs the attempt and returns its outcome, without recording it.
func (d *Dispatcher) publish(ctx context.Context, lease *ledger.Lease) ledger.Outcome {
	dl := lease.Delivery()
	now := d.cfg.Now()
	until, blocked, open, err := d.readAccount(ctx, dl)
	if err != nil {
		return d.decide(lease, err)
	}
	if blocked {
		e := apperr.Newf(apperr.KindRateLimited, codePlatformBlock, "%s asked us to wait until %s", dl.Platform, until.UTC().Format(time.RFC3339))
		e.RetryAfter = until.Sub(now)
		return d.decide(lease, e)
	}
	pub, ok := d.cfg.Publishers.Publisher(dl.Platform)
	if !ok {
		return d.decide(lease, apperr.Newf(apperr.KindPermanent, "posse.no_adapter", "no adapter for platform %q", dl.Platform))
	}
	if dl.AI != nil && dl.AI.Source == ledger.AIPending {
		if err := d.adapt(ctx, lease, pub); err != nil {
			if errors.Is(err, ledger.ErrLeaseLost) {
				return ledger.Outcome{Err: err}
			}
			return d.decide(lease, apperr.Wrap(err, apperr.KindTransient, "posse.adapt", "the AI adaptation could not be recorded"))
		}
	}
	acct, err := open(ctx)
	if err != nil {
		if apperr.Is(err, apperr.KindNotFound) {
			err = apperr.Wrap(err, apperr.KindPermanent, "posse.connection_gone", "the target's connection no longer exists")
		}
		return d.decide(lease, err)
	}
	if ok, end, err := d.cfg.Limiter.Take(ctx, dl.SiteID, targetScope(dl), dl.RateLimitPerHour, TargetWindow); err != nil {
		return d.decide(lease, apperr.Wrap(err, apperr.KindTransient, "posse.limiter", "the rate limiter could not be updated"))
	} else if !ok {
		e := apperr.Newf(apperr.KindRateLimited, codeTargetRateLimit, "the target's limit of %d posts an hour is used up", dl.RateLimitPerHour)
		e.RetryAfter = end.Sub(now)
		return d.decide(lease, e)
	}

	pctx, cancel := d.publishContext(ctx)
	defer cancel()
	res, err := pub.Publish(pctx, acct, lease.Post(), lease.Journal())
	if apperr.Is(err, apperr.KindReconnect) {
		// The platform refused the token: renew it once (or learn that the
		// connection is broken) and try again.
		fresh, rerr := d.cfg.Accounts.Renew(ctx, dl.SiteID, dl.ConnectionID, acct.AccessToken)
		if rerr != nil {
			return d.decide(lease, rerr)
		}
		acct = fresh
		res, err = pub.Publish(pctx, acct, lease.Post(), lease.Journal())
		if apperr.Is(err, apperr.KindReconnect) {
			reason := "token_refused"
			if e, ok := apperr.As(err); ok && e.PlatformCode != "" {
				reason = e.PlatformCode
			}
			if berr := d.cfg.Accounts.MarkBroken(ctx, dl.SiteID, dl.ConnectionID, reason); berr != nil {
				d.log.WarnContext(ctx, "mark connection broken", "site", dl.SiteID, "connection_id", dl.ConnectionID, "err", logErr(berr))
			}
		}
	}
	if errors.Is(err, ledger.ErrLeaseLost) {
		return ledger.Outcome{Err: err}
	}
	if err == nil {
		return ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: res.ID, URL: res.URL}}
	}
	if apperr.Is(err, apperr.KindRateLimited) {
		if e, _ := apperr.As(err); e.RetryAfter > 0 {
			if berr := d.cfg.Limiter.Block(ctx, dl.SiteID, blockScope(dl), now.Add(e.RetryAfter)); berr != nil {
				d.log.WarnContext(ctx, "record platform block", "site", dl.SiteID, "connection_id", dl.ConnectionID, "err", logErr(berr))
			}
		}
	}
	if _, typed := apperr.As(err); !typed || apperr.Is(err, apperr.KindAmbiguous) {
		// The request may have reached the platform (an untyped error, a
		// deadline): ask the platform before anything else.
		return d.reconcile(ctx, lease, pub, acct, err)
	}
	return d.decide(lease, err)
}

// accountReader reads a connection together with another item in one
// request: connection.Refresher.
type accountReader interface {
	ReadAlong(ctx context.Context, siteID, id string, also map[string]types.AttributeValue) (map[string]types.AttributeValue, func(context.Context) (platform.Account, error), error)
}

// blockReader reads a platform's block from its item: ratelimit.Limiter.
type blockReader interface {
	BlockKey(siteID, scope string) map[string]types.AttributeValue
	BlockedIn(item map[string]types.AttributeValue) (time.Time, bool, error)
}

// readAccount reads the block the platform set on dl's connection and the
// connection: in one request when Accounts and Limiter can (the DynamoDB
// ones can), else one after the other. open is Ensure from the connection
// as read; it is only called when the block does not stop the attempt.
func (d *Dispatcher) readAccount(ctx context.Context, dl ledger.Delivery) (until time.Time, blocked bool, open func(context.Context) (platform.Account, error), err error) {
	ar, ok1 := d.cfg.Accounts.(accountReader)
	br, ok2 := d.cfg.Limiter.(blockReader)
	if !ok1 || !ok2 {
		until, blocked, err := d.cfg.Limiter.Blocked(ctx, dl.SiteID, blockScope(dl))
		if err != nil {
			return time.Time{}, false, nil, apperr.Wrap(err, apperr.KindTransient, "posse.limiter", "the rate limiter could not be read")
		}
		return until, blocked, func(ctx context.Context) (platform.Account, error) {
			return d.cfg.Accounts.Ensure(ctx, dl.SiteID, dl.ConnectionID)
		}, nil
	}
	item, open, err := ar.ReadAlong(ctx, dl.SiteID, dl.ConnectionID, br.BlockKey(dl.SiteID, blockScope(dl)))
	if err != nil {
		return time.Time{}, false, nil, apperr.Wrap(err, apperr.KindTransient, "posse.read", "the connection and its rate-limit block could not be read")
	}
	until, blocked, err = br.BlockedIn(item)
	if err != nil {
		return time.Time{}, false, nil, apperr.Wrap(err, apperr.KindTransient, "posse.limiter", "the rate limiter could not be read")
	}
	return until, blocked, open, nil
}

// publishContext is ctx with its deadline moved FinishReserve earlier, so
// the outcome can still be recorded when a publish runs out of time.
func (d *Dispatcher) publishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-d.cfg.FinishReserve))
	}
	return context.WithCancel(ctx)
}

// decide is the policy's outcome of a failed attempt.
func (d *Dispatcher) decide(lease *ledger.Lease, err error) ledger.Outcome {
	dl := lease.Delivery()
	return d.cfg.Policy.Decide(err, dl.Attempts, lease.Deferrals(), d.cfg.Now())
}

// errReconcileLater marks an outcome that records nothing: the platform
// could have told whether an ambiguous attempt published but did not answer
// now (rate limited, unavailable), so the delivery stays publishing under
// its lease and is reconciled again when the lease expires (the message's
// redelivery or the sweep).
var errReconcileLater = errors.New("the platform could not be asked now; reconcile again when the lease expires")

// reconcile asks the platform whether an ambiguous attempt published: yes
// → sent; no → the policy's retry; cannot tell → unknown; cannot ask now
// (a rate limit or a transient failure of the reconciling call) → nothing
// recorded, ask again later (errReconcileLater). A refused token is renewed
// once before the platform is asked again.
func (d *Dispatcher) reconcile(ctx context.Context, lease *ledger.Lease, pub platform.Publisher, acct platform.Account, cause error) ledger.Outcome {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ReconcileTimeout)
	defer cancel()
	res, found, err := pub.Reconcile(rctx, acct, lease.Post())
	if apperr.Is(err, apperr.KindReconnect) {
		// The platform refused the token of the reconciling call: renew
		// it once and ask again, as a publish does.
		dl := lease.Delivery()
		if fresh, rerr := d.cfg.Accounts.Renew(rctx, dl.SiteID, dl.ConnectionID, acct.AccessToken); rerr == nil {
			res, found, err = pub.Reconcile(rctx, fresh, lease.Post())
		}
	}
	switch {
	case err == nil && found:
		return ledger.Outcome{State: ledger.StateSent, Result: ledger.Result{ID: res.ID, URL: res.URL}, Note: "reconciled: the platform has the post"}
	case err == nil:
		o := d.decide(lease, apperr.Wrap(cause, apperr.KindTransient, "posse.not_published", "the platform confirms the attempt did not publish"))
		o.Note = "reconciled: not published"
		return o
	case askAgain(err):
		return ledger.Outcome{Err: fmt.Errorf("reconcile delivery %s: %w: %w", lease.Delivery().ID, errReconcileLater, err)}
	}
	e := apperr.Wrap(err, apperr.KindAmbiguous, "posse.unknown_outcome", "the attempt may have published and the platform cannot tell; check it, then retry or resolve")
	if ae, ok := apperr.As(cause); ok {
		e.Platform, e.PlatformCode, e.HTTPStatus = ae.Platform, ae.PlatformCode, ae.HTTPStatus
	}
	return ledger.Outcome{State: ledger.StateUnknown, Err: e}
}

// recover takes over a delivery left publishing under an expired lease
// and reconciles the attempt that died. It returns the delivery's state
// afterwards; a claimable one (retrying: the platform says nothing was
// published) may be claimed at once.
func (d *Dispatcher) recover(ctx context.Context, siteID, id string) (ledger.State, ledger.Delivery, error) {
	lease, err := d.cfg.Ledger.TakeOver(ctx, siteID, id, d.cfg.Policy)
	if ce, ok := ledger.Refused(err); ok {
		// Someone else reconciled or claimed it first; the caller goes on
		// from the state it is in now.
		return ce.Delivery.State, ce.Delivery, nil
	}
	if err != nil {
		return "", ledger.Delivery{}, err
	}
	dl := lease.Delivery()
	var o ledger.Outcome
	pub, ok := d.cfg.Publishers.Publisher(dl.Platform)
	acct, aerr := d.cfg.Accounts.Ensure(ctx, dl.SiteID, dl.ConnectionID)
	switch {
	case !ok:
		o = ledger.Outcome{State: ledger.StateUnknown, Err: apperr.Newf(apperr.KindAmbiguous, "posse.no_adapter", "no adapter for platform %q to reconcile with", dl.Platform)}
	case aerr != nil && retryable(aerr):
		// Cannot ask the platform now: leave the delivery publishing; the
		// new lease expires and the next message or sweep tries again.
		return dl.State, dl, fmt.Errorf("reconcile delivery %s: open the connection: %w", id, aerr)
	case aerr != nil:
		o = ledger.Outcome{State: ledger.StateUnknown, Err: apperr.Wrap(aerr, apperr.KindAmbiguous, "posse.unknown_outcome",
			"an attempt died mid-publish and the connection cannot be used to ask the platform; check it, then retry or resolve")}
	default:
		o = d.reconcile(ctx, lease, pub, acct, apperr.New(apperr.KindAmbiguous, "posse.lease_expired", "an attempt died mid-publish"))
	}
	if o.State == ledger.StateRetrying {
		o.NextAttemptAt = d.cfg.Now() // nothing was published: go again now
	}
	res, err := d.finish(ctx, lease, o)
	return res.delivery.State, res.delivery, err
}

// finish records an outcome (with its event, in one transaction), then its
// side effects: the event's message on the webhook queue, the stats, the
// log line of an unknown outcome and the wake-up message of a retry or
// deferral.
func (d *Dispatcher) finish(ctx context.Context, lease *ledger.Lease, o ledger.Outcome) (result, error) {
	if errors.Is(o.Err, errReconcileLater) {
		// Nothing to record: the message stays on the queue, and the
		// delivery is reconciled again once its lease expires.
		d.log.WarnContext(ctx, "reconcile later: the platform cannot be asked now", "delivery_id", lease.Delivery().ID,
			"platform", string(lease.Delivery().Platform), "err", logErr(o.Err))
		return result{"reconcile_later", lease.Delivery()}, o.Err
	}
	if errors.Is(o.Err, ledger.ErrLeaseLost) || o.State == "" {
		d.log.WarnContext(ctx, "lease lost during the attempt", "delivery_id", lease.Delivery().ID)
		return result{"lease_lost", lease.Delivery()}, nil
	}
	dueAt := lease.DueAt()
	dl, err := lease.Finish(context.WithoutCancel(ctx), o)
	if errors.Is(err, ledger.ErrLeaseLost) {
		d.log.WarnContext(ctx, "lease lost before the outcome was recorded", "delivery_id", lease.Delivery().ID, "outcome", string(o.State))
		return result{"lease_lost", lease.Delivery()}, nil
	}
	if err != nil {
		return result{"finish_failed", lease.Delivery()}, err
	}
	if ev, ok := lease.Event(); ok && d.cfg.Events != nil {
		// The event is in the table with the outcome; if it cannot be put
		// on the webhook queue now, the sweep finds it still pending.
		if err := d.cfg.Events.Publish(ctx, ev.SiteID, ev.ID); err != nil {
			d.log.WarnContext(ctx, "publish event", "delivery_id", dl.ID, "event_id", ev.ID, "event_type", string(ev.Type), "err", logErr(err))
		}
	}
	now := d.cfg.Now()
	d.observe(dl, o, now.Sub(dueAt))
	ev := stats.Event{}
	switch dl.State {
	case ledger.StateSent:
		ev.Sent, ev.Latency = 1, now.Sub(dueAt)
	case ledger.StateFailed, ledger.StateDead:
		ev.Failed, ev.ErrorKind = 1, string(apperr.KindOf(o.Err))
	case ledger.StateRetrying:
		ev.Retries, ev.ErrorKind = 1, string(apperr.KindOf(o.Err))
	case ledger.StateUnknown:
		d.log.WarnContext(ctx, "delivery outcome unknown", "event", "delivery.unknown", "site", dl.SiteID, "delivery_id", dl.ID,
			"platform", string(dl.Platform), "target_id", dl.TargetID, "err", logErr(o.Err))
	}
	d.record(ctx, dl, now, ev)
	if (dl.State == ledger.StateRetrying || dl.State == ledger.StateDeferred) && dl.NextAttemptAt != nil {
		if err := d.wake(ctx, ledger.DeliveryMessage(dl.SiteID, dl.ID), *dl.NextAttemptAt); err != nil {
			// The delivery waits in the ledger; the sweep re-enqueues it
			// when it is overdue.
			d.log.WarnContext(ctx, "schedule next attempt", "delivery_id", dl.ID, "err", logErr(err))
		}
	}
	return result{string(dl.State), dl}, nil
}

// observe records a recorded outcome's metrics: the outcome, the latency
// of a publication, the reason of a deferral, an unknown outcome, and the
// kind of the error of an attempt that did not publish. Its dimensions are
// the platform and words from short fixed lists, never an id.
func (d *Dispatcher) observe(dl ledger.Delivery, o ledger.Outcome, latency time.Duration) {
	m, p := d.cfg.Metrics, string(dl.Platform)
	m.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: p, metrics.Outcome: string(dl.State)}, 1)
	switch dl.State {
	case ledger.StateSent:
		m.Duration(metrics.PublishLatency, metrics.Dims{metrics.Platform: p}, max(latency, 0))
	case ledger.StateDeferred:
		m.Count(metrics.Deferrals, metrics.Dims{metrics.Platform: p, metrics.Reason: deferralReason(o.Err)}, 1)
	case ledger.StateUnknown:
		m.Count(metrics.Unknown, metrics.Dims{metrics.Platform: p}, 1)
	}
	if o.Err != nil && dl.State != ledger.StateSent && !ownWait(o.Err) {
		m.Count(metrics.PlatformErrors, metrics.Dims{metrics.Platform: p, metrics.ErrorKind: string(apperr.KindOf(o.Err))}, 1)
	}
}

// deferralReason names why an attempt was deferred: a block recorded
// earlier, the target's hourly limit, or the platform's own rate limit.
func deferralReason(err error) string {
	e, _ := apperr.As(err)
	switch {
	case e != nil && e.Code == codePlatformBlock:
		return "platform_block"
	case e != nil && e.Code == codeTargetRateLimit:
		return "target_rate_limit"
	}
	return "platform_rate_limit"
}

// ownWait reports whether err is one of POSSE's own waits rather than
// something the platform answered.
func ownWait(err error) bool {
	e, ok := apperr.As(err)
	return ok && (e.Code == codePlatformBlock || e.Code == codeTargetRateLimit)
}

// heartbeat extends the message's visibility and the lease every Heartbeat
// while the attempt runs, and returns the function that stops it.
func (d *Dispatcher) heartbeat(ctx context.Context, lease *ledger.Lease, rec Record) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if rec.ReceiptHandle != "" {
				_, err := d.cfg.Queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
					QueueUrl: &d.cfg.QueueURL, ReceiptHandle: aws.String(rec.ReceiptHandle),
					VisibilityTimeout: int32(d.cfg.Visibility / time.Second),
				})
				if err != nil {
					d.log.WarnContext(ctx, "extend message visibility", "message_id", rec.MessageID, "err", logErr(err))
				}
			}
			if err := lease.Extend(ctx); err != nil {
				d.log.WarnContext(ctx, "extend lease", "delivery_id", lease.Delivery().ID, "err", logErr(err))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// askAgain reports a reconciliation that failed for now only: the
// platform rate-limited or failed the reconciling call, so it could still
// tell later. An ambiguous error (the platform cannot tell at all, or our
// checkpoint is unreadable) is final.
func askAgain(err error) bool {
	switch apperr.KindOf(err) {
	case apperr.KindTransient, apperr.KindRateLimited:
		return true
	}
	return false
}

// retryable reports whether err is worth trying again soon: transient,
// rate limited, or untyped (an AWS call of our own that failed).
func retryable(err error) bool {
	switch apperr.KindOf(err) {
	case apperr.KindTransient, apperr.KindRateLimited, apperr.KindInternal:
		return true
	}
	return false
}
