package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/posse-dev/posse/infra/local/devstack"
	"github.com/posse-dev/posse/infra/local/moto"
)

// webhooks measures the webhook path through the running local stack
// (the simulator's receiver is the CMS):
//
//   - event latency p50/p99: the outcome's write (the event's createdAt) to
//     the receiver's arrival, over 40 deliveries;
//   - the AWS calls one delivery costs end to end with one endpoint
//     registered (dispatch, its event, the fan-out and the attempt), by
//     operation, as moto counted them;
//   - webhook attempts per second: 30 events replayed to 10 endpoints at
//     once, vs a bare HTTP POST loop to the same receiver.
func webhooks(c devstack.Client, targets map[string]string, motoURL string) ([]result, error) {
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := c.Must(201, "POST", "/webhooks", map[string]any{"url": c.SimURL + "/_sim/webhooks/bench-0", "eventTypes": []string{"delivery.sent"}}, &hook); err != nil {
		return nil, err
	}
	if err := simPost(c.SimURL+"/_sim/webhook-secrets", map[string]string{"name": "bench-0", "secret": hook.Secret}); err != nil {
		return nil, err
	}

	// Event latency and calls per delivery: 40 deliveries, 2 platforms.
	before, err := moto.Calls(motoURL)
	if err != nil {
		return nil, err
	}
	var ids []string
	for i := range 20 {
		var resp struct {
			Deliveries []struct{ ID string } `json:"deliveries"`
		}
		if err := c.Must(202, "POST", "/dispatch", dispatchBody(c.SimURL, fmt.Sprintf("hook-%02d", i), []string{targets["mastodon"], targets["bluesky"]}), &resp); err != nil {
			return nil, err
		}
		for _, d := range resp.Deliveries {
			ids = append(ids, d.ID)
		}
	}
	ours := func(rs []simHook) []simHook {
		var out []simHook
		for _, r := range rs {
			if strings.Contains(r.Body, `"postId":"hook-`) {
				out = append(out, r)
			}
		}
		return out
	}
	got, err := waitHooks(c.SimURL, "bench-0", len(ids), 3*time.Minute, ours)
	if err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the last outcomes' trailing calls
	after, err := moto.Calls(motoURL)
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	eventIDs := map[string]bool{}
	for _, r := range got {
		var ev struct {
			ID        string    `json:"id"`
			CreatedAt time.Time `json:"createdAt"`
		}
		if err := json.Unmarshal([]byte(r.Body), &ev); err != nil {
			return nil, err
		}
		if !r.Verified {
			return nil, fmt.Errorf("event %s arrived with a signature the receiver could not verify", ev.ID)
		}
		eventIDs[ev.ID] = true
		lat = append(lat, r.ReceivedAt.Sub(ev.CreatedAt))
	}
	out := []result{
		{Name: "webhook event latency p50", Value: ms(pct(lat, 50)), Unit: "ms", Note: fmt.Sprintf("outcome written to receiver, %d deliveries", len(lat))},
		{Name: "webhook event latency p99", Value: ms(pct(lat, 99)), Unit: "ms"},
	}
	out = append(out, callsPerDelivery(before, after, len(ids))...)

	// Attempts per second: 10 endpoints, 30 events replayed at once.
	for i := 1; i < 10; i++ {
		name := fmt.Sprintf("bench-%d", i)
		var h struct{ Secret string }
		if err := c.Must(201, "POST", "/webhooks", map[string]any{"url": c.SimURL + "/_sim/webhooks/" + name, "eventTypes": []string{"delivery.sent"}}, &h); err != nil {
			return nil, err
		}
		if err := simPost(c.SimURL+"/_sim/webhook-secrets", map[string]string{"name": name, "secret": h.Secret}); err != nil {
			return nil, err
		}
	}
	replayed := 0
	chosen := map[string]bool{}
	start := time.Now()
	for id := range eventIDs {
		if replayed == 30 {
			break
		}
		if err := c.Must(202, "POST", "/webhook-events/"+id+"/replay", nil, nil); err != nil {
			return nil, err
		}
		chosen[id] = true
		replayed++
	}
	last := time.Time{}
	for i := range 10 {
		// Every endpoint gets each replayed event once more (bench-0 had
		// each once already).
		rs, err := waitHooks(c.SimURL, fmt.Sprintf("bench-%d", i), replayed, 3*time.Minute, func(rs []simHook) []simHook {
			seen := map[string]int{}
			var out []simHook
			for _, r := range rs {
				id := eventID(r)
				if seen[id]++; chosen[id] && (i > 0 || seen[id] == 2) {
					out = append(out, r)
				}
			}
			return out
		})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.ReceivedAt.After(last) {
				last = r.ReceivedAt
			}
		}
	}
	attempts := float64(replayed * 10)
	rate := attempts / last.Sub(start).Seconds()
	floor, err := barePosts(c.SimURL+"/_sim/webhooks/bench-floor", got[0].Body, int(attempts))
	if err != nil {
		return nil, err
	}
	out = append(out, withFloor(result{Name: "webhook attempts per second", Value: rate, Unit: "/s",
		Note: fmt.Sprintf("%d attempts (%d replays x 10 endpoints); floor = bare sequential POSTs to the same receiver", int(attempts), replayed)}, floor))
	return out, nil
}

// callsPerDelivery turns moto's call counts into DynamoDB and SQS calls per
// delivery, with the operations that make them up.
func callsPerDelivery(before, after map[string]int, n int) []result {
	per := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			per[k] = float64(d) / float64(n)
		}
	}
	var out []result
	for _, svc := range []struct{ prefix, name string }{{"DynamoDB_20120810.", "DynamoDB"}, {"AmazonSQS.", "SQS"}} {
		total := 0.0
		var parts []string
		for k, v := range per {
			if strings.HasPrefix(k, svc.prefix) {
				total += v
				parts = append(parts, fmt.Sprintf("%s %.1f", strings.TrimPrefix(k, svc.prefix), v))
			}
		}
		sort.Strings(parts)
		out = append(out, result{Name: svc.name + " calls per delivery with a webhook", Value: total, Unit: "calls",
			Note: strings.Join(parts, ", ")})
	}
	return out
}

// simHook is a request the simulator's receiver recorded.
type simHook struct {
	Body       string    `json:"body"`
	Status     int       `json:"status"`
	Verified   bool      `json:"verified"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// eventID is the id of the event a request carried.
func eventID(r simHook) string {
	var ev struct{ ID string }
	_ = json.Unmarshal([]byte(r.Body), &ev)
	return ev.ID
}

// waitHooks polls the receiver name until match, given every request in
// arrival order, picks n of them, and returns those.
func waitHooks(simURL, name string, n int, within time.Duration, match func([]simHook) []simHook) ([]simHook, error) {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(simURL + "/_sim/webhooks/" + name)
		if err != nil {
			return nil, err
		}
		var out struct{ Requests []simHook }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		matched := match(out.Requests)
		if len(matched) >= n {
			return matched, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("receiver %s: %d of %d requests after %v", name, len(matched), n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// barePosts is the floor of attempts per second: n POSTs of body, one
// after another on one keep-alive client, to the same receiver.
func barePosts(u, body string, n int) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	for range n {
		resp, err := client.Post(u, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func simPost(u string, v any) error {
	b, _ := json.Marshal(v)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s: %d", u, resp.StatusCode)
	}
	return nil
}
