// Package stats keeps POSSE's delivery statistics: atomic counters per
// site, platform and UTC day, written by the dispatcher as outcomes are
// recorded, the report GET /v1/analytics answers, and the recent figures
// GET /v1/platforms/health answers (Recent).
//
// Items:
//
//	PK=SITE#<site>#STATS  SK=<2006-01-02>#<platform>
//	  sent, failed, retries, latency_sum_ms, latency_count, ai_cost_micros
//	  eng_<figure> (views, likes, ...): the latest figures of the posts sent that day, kept by
//	  shared/engagement in the same transaction as each reading (it adds the change since the
//	  previous reading); eng_posts: posts read at least once; eng_posts_<figure>: posts giving it
//	  h<HH>s, h<HH>f       sent and failed in the UTC hour HH (00-23)
//	  h<HH>l<B>            sent in hour HH with a latency in bucket B (LatencyBounds)
//	  last_error_kind, last_error_at_ms   the last failed or retried attempt
//
// Everything one outcome adds is one UpdateItem on the day's item: the
// hourly counters, the latency histogram and the last error ride along with
// the daily counters, so the dispatcher's DynamoDB calls per delivery do
// not grow. The short attribute names keep a day's item under 1 KB (one
// write unit) in the common case of a few active hours and latency
// buckets; a day with every hour and every bucket used is about 2.5 KB
// (three write units per update).
package stats

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// DateLayout is how days are named, in UTC.
const DateLayout = "2006-01-02"

// MaxDays bounds one query's range.
const MaxDays = 366

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store writes and reads the counters.
type Store struct {
	db    dynamoAPI
	table string
}

// New returns a Store on table. It does no I/O.
func New(db dynamoAPI, table string) *Store { return &Store{db: db, table: table} }

// Event is what one recorded outcome adds to its day's counters.
type Event struct {
	Sent, Failed, Retries int
	// Latency, when positive, is added to the latency sum and counted once.
	// With Sent, it also counts Sent in the hour's latency histogram.
	Latency time.Duration
	// AICostMicros is what adapting the delivery's text cost, in micro-USD.
	AICostMicros int64
	// ErrorKind, when set, is the error of a failed or retried attempt:
	// recorded as the platform's last error, at the event's time.
	ErrorKind string
}

// LatencyBounds are the upper bounds of the hourly latency histogram's
// buckets: bucket i holds latencies up to LatencyBounds[i]; the last
// bucket, len(LatencyBounds), holds longer ones.
var LatencyBounds = []time.Duration{
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour,
}

// latencyBucket is the histogram bucket of d.
func latencyBucket(d time.Duration) int {
	for i, b := range LatencyBounds {
		if d <= b {
			return i
		}
	}
	return len(LatencyBounds)
}

// Attribute names of the hourly counters of hour h (0-23).
func hourSent(h int) string            { return fmt.Sprintf("h%02ds", h) }
func hourFailed(h int) string          { return fmt.Sprintf("h%02df", h) }
func hourLatency(h, bucket int) string { return fmt.Sprintf("h%02dl%d", h, bucket) }

func partition(siteID string) string { return "SITE#" + siteID + "#STATS" }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// Record adds e to the counters of (site, platform, at's day) in one
// UpdateItem.
func (s *Store) Record(ctx context.Context, siteID string, p platform.Name, at time.Time, e Event) error {
	var t Tally
	t.Add(siteID, p, at, e)
	return s.RecordTally(ctx, &t)
}

// Tally adds events up by site, platform and day, so that many outcomes
// cost one UpdateItem per counter item (RecordTally): the dispatcher
// records an SQS batch's outcomes once per batch. The zero Tally is empty
// and ready; it is safe for concurrent use.
type Tally struct {
	mu   sync.Mutex
	sums map[tallyKey]*sum
}

type tallyKey struct {
	siteID string
	p      platform.Name
	day    string
}

// sum is the counters' increments of one item.
type sum struct {
	adds    map[string]int64
	order   []string // adds' attributes in the order first added
	errKind string
	errAt   time.Time
}

// Add adds e, which happened at at, to the tally.
func (t *Tally) Add(siteID string, p platform.Name, at time.Time, e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sums == nil {
		t.sums = map[tallyKey]*sum{}
	}
	k := tallyKey{siteID, p, at.UTC().Format(DateLayout)}
	u := t.sums[k]
	if u == nil {
		u = &sum{adds: map[string]int64{}}
		t.sums[k] = u
	}
	add := func(attr string, n int64) {
		if n == 0 {
			return
		}
		if _, ok := u.adds[attr]; !ok {
			u.order = append(u.order, attr)
		}
		u.adds[attr] += n
	}
	add("sent", int64(e.Sent))
	add("failed", int64(e.Failed))
	add("retries", int64(e.Retries))
	if e.Latency > 0 {
		add("latency_sum_ms", e.Latency.Milliseconds())
		add("latency_count", 1)
	}
	add("ai_cost_micros", e.AICostMicros)
	hour := at.UTC().Hour()
	add(hourSent(hour), int64(e.Sent))
	add(hourFailed(hour), int64(e.Failed))
	if e.Sent > 0 {
		add(hourLatency(hour, latencyBucket(e.Latency)), int64(e.Sent))
	}
	if e.ErrorKind != "" && !at.Before(u.errAt) {
		u.errKind, u.errAt = e.ErrorKind, at
	}
}

// Len is the number of counter items the tally changes.
func (t *Tally) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sums)
}

// RecordTally adds the tally to the counters, one UpdateItem per site,
// platform and day, and empties it. Items it could not update stay in the
// tally, and the first error is returned.
func (s *Store) RecordTally(ctx context.Context, t *Tally) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first error
	for _, k := range slices.SortedFunc(maps.Keys(t.sums), func(a, b tallyKey) int {
		return strings.Compare(a.siteID+"\x00"+string(a.p)+"\x00"+a.day, b.siteID+"\x00"+string(b.p)+"\x00"+b.day)
	}) {
		if err := s.update(ctx, k, t.sums[k]); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		delete(t.sums, k)
	}
	return first
}

// update adds u to the counter item of k.
func (s *Store) update(ctx context.Context, k tallyKey, u *sum) error {
	var adds, sets []string
	vals := map[string]types.AttributeValue{}
	for _, attr := range u.order {
		if u.adds[attr] == 0 {
			continue
		}
		adds = append(adds, attr+" :"+attr)
		vals[":"+attr] = num(u.adds[attr])
	}
	if u.errKind != "" {
		sets = append(sets, "last_error_kind = :lek", "last_error_at_ms = :lea")
		vals[":lek"], vals[":lea"] = str(u.errKind), num(u.errAt.UnixMilli())
	}
	if len(adds) == 0 && len(sets) == 0 {
		return nil
	}
	var expr []string
	if len(adds) > 0 {
		expr = append(expr, "ADD "+strings.Join(adds, ", "))
	}
	if len(sets) > 0 {
		expr = append(expr, "SET "+strings.Join(sets, ", "))
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table,
		Key: map[string]types.AttributeValue{
			"PK": str(partition(k.siteID)), "SK": str(k.day + "#" + string(k.p)),
		},
		UpdateExpression:          aws.String(strings.Join(expr, " ")),
		ExpressionAttributeValues: vals,
	})
	if err != nil {
		return fmt.Errorf("record stats of %s on %s: %w", k.p, k.day, err)
	}
	return nil
}

// Totals are counters summed over a set of days and platforms.
type Totals struct {
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
	Retries int `json:"retries"`
	// AvgLatencyMs is the mean time from a delivery becoming due to its
	// publication, over the deliveries sent; 0 when none.
	AvgLatencyMs int64 `json:"avgLatencyMs"`
	// SuccessRate is sent / (sent + failed), 0 when both are 0.
	SuccessRate float64 `json:"successRate"`
	// TotalAICost is what AI adaptation cost, in USD.
	TotalAICost float64 `json:"totalAiCost"`
	// Engagement sums the latest figures of the posts sent in the range.
	Engagement Engagement `json:"engagement"`

	latencySum, latencyCount, aiCostMicros int64
}

// Engagement is the engagement of a set of sent posts, from their latest
// readings.
type Engagement struct {
	// Posts is how many were read at least once.
	Posts int64 `json:"posts"`
	// Figures sums each figure over the posts whose platform gives it; a
	// figure no platform gave is absent.
	Figures map[string]int64 `json:"figures"`
	// Interactions sums every figure but views.
	Interactions int64 `json:"interactions"`
	// Rate is interactions per view over the platforms that give views
	// (their interactions only); null when none does.
	Rate *float64 `json:"rate"`

	viewedInteractions int64
}

func (e *Engagement) add(o Engagement) {
	e.Posts += o.Posts
	for k, v := range o.Figures {
		if e.Figures == nil {
			e.Figures = map[string]int64{}
		}
		e.Figures[k] += v
	}
	e.Interactions += o.Interactions
	e.viewedInteractions += o.viewedInteractions
}

func (e *Engagement) finish() {
	if e.Figures == nil {
		e.Figures = map[string]int64{}
	}
	if v := e.Figures[string(platform.Views)]; v > 0 {
		r := float64(e.viewedInteractions) / float64(v)
		e.Rate = &r
	}
}

// engagementOf reads the eng_ counters of one stats item.
func engagementOf(it map[string]types.AttributeValue) Engagement {
	e := Engagement{Posts: number(it, "eng_posts"), Figures: map[string]int64{}}
	for _, m := range platform.Metrics {
		if _, ok := it["eng_posts_"+string(m)]; !ok {
			continue
		}
		v := number(it, "eng_"+string(m))
		e.Figures[string(m)] = v
		if m != platform.Views {
			e.Interactions += v
		}
	}
	if _, ok := it["eng_posts_views"]; ok {
		e.viewedInteractions = e.Interactions
	}
	return e
}

func (t *Totals) add(o Totals) {
	t.Sent += o.Sent
	t.Failed += o.Failed
	t.Retries += o.Retries
	t.latencySum += o.latencySum
	t.latencyCount += o.latencyCount
	t.aiCostMicros += o.aiCostMicros
	t.Engagement.add(o.Engagement)
}

func (t *Totals) finish() {
	if t.latencyCount > 0 {
		t.AvgLatencyMs = t.latencySum / t.latencyCount
	}
	if n := t.Sent + t.Failed; n > 0 {
		t.SuccessRate = float64(t.Sent) / float64(n)
	}
	t.TotalAICost = float64(t.aiCostMicros) / 1e6
	t.Engagement.finish()
}

// PlatformTotals are one platform's totals over the range.
type PlatformTotals struct {
	Platform platform.Name `json:"platform"`
	Totals
}

// Day is one day's totals over every platform.
type Day struct {
	Date string `json:"date"`
	Totals
}

// Report is the analytics of a site over a range of days.
type Report struct {
	From       string           `json:"from"`
	To         string           `json:"to"`
	Summary    Totals           `json:"summary"`
	ByPlatform []PlatformTotals `json:"byPlatform"`
	// Timeline has one entry per day of the range, days without activity
	// included, oldest first.
	Timeline []Day `json:"timeline"`
}

// Query returns the report of a site from the UTC day of from to the UTC
// day of to, both included. A range that ends before it starts or spans
// more than MaxDays is invalid.
func (s *Store) Query(ctx context.Context, siteID string, from, to time.Time) (Report, error) {
	first, last := day(from), day(to)
	if last.Before(first) {
		return Report{}, apperr.Invalid("to", "must not be before from")
	}
	if days := int(last.Sub(first)/(24*time.Hour)) + 1; days > MaxDays {
		return Report{}, apperr.Invalid("to", fmt.Sprintf("the range spans %d days; at most %d", days, MaxDays))
	}
	byDay := map[string]*Totals{}
	byPlatform := map[platform.Name]*Totals{}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :p AND SK BETWEEN :a AND :b"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str(partition(siteID)),
			":a": str(first.Format(DateLayout)), ":b": str(last.Format(DateLayout) + "#\uffff"),
		},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("query stats of %s: %w", siteID, err)
		}
		for _, it := range page.Items {
			sk, _ := it["SK"].(*types.AttributeValueMemberS)
			if sk == nil {
				continue
			}
			date, plat, ok := strings.Cut(sk.Value, "#")
			if !ok {
				continue
			}
			t := Totals{Sent: int(number(it, "sent")), Failed: int(number(it, "failed")), Retries: int(number(it, "retries")),
				latencySum: number(it, "latency_sum_ms"), latencyCount: number(it, "latency_count"),
				aiCostMicros: number(it, "ai_cost_micros"), Engagement: engagementOf(it)}
			if byDay[date] == nil {
				byDay[date] = &Totals{}
			}
			byDay[date].add(t)
			name := platform.Name(plat)
			if byPlatform[name] == nil {
				byPlatform[name] = &Totals{}
			}
			byPlatform[name].add(t)
		}
	}
	r := Report{From: first.Format(DateLayout), To: last.Format(DateLayout), ByPlatform: []PlatformTotals{}}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		date := d.Format(DateLayout)
		t := Totals{}
		if v := byDay[date]; v != nil {
			t = *v
		}
		r.Summary.add(t)
		t.finish()
		r.Timeline = append(r.Timeline, Day{Date: date, Totals: t})
	}
	r.Summary.finish()
	for name, t := range byPlatform {
		t.finish()
		r.ByPlatform = append(r.ByPlatform, PlatformTotals{Platform: name, Totals: *t})
	}
	slices.SortFunc(r.ByPlatform, func(a, b PlatformTotals) int { return strings.Compare(string(a.Platform), string(b.Platform)) })
	return r, nil
}

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func number(it map[string]types.AttributeValue, attr string) int64 {
	v, ok := it[attr].(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(v.Value, 10, 64)
	return n
}
