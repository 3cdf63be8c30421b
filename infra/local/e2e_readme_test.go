package main

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/mototest"
)

// TestReadmeManualConnections follows the README's "Connecting platform
// accounts" examples literally under the local stack, as a newcomer would
// after `make dev`: Bluesky as me.bsky.social and Mastodon on
// https://mastodon.social, with the credentials the ready block prints.
// Every Mastodon instance reaches the simulator there, while the
// connection keeps the instance URL as given; then a target and a dispatch
// from the README publish to it. A token the instance does not know is
// still refused.
func TestReadmeManualConnections(t *testing.T) {
	t.Parallel()
	mototest.Server(t)
	bin := command(t)
	lambdaenvtest.RIE(t)
	gw, mt, sim := freePort(t), freePort(t), freePort(t)
	l := launch(t, bin, "-template", filepath.Join("..", "..", "template.yaml"), "-instances", "1",
		"-gateway-port", strconv.Itoa(gw), "-moto-port", strconv.Itoa(mt), "-sim-port", strconv.Itoa(sim), "-state-dir", t.TempDir())
	defer l.stop(t)
	simURL := l.info["Simulator"]
	c := apiClient{t: t, api: l.info["API URL"], key: l.info["Site API key"], simURL: simURL}
	token, handle, password := l.info["Mastodon token"], l.info["Bluesky handle"], l.info["Bluesky password"]
	if token == "" || handle != "me.bsky.social" || len(password) != len("xxxx-xxxx-xxxx-xxxx") {
		t.Fatalf("ready block: got Mastodon token %q, Bluesky %q / %q, want a token and me.bsky.social with an app password", token, handle, password)
	}

	// The README's bodies, with the printed credentials in place of the
	// placeholders.
	connect := func(body string) (int, map[string]any) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		code, b := c.call("POST", "/connections", m)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return code, out
	}
	if code, out := connect(`{"platform":"bluesky","handle":"me.bsky.social","appPassword":"` + password + `"}`); code != 201 {
		t.Fatalf("README Bluesky example: got %d %v, want 201", code, out)
	}
	code, conn := connect(`{"platform":"mastodon","instanceUrl":"https://mastodon.social","accessToken":"` + token + `"}`)
	if code != 201 || conn["instanceUrl"] != "https://mastodon.social" || conn["handle"] != "me@mastodon.social" || conn["status"] != "active" {
		t.Fatalf("README Mastodon example: got %d %v, want 201, an active me@mastodon.social keeping instanceUrl https://mastodon.social", code, conn)
	}
	if code, out := connect(`{"platform":"mastodon","instanceUrl":"https://mastodon.social","accessToken":"not-` + token + `"}`); code != 422 || out["code"] != "mastodon.token_rejected" {
		t.Fatalf("unknown token: got %d %v, want 422 mastodon.token_rejected", code, out)
	}

	var tg struct{ ID string }
	c.must(201, "POST", "/targets", map[string]any{"connectionId": conn["id"], "name": "Main Mastodon account",
		"defaults": map[string]any{"hashtags": []string{"blog"}, "includeLink": true}, "hourlyRateLimit": 10}, &tg)
	var resp struct {
		Deliveries []struct{ ID string } `json:"deliveries"`
	}
	// The README's dispatch; its image must be one this machine can fetch.
	c.must(202, "POST", "/dispatch", map[string]any{
		"post": map[string]any{"postId": "42", "revision": "3", "title": "Hello", "excerpt": "First post", "url": "https://blog.example/hello",
			"media": []map[string]string{{"url": simURL + "/_sim/media/hello.jpg", "kind": "image", "altText": "A hello"}}},
		"targetIds": []string{tg.ID}, "customMessage": "New on the blog",
	}, &resp)
	if len(resp.Deliveries) != 1 {
		t.Fatalf("dispatch: got %d deliveries, want 1", len(resp.Deliveries))
	}
	var d struct {
		State, PlatformPostID, URL string
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c.must(200, "GET", "/deliveries/"+url.PathEscape(resp.Deliveries[0].ID), nil, &d)
		if d.State == "sent" {
			break
		}
		if d.State == "failed" || d.State == "dead" || d.State == "unknown" || time.Now().After(deadline) {
			t.Fatalf("delivery: got state %q, want sent", d.State)
		}
	}
	var posts struct{ Posts []simPost }
	simJSON(t, simURL+"/_sim/posts?platform=mastodon", &posts)
	if len(posts.Posts) != 1 || posts.Posts[0].ID != d.PlatformPostID || posts.Posts[0].AccountID != "1" ||
		!strings.Contains(posts.Posts[0].Text, "New on the blog") {
		t.Fatalf("simulator: got %+v, want the one status %s of account 1 with the custom message", posts.Posts, d.PlatformPostID)
	}
}
