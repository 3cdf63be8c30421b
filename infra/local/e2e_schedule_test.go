package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/ledger"
)

// e2eSchedule is the part of a schedule answer the test reads.
type e2eSchedule struct {
	ID, State, SchedulerName string
	Version                  int
	ScheduledForUTC          string
	FiredAt                  *time.Time
	DeliveryIDs              []string
	Deliveries               []e2eDelivery
}

// TestScheduleEndToEnd runs the real template in the local stack — moto,
// the api and dispatch bootstraps under the RIE, the runner's Scheduler
// ticker, the simulator — and proves, counting posts in the simulator: a
// schedule fires on time and publishes once, and its Scheduler schedule is
// gone afterwards; a duplicate fire publishes nothing more; a cancelled
// schedule publishes nothing; a reschedule publishes once at the new time
// and a stale fire of the old version does nothing.
func TestScheduleEndToEnd(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	state := t.TempDir()
	if d := os.Getenv("POSSE_E2E_STATE"); d != "" {
		state = d // keep the logs to read after a failure
	}
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "1",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", state)
	defer l.stop(t)
	api, simURL := l.info["API URL"], l.info["Simulator"]
	c := apiClient{t: t, api: api, key: l.info["Site API key"], simURL: simURL}
	siteID := l.info["Site id"]
	ctx := context.Background()
	awsCfg := moto.Config(l.info["Moto endpoint"])
	sched, queues := scheduler.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)
	q, err := queues.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("posse-local-dispatch")})
	if err != nil {
		t.Fatal(err)
	}
	dispatchQ := aws.ToString(q.QueueUrl)

	tok := randomSecret(t)
	c.seedSimAccount(map[string]string{"platform": "mastodon", "accountId": "777", "handle": "scheduled", "accessToken": tok})
	var conn, tg struct{ ID string }
	c.must(201, "POST", "/connections", map[string]string{"platform": "mastodon", "instanceUrl": simURL + "/mastodon", "accessToken": tok}, &conn)
	c.must(201, "POST", "/targets", map[string]any{"connectionId": conn.ID, "name": "Mastodon"}, &tg)

	schedulePost := func(postID string, at time.Time) e2eSchedule {
		t.Helper()
		var out e2eSchedule
		c.must(201, "POST", "/schedules", map[string]any{
			"post":         map[string]any{"postId": postID, "revision": "1", "title": "Scheduled " + postID, "url": "https://blog.example/" + postID},
			"targetIds":    []string{tg.ID},
			"scheduledFor": at.UTC().Format(time.RFC3339),
		}, &out)
		return out
	}
	postsOf := func(postID string) int {
		var out struct{ Posts []simPost }
		simJSON(t, simURL+"/_sim/posts?platform=mastodon", &out)
		n := 0
		for _, p := range out.Posts {
			if strings.Contains(p.Text, "Scheduled "+postID) {
				n++
			}
		}
		return n
	}
	fireAgain := func(id string, version int) {
		t.Helper()
		body := ledger.ScheduleMessage(siteID, id, version).Encode()
		if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dispatchQ, MessageBody: &body}); err != nil {
			t.Fatal(err)
		}
	}
	waitSent := func(s e2eSchedule, within time.Duration) e2eDelivery {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			var d e2eDelivery
			c.must(200, "GET", "/deliveries/"+s.DeliveryIDs[0], nil, &d)
			if d.State == "sent" {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("schedule %s: delivery still %s after %v", s.ID, d.State, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Far enough ahead that they go through Scheduler (moto) and the
	// runner's ticker, not straight to the queue.
	at := time.Now().Add(8 * time.Second).Truncate(time.Second)
	fired := schedulePost("fired", at)
	cancelled := schedulePost("cancelled", at)
	moved := schedulePost("moved", at)
	for _, s := range []e2eSchedule{fired, cancelled, moved} {
		if s.State != "scheduled" || len(s.Deliveries) != 1 || s.Deliveries[0].State != "scheduled" {
			t.Fatalf("created: got %+v, want scheduled with one scheduled delivery", s)
		}
		if _, err := sched.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: &s.SchedulerName, GroupName: aws.String("posse-local")}); err != nil {
			t.Fatalf("schedule %s is not in Scheduler: %v", s.ID, err)
		}
	}
	var out e2eSchedule
	c.must(200, "DELETE", "/schedules/"+cancelled.ID, nil, &out)
	later := at.Add(4 * time.Second)
	c.must(200, "PATCH", "/schedules/"+moved.ID, map[string]any{"scheduledFor": later.UTC().Format(time.RFC3339)}, &out)
	if out.Version != 2 {
		t.Fatalf("reschedule: got version %d, want 2", out.Version)
	}
	fireAgain(moved.ID, 1) // a stale fire of the old version, now

	waitSent(fired, 30*time.Second)
	sentAt := time.Now()
	c.must(200, "GET", "/schedules/"+fired.ID, nil, &out)
	if out.State != "fired" || out.FiredAt == nil || out.FiredAt.Before(at) {
		t.Fatalf("fired schedule: got %+v, want fired at or after %s", out, at)
	}
	t.Logf("fired %v after its time; published %v after it", out.FiredAt.Sub(at).Round(time.Millisecond), sentAt.Sub(at).Round(time.Millisecond))
	var nf *schedtypes.ResourceNotFoundException
	if _, err := sched.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: &fired.SchedulerName, GroupName: aws.String("posse-local")}); !errors.As(err, &nf) {
		t.Errorf("the fired one-time schedule is still in Scheduler (ActionAfterCompletion DELETE): %v", err)
	}
	if postsOf("moved") != 0 {
		t.Fatal("the rescheduled post was published at its old time (a stale fire)")
	}
	fireAgain(fired.ID, 1) // a duplicate fire

	waitSent(moved, 30*time.Second)
	if time.Now().Before(later) {
		t.Fatalf("the rescheduled post was published before its new time %s", later)
	}
	time.Sleep(3 * time.Second) // room for any duplicate to publish
	for postID, want := range map[string]int{"fired": 1, "moved": 1, "cancelled": 0} {
		if n := postsOf(postID); n != want {
			t.Errorf("posts of %s: got %d, want %d", postID, n, want)
		}
	}
	var d e2eDelivery
	c.must(200, "GET", "/deliveries/"+cancelled.DeliveryIDs[0], nil, &d)
	if d.State != "cancelled" {
		t.Errorf("the cancelled schedule's delivery: got %s, want cancelled", d.State)
	}
}
