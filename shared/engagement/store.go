// Package engagement reads the engagement figures of sent deliveries back
// from the platforms and keeps them: the collector (run by the refresh
// function's schedule) takes the deliveries whose readings are due from the
// ledger's GSI2 work index, reads them per connection and platform in the
// platform's batches within a read budget that leaves the platform's
// window to publishing, and writes each reading, the delivery's next
// reading and the day's engagement counters in one transaction.
//
// Items:
//
//	PK=SITE#<site>#MET  SK=<deliveryId>#<n, 3 digits>   one reading (figures, raw fields, read time)
//	PK=SITE#<site>#STATS  SK=<sent day>#<platform>      eng_<figure> counters added to the daily stats item
//	the delivery (PK=SITE#<site> SK=DLV#<id>): metrics_reads, metrics_last, metrics_next_at, metrics_status, GSI2 entry
package engagement

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/ledger"
	"github.com/posse-dev/posse/shared/platform"
)

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store reads and writes readings.
type Store struct {
	db    dynamoAPI
	table string
}

// NewStore returns a Store on table. It does no I/O.
func NewStore(db dynamoAPI, table string) *Store { return &Store{db: db, table: table} }

// Reading is one stored reading of a delivery.
type Reading struct {
	SiteID     string           `json:"-" dynamodbav:"site_id"`
	DeliveryID string           `json:"deliveryId" dynamodbav:"delivery_id"`
	N          int              `json:"n" dynamodbav:"n"`
	PostID     string           `json:"postId" dynamodbav:"post_id"`
	Revision   string           `json:"revision" dynamodbav:"revision"`
	Platform   platform.Name    `json:"platform" dynamodbav:"platform"`
	Variant    string           `json:"variant,omitempty" dynamodbav:"variant,omitempty"`
	ReadAt     time.Time        `json:"readAt" dynamodbav:"read_at"`
	Figures    map[string]int64 `json:"figures" dynamodbav:"figures"`
	Raw        map[string]int64 `json:"raw,omitempty" dynamodbav:"raw,omitempty"`
}

// Due is a delivery whose reading is due, as the collector needs it.
type Due struct {
	ledger.Delivery
	Version int64 `dynamodbav:"version"`
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func partition(siteID string) string { return "SITE#" + siteID + "#MET" }

func readingSK(deliveryID string, n int) string { return fmt.Sprintf("%s#%03d", deliveryID, n) }

func deliveryKey(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str("SITE#" + siteID), "SK": str("DLV#" + id)}
}

// Load reads the deliveries refs names with consistent reads, in batches
// of 100. A delivery that no longer exists is left out.
func (s *Store) Load(ctx context.Context, refs []ledger.Ref) ([]Due, error) {
	var out []Due
	for start := 0; start < len(refs); start += 100 {
		var keys []map[string]types.AttributeValue
		for _, r := range refs[start:min(start+100, len(refs))] {
			keys = append(keys, deliveryKey(r.SiteID, r.ID))
		}
		req := map[string]types.KeysAndAttributes{s.table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
		for tries := 0; len(req) > 0; tries++ {
			if tries == 5 {
				return out, errors.New("load due deliveries: unprocessed keys after 5 tries")
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return out, fmt.Errorf("load due deliveries: %w", err)
			}
			for _, it := range res.Responses[s.table] {
				var d Due
				if err := attributevalue.UnmarshalMap(it, &d); err != nil {
					return out, fmt.Errorf("load due deliveries: unmarshal: %w", err)
				}
				out = append(out, d)
			}
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// errDone reports a write whose condition failed: another run already did
// it, or the delivery moved on.
var errDone = errors.New("engagement: already recorded or no longer due")

// deliveryCond is the condition of every write to a due delivery: still
// sent, readings still running and at the count read.
func deliveryCond(d Due) (string, map[string]types.AttributeValue) {
	vals := map[string]types.AttributeValue{":sent": str(string(ledger.StateSent)), ":ver": num(d.Version)}
	return "#st = :sent AND version = :ver AND attribute_not_exists(metrics_status)", vals
}

// Outcome is what one reading does to a delivery.
type Outcome struct {
	// Reading is written when not nil.
	Reading *Reading
	// Next is the next reading's due time; zero ends the readings with
	// Status (MetricsDone when empty).
	Next   time.Time
	Status string
	Reason string
	// Advance counts this reading as taken (a reading was written or
	// skipped); false only moves Next (a deferral) or stops.
	Advance bool
}

// Apply writes o for d in one transaction: the reading (only if it does
// not exist yet), the delivery's reading count, latest figures and next
// due time (only if the delivery is as it was read), and the reading's
// additions to the day's counters. It returns errDone when another run
// got there first.
func (s *Store) Apply(ctx context.Context, d Due, o Outcome) error {
	cond, vals := deliveryCond(d)
	names := map[string]string{"#st": "state"}
	set := []string{}
	remove := []string{}
	vals[":one"] = num(1)
	n := d.MetricsReads
	if o.Advance {
		n++
		set = append(set, "metrics_reads = :n")
		vals[":n"] = num(int64(n))
	}
	var items []types.TransactWriteItem
	var statsAdd []string
	statsVals := map[string]types.AttributeValue{}
	if o.Reading != nil {
		o.Reading.N = n
		it, err := attributevalue.MarshalMap(o.Reading)
		if err != nil {
			return fmt.Errorf("marshal reading of %s: %w", d.ID, err)
		}
		it["PK"], it["SK"] = str(partition(d.SiteID)), str(readingSK(d.ID, n))
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: it,
			ConditionExpression: aws.String("attribute_not_exists(PK)")}})
		last, err := attributevalue.Marshal(o.Reading.Figures)
		if err != nil {
			return fmt.Errorf("marshal figures of %s: %w", d.ID, err)
		}
		set = append(set, "metrics_last = :last")
		vals[":last"] = last
		for _, m := range platform.Metrics {
			v, ok := o.Reading.Figures[string(m)]
			if !ok {
				continue
			}
			delta := v - d.MetricsLast[string(m)]
			if _, had := d.MetricsLast[string(m)]; !had {
				// First time this figure is seen: the post counts once.
				statsAdd = append(statsAdd, "eng_posts_"+string(m)+" :one")
			}
			if delta != 0 {
				statsAdd = append(statsAdd, "eng_"+string(m)+" :"+string(m))
				statsVals[":"+string(m)] = num(delta)
			}
		}
		if d.MetricsReads == 0 && n == 1 {
			statsAdd = append(statsAdd, "eng_posts :one")
		}
	}
	switch {
	case !o.Next.IsZero():
		next := o.Next.UTC()
		tmp := d.Delivery
		tmp.MetricsNextAt, tmp.MetricsReads = &next, n
		pk, sk := ledger.MetricsKey(tmp)
		set = append(set, "metrics_next_at = :next", "GSI2PK = :gpk", "GSI2SK = :gsk")
		vals[":next"], vals[":gpk"], vals[":gsk"] = str(next.Format(time.RFC3339Nano)), str(pk), str(sk)
	default:
		status := o.Status
		if status == "" {
			status = ledger.MetricsDone
		}
		set = append(set, "metrics_status = :status")
		vals[":status"] = str(status)
		if o.Reason != "" {
			set = append(set, "metrics_reason = :reason")
			vals[":reason"] = str(o.Reason)
		}
		remove = append(remove, "metrics_next_at", "GSI2PK", "GSI2SK")
	}
	expr := "SET " + strings.Join(set, ", ") + " ADD version :one"
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	upd := &types.Update{TableName: &s.table, Key: deliveryKey(d.SiteID, d.ID), UpdateExpression: &expr,
		ConditionExpression: &cond, ExpressionAttributeNames: names, ExpressionAttributeValues: vals}
	if len(items) == 0 {
		// Only the delivery changes: one conditional update.
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: upd.TableName, Key: upd.Key, UpdateExpression: upd.UpdateExpression,
			ConditionExpression: upd.ConditionExpression, ExpressionAttributeNames: names, ExpressionAttributeValues: vals})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return errDone
		}
		if err != nil {
			return fmt.Errorf("update readings of delivery %s: %w", d.ID, err)
		}
		return nil
	}
	items = append(items, types.TransactWriteItem{Update: upd})
	if len(statsAdd) > 0 && d.SentAt != nil {
		statsVals[":one"] = num(1)
		items = append(items, types.TransactWriteItem{Update: &types.Update{TableName: &s.table,
			Key: map[string]types.AttributeValue{
				"PK": str("SITE#" + d.SiteID + "#STATS"), "SK": str(d.SentAt.UTC().Format("2006-01-02") + "#" + string(d.Platform)),
			},
			UpdateExpression: aws.String("ADD " + strings.Join(statsAdd, ", ")), ExpressionAttributeValues: statsVals}})
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return errDone
			}
		}
	}
	if err != nil {
		return fmt.Errorf("record reading %d of delivery %s: %w", n, d.ID, err)
	}
	return nil
}

// Readings returns the readings of a delivery of siteID, oldest first.
func (s *Store) Readings(ctx context.Context, siteID, deliveryID string) ([]Reading, error) {
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :p AND begins_with(SK, :d)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str(partition(siteID)), ":d": str(deliveryID + "#"),
		},
	}
	var out []Reading
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list readings of delivery %s: %w", deliveryID, err)
		}
		for _, it := range res.Items {
			var r Reading
			if err := attributevalue.UnmarshalMap(it, &r); err != nil {
				return nil, apperr.Wrap(err, apperr.KindInternal, "reading_corrupt", "a stored reading could not be read")
			}
			out = append(out, r)
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}
