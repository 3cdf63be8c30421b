// Package metrics writes POSSE's CloudWatch metrics as Embedded Metric
// Format (EMF) log lines: JSON objects on stdout that CloudWatch Logs turns
// into metrics in the POSSE namespace, with no PutMetricData call and no
// agent (Lambda ships stdout to CloudWatch Logs as it is).
//
// A Recorder buffers what one invocation records and Flush writes it as one
// line per distinct dimension set, so an invocation that publishes ten
// deliveries writes a few lines, not ten. A nil *Recorder records nothing,
// so packages take one optionally.
//
// No metric carries a site id (or any other id) as a dimension: every
// distinct dimension value is a new CloudWatch metric, billed and kept for
// 15 months. Dimension keys are an allow-list (Function, Platform, Outcome,
// Reason, ErrorKind, Provider, Kind), and values must be short, low
// cardinality words that do not look like one of POSSE's ids. Anything else
// is dropped and reported by Flush. Per-site figures live in DynamoDB
// (shared/stats) and are answered by GET /v1/platforms/health.
//
// The format (docs.aws.amazon.com, "Specification: Embedded metric format"):
//
//	{"_aws": {"Timestamp": <epoch ms>, "CloudWatchMetrics": [{"Namespace": "POSSE",
//	  "Dimensions": [["Outcome", "Platform"]], "Metrics": [{"Name": "Deliveries", "Unit": "Count"}]}]},
//	 "Outcome": "sent", "Platform": "mastodon", "Deliveries": 3, "function": "dispatch"}
//
// Dimension and metric values are top-level members; a metric's value is a
// number or an array of at most 100 numbers; a directive has at most 100
// metrics and a dimension set at most 30 keys (an empty set is allowed).
package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/logging"
)

// DefaultNamespace is the CloudWatch namespace of POSSE's metrics.
const DefaultNamespace = "POSSE"

// The EMF limits of one line.
const (
	// MaxMetricsPerLine is the most metric definitions one directive may hold.
	MaxMetricsPerLine = 100
	// MaxValuesPerMetric is the most values one metric member may hold.
	MaxValuesPerMetric = 100
	// MaxDimensions is the most keys one dimension set may hold.
	MaxDimensions = 30
	// MaxValueLen bounds a dimension value. EMF allows 1,024 characters;
	// POSSE's values are words like "mastodon" or "rate_limited".
	MaxValueLen = 64
)

// Unit is a CloudWatch metric unit.
type Unit string

// The units POSSE's metrics use.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	None         Unit = "None"
)

// Dimension keys: the only keys a metric may carry.
const (
	Function  = "Function"
	Platform  = "Platform"
	Outcome   = "Outcome"
	Reason    = "Reason"
	ErrorKind = "ErrorKind"
	Provider  = "Provider"
	Kind      = "Kind"
)

// allowedKeys is the allow-list of dimension keys.
var allowedKeys = map[string]bool{Function: true, Platform: true, Outcome: true, Reason: true, ErrorKind: true, Provider: true, Kind: true}

// AllowedKeys returns the dimension keys a metric may carry, sorted.
func AllowedKeys() []string {
	keys := make([]string, 0, len(allowedKeys))
	for k := range allowedKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// idPrefixes start POSSE's ids (sites, keys, connections, targets,
// deliveries, schedules): a dimension value that starts with one is an id
// that slipped in, and is refused.
var idPrefixes = []string{"site_", "key_", "conn_", "tgt_", "dlv_", "sch_", "posse_"}

// Dims are a metric's dimensions: keys from the allow-list, low-cardinality
// values. Nil or empty is a metric without dimensions.
type Dims map[string]string

// Reserved top-level members of every line, which no metric may be named.
const (
	memberAWS       = "_aws"
	memberFunction  = "function"
	memberRequestID = "request_id"
)

// Options configure a Recorder.
type Options struct {
	// Namespace defaults to DefaultNamespace.
	Namespace string
	// Function names the function in a "function" member of every line,
	// for CloudWatch Logs Insights. It is not a dimension: a metric is the
	// same metric whichever function records it (dispatch and sweep both
	// record deliveries).
	Function string
	// Writer receives the lines; default os.Stdout (Lambda sends stdout to
	// the function's log group, where EMF is extracted).
	Writer io.Writer
	// Now stamps each line; default time.Now.
	Now func() time.Time
}

// Recorder buffers metrics until Flush. It is safe for concurrent use; a
// nil *Recorder records nothing and flushes nothing.
type Recorder struct {
	ns       string
	function string
	w        io.Writer
	now      func() time.Time

	mu      sync.Mutex
	sets    map[string]*dimSet
	dropped map[string]int // reason → samples dropped since the last Flush
}

// dimSet is the metrics recorded under one set of dimension values.
type dimSet struct {
	dims    Dims
	metrics map[string]*series
}

// series is one metric's buffered data: a sum, or samples.
type series struct {
	unit    Unit
	summed  bool
	sum     float64
	samples []float64
}

// New returns a Recorder. It does no I/O.
func New(o Options) *Recorder {
	r := &Recorder{ns: o.Namespace, function: o.Function, w: o.Writer, now: o.Now}
	if r.ns == "" {
		r.ns = DefaultNamespace
	}
	if r.w == nil {
		r.w = os.Stdout
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.reset()
	return r
}

func (r *Recorder) reset() {
	r.sets = map[string]*dimSet{}
	r.dropped = map[string]int{}
}

// Count adds n to a count (Unit Count). Counts recorded under the same
// name and dimensions are summed until Flush; 0 is recorded too, so a
// metric that a ratio divides by has a data point.
func (r *Recorder) Count(name string, dims Dims, n float64) {
	r.record(name, dims, Count, n, true)
}

// Add adds v to a sum in unit (AI cost in micro-USD, say), like Count.
func (r *Recorder) Add(name string, dims Dims, unit Unit, v float64) {
	r.record(name, dims, unit, v, true)
}

// Duration records one sample of d in milliseconds. Samples are kept one
// by one, so CloudWatch computes percentiles over them.
func (r *Recorder) Duration(name string, dims Dims, d time.Duration) {
	r.record(name, dims, Milliseconds, float64(d)/float64(time.Millisecond), false)
}

// Observe records one sample of v in unit, like Duration.
func (r *Recorder) Observe(name string, dims Dims, unit Unit, v float64) {
	r.record(name, dims, unit, v, false)
}

func (r *Recorder) record(name string, dims Dims, unit Unit, v float64, summed bool) {
	if r == nil {
		return
	}
	key, reason := check(name, dims, unit, v)
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason != "" {
		r.dropped[reason]++
		return
	}
	set := r.sets[key]
	if set == nil {
		set = &dimSet{dims: cloneDims(dims), metrics: map[string]*series{}}
		r.sets[key] = set
	}
	s := set.metrics[name]
	if s == nil {
		s = &series{unit: unit, summed: summed}
		set.metrics[name] = s
	}
	if s.unit != unit || s.summed != summed {
		r.dropped[fmt.Sprintf("%s recorded both as %s %s and as %s %s", name, kindOf(s.summed), s.unit, kindOf(summed), unit)]++
		return
	}
	if summed {
		s.sum += v
	} else {
		s.samples = append(s.samples, v)
	}
}

func kindOf(summed bool) string {
	if summed {
		return "a sum in"
	}
	return "samples in"
}

func cloneDims(d Dims) Dims {
	out := make(Dims, len(d))
	for k, v := range d {
		out[k] = v
	}
	return out
}

// check validates one sample and returns its dimension set's key, or why
// it is refused.
func check(name string, dims Dims, unit Unit, v float64) (key, reason string) {
	switch {
	case name == "" || len(name) > 255 || !printable(name):
		return "", fmt.Sprintf("metric name %q is not 1 to 255 printable ASCII characters", truncate(name))
	case allowedKeys[name] || name == memberAWS || name == memberFunction || name == memberRequestID:
		return "", fmt.Sprintf("metric name %q is reserved", name)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "", fmt.Sprintf("%s: the value is not a finite number", name)
	case len(dims) > MaxDimensions:
		return "", fmt.Sprintf("%s: more than %d dimensions", name, MaxDimensions)
	}
	keys := make([]string, 0, len(dims))
	for k, val := range dims {
		if !allowedKeys[k] {
			// The key is ours (code), never data: safe to name.
			return "", fmt.Sprintf("%s: dimension %q is not allowed (allowed: %s)", name, truncate(k), strings.Join(AllowedKeys(), ", "))
		}
		if !goodValue(val) {
			// The value may be data (an id): never repeat it.
			return "", fmt.Sprintf("%s: the value of dimension %s is not a short word (1 to %d of [A-Za-z0-9_.:-], not an id)", name, k, MaxValueLen)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if def, ok := catalog[name]; ok && (def.Unit != unit || !slices.Equal(def.Dims, keys)) {
		return "", fmt.Sprintf("%s: recorded in %s with dimensions [%s]; the catalog says %s with [%s]",
			name, unit, strings.Join(keys, " "), def.Unit, strings.Join(def.Dims, " "))
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(dims[k])
		b.WriteByte(0)
	}
	return b.String(), ""
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// goodValue reports whether v is a low-cardinality word: short, of a
// small alphabet, and not one of POSSE's ids.
func goodValue(v string) bool {
	if v == "" || len(v) > MaxValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	lower := strings.ToLower(v)
	for _, p := range idPrefixes {
		if strings.HasPrefix(lower, p) {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Flush writes what was recorded since the last Flush, one line per
// dimension set (more when a set holds over MaxMetricsPerLine metrics or a
// metric over MaxValuesPerMetric samples), with the request id in ctx, and
// forgets it. It returns an error when samples were dropped (naming why,
// never a dimension value) or a line could not be written; the lines that
// could be written are written either way.
func (r *Recorder) Flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	sets, dropped := r.sets, r.dropped
	r.reset()
	r.mu.Unlock()

	ts := r.now().UnixMilli()
	requestID := logging.RequestID(ctx)
	keys := make([]string, 0, len(sets))
	for k := range sets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		for _, line := range r.lines(sets[k], ts, requestID) {
			if _, err := r.w.Write(line); err != nil {
				errs = append(errs, fmt.Errorf("metrics: write a line: %w", err))
				break
			}
		}
	}
	if len(dropped) > 0 {
		reasons := make([]string, 0, len(dropped))
		total := 0
		for reason, n := range dropped {
			reasons = append(reasons, fmt.Sprintf("%s (%d)", reason, n))
			total += n
		}
		sort.Strings(reasons)
		errs = append(errs, fmt.Errorf("metrics: dropped %d samples: %s", total, strings.Join(reasons, "; ")))
	}
	return errors.Join(errs...)
}

// lines renders one dimension set: pages of at most MaxValuesPerMetric
// samples per metric, each split into lines of at most MaxMetricsPerLine
// metrics.
func (r *Recorder) lines(set *dimSet, ts int64, requestID string) [][]byte {
	names := make([]string, 0, len(set.metrics))
	for n := range set.metrics {
		names = append(names, n)
	}
	sort.Strings(names)
	dimKeys := make([]string, 0, len(set.dims))
	for k := range set.dims {
		dimKeys = append(dimKeys, k)
	}
	sort.Strings(dimKeys)

	var out [][]byte
	for page := 0; ; page++ {
		type entry struct {
			name  string
			unit  Unit
			value any
		}
		var entries []entry
		for _, n := range names {
			s := set.metrics[n]
			if s.summed {
				if page == 0 {
					entries = append(entries, entry{n, s.unit, s.sum})
				}
				continue
			}
			lo := page * MaxValuesPerMetric
			if lo >= len(s.samples) {
				continue
			}
			vals := s.samples[lo:min(lo+MaxValuesPerMetric, len(s.samples))]
			if len(vals) == 1 {
				entries = append(entries, entry{n, s.unit, vals[0]})
			} else {
				entries = append(entries, entry{n, s.unit, vals})
			}
		}
		if len(entries) == 0 {
			return out
		}
		for chunk := range slices.Chunk(entries, MaxMetricsPerLine) {
			var b bytes.Buffer
			defs := make([]metricDef, len(chunk))
			for i, e := range chunk {
				defs[i] = metricDef{Name: e.name, Unit: e.unit}
			}
			meta := awsMeta{Timestamp: ts, CloudWatchMetrics: []directive{{Namespace: r.ns, Dimensions: [][]string{dimKeys}, Metrics: defs}}}
			b.WriteString(`{"_aws":`)
			writeJSON(&b, meta)
			for _, k := range dimKeys {
				member(&b, k, set.dims[k])
			}
			for _, e := range chunk {
				member(&b, e.name, e.value)
			}
			if r.function != "" {
				member(&b, memberFunction, r.function)
			}
			if requestID != "" {
				member(&b, memberRequestID, requestID)
			}
			b.WriteString("}\n")
			out = append(out, b.Bytes())
		}
	}
}

// awsMeta is the _aws member.
type awsMeta struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

// directive is a MetricDirective.
type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

// metricDef is a MetricDefinition.
type metricDef struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

func member(b *bytes.Buffer, key string, v any) {
	b.WriteByte(',')
	writeJSON(b, key)
	b.WriteByte(':')
	writeJSON(b, v)
}

// writeJSON encodes v, which is always encodable here (strings, finite
// numbers and the structs above).
func writeJSON(b *bytes.Buffer, v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		enc = []byte("null")
	}
	b.Write(enc)
}
