package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/posse-dev/posse/infra/local/moto"
)

//go:embed prices.json
var pricesJSON []byte

// price is one row of prices.json: usd for per units of item.
type price struct {
	Item   string  `json:"item"`
	USD    float64 `json:"usd"`
	Per    float64 `json:"per"`
	Unit   string  `json:"unit"`
	Source string  `json:"source"`
	AsOf   string  `json:"asOf"`
}

// loadPrices reads the price table and checks every row is usable.
func loadPrices() (map[string]price, error) {
	var doc struct {
		Prices []price `json:"prices"`
	}
	if err := json.Unmarshal(pricesJSON, &doc); err != nil {
		return nil, fmt.Errorf("prices.json: %w", err)
	}
	out := map[string]price{}
	for i, p := range doc.Prices {
		if p.Item == "" || p.USD <= 0 || p.Per <= 0 || p.Source == "" || p.AsOf == "" {
			return nil, fmt.Errorf("prices.json: row %d (%q) needs item, usd, per, source and asOf", i, p.Item)
		}
		out[p.Item] = p
	}
	return out, nil
}

// invocation is one REPORT line of the Lambda RIE.
type invocation struct {
	BilledMS float64
	MemoryMB float64
}

// usage is what the local stack did between window.start and
// window.collect: AWS calls counted at moto, and each function's
// invocations and log bytes read from its RIE logs.
type usage struct {
	Calls       []moto.CallCount
	Invocations map[string][]invocation // by logical id
	LogBytes    map[string]int64        // by logical id
}

// withCaller is u with caller's calls, invocations and log bytes taken
// from other (a snapshot of the same window taken earlier).
func (u usage) withCaller(other usage, caller string) usage {
	out := usage{Invocations: maps.Clone(u.Invocations), LogBytes: maps.Clone(u.LogBytes)}
	for _, c := range u.Calls {
		if c.Caller != caller {
			out.Calls = append(out.Calls, c)
		}
	}
	for _, c := range other.Calls {
		if c.Caller == caller {
			out.Calls = append(out.Calls, c)
		}
	}
	out.Invocations[caller], out.LogBytes[caller] = other.Invocations[caller], other.LogBytes[caller]
	return out
}

// window marks the start of a measurement: moto's counts are reset and
// the functions' log files' sizes noted.
type window struct {
	motoURL, logDir string
	offsets         map[string]int64
}

func startWindow(motoURL, logDir string) (*window, error) {
	if err := moto.ResetCalls(motoURL); err != nil {
		return nil, err
	}
	w := &window{motoURL: motoURL, logDir: logDir, offsets: map[string]int64{}}
	files, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			w.offsets[f] = st.Size()
		}
	}
	return w, nil
}

var reportLine = regexp.MustCompile(`^REPORT RequestId: .*\tBilled Duration: ([0-9.]+) ms\tMemory Size: ([0-9]+) MB`)

// collect reads what happened since start.
func (w *window) collect() (usage, error) {
	calls, err := moto.CallDetail(w.motoURL)
	if err != nil {
		return usage{}, err
	}
	u := usage{Calls: calls, Invocations: map[string][]invocation{}, LogBytes: map[string]int64{}}
	if err := w.readLogs(&u); err != nil {
		return usage{}, err
	}
	return u, nil
}

// readLogs adds the functions' REPORT lines and log bytes written since
// start to u.
func (w *window) readLogs(u *usage) error {
	files, _ := filepath.Glob(filepath.Join(w.logDir, "*.log"))
	for _, f := range files {
		// <LogicalID>-<n>.log
		base := strings.TrimSuffix(filepath.Base(f), ".log")
		fn := base
		if i := strings.LastIndex(base, "-"); i > 0 {
			fn = base[:i]
		}
		if err := readLog(f, w.offsets[f], fn, u); err != nil {
			return err
		}
	}
	return nil
}

func readLog(path string, offset int64, fn string, u *usage) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		u.LogBytes[fn] += int64(len(sc.Bytes()) + 1)
		if m := reportLine.FindStringSubmatch(sc.Text()); m != nil {
			billed, _ := strconv.ParseFloat(m[1], 64)
			mem, _ := strconv.ParseFloat(m[2], 64)
			u.Invocations[fn] = append(u.Invocations[fn], invocation{BilledMS: billed, MemoryMB: mem})
		}
	}
	return sc.Err()
}

// callsBy sums the calls of the given callers by "service Operation".
func (u usage) callsBy(callers ...string) map[string]moto.CallCount {
	out := map[string]moto.CallCount{}
	for _, c := range u.Calls {
		if !contains(callers, c.Caller) {
			continue
		}
		k := c.Service + " " + c.Operation
		s := out[k]
		s.Service, s.Operation = c.Service, c.Operation
		s.Count += c.Count
		s.ReadUnits += c.ReadUnits
		s.WriteUnits += c.WriteUnits
		out[k] = s
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// callResults is one line per API of callers, per unit (n units: n
// dispatch calls, n deliveries), sorted by service and operation, then
// one line per service; ddbGoal, when set, notes the DynamoDB line.
func callResults(u usage, label string, n int, ddbGoal string, callers ...string) []result {
	by := u.callsBy(callers...)
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []result
	perService := map[string]float64{}
	for _, k := range keys {
		c := by[k]
		v := float64(c.Count) / float64(n)
		perService[c.Service] += v
		note := ""
		if c.ReadUnits+c.WriteUnits > 0 {
			note = fmt.Sprintf("%.2f RRU, %.2f WRU each", c.ReadUnits/float64(n), c.WriteUnits/float64(n))
		}
		out = append(out, result{Name: fmt.Sprintf("%s: %s", label, k), Value: v, Unit: "calls", Note: note})
	}
	services := make([]string, 0, len(perService))
	for s := range perService {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, s := range services {
		note := ""
		if s == "dynamodb" {
			note = ddbGoal
		}
		out = append(out, result{Name: fmt.Sprintf("%s: %s calls", label, s), Value: perService[s], Unit: "calls", Note: note})
	}
	return out
}

// costLine is one part of a cost: what was used, how much per unit of work.
type costLine struct {
	item     string  // prices.json item
	quantity float64 // per unit of work, in the price's own units
	what     string
}

// costPer1000 prices the usage of n units of work (a delivery: its
// dispatch call, its message, its invocation share) per 1,000 units, with
// one line per priced item. Only the callers given are counted: the
// periodic functions (sweep, refresh) cost per hour, not per delivery.
func costPer1000(u usage, prices map[string]price, n int, httpRequests int, callers ...string) ([]result, error) {
	per := float64(n)
	var gbs, invocations float64
	for fn, invs := range u.Invocations {
		if !contains(callers, fn) {
			continue
		}
		for _, inv := range invs {
			gbs += inv.BilledMS / 1000 * inv.MemoryMB / 1024
			invocations++
		}
	}
	var sqsReq, kmsReq, rru, wru, schedInv, logBytes float64
	for _, c := range u.Calls {
		if !contains(callers, c.Caller) {
			continue
		}
		switch c.Service {
		case "sqs":
			sqsReq += float64(c.Count)
			if c.Caller == moto.CallerScheduler && strings.HasPrefix(c.Operation, "SendMessage") {
				schedInv += float64(c.Count)
			}
		case "kms":
			kmsReq += float64(c.Count)
		case "dynamodb":
			rru += c.ReadUnits
			wru += c.WriteUnits
		}
	}
	for fn, b := range u.LogBytes {
		if contains(callers, fn) {
			logBytes += float64(b)
		}
	}
	lines := []costLine{
		{"lambda_gb_second_arm", gbs / per, fmt.Sprintf("%.4f GB-s each (billed ms x memory of the template)", gbs/per)},
		{"lambda_request", invocations / per, fmt.Sprintf("%.3f invocations each", invocations/per)},
		{"http_api_request", float64(httpRequests) / per, fmt.Sprintf("%.2f requests each", float64(httpRequests)/per)},
		{"sqs_request", sqsReq / per, fmt.Sprintf("%.2f requests each, pollers included", sqsReq/per)},
		{"dynamodb_read_request_unit", rru / per, fmt.Sprintf("%.2f RRU each", rru/per)},
		{"dynamodb_write_request_unit", wru / per, fmt.Sprintf("%.2f WRU each", wru/per)},
		{"kms_request", kmsReq / per, fmt.Sprintf("%.3f requests each", kmsReq/per)},
		{"scheduler_invocation", schedInv / per, fmt.Sprintf("%.3f invocations each", schedInv/per)},
		{"cloudwatch_logs_ingested_gb", logBytes / per / (1 << 30), fmt.Sprintf("%.0f log bytes each", logBytes/per)},
	}
	var out []result
	total := 0.0
	for _, l := range lines {
		p, ok := prices[l.item]
		if !ok {
			return nil, fmt.Errorf("prices.json has no %s", l.item)
		}
		usd := l.quantity * 1000 * p.USD / p.Per
		total += usd
		out = append(out, result{Name: "cost per 1,000 deliveries: " + l.item, Value: usd, Unit: "USD", Note: l.what})
	}
	out = append(out, result{Name: "cost per 1,000 deliveries: total", Value: total, Unit: "USD",
		Note: "us-east-1 list prices (infra/bench/prices.json); durations measured on this machine"})
	return out, nil
}
