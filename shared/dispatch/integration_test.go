package dispatch_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/connection/connectiontest"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
	"github.com/posse-dev/posse/shared/ratelimit"
	"github.com/posse-dev/posse/shared/stats"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// adapterClock lets adapters read the test's clock and "sleep" by moving
// it, so reset headers and media polls line up without real waits.
type adapterClock struct{ c *connectiontest.Clock }

func (a adapterClock) Now() time.Time { return a.c.Now() }

func (a adapterClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.c.Advance(d)
	return nil
}

// stack is the dispatcher wired to moto (table, KMS, a queue with a DLQ)
// and the platform simulator, as functions/dispatch wires it.
type stack struct {
	t      *testing.T
	e      *connectiontest.Env
	sqs    *sqs.Client
	queue  string
	dlq    string
	ledger *ledger.Store
	stats  *stats.Store
	reg    *registry.Registry
	d      *dispatch.Dispatcher
	conns  map[platform.Name]string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackWith(t, &http.Client{Timeout: 10 * time.Second})
}

// newStackWith is newStack with the adapters' HTTP client.
func newStackWith(t *testing.T, hc *http.Client) *stack {
	t.Helper()
	e := connectiontest.New(t, connectiontest.Options{})
	s := &stack{t: t, e: e, sqs: sqs.NewFromConfig(mototest.Config(t)), conns: map[platform.Name]string{}}
	name := "dispatch-" + e.Random(6)
	dlq, err := s.sqs.CreateQueue(e.Ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := s.sqs.GetQueueAttributes(e.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.sqs.CreateQueue(e.Ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		"VisibilityTimeout": "360",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, attrs.Attributes["QueueArn"]),
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.queue, s.dlq = *q.QueueUrl, *dlq.QueueUrl
	s.ledger = ledger.NewStore(e.DB, e.Table, e.Clock.Now)
	s.stats = stats.New(e.DB, e.Table)
	s.reg = registry.New(registry.Config{BaseURL: e.SimURL, HTTPClient: hc, Clock: adapterClock{e.Clock}})
	s.d, err = dispatch.New(dispatch.Config{
		Ledger: s.ledger, Accounts: e.Refresher, Publishers: s.reg,
		Limiter: ratelimit.New(e.DB, e.Table, e.Clock.Now), Stats: s.stats,
		Queue: s.sqs, QueueURL: s.queue, Logger: e.Log, Now: e.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// connect connects an account of p and remembers the connection.
func (s *stack) connect(p platform.Name) string {
	s.t.Helper()
	var id string
	switch p {
	case platform.Mastodon:
		c, err := s.e.Service.Connect(s.e.Ctx, s.e.Site.ID, connection.ManualRequest{Platform: p, InstanceURL: s.e.MastodonURL, AccessToken: s.e.MastodonToken})
		if err != nil {
			s.t.Fatal(err)
		}
		id = c.ID
	case platform.Bluesky:
		c, err := s.e.Service.Connect(s.e.Ctx, s.e.Site.ID, connection.ManualRequest{Platform: p, Handle: s.e.BlueskyHandle, AppPassword: s.e.BlueskyPassword})
		if err != nil {
			s.t.Fatal(err)
		}
		id = c.ID
	default:
		id = s.e.Connect(p)
	}
	s.conns[p] = id
	return id
}

// create creates a queued delivery of post to p's connection.
func (s *stack) create(p platform.Name, post string) ledger.Delivery {
	s.t.Helper()
	n := ledger.NewDelivery{SiteID: s.e.Site.ID, PostID: post, Revision: "r1", TargetID: "tgt_" + string(p), ConnectionID: s.conns[p],
		Platform: p, Text: "Hello from " + post + " on " + string(p), Link: "https://blog.example.test/" + post, Title: post, RateLimitPerHour: 50}
	if p == platform.Instagram || p == platform.TikTok {
		n.Media = []platform.Media{{URL: s.e.SimURL + "/_sim/media/a.jpg", Kind: platform.Image, AltText: "a picture"}}
	}
	out, _, err := s.ledger.CreateAll(s.e.Ctx, []ledger.NewDelivery{n})
	if err != nil {
		s.t.Fatal(err)
	}
	return out[0]
}

func (s *stack) send(body string) {
	s.t.Helper()
	if _, err := s.sqs.SendMessage(s.e.Ctx, &sqs.SendMessageInput{QueueUrl: &s.queue, MessageBody: &body}); err != nil {
		s.t.Fatal(err)
	}
}

// poll receives one batch like Lambda's event source mapping, hands it to
// the dispatcher and deletes the messages that did not fail. It returns the
// records and the failed ids.
func (s *stack) poll(wait int32) ([]dispatch.Record, []string) {
	s.t.Helper()
	out, err := s.sqs.ReceiveMessage(s.e.Ctx, &sqs.ReceiveMessageInput{
		QueueUrl: &s.queue, MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	recs := make([]dispatch.Record, len(out.Messages))
	for i, m := range out.Messages {
		n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
		recs[i] = dispatch.Record{MessageID: *m.MessageId, ReceiptHandle: *m.ReceiptHandle, Body: *m.Body, ReceiveCount: n}
	}
	if len(recs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(s.e.Ctx, time.Minute)
	defer cancel()
	failed := s.d.Handle(ctx, recs)
	bad := map[string]bool{}
	for _, id := range failed {
		bad[id] = true
	}
	for _, r := range recs {
		if bad[r.MessageID] {
			continue
		}
		if _, err := s.sqs.DeleteMessage(s.e.Ctx, &sqs.DeleteMessageInput{QueueUrl: &s.queue, ReceiptHandle: &r.ReceiptHandle}); err != nil {
			s.t.Fatal(err)
		}
	}
	return recs, failed
}

// drain polls until the queue stays empty for one poll.
func (s *stack) drain() []dispatch.Record {
	s.t.Helper()
	var all []dispatch.Record
	for range 20 {
		recs, _ := s.poll(0)
		if len(recs) == 0 {
			return all
		}
		all = append(all, recs...)
	}
	s.t.Fatal("the queue did not drain in 20 polls")
	return nil
}

func (s *stack) get(id string) ledger.Delivery {
	s.t.Helper()
	d, err := s.ledger.Get(s.e.Ctx, s.e.Site.ID, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *stack) posts(p platform.Name) int { return len(s.e.Sim.Posts(string(p))) }

func TestIntegrationPublishEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.connect(platform.Mastodon)
	d := s.create(platform.Mastodon, "hello")
	s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
	s.drain()
	got := s.get(d.ID)
	if got.State != ledger.StateSent || got.PlatformURL == "" || got.PlatformPostID == "" || got.Attempts != 1 || len(got.History) != 1 {
		t.Fatalf("delivery: got %+v, want sent with the platform's id and URL", got)
	}
	posts := s.e.Sim.Posts("mastodon")
	if len(posts) != 1 || posts[0].Text != d.Text || posts[0].URL != got.PlatformURL {
		t.Errorf("simulator posts: got %+v, want one with the frozen text", posts)
	}
	rep, err := s.stats.Query(s.e.Ctx, d.SiteID, s.e.Clock.Now(), s.e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Sent != 1 || len(rep.ByPlatform) != 1 || rep.ByPlatform[0].Platform != platform.Mastodon {
		t.Errorf("stats: got %+v, want one sent on mastodon", rep)
	}
	s.e.AssertLogsClean()
}

func TestIntegrationDuplicateMessagesPublishOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.connect(platform.Bluesky)
	s.connect(platform.X)
	var ids []string
	for _, p := range []platform.Name{platform.Bluesky, platform.X} {
		d := s.create(p, "dup")
		ids = append(ids, d.ID)
		// Every message delivered twice, and once more after it was sent.
		s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
		s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
	}
	s.drain()
	for _, id := range ids {
		s.send(ledger.DeliveryMessage(s.e.Site.ID, id).Encode())
	}
	s.drain()
	for i, p := range []platform.Name{platform.Bluesky, platform.X} {
		if got := s.get(ids[i]); got.State != ledger.StateSent || got.Attempts != 1 {
			t.Errorf("%s: got %s after %d attempts, want sent after 1", p, got.State, got.Attempts)
		}
		if n := s.posts(p); n != 1 {
			t.Errorf("%s posts: got %d, want 1", p, n)
		}
	}
}

func TestIntegrationTimeoutAfterCreate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    platform.Name
		want ledger.State
	}{
		{platform.Mastodon, ledger.StateSent},
		{platform.Bluesky, ledger.StateSent},
		{platform.Instagram, ledger.StateSent},
		{platform.X, ledger.StateUnknown},
	} {
		t.Run(string(tc.p), func(t *testing.T) {
			t.Parallel()
			// Without keep-alives: Go's transport silently retries a request
			// with an Idempotency-Key (Mastodon) on a reused connection that
			// drops, which would hide the ambiguous outcome under test.
			s := newStackWith(t, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}})
			s.connect(tc.p)
			d := s.create(tc.p, "timeout")
			s.e.Sim.AddFault(platformsim.Fault{Platform: string(tc.p), Kind: platformsim.FaultTimeoutAfterCreate})
			s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
			s.drain()
			got := s.get(d.ID)
			if got.State != tc.want {
				t.Fatalf("delivery: got %s (%+v), want %s", got.State, got.LastError, tc.want)
			}
			if tc.want == ledger.StateSent && (got.PlatformURL == "" || len(got.History) != 1 || !strings.HasPrefix(got.History[0].Message, "reconciled")) {
				t.Errorf("want reconciled with the post's URL: got %+v", got)
			}
			if tc.want == ledger.StateUnknown && (got.LastError == nil || got.LastError.Kind != "ambiguous") {
				t.Errorf("unknown without an ambiguous error: %+v", got.LastError)
			}
			// The message comes again (redelivery, redrive): nothing more.
			s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
			s.drain()
			if n := s.posts(tc.p); n != 1 {
				t.Errorf("%s posts: got %d, want 1", tc.p, n)
			}
			if got := s.get(d.ID); got.State != tc.want || got.Attempts != 1 {
				t.Errorf("after redelivery: got %s after %d attempts", got.State, got.Attempts)
			}
		})
	}
}

func TestIntegrationRateLimitedThenSent(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.connect(platform.Mastodon)
	d := s.create(platform.Mastodon, "limited")
	s.e.Sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultRateLimit, ResetSeconds: 2})
	s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
	recs, failed := s.poll(1)
	if len(recs) != 1 || len(failed) != 0 {
		t.Fatalf("first poll: got %d records, %v failed; want one acknowledged", len(recs), failed)
	}
	got := s.get(d.ID)
	if got.State != ledger.StateDeferred || got.NextAttemptAt == nil || got.LastError == nil || got.LastError.Kind != "rate_limited" {
		t.Fatalf("delivery: got %s %+v, want deferred until the reset", got.State, got.LastError)
	}
	// The platform's reset passes; the delayed wake-up message arrives.
	s.e.Clock.Advance(got.NextAttemptAt.Sub(s.e.Clock.Now()))
	var seen []dispatch.Record
	for range 15 {
		recs, _ := s.poll(1)
		seen = append(seen, recs...)
		if s.get(d.ID).State == ledger.StateSent {
			break
		}
	}
	got = s.get(d.ID)
	if got.State != ledger.StateSent || s.posts(platform.Mastodon) != 1 {
		t.Fatalf("after the reset: got %s, %d posts; want sent once", got.State, s.posts(platform.Mastodon))
	}
	for _, r := range append(recs, seen...) {
		if r.ReceiveCount != 1 {
			t.Errorf("message %s was received %d times; a deferral must not burn receives", r.MessageID, r.ReceiveCount)
		}
	}
	if got.Attempts != 1 || len(got.History) != 2 {
		t.Errorf("attempts %d, history %d; want 1 attempt (the deferral is not one) and 2 entries", got.Attempts, len(got.History))
	}
	s.drain()
	dl, err := s.sqs.GetQueueAttributes(s.e.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: &s.dlq,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if n := dl.Attributes["ApproximateNumberOfMessages"]; n != "0" {
		t.Errorf("DLQ: got %s messages, want 0", n)
	}
}

func TestIntegrationPoisonMessage(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.connect(platform.Mastodon)
	a, b := s.create(platform.Mastodon, "a"), s.create(platform.Mastodon, "b")
	s.send(ledger.DeliveryMessage(a.SiteID, a.ID).Encode())
	s.send("this is not a dispatch message")
	s.send(ledger.DeliveryMessage(b.SiteID, b.ID).Encode())
	var failed []string
	var total int
	for range 5 {
		recs, f := s.poll(1)
		total += len(recs)
		failed = append(failed, f...)
		if total >= 3 {
			break
		}
	}
	if total != 3 || len(failed) != 1 {
		t.Fatalf("got %d records and failures %v; want 3 records, the poison one failed", total, failed)
	}
	for _, d := range []ledger.Delivery{a, b} {
		if got := s.get(d.ID); got.State != ledger.StateSent {
			t.Errorf("neighbour %s: got %s, want sent", d.PostID, got.State)
		}
	}
	if n := s.posts(platform.Mastodon); n != 2 {
		t.Errorf("posts: got %d, want 2", n)
	}
}

func TestIntegrationExpiredLease(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"message", "sweep"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			s.connect(platform.Mastodon)
			d := s.create(platform.Mastodon, "crash")
			// A worker claims, publishes, and dies before recording it.
			lease, err := s.ledger.Claim(s.e.Ctx, d.SiteID, d.ID, ledger.Policy{Lease: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := s.reg.Publisher(platform.Mastodon)
			acct, err := s.e.Refresher.Ensure(s.e.Ctx, d.SiteID, d.ConnectionID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pub.Publish(s.e.Ctx, acct, lease.Post(), lease.Journal()); err != nil {
				t.Fatal(err)
			}
			s.e.Clock.Advance(2 * time.Minute)
			switch via {
			case "message":
				s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
				s.drain()
			case "sweep":
				st, err := s.d.Sweep(s.e.Ctx, dispatch.SweepConfig{})
				if err != nil || st.ExpiredLeases != 1 || st.Reconciled != 1 {
					t.Fatalf("sweep: got %+v, %v; want one expired lease reconciled", st, err)
				}
			}
			got := s.get(d.ID)
			if got.State != ledger.StateSent || got.PlatformURL == "" {
				t.Fatalf("delivery: got %s %+v, want reconciled as sent", got.State, got.LastError)
			}
			if n := s.posts(platform.Mastodon); n != 1 {
				t.Errorf("posts: got %d, want 1", n)
			}
			if _, err := lease.Finish(s.e.Ctx, ledger.Outcome{State: ledger.StateFailed}); err == nil {
				t.Error("the dead worker's late write succeeded")
			}
		})
	}
}

func TestIntegrationSweepRequeues(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.connect(platform.Mastodon)
	lost := s.create(platform.Mastodon, "lost") // its message was never sent
	fresh := s.create(platform.Mastodon, "fresh")
	_ = fresh
	s.e.Clock.Advance(11 * time.Minute)
	recent := s.create(platform.Mastodon, "recent")
	st, err := s.d.Sweep(s.e.Ctx, dispatch.SweepConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if st.StaleQueued != 2 || st.Requeued != 2 {
		t.Errorf("sweep: got %+v, want the two old queued deliveries re-enqueued", st)
	}
	// A second sweep right away does not enqueue them again.
	if st, err := s.d.Sweep(s.e.Ctx, dispatch.SweepConfig{}); err != nil || st.Requeued != 0 {
		t.Errorf("second sweep: got %+v, %v; want nothing re-enqueued", st, err)
	}
	s.drain()
	if got := s.get(lost.ID); got.State != ledger.StateSent {
		t.Errorf("lost delivery: got %s, want sent", got.State)
	}
	if got := s.get(recent.ID); got.State != ledger.StateQueued {
		t.Errorf("recent delivery: got %s, want still queued (not yet overdue)", got.State)
	}
}

func TestIntegrationLongDeferralIsAOneTimeSchedule(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	sc := scheduler.NewFromConfig(mototest.Config(t))
	group := "posse-test-" + strings.ToLower(s.e.Random(4))
	if _, err := sc.CreateScheduleGroup(s.e.Ctx, &scheduler.CreateScheduleGroupInput{Name: &group}); err != nil {
		t.Fatal(err)
	}
	attrs, err := s.sqs.GetQueueAttributes(s.e.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: &s.queue, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	s.d, err = dispatch.New(dispatch.Config{
		Ledger: s.ledger, Accounts: s.e.Refresher, Publishers: s.reg,
		Limiter: ratelimit.New(s.e.DB, s.e.Table, s.e.Clock.Now), Stats: s.stats,
		Queue: s.sqs, QueueURL: s.queue, QueueARN: attrs.Attributes["QueueArn"],
		Scheduler: sc, ScheduleGroup: group, SchedulerRoleARN: "arn:aws:iam::123456789012:role/posse-test-scheduler",
		SchedulerDLQARN: "arn:aws:sqs:us-east-1:123456789012:posse-test-scheduler-dlq",
		Logger:          s.e.Log, Now: s.e.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.connect(platform.Mastodon)
	d := s.create(platform.Mastodon, "later")
	s.e.Sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultRateLimit, ResetSeconds: 3600})
	s.send(ledger.DeliveryMessage(d.SiteID, d.ID).Encode())
	s.drain()
	got := s.get(d.ID)
	if got.State != ledger.StateDeferred || got.NextAttemptAt == nil {
		t.Fatalf("delivery: got %s, want deferred by an hour", got.State)
	}
	list, err := sc.ListSchedules(s.e.Ctx, &scheduler.ListSchedulesInput{GroupName: &group})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Schedules) != 1 {
		t.Fatalf("schedules in %s: got %d, want 1", group, len(list.Schedules))
	}
	sch, err := sc.GetSchedule(s.e.Ctx, &scheduler.GetScheduleInput{Name: list.Schedules[0].Name, GroupName: &group})
	if err != nil {
		t.Fatal(err)
	}
	at := got.NextAttemptAt.UTC().Truncate(time.Second).Add(time.Second)
	if aws.ToString(sch.ScheduleExpression) != "at("+at.Format("2006-01-02T15:04:05")+")" ||
		aws.ToString(sch.Target.Input) != ledger.DeliveryMessage(d.SiteID, d.ID).Encode() ||
		aws.ToString(sch.Target.Arn) != attrs.Attributes["QueueArn"] || sch.ActionAfterCompletion != schedtypes.ActionAfterCompletionDelete {
		t.Errorf("schedule: got %s %s → %s (%s)", aws.ToString(sch.ScheduleExpression), aws.ToString(sch.Target.Input), aws.ToString(sch.Target.Arn), sch.ActionAfterCompletion)
	}
	// The schedule fires (the local runner's job): the message is delivered
	// once the platform's reset has passed, and publishes.
	s.e.Clock.Advance(got.NextAttemptAt.Sub(s.e.Clock.Now()))
	s.send(aws.ToString(sch.Target.Input))
	s.drain()
	if got := s.get(d.ID); got.State != ledger.StateSent || s.posts(platform.Mastodon) != 1 {
		t.Errorf("after the fire: got %s, %d posts; want sent once", got.State, s.posts(platform.Mastodon))
	}
}
