// Package ratelimit keeps POSSE's own publishing limits in DynamoDB, shared
// by every dispatcher: a fixed-window counter per site and scope (a target's
// hourly limit), taken atomically with a conditional update, and blocks a
// platform reported for a connection (a 429 with its reset), so other
// workers wait instead of calling the platform again.
//
// Items (TTL attribute expires_at, epoch seconds):
//
//	PK=RATE#<site>#<scope>#<window start, 2006-01-02T15:04Z>  SK=META  count
//	PK=RATE#<site>#<scope>#block                              SK=META  until
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// windowLayout names a window by its start, in UTC.
const windowLayout = "2006-01-02T15:04Z"

// keep is how long an item outlives its window or block (the TTL margin).
const keep = time.Hour

// dynamoAPI is what Limiter calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Limiter takes from counters and reads and writes blocks.
type Limiter struct {
	db    dynamoAPI
	table string
	now   func() time.Time
}

// New returns a Limiter on table; now may be nil for the wall clock. It
// does no I/O.
func New(db dynamoAPI, table string, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{db: db, table: table, now: now}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func itemKey(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(pk), "SK": str("META")}
}

// Take takes one unit from the window of length window that holds now for
// (site, scope), allowing limit per window. When the window is used up it
// returns false and the end of the window; nothing is taken. limit <= 0
// means no limit.
func (l *Limiter) Take(ctx context.Context, siteID, scope string, limit int, window time.Duration) (bool, time.Time, error) {
	if limit <= 0 {
		return true, time.Time{}, nil
	}
	if window <= 0 {
		return false, time.Time{}, errors.New("take rate limit: window must be positive")
	}
	now := l.now().UTC()
	start := now.Truncate(window)
	end := start.Add(window)
	pk := "RATE#" + siteID + "#" + scope + "#" + start.Format(windowLayout)
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &l.table,
		Key:                       itemKey(pk),
		UpdateExpression:          aws.String("ADD #c :one SET expires_at = :ttl"),
		ConditionExpression:       aws.String("attribute_not_exists(#c) OR #c < :limit"),
		ExpressionAttributeNames:  map[string]string{"#c": "count"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":limit": num(int64(limit)), ":ttl": num(end.Add(keep).Unix())},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, end, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("take rate limit %s: %w", scope, err)
	}
	return true, time.Time{}, nil
}

// BlockScope is the scope of a block a platform reported for one of a
// site's connections (the dispatcher writes it, the platform health reads
// it).
func BlockScope(platform, connectionID string) string { return platform + ":" + connectionID }

func blockKey(siteID, scope string) map[string]types.AttributeValue {
	return itemKey("RATE#" + siteID + "#" + scope + "#block")
}

// Block records that (site, scope) must not be called before until. A
// later block wins; an earlier one does not shorten it.
func (l *Limiter) Block(ctx context.Context, siteID, scope string, until time.Time) error {
	u := until.UTC()
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &l.table,
		Key:                       blockKey(siteID, scope),
		UpdateExpression:          aws.String("SET #u = :u, expires_at = :ttl"),
		ConditionExpression:       aws.String("attribute_not_exists(#u) OR #u < :u"),
		ExpressionAttributeNames:  map[string]string{"#u": "until_ms"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":u": num(u.UnixMilli()), ":ttl": num(u.Add(keep).Unix())},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("block %s: %w", scope, err)
	}
	return nil
}

// Blocked returns the end of a block on (site, scope) that holds now, or
// false.
func (l *Limiter) Blocked(ctx context.Context, siteID, scope string) (time.Time, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &l.table, Key: blockKey(siteID, scope)})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read block %s: %w", scope, err)
	}
	return l.BlockedIn(out.Item)
}

// BlockKey is the key of (site, scope)'s block item, for a caller that
// reads it along with other items (then BlockedIn decides).
func (l *Limiter) BlockKey(siteID, scope string) map[string]types.AttributeValue {
	return blockKey(siteID, scope)
}

// BlockedIn is Blocked from the block item as read (nil when there is
// none).
func (l *Limiter) BlockedIn(item map[string]types.AttributeValue) (time.Time, bool, error) {
	v, ok := item["until_ms"].(*types.AttributeValueMemberN)
	if !ok {
		return time.Time{}, false, nil
	}
	ms, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read block: until_ms %q: %w", v.Value, err)
	}
	until := time.UnixMilli(ms).UTC()
	if !until.After(l.now()) {
		return time.Time{}, false, nil
	}
	return until, true, nil
}
