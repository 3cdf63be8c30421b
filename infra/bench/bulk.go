package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/infra/local/devstack"
	"github.com/posse-dev/posse/infra/local/moto"
)

// bulkAcceptance measures, through the whole local stack, the AWS calls of
// one single-target POST /v1/dispatch (warm api instance, counted by moto
// by API name) and the rate at which POST /v1/dispatch/bulk accepts posts:
// 100-post calls, 8 targets each, one after another (the dispatch function
// publishes meanwhile, as it would).
func bulkAcceptance(ctx context.Context, root, tmp string) ([]result, error) {
	bin, err := devstack.Build(root, tmp)
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
	st, err := devstack.Launch(3*time.Minute, bin, "-instances", "1", "-gateway-port", ports[0], "-moto-port", ports[1],
		"-sim-port", ports[2], "-state-dir", filepath.Join(tmp, "bulkstack"))
	if err != nil {
		return nil, err
	}
	defer st.Stop()
	c := devstack.Client{API: st.Info["API URL"], Key: st.Info["Site API key"], SimURL: st.Info["Simulator"]}
	motoURL := st.Info["Moto endpoint"]
	targets, err := benchTargets(c)
	if err != nil {
		return nil, err
	}
	var out []result

	// Calls of one single-target dispatch on a warm instance (the previous
	// call warmed it), by API name. With one api instance nothing else
	// calls moto but the event source's polling (ReceiveMessage), left out.
	var warm struct {
		Deliveries []struct{ ID string } `json:"deliveries"`
	}
	if err := c.Must(202, "POST", "/dispatch", dispatchBody(c.SimURL, "calls-warm", []string{targets["mastodon"]}), &warm); err != nil {
		return nil, err
	}
	if err := waitSent(c, []string{warm.Deliveries[0].ID}, time.Minute); err != nil {
		return nil, err
	}
	// The dispatch below is counted until its answer, before the dispatch
	// function can receive its message (a long poll in the event source).
	// A read first: the key's lookup (and its last-used refresh, at most
	// once a minute) happens there, so the dispatch finds it cached.
	if err := c.Must(200, "GET", "/site", nil, nil); err != nil {
		return nil, err
	}
	before, err := moto.Calls(motoURL)
	if err != nil {
		return nil, err
	}
	if err := c.Must(202, "POST", "/dispatch", dispatchBody(c.SimURL, "calls-1", []string{targets["mastodon"]}), nil); err != nil {
		return nil, err
	}
	after, err := moto.Calls(motoURL)
	if err != nil {
		return nil, err
	}
	var names []string
	ddb := 0
	for k, v := range after {
		if n := v - before[k]; n > 0 && strings.HasPrefix(k, "DynamoDB_20120810.") {
			names = append(names, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "DynamoDB_20120810."), n))
			ddb += n
		}
	}
	slices.Sort(names)
	sends := after["AmazonSQS.SendMessageBatch"] - before["AmazonSQS.SendMessageBatch"]
	out = append(out, result{Name: "DynamoDB calls per single-target dispatch", Value: float64(ddb), Unit: "calls",
		Note: strings.Join(names, " ") + fmt.Sprintf("; SQS SendMessageBatch=%d; warm instance (goal <= 4)", sends)})

	all := make([]string, 0, len(targets))
	for _, id := range targets {
		all = append(all, id)
	}
	slices.Sort(all)
	// The issue asks for 100-post calls; -bulk-per sets the size (a call
	// must finish within API Gateway's 30 s).
	calls, per := 300 / *bulkPer, *bulkPer
	start := time.Now()
	accepted := 0
	for k := range calls {
		items := make([]map[string]any, per)
		for i := range items {
			b := dispatchBody(c.SimURL, fmt.Sprintf("bulk-%d-%03d", k, i), all)
			b["id"] = fmt.Sprintf("bench-%d-%03d", k, i)
			items[i] = b
		}
		n, err := bulkCall(c, map[string]any{"items": items})
		if err != nil {
			return nil, err
		}
		accepted += n
	}
	perMin := float64(accepted) / time.Since(start).Minutes()
	out = append(out, result{Name: "bulk posts accepted per minute", Value: perMin, Unit: "/min",
		Note: fmt.Sprintf("%d calls of %d posts x %d targets through the local gateway (goal >= 1,000)", calls, per, len(all))})
	return out, nil
}

var bulkPer = flag.Int("bulk-per", 100, "posts per bulk dispatch call in the bulk part (1 to 100)")

// bulkCall sends one bulk dispatch and returns how many items were queued.
func bulkCall(c devstack.Client, body any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest("POST", c.API+"/dispatch/bulk", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusMultiStatus {
		return 0, fmt.Errorf("bulk dispatch: got %d %.300s", resp.StatusCode, got)
	}
	var out struct{ Queued int }
	if err := json.Unmarshal(got, &out); err != nil {
		return 0, err
	}
	return out.Queued, nil
}
