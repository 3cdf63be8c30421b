package webhook

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
	"github.com/posse-dev/posse/shared/cursor"
	"github.com/posse-dev/posse/shared/event"
)

// WaitingPartition is GSI2PK of the attempts waiting to be sent.
const WaitingPartition = "WHWAIT"

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store keeps endpoints and attempts in DynamoDB. Every read and write is
// keyed by the caller's site.
type Store struct {
	db    dynamoAPI
	table string
}

// NewStore returns a Store on table. It does no I/O.
func NewStore(db dynamoAPI, table string) *Store { return &Store{db: db, table: table} }

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func sortable(t time.Time) string { return t.UTC().Format(event.SortableTime) }

func sitePK(siteID string) string { return "SITE#" + siteID }

func endpointKey(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(sitePK(siteID)), "SK": str("WH#" + id)}
}

func countKey(siteID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(sitePK(siteID)), "SK": str("WHCOUNT")}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// errNotFound is the answer for an endpoint the site does not have.
func errNotFound() error { return apperr.NotFound("webhook") }

// errChanged is a versioned write that lost to another writer.
var errChanged = apperr.New(apperr.KindConflict, "webhook_changed", "the webhook changed while it was being updated; read it and try again")

func (s *Store) endpointItem(e Endpoint) (map[string]types.AttributeValue, error) {
	it, err := attributevalue.MarshalMap(e)
	if err != nil {
		return nil, fmt.Errorf("marshal webhook %s: %w", e.ID, err)
	}
	for k, v := range endpointKey(e.SiteID, e.ID) {
		it[k] = v
	}
	return it, nil
}

// Create stores a new endpoint, counting it against the site's
// MaxEndpoints in the same transaction: the 11th is refused (422
// too_many_webhooks) however many are created at once.
func (s *Store) Create(ctx context.Context, e Endpoint) error {
	it, err := s.endpointItem(e)
	if err != nil {
		return err
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: &s.table, Key: countKey(e.SiteID),
			UpdateExpression:          aws.String("SET n = if_not_exists(n, :zero) + :one"),
			ConditionExpression:       aws.String("attribute_not_exists(n) OR n < :max"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":one": num(1), ":max": num(MaxEndpoints)},
		}},
		{Put: &types.Put{TableName: &s.table, Item: it, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
	}})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && (len(tce.CancellationReasons) == 0 || aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed") {
		return apperr.Unprocessable("too_many_webhooks", fmt.Sprintf("a site can have at most %d webhooks; delete one first", MaxEndpoints), nil)
	}
	if err != nil {
		return fmt.Errorf("create webhook %s: %w", e.ID, err)
	}
	return nil
}

// Get returns a site's endpoint.
func (s *Store) Get(ctx context.Context, siteID, id string) (Endpoint, error) {
	if !ValidID(id) {
		return Endpoint{}, errNotFound()
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: endpointKey(siteID, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Endpoint{}, fmt.Errorf("get webhook %s: %w", id, err)
	}
	if out.Item == nil {
		return Endpoint{}, errNotFound()
	}
	return unmarshalEndpoint(out.Item)
}

func unmarshalEndpoint(it map[string]types.AttributeValue) (Endpoint, error) {
	var e Endpoint
	if err := attributevalue.UnmarshalMap(it, &e); err != nil {
		return Endpoint{}, fmt.Errorf("unmarshal webhook: %w", err)
	}
	if e.EventTypes == nil {
		e.EventTypes = []event.Type{}
	}
	return e, nil
}

// List returns up to limit of a site's endpoints after cursor.
func (s *Store) List(ctx context.Context, siteID string, limit int, after string) ([]Endpoint, string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :p AND begins_with(SK, :w)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(sitePK(siteID)), ":w": str("WH#")},
		ConsistentRead:            aws.Bool(true),
	}
	if limit > 0 {
		in.Limit = aws.Int32(int32(limit))
	}
	if after != "" {
		start, err := cursor.Decode(after, func(m map[string]string) bool {
			return len(m) == 2 && m["PK"] == sitePK(siteID) && strings.HasPrefix(m["SK"], "WH#")
		})
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	var out []Endpoint
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("list webhooks of %s: %w", siteID, err)
		}
		for _, it := range res.Items {
			e, err := unmarshalEndpoint(it)
			if err != nil {
				return nil, "", err
			}
			out = append(out, e)
		}
		if limit > 0 || len(res.LastEvaluatedKey) == 0 {
			next, err := cursor.Encode(res.LastEvaluatedKey)
			return out, next, err
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// put writes e as version e.Version+1, conditional on the stored version
// still being e.Version. It returns the written endpoint.
func (s *Store) put(ctx context.Context, e Endpoint, now time.Time) (Endpoint, error) {
	read := e.Version
	e.Version++
	e.UpdatedAt = now.UTC()
	it, err := s.endpointItem(e)
	if err != nil {
		return Endpoint{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: it,
		ConditionExpression:       aws.String("attribute_exists(PK) AND version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(read)},
	})
	if isConditionFailed(err) {
		return Endpoint{}, errChanged
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("put webhook %s: %w", e.ID, err)
	}
	return e, nil
}

// Change applies f to the stored endpoint and writes it (UpdatedAt from
// now), trying again a few times when another writer got there first.
func (s *Store) Change(ctx context.Context, siteID, id string, now func() time.Time, f func(e *Endpoint) error) (Endpoint, error) {
	for range 4 {
		e, err := s.Get(ctx, siteID, id)
		if err != nil {
			return Endpoint{}, err
		}
		if err := f(&e); err != nil {
			return Endpoint{}, err
		}
		w, err := s.put(ctx, e, now())
		if errors.Is(err, errChanged) {
			continue
		}
		return w, err
	}
	return Endpoint{}, errChanged
}

// Delete removes a site's endpoint and uncounts it. Its attempts stay
// until their TTL and fail when their turn comes.
func (s *Store) Delete(ctx context.Context, siteID, id string) error {
	if !ValidID(id) {
		return errNotFound()
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: &s.table, Key: endpointKey(siteID, id), ConditionExpression: aws.String("attribute_exists(PK)")}},
		{Update: &types.Update{
			TableName: &s.table, Key: countKey(siteID),
			UpdateExpression:          aws.String("SET n = n - :one"),
			ConditionExpression:       aws.String("n > :zero"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":one": num(1)},
		}},
	}})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && (len(tce.CancellationReasons) == 0 || aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed") {
		return errNotFound()
	}
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	return nil
}

// Failing records a failed attempt on an endpoint: it is failing since
// now unless it already was. It returns the endpoint as it is after.
func (s *Store) Failing(ctx context.Context, siteID, id string, now time.Time) (Endpoint, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: endpointKey(siteID, id),
		UpdateExpression:          aws.String("SET failing_since = if_not_exists(failing_since, :now), version = version + :one"),
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": str(now.UTC().Format(time.RFC3339Nano)), ":one": num(1)},
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return Endpoint{}, errNotFound()
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("record failure of webhook %s: %w", id, err)
	}
	return unmarshalEndpoint(out.Attributes)
}

// Recovered clears an endpoint's failing-since after a success.
func (s *Store) Recovered(ctx context.Context, siteID, id string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: endpointKey(siteID, id),
		UpdateExpression:          aws.String("REMOVE failing_since SET version = version + :one"),
		ConditionExpression:       aws.String("attribute_exists(failing_since)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("record recovery of webhook %s: %w", id, err)
	}
	return nil
}

// Disable turns an enabled endpoint off with a reason the site sees on GET.
// An endpoint already disabled (or gone) is left as it is.
func (s *Store) Disable(ctx context.Context, siteID, id, reason string, now time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: endpointKey(siteID, id),
		UpdateExpression:    aws.String("SET enabled = :off, disabled_reason = :r, disabled_at = :now, updated_at = :now, version = version + :one"),
		ConditionExpression: aws.String("enabled = :on"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":off": &types.AttributeValueMemberBOOL{Value: false}, ":on": &types.AttributeValueMemberBOOL{Value: true},
			":r": str(reason), ":now": str(now.UTC().Format(time.RFC3339Nano)), ":one": num(1),
		},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("disable webhook %s: %w", id, err)
	}
	return nil
}

// AttemptState is where an attempt stands. The values are part of the API.
type AttemptState string

// Attempt states.
const (
	AttemptPending   AttemptState = "pending"   // made by the fan-out; its message is on the queue
	AttemptSending   AttemptState = "sending"   // a worker is posting it
	AttemptRetrying  AttemptState = "retrying"  // failed; the next try runs at NextAttemptAt
	AttemptSucceeded AttemptState = "succeeded" // the endpoint answered 2xx
	AttemptFailed    AttemptState = "failed"    // not sent and not retried: 410 Gone, endpoint disabled or deleted, event gone
	AttemptDead      AttemptState = "dead"      // every try of the schedule failed; replayable
)

// settled reports whether an attempt needs no more work.
func (st AttemptState) settled() bool {
	return st == AttemptSucceeded || st == AttemptFailed || st == AttemptDead
}

// Try is one POST of an attempt.
type Try struct {
	N          int       `json:"n" dynamodbav:"n"`
	At         time.Time `json:"at" dynamodbav:"at"`
	StatusCode int       `json:"statusCode,omitempty" dynamodbav:"status_code,omitempty"`
	LatencyMS  int64     `json:"latencyMs" dynamodbav:"latency_ms"`
	ErrorKind  string    `json:"errorKind,omitempty" dynamodbav:"error_kind,omitempty"`
	Error      string    `json:"error,omitempty" dynamodbav:"error,omitempty"`
}

// maxTries bounds the tries kept on an attempt (the newest are kept).
const maxTries = 20

// Attempt is one event sent to one endpoint, with every try. It never
// holds a secret, a signature or a response body.
type Attempt struct {
	ID        string       `json:"id" dynamodbav:"attempt_id"`
	SiteID    string       `json:"-" dynamodbav:"site_id"`
	WebhookID string       `json:"webhookId" dynamodbav:"webhook_id"`
	EventID   string       `json:"eventId" dynamodbav:"event_id"`
	EventType event.Type   `json:"eventType" dynamodbav:"event_type"`
	Replay    string       `json:"replay,omitempty" dynamodbav:"replay,omitempty"`
	State     AttemptState `json:"state" dynamodbav:"state"`
	Tries     int          `json:"tries" dynamodbav:"tries"`
	// StatusCode, LatencyMS, ErrorKind and Error are the last try's.
	StatusCode    int        `json:"statusCode,omitempty" dynamodbav:"status_code,omitempty"`
	LatencyMS     int64      `json:"latencyMs,omitempty" dynamodbav:"latency_ms,omitempty"`
	ErrorKind     string     `json:"errorKind,omitempty" dynamodbav:"error_kind,omitempty"`
	Error         string     `json:"error,omitempty" dynamodbav:"error,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty" dynamodbav:"next_attempt_at,omitempty"`
	History       []Try      `json:"history" dynamodbav:"history"`
	CreatedAt     time.Time  `json:"createdAt" dynamodbav:"created_at"`
	UpdatedAt     time.Time  `json:"updatedAt" dynamodbav:"updated_at"`

	Version    int64      `json:"-" dynamodbav:"version"`
	Fence      int64      `json:"-" dynamodbav:"fence"`
	LeaseUntil *time.Time `json:"-" dynamodbav:"lease_until,omitempty"`
	// WakeAt is the due time of a message known to be in flight for
	// NextAttemptAt.
	WakeAt *time.Time `json:"-" dynamodbav:"wake_at,omitempty"`
}

func attemptPK(siteID string) string { return "SITE#" + siteID + "#WHATT" }

func attemptKey(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(attemptPK(siteID)), "SK": str(id)}
}

func attemptListPartition(siteID, webhookID string) string {
	return "SITE#" + siteID + "#WH#" + webhookID + "#ATT"
}

// due is when a waiting attempt should be sent (or its lease ends), and
// whether it waits at all.
func (a Attempt) due() (time.Time, bool) {
	switch a.State {
	case AttemptPending, AttemptRetrying:
		if a.NextAttemptAt != nil {
			return *a.NextAttemptAt, true
		}
		return a.UpdatedAt, true
	case AttemptSending:
		if a.LeaseUntil != nil {
			return *a.LeaseUntil, true
		}
		return a.UpdatedAt, true
	}
	return time.Time{}, false
}

func (a Attempt) item() (map[string]types.AttributeValue, error) {
	if len(a.History) > maxTries {
		a.History = a.History[len(a.History)-maxTries:]
	}
	if a.History == nil {
		a.History = []Try{}
	}
	it, err := attributevalue.MarshalMap(a)
	if err != nil {
		return nil, fmt.Errorf("marshal attempt %s: %w", a.ID, err)
	}
	it["PK"], it["SK"] = str(attemptPK(a.SiteID)), str(a.ID)
	it["GSI1PK"] = str(attemptListPartition(a.SiteID, a.WebhookID))
	it["GSI1SK"] = str(sortable(a.CreatedAt) + "#" + a.ID)
	if at, ok := a.due(); ok {
		it["GSI2PK"] = str(WaitingPartition)
		it["GSI2SK"] = str(sortable(at) + "#" + a.SiteID + "#" + a.ID)
	}
	it["expires_at"] = num(a.CreatedAt.Add(event.Retention).Unix())
	return it, nil
}

func unmarshalAttempt(it map[string]types.AttributeValue) (Attempt, error) {
	var a Attempt
	if err := attributevalue.UnmarshalMap(it, &a); err != nil {
		return Attempt{}, fmt.Errorf("unmarshal attempt: %w", err)
	}
	if a.History == nil {
		a.History = []Try{}
	}
	return a, nil
}

// CreateAttempt stores a new attempt unless it exists. It returns the
// attempt as stored (the existing one when it was there already) and
// whether this call created it.
func (s *Store) CreateAttempt(ctx context.Context, a Attempt) (Attempt, bool, error) {
	it, err := a.item()
	if err != nil {
		return Attempt{}, false, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it, ConditionExpression: aws.String("attribute_not_exists(PK)")})
	if isConditionFailed(err) {
		cur, err := s.GetAttempt(ctx, a.SiteID, a.ID)
		return cur, false, err
	}
	if err != nil {
		return Attempt{}, false, fmt.Errorf("create attempt %s: %w", a.ID, err)
	}
	return a, true, nil
}

// GetAttempt reads an attempt with a consistent read.
func (s *Store) GetAttempt(ctx context.Context, siteID, id string) (Attempt, error) {
	if !validID(id, AttemptIDPrefix) {
		return Attempt{}, apperr.NotFound("attempt")
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: attemptKey(siteID, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Attempt{}, fmt.Errorf("get attempt %s: %w", id, err)
	}
	if out.Item == nil {
		return Attempt{}, apperr.NotFound("attempt")
	}
	return unmarshalAttempt(out.Item)
}

// errStale is a write of an attempt that changed since it was read.
var errStale = errors.New("the attempt changed since it was read")

// PutAttempt writes a as version a.Version+1, conditional on the stored
// version being a.Version; errStale otherwise.
func (s *Store) PutAttempt(ctx context.Context, a Attempt, now time.Time) (Attempt, error) {
	read := a.Version
	a.Version++
	a.UpdatedAt = now.UTC()
	it, err := a.item()
	if err != nil {
		return Attempt{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: it,
		ConditionExpression:       aws.String("attribute_exists(PK) AND version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(read)},
	})
	if isConditionFailed(err) {
		return Attempt{}, errStale
	}
	if err != nil {
		return Attempt{}, fmt.Errorf("put attempt %s: %w", a.ID, err)
	}
	if len(a.History) > maxTries {
		a.History = a.History[len(a.History)-maxTries:]
	}
	return a, nil
}

// Attempts returns up to limit of an endpoint's attempts, newest first,
// after cursor.
func (s *Store) Attempts(ctx context.Context, siteID, webhookID string, limit int, after string) ([]Attempt, string, error) {
	part := attemptListPartition(siteID, webhookID)
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String("GSI1"),
		KeyConditionExpression:    aws.String("GSI1PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(part)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit)),
	}
	if after != "" {
		start, err := cursor.Decode(after, func(m map[string]string) bool {
			return len(m) == 4 && m["GSI1PK"] == part && m["PK"] == attemptPK(siteID) && strings.HasPrefix(m["SK"], AttemptIDPrefix)
		})
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	res, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list attempts of webhook %s: %w", webhookID, err)
	}
	out := make([]Attempt, 0, len(res.Items))
	for _, it := range res.Items {
		a, err := unmarshalAttempt(it)
		if err != nil {
			return nil, "", err
		}
		if a.SiteID == siteID {
			out = append(out, a)
		}
	}
	next, err := cursor.Encode(res.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// AttemptRef names an attempt in the waiting index.
type AttemptRef struct {
	SiteID, ID string
}

// Waiting returns up to limit attempts whose due time is before before,
// oldest first. The index is eventually consistent: callers read each
// attempt again.
func (s *Store) Waiting(ctx context.Context, before time.Time, limit int) ([]AttemptRef, error) {
	due, err := event.Due(ctx, s.db, s.table, WaitingPartition, sortable(before), "#WHATT", limit)
	if err != nil {
		return nil, fmt.Errorf("list waiting webhook attempts: %w", err)
	}
	refs := make([]AttemptRef, len(due))
	for i, r := range due {
		refs[i] = AttemptRef(r)
	}
	return refs, nil
}
