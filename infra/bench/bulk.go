package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/posse-dev/posse/infra/local/devstack"
)

var (
	bulkCalls = flag.Int("bulk-calls", 3, "bulk part: POST /v1/dispatch/bulk calls")
	bulkItems = flag.Int("bulk-items", 100, "bulk part: posts per call, each to 8 targets (the API takes at most 100)")
)

// bulk measures POST /v1/dispatch/bulk through the local gateway:
// -bulk-calls calls of -bulk-items posts (100: the API's limit and the
// issue's measure), each to the 8 platforms' targets, one after another; then waits until every delivery is sent. It reports
//
//   - posts per minute accepted (goal >= 1,000; the product spec asks for
//     >= 100) and the p50/p99 of one call;
//   - deliveries per second published end to end, from the first call to
//     the last sent delivery, against a bare receive+delete loop;
//   - lost and duplicated posts: the simulator's posts against the sent
//     deliveries (goal 0 and 0);
//   - AWS calls per bulk call by API (counted at moto).
//
// The body is the API's: {"items": [{"id", "post", "targetIds"}, ...]},
// answered 207 with one result per item ({"items": [{"status",
// "deliveries": [{"id"}]}]}). Where the route does not exist yet (404),
// the part says so and reports nothing.
func bulk(ctx context.Context, root, tmp string) ([]result, error) {
	st, c, err := launchStack(root, filepath.Join(tmp, "bulk-stack"))
	if err != nil {
		return nil, err
	}
	defer st.Stop()
	motoURL := st.Info["Moto endpoint"]
	targets, err := benchTargets(c)
	if err != nil {
		return nil, err
	}
	all := make([]string, 0, len(targets))
	for _, id := range targets {
		all = append(all, id)
	}
	if code, _, err := c.Call("POST", "/dispatch/bulk", map[string]any{"items": []any{}}); err != nil {
		return nil, err
	} else if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		fmt.Fprintf(os.Stderr, "bench bulk: POST /v1/dispatch/bulk answered %d: the route is not on this branch yet; nothing measured\n", code)
		return nil, nil
	}
	if err := simDelete(c.SimURL + "/_sim/posts"); err != nil {
		return nil, err
	}
	win, err := startWindow(motoURL, st.Info["Logs"])
	if err != nil {
		return nil, err
	}

	type bulkAnswer struct {
		Items []struct {
			Status     string `json:"status"`
			Detail     string `json:"detail"`
			Deliveries []struct {
				ID string `json:"id"`
			} `json:"deliveries"`
		} `json:"items"`
	}
	var ids []string
	var lat []time.Duration
	posts := 0
	start := time.Now()
	for call := range *bulkCalls {
		items := make([]map[string]any, *bulkItems)
		for i := range items {
			id := fmt.Sprintf("bulk-%02d-%03d", call, i)
			items[i] = map[string]any{"id": id, "post": dispatchBody(c.SimURL, id, nil)["post"], "targetIds": all}
		}
		t0 := time.Now()
		var resp bulkAnswer
		if err := c.Must(207, "POST", "/dispatch/bulk", map[string]any{"items": items}, &resp); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
		for i, it := range resp.Items {
			if it.Status != "queued" {
				return nil, fmt.Errorf("bulk call %d item %d: %s (%s), want queued", call, i, it.Status, it.Detail)
			}
			posts++
			for _, d := range it.Deliveries {
				ids = append(ids, d.ID)
			}
		}
	}
	accepted := time.Since(start)
	if want := posts * len(all); len(ids) != want {
		return nil, fmt.Errorf("bulk: %d deliveries queued, want %d (%d posts x %d targets)", len(ids), want, posts, len(all))
	}
	if err := waitSent(c, ids, 15*time.Minute); err != nil {
		return nil, err
	}
	published := time.Since(start)
	used, err := win.collect()
	if err != nil {
		return nil, err
	}
	n, err := simPostCount(c)
	if err != nil {
		return nil, err
	}
	lost, dup := 0, 0
	if n < len(ids) {
		lost = len(ids) - n
	} else {
		dup = n - len(ids)
	}
	bare, err := bareReceiveDelete(ctx, motoURL, len(ids))
	if err != nil {
		return nil, err
	}
	out := []result{
		{Name: "bulk posts accepted per minute", Value: float64(posts) / accepted.Minutes(), Unit: "/min",
			Note: fmt.Sprintf("%d calls of %d posts x %d targets; goal >= 1,000 (spec >= 100)", *bulkCalls, *bulkItems, len(all))},
		{Name: "bulk call p50", Value: ms(pct(lat, 50)), Unit: "ms"},
		{Name: "bulk call p99", Value: ms(pct(lat, 99)), Unit: "ms"},
		withFloor(result{Name: "bulk deliveries published per second", Value: float64(len(ids)) / published.Seconds(), Unit: "/s",
			Note: fmt.Sprintf("%d deliveries, first call to last sent; floor = bare receive+delete loop", len(ids))}, bare),
		{Name: "bulk posts lost", Value: float64(lost), Unit: "posts", Note: "sent deliveries without a post at the simulator; goal 0"},
		{Name: "bulk posts duplicated", Value: float64(dup), Unit: "posts", Note: "posts at the simulator beyond the sent deliveries; goal 0"},
	}
	out = append(out, callResults(used, "per bulk call (api)", *bulkCalls, "", "ApiFunction")...)
	return out, nil
}

// simPostCount is how many posts the simulator has recorded.
func simPostCount(c devstack.Client) (int, error) {
	resp, err := http.Get(c.SimURL + "/_sim/posts")
	if err != nil {
		return 0, fmt.Errorf("GET /_sim/posts: %w", err)
	}
	defer resp.Body.Close()
	var sim struct {
		Posts []json.RawMessage `json:"posts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sim); err != nil {
		return 0, fmt.Errorf("decode /_sim/posts: %w", err)
	}
	return len(sim.Posts), nil
}

// simDelete clears a simulator collection.
func simDelete(u string) error {
	req, err := http.NewRequest(http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE %s: HTTP %d", u, resp.StatusCode)
	}
	return nil
}
