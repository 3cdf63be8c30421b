package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/posse-dev/posse/infra/local/moto"
)

func TestPricesHaveSources(t *testing.T) {
	t.Parallel()
	prices, err := loadPrices()
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range []string{"lambda_gb_second_arm", "lambda_request", "http_api_request", "sqs_request", "dynamodb_read_request_unit",
		"dynamodb_write_request_unit", "kms_request", "scheduler_invocation", "cloudwatch_logs_ingested_gb"} {
		if _, ok := prices[item]; !ok {
			t.Errorf("prices.json has no %s", item)
		}
	}
}

func TestCostPer1000(t *testing.T) {
	t.Parallel()
	prices := map[string]price{}
	for _, item := range []string{"lambda_gb_second_arm", "lambda_request", "http_api_request", "sqs_request", "dynamodb_read_request_unit",
		"dynamodb_write_request_unit", "kms_request", "scheduler_invocation", "cloudwatch_logs_ingested_gb"} {
		prices[item] = price{Item: item, USD: 1, Per: 1}
	}
	// Two deliveries: one api and one dispatch invocation each (100 ms
	// billed at 512 MB), 4 SQS requests of which 1 a Scheduler fire, 3
	// RRU and 5 WRU, 1 KMS request; the sweep's calls do not count.
	u := usage{
		Calls: []moto.CallCount{
			{Caller: "ApiFunction", Service: "dynamodb", Operation: "GetItem", Count: 2, ReadUnits: 3},
			{Caller: "DispatchFunction", Service: "dynamodb", Operation: "PutItem", Count: 3, WriteUnits: 5},
			{Caller: "DispatchFunction", Service: "kms", Operation: "Decrypt", Count: 1},
			{Caller: moto.CallerEventSourceMapping, Service: "sqs", Operation: "ReceiveMessage", Count: 3},
			{Caller: moto.CallerScheduler, Service: "sqs", Operation: "SendMessage", Count: 1},
			{Caller: "SweepFunction", Service: "dynamodb", Operation: "Query", Count: 9, ReadUnits: 9},
		},
		Invocations: map[string][]invocation{
			"ApiFunction":      {{100, 512}, {100, 512}},
			"DispatchFunction": {{100, 512}, {100, 512}},
			"SweepFunction":    {{100, 512}},
		},
		LogBytes: map[string]int64{"DispatchFunction": 2 << 30, "SweepFunction": 1 << 30},
	}
	got, err := costPer1000(u, prices, 2, 2, "ApiFunction", "DispatchFunction", moto.CallerEventSourceMapping, moto.CallerScheduler)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"cost per 1,000 deliveries: lambda_gb_second_arm":        1000 * 4 * 0.1 * 0.5 / 2,
		"cost per 1,000 deliveries: lambda_request":              1000 * 4.0 / 2,
		"cost per 1,000 deliveries: http_api_request":            1000 * 2.0 / 2,
		"cost per 1,000 deliveries: sqs_request":                 1000 * 4.0 / 2,
		"cost per 1,000 deliveries: dynamodb_read_request_unit":  1000 * 3.0 / 2,
		"cost per 1,000 deliveries: dynamodb_write_request_unit": 1000 * 5.0 / 2,
		"cost per 1,000 deliveries: kms_request":                 1000 * 1.0 / 2,
		"cost per 1,000 deliveries: scheduler_invocation":        1000 * 1.0 / 2,
		"cost per 1,000 deliveries: cloudwatch_logs_ingested_gb": 1000 * 2.0 / 2,
	}
	total := 0.0
	for _, v := range want {
		total += v
	}
	want["cost per 1,000 deliveries: total"] = total
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for _, r := range got {
		if w, ok := want[r.Name]; !ok || math.Abs(r.Value-w) > 1e-9 {
			t.Errorf("%s: got %v, want %v", r.Name, r.Value, w)
		}
	}
}

func TestWindowReadsReports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "DispatchFunction-0.log")
	if err := os.WriteFile(log, []byte("REPORT RequestId: old\tDuration: 9.00 ms\tBilled Duration: 9 ms\tMemory Size: 256 MB\tMax Memory Used: 256 MB\t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &window{logDir: dir, offsets: map[string]int64{}}
	st, _ := os.Stat(log)
	w.offsets[log] = st.Size()
	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("START RequestId: a\nREPORT RequestId: a\tInit Duration: 3.00 ms\tDuration: 41.20 ms\tBilled Duration: 42 ms\tMemory Size: 256 MB\tMax Memory Used: 256 MB\t\n")
	f.Close()
	u := usage{Invocations: map[string][]invocation{}, LogBytes: map[string]int64{}}
	if err := w.readLogs(&u); err != nil {
		t.Fatal(err)
	}
	if got := u.Invocations["DispatchFunction"]; len(got) != 1 || got[0] != (invocation{BilledMS: 42, MemoryMB: 256}) {
		t.Errorf("got invocations %+v, want one of 42 ms at 256 MB (the one before the window left out)", got)
	}
}
