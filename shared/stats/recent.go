package stats

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/platform"
)

// The windows of Recent, in hourly buckets ending with the current hour:
// the last hour is the current clock hour and the one before it (60 to 120
// minutes); the last day is the current hour and the 24 before it (24 to 25
// hours). Each window covers at least its span, to the hour.
const (
	HourBuckets = 2
	DayBuckets  = 25
)

// Window is a platform's outcomes over a range of hourly buckets.
type Window struct {
	// Since is the start of the window's first hour.
	Since  time.Time `json:"since"`
	Sent   int       `json:"sent"`
	Failed int       `json:"failed"`
	// SuccessRate is sent / (sent + failed); null when both are 0.
	SuccessRate *float64 `json:"successRate"`
	// P50LatencyMs is the median time from due to published of the
	// deliveries sent, estimated from the hourly histogram (linear within
	// a bucket; at least an hour when the median is in the last, open
	// bucket); null when none was sent.
	P50LatencyMs *int64 `json:"p50LatencyMs"`
}

// LastError is the most recent failed or retried attempt's error.
type LastError struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
}

// PlatformRecent is one platform's recent figures.
type PlatformRecent struct {
	Platform platform.Name
	LastHour Window
	LastDay  Window
	// LastError is nil when no attempt failed or was retried in the last
	// day's window.
	LastError *LastError
}

// windowsAt returns the starts of the last hour's and the last day's
// windows at now.
func windowsAt(now time.Time) (hourSince, daySince time.Time) {
	hour := now.UTC().Truncate(time.Hour)
	return hour.Add(-(HourBuckets - 1) * time.Hour), hour.Add(-(DayBuckets - 1) * time.Hour)
}

// Quiet is the figures of platform p at now without any outcome: empty
// windows, no last error.
func Quiet(p platform.Name, now time.Time) PlatformRecent {
	h, d := windowsAt(now)
	return PlatformRecent{Platform: p, LastHour: Window{Since: h}, LastDay: Window{Since: d}}
}

// hourCounts is one hourly bucket.
type hourCounts struct {
	sent, failed int64
	latency      []int64 // per histogram bucket
}

// Recent returns the site's figures per platform over the last hour and
// the last day (HourBuckets and DayBuckets hourly buckets ending with the
// hour of now), for every platform with an outcome in the last day's
// window. It reads yesterday's and today's items: one Query.
func (s *Store) Recent(ctx context.Context, siteID string, now time.Time) (map[platform.Name]PlatformRecent, error) {
	hour := now.UTC().Truncate(time.Hour)
	hourSince, daySince := windowsAt(now)
	buckets := map[platform.Name]map[time.Time]*hourCounts{}
	lastErr := map[platform.Name]*LastError{}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :p AND SK BETWEEN :a AND :b"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str(partition(siteID)),
			":a": str(daySince.Format(DateLayout)), ":b": str(hour.Format(DateLayout) + "#\uffff"),
		},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query recent stats of %s: %w", siteID, err)
		}
		for _, it := range page.Items {
			sk, _ := it["SK"].(*types.AttributeValueMemberS)
			if sk == nil {
				continue
			}
			date, plat, ok := strings.Cut(sk.Value, "#")
			day, err := time.Parse(DateLayout, date)
			if !ok || err != nil {
				continue
			}
			name := platform.Name(plat)
			if buckets[name] == nil {
				buckets[name] = map[time.Time]*hourCounts{}
			}
			readHours(it, day, daySince, hour, buckets[name])
			if k, ok := it["last_error_kind"].(*types.AttributeValueMemberS); ok {
				at := time.UnixMilli(number(it, "last_error_at_ms")).UTC()
				if !at.Before(daySince) && (lastErr[name] == nil || at.After(lastErr[name].At)) {
					lastErr[name] = &LastError{Kind: k.Value, At: at}
				}
			}
		}
	}
	out := map[platform.Name]PlatformRecent{}
	for name, bs := range buckets {
		r := PlatformRecent{Platform: name, LastHour: window(bs, hourSince), LastDay: window(bs, daySince), LastError: lastErr[name]}
		if r.LastDay.Sent+r.LastDay.Failed == 0 && r.LastError == nil {
			continue
		}
		out[name] = r
	}
	return out, nil
}

// readHours adds the hourly attributes of the item of day whose hours fall
// in [since, last] to bs.
func readHours(it map[string]types.AttributeValue, day, since, last time.Time, bs map[time.Time]*hourCounts) {
	for attr, v := range it {
		n, ok := v.(*types.AttributeValueMemberN)
		if !ok || len(attr) < 4 || attr[0] != 'h' {
			continue
		}
		h, err := strconv.Atoi(attr[1:3])
		if err != nil || h < 0 || h > 23 {
			continue
		}
		at := day.Add(time.Duration(h) * time.Hour)
		if at.Before(since) || at.After(last) {
			continue
		}
		count, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			continue
		}
		b := bs[at]
		if b == nil {
			b = &hourCounts{latency: make([]int64, len(LatencyBounds)+1)}
			bs[at] = b
		}
		switch rest := attr[3:]; {
		case rest == "s":
			b.sent += count
		case rest == "f":
			b.failed += count
		case strings.HasPrefix(rest, "l"):
			if i, err := strconv.Atoi(rest[1:]); err == nil && i >= 0 && i < len(b.latency) {
				b.latency[i] += count
			}
		}
	}
}

// window sums the buckets from since on.
func window(bs map[time.Time]*hourCounts, since time.Time) Window {
	w := Window{Since: since}
	hist := make([]int64, len(LatencyBounds)+1)
	var sent, failed int64
	for at, b := range bs {
		if at.Before(since) {
			continue
		}
		sent += b.sent
		failed += b.failed
		for i, n := range b.latency {
			hist[i] += n
		}
	}
	w.Sent, w.Failed = int(sent), int(failed)
	if n := sent + failed; n > 0 {
		rate := float64(sent) / float64(n)
		w.SuccessRate = &rate
	}
	if p50, ok := Quantile(hist, 0.5); ok {
		ms := p50.Milliseconds()
		w.P50LatencyMs = &ms
	}
	return w
}

// Quantile estimates the q-quantile (0 < q < 1) of a latency histogram
// with LatencyBounds' buckets: linear within the bucket it falls in, the
// lower bound for the last, open bucket. It is false when the histogram
// is empty.
func Quantile(hist []int64, q float64) (time.Duration, bool) {
	var total int64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var below int64
	for i, n := range hist {
		if n == 0 || float64(below+n) < rank {
			below += n
			continue
		}
		lo := time.Duration(0)
		if i > 0 {
			lo = LatencyBounds[i-1]
		}
		if i >= len(LatencyBounds) {
			return lo, true
		}
		hi := LatencyBounds[i]
		frac := (rank - float64(below)) / float64(n)
		return lo + time.Duration(frac*float64(hi-lo)), true
	}
	return LatencyBounds[len(LatencyBounds)-1], true
}
