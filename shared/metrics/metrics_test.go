package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/metrics"
)

var at = time.Date(2026, 11, 2, 9, 30, 0, 123e6, time.UTC)

func newRecorder(w *bytes.Buffer) *metrics.Recorder {
	return metrics.New(metrics.Options{Function: "dispatch", Writer: w, Now: func() time.Time { return at }})
}

// validUnits are CloudWatch's units (MetricDatum).
var validUnits = map[string]bool{}

func init() {
	for _, u := range strings.Fields(`Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits
		Megabits Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second Terabytes/Second
		Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second None`) {
		validUnits[u] = true
	}
}

// emf checks one line against the EMF specification and returns it parsed:
// a JSON object alone on its line; _aws with an integer Timestamp and
// CloudWatchMetrics; each directive with a Namespace, at least one
// dimension set of at most 30 keys that name string members of at most
// 1,024 characters, and at most 100 metrics that name a number or an array
// of at most 100 numbers, in a valid unit.
func emf(t *testing.T, line string) map[string]any {
	t.Helper()
	if strings.Count(line, "\n") != 0 {
		t.Fatalf("line %q holds a newline", line)
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("line is not a JSON object: %v\n%s", err, line)
	}
	if dec.More() {
		t.Fatalf("data after the JSON object: %s", line)
	}
	meta, ok := root["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws object: %s", line)
	}
	ts, ok := meta["Timestamp"].(json.Number)
	if _, err := ts.Int64(); !ok || err != nil {
		t.Errorf("_aws.Timestamp %v is not an integer", meta["Timestamp"])
	}
	dirs, ok := meta["CloudWatchMetrics"].([]any)
	if !ok || len(dirs) == 0 {
		t.Fatalf("_aws.CloudWatchMetrics is not a non-empty array: %s", line)
	}
	for _, d := range dirs {
		dir := d.(map[string]any)
		if ns, _ := dir["Namespace"].(string); ns == "" || len(ns) > 1024 {
			t.Errorf("Namespace %v", dir["Namespace"])
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok || len(sets) == 0 {
			t.Errorf("Dimensions %v: want an array of dimension sets", dir["Dimensions"])
		}
		for _, s := range sets {
			keys, ok := s.([]any)
			if !ok || len(keys) > 30 {
				t.Errorf("dimension set %v: want an array of at most 30 keys", s)
			}
			for _, k := range keys {
				v, ok := root[k.(string)].(string)
				if !ok || v == "" || len(v) > 1024 {
					t.Errorf("dimension %v: target member %v is not a string of 1 to 1024 characters", k, root[k.(string)])
				}
			}
		}
		defs, ok := dir["Metrics"].([]any)
		if !ok || len(defs) == 0 || len(defs) > 100 {
			t.Fatalf("Metrics: got %d definitions, want 1 to 100", len(defs))
		}
		for _, m := range defs {
			def := m.(map[string]any)
			name, _ := def["Name"].(string)
			if u, ok := def["Unit"].(string); ok && !validUnits[u] {
				t.Errorf("metric %s: unit %q is not a CloudWatch unit", name, u)
			}
			switch v := root[name].(type) {
			case json.Number:
			case []any:
				if len(v) == 0 || len(v) > 100 {
					t.Errorf("metric %s: %d values, want 1 to 100", name, len(v))
				}
				for _, x := range v {
					if _, ok := x.(json.Number); !ok {
						t.Errorf("metric %s: value %v is not a number", name, x)
					}
				}
			default:
				t.Errorf("metric %s: target member %v is not a number or an array of numbers", name, root[name])
			}
		}
	}
	return root
}

func lines(b *bytes.Buffer) []string {
	s := strings.TrimSuffix(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestFlushWritesTheSpecifiedShape(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := newRecorder(&out)
	r.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: "mastodon", metrics.Outcome: "sent"}, 1)
	r.Duration(metrics.PublishLatency, metrics.Dims{metrics.Platform: "mastodon"}, 1250*time.Millisecond)
	ctx := logging.WithRequestID(context.Background(), "req-1")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := lines(&out)
	want := []string{
		`{"_aws":{"Timestamp":1793611800123,"CloudWatchMetrics":[{"Namespace":"POSSE","Dimensions":[["Outcome","Platform"]],"Metrics":[{"Name":"Deliveries","Unit":"Count"}]}]},"Outcome":"sent","Platform":"mastodon","Deliveries":1,"function":"dispatch","request_id":"req-1"}`,
		`{"_aws":{"Timestamp":1793611800123,"CloudWatchMetrics":[{"Namespace":"POSSE","Dimensions":[["Platform"]],"Metrics":[{"Name":"PublishLatency","Unit":"Milliseconds"}]}]},"Platform":"mastodon","PublishLatency":1250,"function":"dispatch","request_id":"req-1"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("lines: got %d, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
		emf(t, got[i])
	}
	if at.UnixMilli() != 1793611800123 {
		t.Fatalf("the test's clock: %d", at.UnixMilli())
	}
}

func TestLinePerDimensionSet(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := newRecorder(&out)
	// One invocation: 7 deliveries on two platforms, their latencies, one
	// deferral.
	for i := range 5 {
		r.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: "x", metrics.Outcome: "sent"}, 1)
		r.Duration(metrics.PublishLatency, metrics.Dims{metrics.Platform: "x"}, time.Duration(i+1)*time.Second)
	}
	r.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: "bluesky", metrics.Outcome: "sent"}, 1)
	r.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: "bluesky", metrics.Outcome: "deferred"}, 1)
	r.Count(metrics.Deferrals, metrics.Dims{metrics.Platform: "bluesky", metrics.Reason: "platform_rate_limit"}, 1)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lines(&out)
	if len(got) != 5 {
		t.Fatalf("lines: got %d, want 5 (one per dimension set):\n%s", len(got), out.String())
	}
	// Each line, by its dimension values, and what it says.
	got2 := map[string]string{}
	for _, l := range got {
		m := emf(t, l)
		var key []string
		for _, k := range []string{metrics.Platform, metrics.Outcome, metrics.Reason} {
			if v, ok := m[k].(string); ok {
				key = append(key, v)
			}
		}
		for _, name := range []string{metrics.Deliveries, metrics.PublishLatency, metrics.Deferrals} {
			if v, ok := m[name]; ok {
				b, _ := json.Marshal(v)
				got2[strings.Join(key, "/")] = name + "=" + string(b)
			}
		}
	}
	want := map[string]string{
		"x":                           "PublishLatency=[1000,2000,3000,4000,5000]",
		"x/sent":                      "Deliveries=5",
		"bluesky/sent":                "Deliveries=1",
		"bluesky/deferred":            "Deliveries=1",
		"bluesky/platform_rate_limit": "Deferrals=1",
	}
	if fmt.Sprint(got2) != fmt.Sprint(want) {
		t.Errorf("lines:\n got %v\nwant %v", got2, want)
	}
	// Counts are summed within a flush.
	out.Reset()
	for range 3 {
		r.Count(metrics.WebhookAttempts, nil, 1)
		r.Count(metrics.WebhookFailures, nil, 0)
	}
	r.Count(metrics.WebhookFailures, nil, 1)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = lines(&out)
	if len(got) != 1 {
		t.Fatalf("webhook lines: got %d, want 1:\n%s", len(got), out.String())
	}
	m := emf(t, got[0])
	dirs := m["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)
	if b, _ := json.Marshal(dirs[0].(map[string]any)["Dimensions"]); string(b) != `[[]]` {
		t.Errorf("dimensions without any: got %s, want [[]] (an empty dimension set)", b)
	}
	if fmt.Sprint(m[metrics.WebhookAttempts], "/", m[metrics.WebhookFailures]) != "3/1" {
		t.Errorf("webhook counts: got %v attempts, %v failures; want 3 and 1", m[metrics.WebhookAttempts], m[metrics.WebhookFailures])
	}
	// A flush forgets what it wrote.
	out.Reset()
	if err := r.Flush(context.Background()); err != nil || out.Len() != 0 {
		t.Errorf("second flush: got %q, %v; want nothing", out.String(), err)
	}
}

func TestLimitsSplitLines(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := newRecorder(&out)
	dims := metrics.Dims{metrics.Kind: "bench"}
	for i := range 250 {
		r.Observe("Samples", dims, metrics.None, float64(i))
	}
	for i := range 150 {
		r.Count(fmt.Sprintf("Counter%03d", i), dims, 1)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lines(&out)
	samples, counters := 0, map[string]bool{}
	for _, l := range got {
		m := emf(t, l)
		switch v := m["Samples"].(type) {
		case []any:
			samples += len(v)
		case json.Number:
			samples++
		}
		for k := range m {
			if strings.HasPrefix(k, "Counter") {
				if counters[k] {
					t.Errorf("%s written twice", k)
				}
				counters[k] = true
			}
		}
	}
	// 250 samples: pages of 100, 100, 50; the first page's 151 metrics
	// need two lines.
	if len(got) != 4 || samples != 250 || len(counters) != 150 {
		t.Errorf("got %d lines, %d samples, %d counters; want 4, 250, 150", len(got), samples, len(counters))
	}
}

func TestRefusedSamplesAreDroppedAndReported(t *testing.T) {
	t.Parallel()
	many := metrics.Dims{}
	for i := range 31 {
		many[fmt.Sprintf("K%d", i)] = "v"
	}
	for _, tc := range []struct {
		name   string
		metric string
		dims   metrics.Dims
		value  float64
		says   string
	}{
		{"a site id as a dimension", metrics.Deliveries, metrics.Dims{"SiteId": "site_abc", metrics.Platform: "x", metrics.Outcome: "sent"}, 1, `dimension "SiteId" is not allowed`},
		{"a site dimension", "Custom", metrics.Dims{"Site": "blog"}, 1, `dimension "Site" is not allowed`},
		{"a key in the wrong case", "Custom", metrics.Dims{"platform": "x"}, 1, `dimension "platform" is not allowed`},
		{"a connection id", "Custom", metrics.Dims{metrics.Reason: "conn_abcdefgh"}, 1, "not an id"},
		{"a site id as a value", "Custom", metrics.Dims{metrics.Kind: "site_0123456789abcdefghijklmnop"}, 1, "not an id"},
		{"a long value", "Custom", metrics.Dims{metrics.Reason: strings.Repeat("a", 65)}, 1, "short word"},
		{"an empty value", "Custom", metrics.Dims{metrics.Reason: ""}, 1, "short word"},
		{"a URL", "Custom", metrics.Dims{metrics.Reason: "https://blog.example/p?id=1"}, 1, "short word"},
		{"too many dimensions", "Custom", many, 1, "more than 30 dimensions"},
		{"a metric named like a dimension", metrics.Platform, nil, 1, "reserved"},
		{"a metric named _aws", "_aws", nil, 1, "reserved"},
		{"an empty name", "", nil, 1, "metric name"},
		{"not a number", "Custom", nil, math.NaN(), "finite"},
		{"infinite", "Custom", nil, math.Inf(1), "finite"},
		{"a catalogued metric without its dimensions", metrics.Deliveries, metrics.Dims{metrics.Platform: "x"}, 1, "the catalog says"},
		{"a catalogued metric in another unit", metrics.AICostMicros, metrics.Dims{metrics.Provider: "openai"}, 1, "the catalog says"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			r := newRecorder(&out)
			// (AICostMicros as a Count: the catalog says None.)
			r.Count(tc.metric, tc.dims, tc.value)
			// A good sample still goes out.
			r.Count(metrics.Unknown, metrics.Dims{metrics.Platform: "x"}, 1)
			err := r.Flush(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "dropped 1 samples") {
				t.Fatalf("Flush: got %v, want a drop that says %q", err, tc.says)
			}
			for _, v := range tc.dims {
				if len(v) > 3 && strings.Contains(err.Error(), v) {
					t.Errorf("the error repeats the dimension value %q: %v", v, err)
				}
			}
			got := lines(&out)
			if len(got) != 1 || strings.Contains(got[0], "site_") || !strings.Contains(got[0], `"Unknown":1`) {
				t.Errorf("lines: got %q, want only the good sample", got)
			}
		})
	}
}

func TestConflictingKindsAreDropped(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := newRecorder(&out)
	r.Count("Mixed", nil, 1)
	r.Duration("Mixed", nil, time.Second)
	err := r.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Mixed recorded both") {
		t.Errorf("Flush: got %v, want the second kind dropped", err)
	}
	if got := lines(&out); len(got) != 1 || !strings.Contains(got[0], `"Mixed":1,`) {
		t.Errorf("lines: got %q, want the count", got)
	}
}

func TestConcurrentRecordsAndFlushes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var out bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	r := metrics.New(metrics.Options{Writer: w, Now: func() time.Time { return at }})
	const workers, each = 16, 200
	platforms := []string{"x", "bluesky", "mastodon", "threads"}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			p := platforms[i%len(platforms)]
			for j := range each {
				r.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: p, metrics.Outcome: "sent"}, 1)
				r.Duration(metrics.PublishLatency, metrics.Dims{metrics.Platform: p}, time.Duration(j)*time.Millisecond)
				if j%50 == 0 {
					if err := r.Flush(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var count float64
	samples := 0
	for _, l := range lines(&out) {
		m := emf(t, l)
		if n, ok := m[metrics.Deliveries].(json.Number); ok {
			f, _ := n.Float64()
			count += f
		}
		switch v := m[metrics.PublishLatency].(type) {
		case []any:
			samples += len(v)
		case json.Number:
			samples++
		}
	}
	if count != workers*each || samples != workers*each {
		t.Errorf("flushed %v deliveries and %d latencies, want %d of each", count, samples, workers*each)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestNilRecorderIsANoOp(t *testing.T) {
	t.Parallel()
	var r *metrics.Recorder
	r.Count(metrics.Deliveries, metrics.Dims{metrics.Platform: "x", metrics.Outcome: "sent"}, 1)
	r.Add(metrics.AICostMicros, metrics.Dims{metrics.Provider: "openai"}, metrics.None, 3)
	r.Duration(metrics.PublishLatency, nil, time.Second)
	r.Observe("X", nil, metrics.None, 1)
	if err := r.Flush(context.Background()); err != nil {
		t.Errorf("Flush of a nil recorder: %v", err)
	}
}

func TestWriteErrorIsReturned(t *testing.T) {
	t.Parallel()
	boom := errors.New("stdout closed")
	r := metrics.New(metrics.Options{Writer: writerFunc(func([]byte) (int, error) { return 0, boom })})
	r.Count(metrics.Unknown, metrics.Dims{metrics.Platform: "x"}, 1)
	if err := r.Flush(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Flush: got %v, want the write error", err)
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{}
	for _, k := range metrics.AllowedKeys() {
		allowed[k] = true
	}
	seen := map[string]bool{}
	for _, d := range metrics.Catalog {
		if seen[d.Name] {
			t.Errorf("%s is catalogued twice", d.Name)
		}
		seen[d.Name] = true
		if d.Dims == nil {
			t.Errorf("%s: Dims is nil; use an empty list", d.Name)
		}
		for i, k := range d.Dims {
			if !allowed[k] || i > 0 && d.Dims[i-1] >= k {
				t.Errorf("%s: dimensions %v are not sorted allowed keys", d.Name, d.Dims)
			}
		}
	}
}
