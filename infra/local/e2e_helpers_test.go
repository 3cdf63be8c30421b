package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/posse-dev/posse/infra/local/devstack"
)

// apiClient is devstack.Client failing the test on errors.
type apiClient struct {
	t      *testing.T
	api    string // http://127.0.0.1:<port>/v1
	key    string
	simURL string
}

func (c apiClient) dc() devstack.Client {
	return devstack.Client{API: c.api, Key: c.key, SimURL: c.simURL}
}

// call sends a JSON request and returns the status and body.
func (c apiClient) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	code, b, err := c.dc().Call(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return code, b
}

// must calls and fails the test unless the status is want; it decodes the
// answer into out when out is not nil.
func (c apiClient) must(want int, method, path string, body, out any) {
	c.t.Helper()
	if err := c.dc().Must(want, method, path, body, out); err != nil {
		c.t.Fatal(err)
	}
}

// stopAtCallback follows redirects up to POSSE's callback.
var stopAtCallback = devstack.StopAtCallback

// connectOAuth runs the OAuth connect flow for platform p as person user.
func (c apiClient) connectOAuth(p, user string) *http.Response {
	c.t.Helper()
	resp, err := c.dc().ConnectOAuth(p, user)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// connectionID is the connectionId a callback redirected with, or "".
func connectionID(resp *http.Response) string { return devstack.ConnectionID(resp) }

// seedSimAccount tells the simulator about an account (manual platforms).
func (c apiClient) seedSimAccount(a map[string]string) {
	c.t.Helper()
	if err := c.dc().SeedSimAccount(a); err != nil {
		c.t.Fatal(err)
	}
}

// simJSON GETs a simulator control endpoint into out.
func simJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
}

// simFault injects a simulator fault.
func simFault(t *testing.T, simURL string, f map[string]any) {
	t.Helper()
	b, _ := json.Marshal(f)
	resp, err := http.Post(simURL+"/_sim/faults", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("inject fault %v: %v %v", f, resp, err)
	}
	resp.Body.Close()
}

// connectEveryPlatform connects one account of every platform to site s
// (the n-th site of a test: account names and ids are its own) and creates
// one target per platform from target(platform, connection id), filling
// s.targets.
func connectEveryPlatform(t *testing.T, s *e2eSite, n int, simURL string, target func(p, connID string) map[string]any) {
	t.Helper()
	s.targets = map[string]string{}
	conns := map[string]string{}
	for _, p := range []string{"x", "linkedin", "facebook", "instagram", "threads", "tiktok"} {
		if conns[p] = connectionID(s.c.connectOAuth(p, s.id)); conns[p] == "" {
			t.Fatalf("site %d: connect %s failed", n, p)
		}
	}
	handle, pw := fmt.Sprintf("site%d.bsky.social", n), randomSecret(t)
	s.c.seedSimAccount(map[string]string{"platform": "bluesky", "accountId": fmt.Sprintf("did:plc:site%dinvariants", n), "handle": handle, "password": pw})
	var conn struct{ ID string }
	s.c.must(201, "POST", "/connections", map[string]string{"platform": "bluesky", "handle": handle, "appPassword": pw}, &conn)
	conns["bluesky"] = conn.ID
	tok := randomSecret(t)
	s.c.seedSimAccount(map[string]string{"platform": "mastodon", "accountId": strconv.Itoa(500 + n - 1), "handle": fmt.Sprintf("site%d", n), "accessToken": tok})
	s.c.must(201, "POST", "/connections", map[string]string{"platform": "mastodon", "instanceUrl": simURL + "/mastodon", "accessToken": tok}, &conn)
	conns["mastodon"] = conn.ID
	for p, cid := range conns {
		var tg struct{ ID string }
		s.c.must(201, "POST", "/targets", target(p, cid), &tg)
		s.targets[p] = tg.ID
	}
}

// queueURLOf is the URL of the queue named name.
func queueURLOf(ctx context.Context, t *testing.T, queues *sqs.Client, name string) string {
	t.Helper()
	out, err := queues.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("queue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}
