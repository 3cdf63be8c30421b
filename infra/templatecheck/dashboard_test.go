package templatecheck

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/metrics"
)

// subRef matches a ${...} substitution of !Sub.
var subRef = regexp.MustCompile(`\$\{([^}]+)\}`)

// searchExpr matches a SEARCH expression's schema and metric name:
// SEARCH('{Namespace,Key,...} MetricName="Name" ...', ...).
var searchExpr = regexp.MustCompile(`SEARCH\('\{([^}]*)\}\s*MetricName="([^"]+)"`)

// dashboard returns the dashboard body's widgets, every ${X} replaced by
// "ref:X".
func dashboard(t *testing.T) []map[string]any {
	t.Helper()
	n := get(load(t), "Resources", "Dashboard", "Properties", "DashboardBody")
	if n == nil || n.Tag != "!Sub" {
		t.Fatal("template has no Dashboard with a !Sub DashboardBody")
	}
	body := subRef.ReplaceAllString(n.Value, "ref:$1")
	var doc struct {
		Widgets []map[string]any `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("DashboardBody is not JSON: %v", err)
	}
	return doc.Widgets
}

// posseMetric is a POSSE metric a dashboard or alarm reads: its name and
// dimension keys, sorted.
type posseMetric struct {
	name string
	dims []string
}

// dashboardMetrics returns the POSSE metrics the widgets read (SEARCH
// schemas and metric arrays) and, per AWS metric ("AWS/Lambda Errors"),
// the values of its dimensions.
func dashboardMetrics(t *testing.T, widgets []map[string]any) ([]posseMetric, map[string][]string) {
	t.Helper()
	var posse []posseMetric
	aws := map[string][]string{}
	for _, w := range widgets {
		props, _ := w["properties"].(map[string]any)
		rows, _ := props["metrics"].([]any)
		for _, r := range rows {
			row, _ := r.([]any)
			var strs []string
			for _, cell := range row {
				switch c := cell.(type) {
				case string:
					strs = append(strs, c)
				case map[string]any:
					expr, _ := c["expression"].(string)
					for _, m := range searchExpr.FindAllStringSubmatch(expr, -1) {
						schema := strings.Split(m[1], ",")
						if strings.TrimSpace(schema[0]) != metrics.DefaultNamespace {
							continue
						}
						var dims []string
						for _, k := range schema[1:] {
							dims = append(dims, strings.TrimSpace(k))
						}
						sort.Strings(dims)
						posse = append(posse, posseMetric{m[2], dims})
					}
				}
			}
			if len(strs) < 2 {
				continue
			}
			if strs[0] == metrics.DefaultNamespace {
				dims := []string{}
				for i := 2; i+1 < len(strs); i += 2 {
					dims = append(dims, strs[i])
				}
				sort.Strings(dims)
				posse = append(posse, posseMetric{strs[1], dims})
				continue
			}
			key := strs[0] + " " + strs[1]
			for i := 3; i < len(strs); i += 2 {
				aws[key] = append(aws[key], strs[i])
			}
		}
	}
	return posse, aws
}

// TestDashboardReadsWhatIsRecorded: every POSSE metric the dashboard and
// the alarms read is one shared/metrics records, with exactly its
// dimension keys (CloudWatch finds nothing otherwise, silently), and every
// recorded metric is on the dashboard.
func TestDashboardReadsWhatIsRecorded(t *testing.T) {
	t.Parallel()
	catalog := map[string]metrics.Def{}
	for _, d := range metrics.Catalog {
		catalog[d.Name] = d
	}
	posse, _ := dashboardMetrics(t, dashboard(t))
	root := load(t)
	for _, id := range resources(root, "AWS::CloudWatch::Alarm") {
		ms := get(root, "Resources", id, "Properties", "Metrics")
		if ms == nil {
			continue // a single-metric alarm of an AWS namespace
		}
		for _, m := range ms.Content {
			metric := get(m, "MetricStat", "Metric")
			if metric == nil || get(metric, "Namespace").Value != metrics.DefaultNamespace {
				continue
			}
			dims := []string{}
			if d := get(metric, "Dimensions"); d != nil {
				for _, kv := range d.Content {
					dims = append(dims, get(kv, "Name").Value)
				}
			}
			sort.Strings(dims)
			posse = append(posse, posseMetric{get(metric, "MetricName").Value, dims})
		}
	}
	seen := map[string]bool{}
	for _, m := range posse {
		def, ok := catalog[m.name]
		switch {
		case !ok:
			t.Errorf("the template reads POSSE %s, which shared/metrics does not record", m.name)
		case !slices.Equal(def.Dims, m.dims):
			t.Errorf("the template reads POSSE %s with dimensions %v; it is recorded with %v", m.name, m.dims, def.Dims)
		}
		seen[m.name] = true
	}
	for _, d := range metrics.Catalog {
		if !seen[d.Name] {
			t.Errorf("POSSE %s is recorded but not on the dashboard", d.Name)
		}
	}
}

// TestDashboardCoversEveryQueueAndFunction: the dispatch queue's depth and
// oldest message, every DLQ's depth, and errors, duration and throttles of
// every function (by Ref, or by the name it is given).
func TestDashboardCoversEveryQueueAndFunction(t *testing.T) {
	t.Parallel()
	root := load(t)
	_, aws := dashboardMetrics(t, dashboard(t))
	has := func(key, value string) bool { return slices.Contains(aws[key], value) }
	for _, key := range []string{"AWS/SQS ApproximateNumberOfMessagesVisible", "AWS/SQS ApproximateAgeOfOldestMessage"} {
		if !has(key, "ref:DispatchQueue.QueueName") {
			t.Errorf("the dashboard lacks %s of the dispatch queue", key)
		}
	}
	for _, id := range resources(root, "AWS::SQS::Queue") {
		if strings.HasSuffix(id, "DLQ") && !has("AWS/SQS ApproximateNumberOfMessagesVisible", "ref:"+id+".QueueName") {
			t.Errorf("the dashboard lacks the depth of %s", id)
		}
	}
	fns := resources(root, "AWS::Serverless::Function")
	for _, metric := range []string{"Errors", "Duration", "Throttles"} {
		key := "AWS/Lambda " + metric
		for _, id := range fns {
			name := subRef.ReplaceAllString(get(root, "Resources", id, "Properties", "FunctionName").Value, "ref:$1")
			if !has(key, "ref:"+id) && !has(key, name) {
				t.Errorf("the dashboard lacks %s of %s", metric, id)
			}
		}
		// The webhook function (another branch) is named ahead of time.
		if !has(key, "posse-ref:Environment-webhook") && !slices.Contains(fns, "WebhookFunction") {
			t.Errorf("the dashboard lacks %s of the webhook function", metric)
		}
	}
}

// TestWebhookSuccessRateAlarm: failures over attempts over 15 minutes,
// alarming above 5%.
func TestWebhookSuccessRateAlarm(t *testing.T) {
	t.Parallel()
	props := get(load(t), "Resources", "WebhookSuccessRateAlarm", "Properties")
	if props == nil {
		t.Fatal("template has no WebhookSuccessRateAlarm")
	}
	var expr string
	periods := map[string]string{}
	for _, m := range get(props, "Metrics").Content {
		if e := get(m, "Expression"); e != nil {
			expr = e.Value
			continue
		}
		periods[get(m, "Id").Value] = get(m, "MetricStat", "Period").Value + " " + get(m, "MetricStat", "Stat").Value
	}
	if expr != "100 * FILL(failures, 0) / attempts" || periods["attempts"] != "900 Sum" || periods["failures"] != "900 Sum" {
		t.Errorf("metrics: got %q over %v, want 100 * FILL(failures, 0) / attempts, sums over 900 s", expr, periods)
	}
	if get(props, "Threshold").Value != "5" || get(props, "ComparisonOperator").Value != "GreaterThanThreshold" ||
		get(props, "TreatMissingData").Value != "notBreaching" || len(scalars(get(props, "AlarmActions"))) == 0 {
		t.Errorf("alarm: got threshold %v %v, missing data %v, actions %v", scalars(get(props, "Threshold")),
			scalars(get(props, "ComparisonOperator")), scalars(get(props, "TreatMissingData")), scalars(get(props, "AlarmActions")))
	}
}
