package metrics

// POSSE's metrics, in the POSSE namespace. Record them with the dimension
// keys their Def lists, no more and no fewer: CloudWatch identifies a
// metric by its name and its whole set of dimensions, so the dashboard's
// queries (template.yaml) find only the sets listed here.
const (
	// Deliveries counts recorded attempt outcomes: Platform, and Outcome
	// the state the delivery is left in (sent, retrying, deferred,
	// failed, dead, unknown).
	Deliveries = "Deliveries"
	// PublishLatency is the time from a delivery becoming due to its
	// publication, per sent delivery: Platform.
	PublishLatency = "PublishLatency"
	// Deferrals counts deferred attempts: Platform, and Reason
	// platform_block (a block another attempt recorded), target_rate_limit
	// (the target's hourly limit) or platform_rate_limit (the platform's
	// own 429 or equivalent).
	Deferrals = "Deferrals"
	// Unknown counts attempts whose outcome is unknown (a person decides):
	// Platform.
	Unknown = "Unknown"
	// PlatformErrors counts attempts that did not publish, by the kind of
	// their error (shared/apperr): Platform, ErrorKind. POSSE's own waits
	// (platform_block, target_rate_limit) are Deferrals only.
	PlatformErrors = "PlatformErrors"
	// TokenRefreshes counts token refreshes under a lease: Platform, and
	// Outcome refreshed, refused (the platform refused the refresh token:
	// the connection is broken), failed (retried later) or discarded (the
	// connection changed meanwhile).
	TokenRefreshes = "TokenRefreshes"
	// AICalls counts LLM calls: Provider, and Outcome ok or the call's
	// failure (timeout, rate_limited, invalid_output...).
	AICalls = "AICalls"
	// AICostMicros is what LLM calls cost, in micro-USD: Provider.
	AICostMicros = "AICostMicros"
	// WebhookAttempts counts webhook delivery attempts (no dimensions).
	// Record WebhookFailures with every attempt, 0 when it succeeded, so
	// the success rate failures/attempts always has both data points.
	WebhookAttempts = "WebhookAttempts"
	// WebhookFailures counts webhook attempts that did not get a 2xx (no
	// dimensions).
	WebhookFailures = "WebhookFailures"
)

// Def describes one metric: its unit and its dimension keys, sorted. A
// Recorder refuses a catalogued metric recorded with another unit or other
// keys.
type Def struct {
	Name string
	Unit Unit
	Dims []string
}

// Catalog lists every metric POSSE records, for the documentation and the
// test that keeps the dashboard's queries in step with what is recorded.
var Catalog = []Def{
	{Deliveries, Count, []string{Outcome, Platform}},
	{PublishLatency, Milliseconds, []string{Platform}},
	{Deferrals, Count, []string{Platform, Reason}},
	{Unknown, Count, []string{Platform}},
	{PlatformErrors, Count, []string{ErrorKind, Platform}},
	{TokenRefreshes, Count, []string{Outcome, Platform}},
	{AICalls, Count, []string{Outcome, Provider}},
	{AICostMicros, None, []string{Provider}},
	{WebhookAttempts, Count, []string{}},
	{WebhookFailures, Count, []string{}},
}

// catalog indexes Catalog by name.
var catalog = func() map[string]Def {
	m := make(map[string]Def, len(Catalog))
	for _, d := range Catalog {
		m[d.Name] = d
	}
	return m
}()
