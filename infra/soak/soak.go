package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/posse-dev/posse/infra/local/devstack"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/secretscan"
	"github.com/posse-dev/posse/shared/ledger"
)

// Platforms are the eight platforms every post goes to.
var Platforms = []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok", "bluesky", "mastodon"}

// cannotReconcile are the platforms that cannot tell whether an attempt
// published: an ambiguous attempt there must end unknown.
var cannotReconcile = map[string]bool{"x": true, "linkedin": true}

// refreshable are the platforms whose connections renew a refused token
// (OAuth refresh, Bluesky's refresh JWT). An expired-token answer on the
// others marks the connection broken for good — right, but it would fail
// every later delivery of that platform — so the soak does not inject it
// there.
var refreshable = []string{"x", "tiktok", "bluesky"}

// Config is one soak run.
type Config struct {
	// Root is the repository root.
	Root string
	// Posts is how many posts are dispatched, each to the eight platforms.
	Posts int
	// Instances is the emulator instances per function.
	Instances int
	// Deadline bounds the whole run (start-up included); Drain bounds the
	// wait for every delivery to settle once faults and crashes stop.
	Deadline time.Duration
	Drain    time.Duration
	// Seed makes the faults and crashes repeatable (as far as timing
	// allows).
	Seed uint64
	// KillAfterCreate is the probability that a created post crashes a busy
	// dispatch instance before its answer; KillEvery crashes one at
	// random points of its invocations.
	KillAfterCreate float64
	KillEvery       time.Duration
	// FaultEvery is how often a fault is injected at the simulator, up to
	// FaultsPerDelivery faults per delivery in all (a fault waits at the
	// simulator for the platform's next call: without a bound they pile up
	// and every call fails).
	FaultEvery        time.Duration
	FaultsPerDelivery float64
	// DLQCopies is the share of deliveries whose message is also put on the
	// dispatch DLQ (an operator redrives them with the rest).
	DLQCopies float64
	// RedriveEvery is how often the DLQ is redriven when it holds messages.
	RedriveEvery time.Duration
	// ChaosUntil is the share of settled deliveries at which faults and
	// crashes stop and the drain starts; ChaosFor bounds how long they run
	// after the first dispatch.
	ChaosUntil float64
	ChaosFor   time.Duration
	// StateDir keeps the stack's logs (default a temporary folder).
	StateDir string
	// Progress receives progress lines (nil: none).
	Progress io.Writer
}

// tuning is what the stack runs with: a lease and visibility timeout short
// enough that a crashed attempt is taken over in seconds (the template's
// DispatchVisibilityTimeout parameter; POSSE_DISPATCH_LEASE has a 10 s
// floor), quick backoff, and a heartbeat well inside the lease.
var tuning = []string{
	"-param", "DispatchVisibilityTimeout=12",
	"-fn-env", "POSSE_DISPATCH_LEASE=10s",
	"-fn-env", "POSSE_DISPATCH_HEARTBEAT=4s",
	"-fn-env", "POSSE_DISPATCH_BACKOFF_BASE=1s",
	"-fn-env", "POSSE_DISPATCH_BACKOFF_MAX=4s",
}

// delivery is what the soak knows of one delivery.
type delivery struct {
	ID, PostID, Platform string
	final                ledger.Delivery
	// waiting is set for a delivery deferred past the end of the run by
	// the platform's reset (LinkedIn's quota resets at midnight UTC) whose
	// one-time wake-up schedule exists: it is not lost.
	waiting bool
}

// run is one soak: start the stack, connect, dispatch under faults and
// crashes, drain, count, scan for secrets.
func run(ctx context.Context, cfg Config) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	rng := mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0xdeadbeef))
	rep := &Report{Config: cfg, Faults: map[string]int{}, States: map[string]int{}, Platforms: map[string]*PlatformCounts{},
		UnknownReasons: map[string]int{}}
	for _, p := range Platforms {
		rep.Platforms[p] = &PlatformCounts{}
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s soak: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()

	tmp, err := os.MkdirTemp("", "posse-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(tmp, "stack")
	}
	bin, err := devstack.Build(cfg.Root, tmp)
	if err != nil {
		return nil, err
	}
	ports := make([]string, 3)
	for i := range ports {
		p, err := moto.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = strconv.Itoa(p)
	}
	args := append([]string{"-instances", strconv.Itoa(cfg.Instances), "-gateway-port", ports[0], "-moto-port", ports[1],
		"-sim-port", ports[2], "-state-dir", cfg.StateDir}, tuning...)
	st, err := devstack.Launch(3*time.Minute, bin, args...)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = st.Stop()
		}
	}()
	progress("stack ready after %v", time.Since(start).Round(time.Second))
	c := devstack.Client{API: st.Info["API URL"], Key: st.Info["Site API key"], SimURL: st.Info["Simulator"]}
	siteID := st.Info["Site id"]
	// The soak's waits are the faults it injects; the simulated Mastodon
	// account's own quotas (30 media uploads per 30 minutes) would defer
	// its ~125 image posts past any drain bound.
	if err := c.RaiseSimMastodonLimits(100000); err != nil {
		return rep, err
	}
	awsCfg := moto.Config(st.Info["Moto endpoint"])
	queues := sqs.NewFromConfig(awsCfg)
	secrets := secretscan.NewSet()
	secrets.Add("admin key", st.Info["Admin key"])
	secrets.Add("site API key", c.Key)

	targets, err := connect(c, secrets)
	if err != nil {
		return nil, err
	}
	dispatchQ, err := queueURL(ctx, queues, "posse-local-dispatch")
	if err != nil {
		return nil, err
	}
	dlq, err := queueURL(ctx, queues, "posse-local-dispatch-dlq")
	if err != nil {
		return nil, err
	}
	attrs, err := queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &dlq,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, fmt.Errorf("read the DLQ's ARN: %w", err)
	}
	dlqARN := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]

	// Crashes and faults run until ChaosUntil of the deliveries settled.
	if err := postJSON(ctx, c.SimURL+"/_local/chaos", map[string]any{"afterCreate": cfg.KillAfterCreate,
		"everyMillis": cfg.KillEvery.Milliseconds(), "seed": cfg.Seed + 1}); err != nil {
		return nil, err
	}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	defer stopChaos()
	var wg sync.WaitGroup
	var faultMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		frng := mrand.New(mrand.NewPCG(cfg.Seed+2, cfg.Seed))
		// expiredFree is when each platform last had no expired-token fault
		// pending after having one: a token refused again right after its
		// refresh means the account is gone (the connection is marked
		// broken), not an expired token, so a platform gets a new one only
		// 10 s after it used up the last.
		expiredFree := map[string]time.Time{}
		expiredPending := map[string]bool{}
		budget := int(cfg.FaultsPerDelivery * float64(cfg.Posts*len(Platforms)))
		for injected := 0; injected < budget; {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(cfg.FaultEvery):
			}
			var pending struct {
				Faults []struct {
					Platform string `json:"platform"`
					Kind     string `json:"kind"`
				} `json:"faults"`
			}
			if err := getJSON(chaosCtx, c.SimURL+"/_sim/faults", &pending); err != nil {
				continue
			}
			busy := map[string]bool{}
			nowExpired := map[string]bool{}
			for _, f := range pending.Faults {
				busy[f.Platform] = true
				if f.Kind == "expired_token" {
					nowExpired[f.Platform] = true
				}
			}
			for p := range expiredPending {
				if !nowExpired[p] {
					expiredFree[p] = time.Now()
				}
			}
			expiredPending = nowExpired
			f := randomFault(frng)
			p := f.body["platform"].(string)
			// One fault pending per platform at most: a fault waits for the
			// platform's next call, and piled up they would fail every call.
			if busy[p] {
				continue
			}
			if f.body["kind"] == "expired_token" {
				if expiredPending[p] || time.Since(expiredFree[p]) < 10*time.Second {
					continue
				}
				expiredPending[p] = true
			}
			if err := postJSON(chaosCtx, c.SimURL+"/_sim/faults", f.body); err != nil {
				if chaosCtx.Err() == nil {
					progress("inject fault: %v", err)
				}
				continue
			}
			faultMu.Lock()
			rep.Faults[f.name]++
			faultMu.Unlock()
			injected++
		}
	}()
	// The operator: redrive the DLQ to the dispatch queue whenever it holds
	// messages, until the drain ends.
	redriveCtx, stopRedrive := context.WithCancel(ctx)
	defer stopRedrive()
	var redriveMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-redriveCtx.Done():
				return
			case <-time.After(cfg.RedriveEvery):
			}
			started, err := redrive(redriveCtx, queues, dlq, dlqARN)
			if err != nil && redriveCtx.Err() == nil {
				progress("redrive: %v", err)
			}
			if started {
				redriveMu.Lock()
				rep.MoveTasks++
				redriveMu.Unlock()
			}
		}
	}()

	// Dispatch the posts, two callers at once, as CMSs would.
	runID := hex.EncodeToString(randBytes(3))
	media := []map[string]string{{"url": c.SimURL + "/_sim/media/cover.jpg", "kind": "image", "altText": "cover"}}
	targetIDs := make([]string, 0, len(Platforms))
	for _, p := range Platforms {
		targetIDs = append(targetIDs, targets[p])
	}
	var (
		dmu        sync.Mutex
		deliveries []*delivery
		dispErr    error
	)
	posts := make(chan int)
	dispatchStart := time.Now()
	var dwg sync.WaitGroup
	for range 2 {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for n := range posts {
				postID := fmt.Sprintf("soak-%s-%05d", runID, n)
				var out struct {
					Deliveries []struct {
						ID       string `json:"id"`
						Platform string `json:"platform"`
					} `json:"deliveries"`
				}
				err := dispatchPost(ctx, c, map[string]any{
					"post": map[string]any{"postId": postID, "revision": "1", "title": "Post " + postID, "excerpt": "A soak post.",
						"url": "https://blog.example/" + postID, "body": "Body.", "media": media},
					"targetIds": targetIDs,
				}, &out)
				dmu.Lock()
				switch {
				case errors.Is(err, errRejected):
					// A connection the faults broke for good (a token
					// refused right after its refresh): nothing was queued.
					rep.RejectedPosts++
					if rep.RejectedPosts == 1 {
						progress("dispatch rejected: %v", err)
					}
				case err != nil && dispErr == nil:
					dispErr = err
				}
				for _, d := range out.Deliveries {
					deliveries = append(deliveries, &delivery{ID: d.ID, PostID: postID, Platform: d.Platform})
				}
				dmu.Unlock()
				for _, d := range out.Deliveries {
					dmu.Lock()
					copyIt := rng.Float64() < cfg.DLQCopies
					dmu.Unlock()
					if !copyIt {
						continue
					}
					body := ledger.DeliveryMessage(siteID, d.ID).Encode()
					if _, err := queues.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dlq, MessageBody: aws.String(body)}); err == nil {
						dmu.Lock()
						rep.DLQCopies++
						dmu.Unlock()
					}
				}
			}
		}()
	}
	for n := 1; n <= cfg.Posts; n++ {
		select {
		case posts <- n:
		case <-ctx.Done():
		}
	}
	close(posts)
	dwg.Wait()
	rep.DispatchTime = time.Since(dispatchStart)
	if dispErr != nil {
		return rep, fmt.Errorf("dispatch: %w", dispErr)
	}
	rep.Deliveries = len(deliveries)
	progress("%d deliveries dispatched in %v", len(deliveries), rep.DispatchTime.Round(time.Second))

	// Wait for ChaosUntil of them to settle, then stop faults and crashes
	// and time the drain.
	byID := map[string]*delivery{}
	for _, d := range deliveries {
		byID[d.ID] = d
	}
	chaosStopped := false
	var drainStart time.Time
	var last int
	for {
		settled, err := poll(c, byID)
		if err != nil {
			return rep, err
		}
		if settled != last {
			progress("%d of %d settled", settled, len(byID))
			last = settled
		}
		if !chaosStopped && (float64(settled) >= cfg.ChaosUntil*float64(len(byID)) || time.Since(dispatchStart) > cfg.ChaosFor || ctx.Err() != nil) {
			stopChaos()
			if err := deleteJSON(context.WithoutCancel(ctx), c.SimURL+"/_local/chaos", &rep.Kills); err != nil {
				return rep, err
			}
			if err := deleteJSON(context.WithoutCancel(ctx), c.SimURL+"/_sim/faults", nil); err != nil {
				return rep, err
			}
			chaosStopped, drainStart = true, time.Now()
			progress("faults and crashes stopped: %d kills", rep.Kills.Stats.Kills)
		}
		if chaosStopped && settled == len(byID) && redriveIdle(ctx, queues, dlq) {
			break
		}
		if chaosStopped && time.Since(drainStart) > cfg.Drain {
			break
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
	}
	rep.DrainTime = time.Since(drainStart)
	if err := markWaiting(context.WithoutCancel(ctx), scheduler.NewFromConfig(awsCfg), deliveries); err != nil {
		return rep, err
	}
	stopRedrive()
	wg.Wait()
	rep.Total = time.Since(start)
	rep.MovedMessages = movedMessages(context.WithoutCancel(ctx), queues, dlqARN)
	rep.QueueLeft, rep.DLQLeft = depth(context.WithoutCancel(ctx), queues, dispatchQ), depth(context.WithoutCancel(ctx), queues, dlq)

	// Count posts at the simulator per delivery.
	var simPosts struct {
		Posts []struct {
			Platform string `json:"platform"`
			ID       string `json:"id"`
			Text     string `json:"text"`
		} `json:"posts"`
	}
	if err := getJSON(context.WithoutCancel(ctx), c.SimURL+"/_sim/posts", &simPosts); err != nil {
		return rep, err
	}
	posted := map[string]int{} // platform|postID → posts
	for _, p := range simPosts.Posts {
		i := strings.Index(p.Text, "soak-"+runID+"-")
		if i < 0 {
			continue
		}
		key := p.Platform + "|" + p.Text[i:i+len("soak-"+runID+"-00000")]
		posted[key]++
	}
	rep.count(deliveries, posted)

	// Secrets: everything the simulators issued, everything sealed in the
	// table; then every item and every log line.
	sctx := context.WithoutCancel(ctx)
	if err := secrets.FromRunner(sctx, c.SimURL); err != nil {
		return rep, err
	}
	scanner := secretscan.Scanner{DB: dynamodb.NewFromConfig(awsCfg), KMS: kms.NewFromConfig(awsCfg), Table: "posse-local"}
	if rep.SealedOpened, err = scanner.AddSealed(sctx, secrets); err != nil {
		return rep, err
	}
	var found []secretscan.Finding
	rep.ItemsScanned, found, err = scanner.ScanTable(sctx, secrets)
	if err != nil {
		return rep, err
	}
	rep.SecretFindings = append(rep.SecretFindings, found...)
	if err := st.Stop(); err != nil {
		return rep, err
	}
	stopped = true
	logs, _ := filepath.Glob(filepath.Join(cfg.StateDir, "logs", "*.log"))
	rep.LogFiles = len(logs)
	n, found, err := secretscan.ScanFiles(logs, secrets)
	if err != nil {
		return rep, err
	}
	m, found2 := secretscan.ScanText("the runner's stderr", st.Stderr.String(), secrets)
	rep.LogLines = n + m
	rep.SecretFindings = append(rep.SecretFindings, append(found, found2...)...)
	rep.SecretsChecked = secrets.Len()
	rep.SecretKinds = secrets.Kinds()
	return rep, nil
}

// dispatchPost sends POST /v1/dispatch as a CMS does: a 5xx or a dropped
// connection is sent again (the same post revision returns the deliveries
// already made), up to 5 times.
func dispatchPost(ctx context.Context, c devstack.Client, body, out any) error {
	var err error
	for try := range 5 {
		var code int
		var b []byte
		code, b, err = c.Call("POST", "/dispatch", body)
		switch {
		case err == nil && code == http.StatusAccepted:
			return json.Unmarshal(b, out)
		case err == nil && code == http.StatusUnprocessableEntity:
			return fmt.Errorf("%w: %s", errRejected, b)
		case err == nil && code < 500:
			return fmt.Errorf("POST /dispatch: got %d %s, want 202", code, b)
		case err == nil:
			err = fmt.Errorf("POST /dispatch: got %d %s", code, b)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try+1) * time.Second):
		}
	}
	return err
}

// connect connects one account of every platform and makes a target for
// each, adding the credentials it made up to secrets.
func connect(c devstack.Client, secrets *secretscan.Set) (map[string]string, error) {
	conns := map[string]string{}
	for _, p := range []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok"} {
		resp, err := c.ConnectOAuth(p, "soak")
		if err != nil {
			return nil, err
		}
		if conns[p] = devstack.ConnectionID(resp); conns[p] == "" {
			return nil, fmt.Errorf("connect %s: the callback answered %d without a connection id", p, resp.StatusCode)
		}
	}
	pw, tok := randSecret(), randSecret()
	secrets.Add("bluesky app password", pw)
	secrets.Add("mastodon token", tok)
	if err := c.SeedSimAccount(map[string]string{"platform": "bluesky", "accountId": "did:plc:soak", "handle": "soak.bsky.social", "password": pw}); err != nil {
		return nil, err
	}
	var conn struct{ ID string }
	if err := c.Must(201, "POST", "/connections", map[string]string{"platform": "bluesky", "handle": "soak.bsky.social", "appPassword": pw}, &conn); err != nil {
		return nil, err
	}
	conns["bluesky"] = conn.ID
	if err := c.SeedSimAccount(map[string]string{"platform": "mastodon", "accountId": "77", "handle": "soak", "accessToken": tok}); err != nil {
		return nil, err
	}
	if err := c.Must(201, "POST", "/connections", map[string]string{"platform": "mastodon", "instanceUrl": c.SimURL + "/mastodon", "accessToken": tok}, &conn); err != nil {
		return nil, err
	}
	conns["mastodon"] = conn.ID
	targets := map[string]string{}
	for p, id := range conns {
		body := map[string]any{"connectionId": id, "name": p}
		if p == "tiktok" {
			body["defaults"] = map[string]any{"options": map[string]string{"privacy_level": "PUBLIC_TO_EVERYONE"}}
		}
		var tg struct{ ID string }
		if err := c.Must(201, "POST", "/targets", body, &tg); err != nil {
			return nil, err
		}
		targets[p] = tg.ID
	}
	// A webhook endpoint (the simulator's receiver) for the outcomes a
	// person must see: its signing secret is sealed in the table.
	var hook struct {
		Secret string `json:"secret"`
	}
	if err := c.Must(201, "POST", "/webhooks", map[string]any{"url": c.SimURL + "/_sim/webhooks/soak",
		"eventTypes": []string{"delivery.unknown", "delivery.dead"}, "description": "soak"}, &hook); err != nil {
		return nil, err
	}
	secrets.Add("webhook secret", hook.Secret)
	return targets, nil
}

// fault is one injection: its report name and the simulator's body.
type fault struct {
	name string
	body map[string]any
}

// randomFault draws a fault: a 429 storm, 5xx, a timeout after the post
// was created, a slow answer, or an expired token.
func randomFault(r *mrand.Rand) fault {
	p := Platforms[r.IntN(len(Platforms))]
	switch k := r.IntN(10); {
	case k < 2:
		if p == "linkedin" {
			// LinkedIn's quota resets at midnight UTC: a 429 there defers
			// its deliveries past the run (counted apart, not lost), so
			// storms go to the platforms with short windows.
			p = "mastodon"
		}
		return fault{"429 storm", map[string]any{"platform": p, "kind": "rate_limit", "times": 3 + r.IntN(6), "resetSeconds": 1 + r.IntN(3)}}
	case k < 4:
		return fault{"5xx", map[string]any{"platform": p, "kind": "server_error", "times": 1 + r.IntN(3)}}
	case k < 6:
		return fault{"timeout after create", map[string]any{"platform": p, "kind": "timeout_after_create"}}
	case k < 8:
		return fault{"slow answer", map[string]any{"platform": p, "kind": "slow", "delayMillis": 300 + r.IntN(2200), "times": 1 + r.IntN(3)}}
	default:
		return fault{"expired token", map[string]any{"platform": refreshable[r.IntN(len(refreshable))], "kind": "expired_token"}}
	}
}

// poll reads every delivery of the site (GET /v1/deliveries, every page)
// and returns how many of those the soak made are settled.
func poll(c devstack.Client, byID map[string]*delivery) (int, error) {
	cursor := ""
	for {
		var page struct {
			Items      []ledger.Delivery `json:"items"`
			NextCursor string            `json:"nextCursor"`
		}
		path := "/deliveries?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.Must(200, "GET", path, nil, &page); err != nil {
			return 0, err
		}
		for _, d := range page.Items {
			if s, ok := byID[d.ID]; ok {
				s.final = d
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	n := 0
	for _, d := range byID {
		if settled(d.final.State) {
			n++
		}
	}
	return n, nil
}

// markWaiting marks the deliveries deferred beyond the next minute whose
// one-time wake-up schedule (wake-<id>-<unix seconds>, see shared/wake)
// is in the stack's schedule group.
func markWaiting(ctx context.Context, sch *scheduler.Client, ds []*delivery) error {
	for _, d := range ds {
		f := d.final
		if f.State != ledger.StateDeferred || f.NextAttemptAt == nil || time.Until(*f.NextAttemptAt) < time.Minute {
			continue
		}
		out, err := sch.ListSchedules(ctx, &scheduler.ListSchedulesInput{GroupName: aws.String("posse-local"), NamePrefix: aws.String("wake-" + d.ID)})
		if err != nil {
			return fmt.Errorf("list the wake-up schedules of %s: %w", d.ID, err)
		}
		d.waiting = len(out.Schedules) > 0
	}
	return nil
}

// settled reports a state no message moves on: terminal, or unknown
// (a person decides).
func settled(s ledger.State) bool {
	switch s {
	case ledger.StateSent, ledger.StateFailed, ledger.StateDead, ledger.StateCancelled, ledger.StateUnknown:
		return true
	}
	return false
}

// redrive starts a move task from the DLQ back to its source when the DLQ
// holds messages and no task is running.
func redrive(ctx context.Context, q *sqs.Client, dlq, dlqARN string) (bool, error) {
	if depth(ctx, q, dlq) == 0 {
		return false, nil
	}
	tasks, err := q.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlqARN})
	if err != nil {
		return false, fmt.Errorf("list move tasks: %w", err)
	}
	for _, t := range tasks.Results {
		if aws.ToString(t.Status) == "RUNNING" {
			return false, nil
		}
	}
	if _, err := q.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlqARN}); err != nil {
		return false, fmt.Errorf("start a move task: %w", err)
	}
	return true, nil
}

// redriveIdle reports an empty DLQ.
func redriveIdle(ctx context.Context, q *sqs.Client, dlq string) bool { return depth(ctx, q, dlq) == 0 }

// movedMessages sums the messages the completed move tasks moved.
func movedMessages(ctx context.Context, q *sqs.Client, dlqARN string) int {
	tasks, err := q.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlqARN, MaxResults: aws.Int32(10)})
	if err != nil {
		return -1
	}
	n := 0
	for _, t := range tasks.Results {
		n += int(t.ApproximateNumberOfMessagesMoved)
	}
	return n
}

// depth is a queue's visible, in-flight and delayed messages.
func depth(ctx context.Context, q *sqs.Client, u string) int {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &u,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		return -1
	}
	n := 0
	for _, a := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"} {
		v, _ := strconv.Atoi(out.Attributes[a])
		n += v
	}
	return n
}

func queueURL(ctx context.Context, q *sqs.Client, name string) (string, error) {
	out, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

func postJSON(ctx context.Context, u string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST %s: HTTP %d %s", u, resp.StatusCode, msg)
	}
	return nil
}

func deleteJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE %s: HTTP %d", u, resp.StatusCode)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randSecret() string { return base64.RawURLEncoding.EncodeToString(randBytes(18)) }

// errRejected is a dispatch answered 422: nothing was queued.
var errRejected = errors.New("dispatch rejected")

// errViolations is returned when the report breaks an invariant.
var errViolations = errors.New("the soak broke an invariant")
