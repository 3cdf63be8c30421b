package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/dispatch"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/platform"
)

// metricRig is a rig whose dispatcher records metrics into out.
func metricRig(t *testing.T) (*rig, *metrics.Recorder, *bytes.Buffer) {
	t.Helper()
	out := &bytes.Buffer{}
	var rec *metrics.Recorder
	r := newRig(t, func(c *dispatch.Config) {
		rec = metrics.New(metrics.Options{Function: "dispatch", Writer: out, Now: c.Now})
		c.Metrics = rec
	})
	return r, rec, out
}

// flushed flushes rec and returns every data point as
// "Name{Key=value,...}" → its value (JSON).
func flushed(t *testing.T, rec *metrics.Recorder, out *bytes.Buffer) map[string]string {
	t.Helper()
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		var meta struct {
			CloudWatchMetrics []struct {
				Dimensions [][]string
				Metrics    []struct{ Name string }
			}
		}
		if err := json.Unmarshal(m["_aws"], &meta); err != nil {
			t.Fatal(err)
		}
		dir := meta.CloudWatchMetrics[0]
		var dims []string
		for _, k := range dir.Dimensions[0] {
			var v string
			_ = json.Unmarshal(m[k], &v)
			dims = append(dims, k+"="+v)
		}
		for _, def := range dir.Metrics {
			got[def.Name+"{"+strings.Join(dims, ",")+"}"] = string(m[def.Name])
		}
	}
	out.Reset()
	return got
}

func TestMetricsOfOneDelivery(t *testing.T) {
	t.Parallel()
	r, rec, out := metricRig(t)
	_, msg := r.delivery("p1")
	r.clock.Advance(1500 * time.Millisecond) // picked up 1.5 s after it became due
	if err := r.d.HandleRecord(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if err := rec.Flush(logging.WithRequestID(context.Background(), "8d5c1f0e-6f1a-4c3e-9b1e-2f7d9a0c4b11")); err != nil {
		t.Fatal(err)
	}
	want := `{"_aws":{"Timestamp":1793611801500,"CloudWatchMetrics":[{"Namespace":"POSSE","Dimensions":[["Outcome","Platform"]],"Metrics":[{"Name":"Deliveries","Unit":"Count"}]}]},"Outcome":"sent","Platform":"mastodon","Deliveries":1,"function":"dispatch","request_id":"8d5c1f0e-6f1a-4c3e-9b1e-2f7d9a0c4b11"}
{"_aws":{"Timestamp":1793611801500,"CloudWatchMetrics":[{"Namespace":"POSSE","Dimensions":[["Platform"]],"Metrics":[{"Name":"PublishLatency","Unit":"Milliseconds"}]}]},"Platform":"mastodon","PublishLatency":1500,"function":"dispatch","request_id":"8d5c1f0e-6f1a-4c3e-9b1e-2f7d9a0c4b11"}
`
	if out.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "site_a") || strings.Contains(out.String(), "dlv_") {
		t.Errorf("a metric line holds an id: %s", out.String())
	}
}

func TestMetricsByOutcome(t *testing.T) {
	t.Parallel()
	r, rec, out := metricRig(t)
	fail := func(err error) {
		r.pub.publish = func(context.Context, platform.Account, platform.Post, platform.Journal) (platform.Result, error) {
			return platform.Result{}, err
		}
	}
	run := func(msg dispatch.Record) {
		t.Helper()
		if err := r.d.HandleRecord(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	// A target allowing one post an hour, on its own connection: the
	// second delivery waits for the target's limit.
	for i := range 2 {
		out, _, err := r.ledger.CreateAll(context.Background(), []ledger.NewDelivery{{SiteID: "site_a", PostID: fmt.Sprint("lim", i),
			Revision: "r1", TargetID: "tgt_2", ConnectionID: "conn_2", Platform: platform.Mastodon, Text: "x", RateLimitPerHour: 1}})
		if err != nil {
			t.Fatal(err)
		}
		run(dispatch.Record{MessageID: fmt.Sprint("lim", i), Body: ledger.DeliveryMessage("site_a", out[0].ID).Encode()})
	}
	fail(apperr.New(apperr.KindTransient, "mastodon.5xx", "down"))
	_, m := r.delivery("transient")
	run(m)
	fail(apperr.New(apperr.KindPermanent, "mastodon.422", "rejected"))
	_, m = r.delivery("permanent")
	run(m)
	fail(apperr.New(apperr.KindAmbiguous, "mastodon.timeout", "dropped")) // Reconcile cannot tell
	_, m = r.delivery("ambiguous")
	run(m)
	limited := apperr.New(apperr.KindRateLimited, "mastodon.429", "slow down")
	limited.RetryAfter = 5 * time.Minute
	fail(limited)
	_, m = r.delivery("limited")
	run(m)
	_, m = r.delivery("blocked") // the block the 429 left
	run(m)

	got := flushed(t, rec, out)
	want := map[string]string{
		"Deliveries{Outcome=sent,Platform=mastodon}":               "1",
		"PublishLatency{Platform=mastodon}":                        "0",
		"Deliveries{Outcome=deferred,Platform=mastodon}":           "3",
		"Deferrals{Platform=mastodon,Reason=target_rate_limit}":    "1",
		"Deferrals{Platform=mastodon,Reason=platform_rate_limit}":  "1",
		"Deferrals{Platform=mastodon,Reason=platform_block}":       "1",
		"Deliveries{Outcome=retrying,Platform=mastodon}":           "1",
		"Deliveries{Outcome=failed,Platform=mastodon}":             "1",
		"Deliveries{Outcome=unknown,Platform=mastodon}":            "1",
		"Unknown{Platform=mastodon}":                               "1",
		"PlatformErrors{ErrorKind=transient,Platform=mastodon}":    "1",
		"PlatformErrors{ErrorKind=permanent,Platform=mastodon}":    "1",
		"PlatformErrors{ErrorKind=ambiguous,Platform=mastodon}":    "1",
		"PlatformErrors{ErrorKind=rate_limited,Platform=mastodon}": "1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		var lines []string
		for k, v := range got {
			lines = append(lines, k+" = "+v)
		}
		slices.Sort(lines)
		t.Errorf("metrics:\n%s\nwant %v", strings.Join(lines, "\n"), want)
	}
	// The failed and retried attempts gave the statistics their error kind.
	var kinds []string
	r.stats.mu.Lock()
	for _, e := range r.stats.events {
		if e.ErrorKind != "" {
			kinds = append(kinds, e.ErrorKind)
		}
	}
	r.stats.mu.Unlock()
	if strings.Join(kinds, ",") != "transient,permanent" {
		t.Errorf("stats error kinds: got %v, want transient then permanent", kinds)
	}
}

func TestNoMetricsWithoutARecorder(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil) // Config.Metrics nil: recording is a no-op
	_, msg := r.delivery("p1")
	if err := r.d.HandleRecord(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if got := r.get(mustDecode(t, msg.Body).DeliveryID); got.State != ledger.StateSent {
		t.Errorf("state: got %s, want sent", got.State)
	}
}
