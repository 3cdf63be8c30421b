// Package idempotency makes a mutating API call safe to repeat with an
// Idempotency-Key (architecture §8): the first call with a key runs and its
// answer is stored; the same key with the same request gets the stored
// answer; the same key with a different request is refused (422); a call
// whose twin is still running is refused (409).
//
// Items (one table):
//
//	IDEM#<site>#<key>  META  fingerprint (SHA-256 of method, path and body),
//	                         state (in_flight | done), token, lease_until
//	                         (epoch ms), the stored answer (status,
//	                         content type, location, body) and expires_at
//	                         (the table's TTL attribute, epoch seconds,
//	                         24 hours after the first call)
//
// Only successful answers (below 400) are stored: a rejected request wrote
// nothing, so running it again is safe, and the client may fix what was
// wrong (reconnect an account) and retry with the same key. A claim whose
// call died holds its key for Lease at most.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// Defaults.
const (
	DefaultTTL   = 24 * time.Hour
	DefaultLease = 2 * time.Minute // well past the api function's 30 s timeout
	// MaxStoredBody is the largest answer body stored; a larger answer is
	// not stored and the key is released.
	MaxStoredBody = 300 << 10
	// MaxKeyLength is the longest key accepted.
	MaxKeyLength = 255
)

// States of a key.
const (
	stateInFlight = "in_flight"
	stateDone     = "done"
)

// Response is a stored answer.
type Response struct {
	Status      int    `dynamodbav:"status"`
	ContentType string `dynamodbav:"content_type,omitempty"`
	Location    string `dynamodbav:"location,omitempty"`
	Body        []byte `dynamodbav:"body,omitempty"`
}

// Claim is a running call's hold on its key.
type Claim struct {
	siteID, key, token string
}

// record is the stored item.
type record struct {
	Fingerprint string `dynamodbav:"fingerprint"`
	State       string `dynamodbav:"state"`
	Token       string `dynamodbav:"token"`
	LeaseUntil  int64  `dynamodbav:"lease_until"`
	ExpiresAt   int64  `dynamodbav:"expires_at"`
	CreatedAt   string `dynamodbav:"created_at"`
	Response
}

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Store keeps idempotency keys in DynamoDB.
type Store struct {
	db    dynamoAPI
	table string
	now   func() time.Time
	rand  func([]byte) (int, error)
	// TTL is how long a key is remembered; Lease how long an unfinished
	// call holds it.
	TTL, Lease time.Duration
}

// NewStore returns a Store on table; now and random may be nil for the
// wall clock and crypto/rand. It does no I/O.
func NewStore(db dynamoAPI, table string, now func() time.Time, random func([]byte) (int, error)) *Store {
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Read
	}
	return &Store{db: db, table: table, now: now, rand: random, TTL: DefaultTTL, Lease: DefaultLease}
}

// Fingerprint identifies a request: its method, path and body bytes.
func Fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", method, path)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// CheckKey returns why key cannot be an Idempotency-Key, or "".
func CheckKey(key string) string {
	if len(key) == 0 || len(key) > MaxKeyLength {
		return fmt.Sprintf("must be 1 to %d characters", MaxKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return "must be printable ASCII without spaces"
		}
	}
	return ""
}

// Errors Begin returns; both are typed for the HTTP edge.
var (
	ErrInFlight = apperr.New(apperr.KindConflict, "idempotency_key_in_flight",
		"a request with this Idempotency-Key is still being processed; retry after it finishes")
	ErrReused = apperr.Unprocessable("idempotency_key_reused",
		"Idempotency-Key: this key was used with a different request (method, path or body); use a new key",
		[]apperr.Problem{{Field: "Idempotency-Key", Message: "was used with a different request"}})
)

func itemKey(siteID, key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "IDEM#" + siteID + "#" + key},
		"SK": &types.AttributeValueMemberS{Value: "META"},
	}
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Begin claims key for a request with fingerprint. It returns the stored
// answer when the key already completed the same request (replay), or a
// claim the caller must end with Complete or Release; ErrReused and
// ErrInFlight otherwise.
func (s *Store) Begin(ctx context.Context, siteID, key, fingerprint string) (Claim, *Response, error) {
	tok := make([]byte, 16)
	if _, err := s.rand(tok); err != nil {
		return Claim{}, nil, fmt.Errorf("idempotency token: %w", err)
	}
	c := Claim{siteID: siteID, key: key, token: hex.EncodeToString(tok)}
	for range 3 {
		now := s.now()
		rec := record{
			Fingerprint: fingerprint, State: stateInFlight, Token: c.token,
			LeaseUntil: now.Add(s.Lease).UnixMilli(), ExpiresAt: now.Add(s.TTL).Unix(),
			CreatedAt: now.UTC().Format(time.RFC3339Nano),
		}
		item, err := attributevalue.MarshalMap(rec)
		if err != nil {
			return Claim{}, nil, fmt.Errorf("marshal idempotency key: %w", err)
		}
		delete(item, "status")
		for k, v := range itemKey(siteID, key) {
			item[k] = v
		}
		// A key is free when it is new, past its TTL (DynamoDB deletes
		// expired items lazily) or held by a call whose lease ran out.
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &s.table,
			Item:      item,
			ConditionExpression: aws.String("attribute_not_exists(PK) OR expires_at < :nows OR " +
				"(#state = :inflight AND lease_until < :nowms)"),
			ExpressionAttributeNames: map[string]string{"#state": "state"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":nows": num(now.Unix()), ":nowms": num(now.UnixMilli()),
				":inflight": &types.AttributeValueMemberS{Value: stateInFlight},
			},
		})
		if err == nil {
			return c, nil, nil
		}
		if !isConditionFailed(err) {
			return Claim{}, nil, fmt.Errorf("claim idempotency key: %w", err)
		}
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: itemKey(siteID, key), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return Claim{}, nil, fmt.Errorf("read idempotency key: %w", err)
		}
		if out.Item == nil {
			continue // released in between: claim again
		}
		var got record
		if err := attributevalue.UnmarshalMap(out.Item, &got); err != nil {
			return Claim{}, nil, fmt.Errorf("unmarshal idempotency key: %w", err)
		}
		switch {
		case got.Fingerprint != fingerprint:
			return Claim{}, nil, ErrReused
		case got.State == stateDone:
			r := got.Response
			return Claim{}, &r, nil
		default:
			return Claim{}, nil, ErrInFlight
		}
	}
	return Claim{}, nil, ErrInFlight
}

// Complete stores r as the answer of c's key. An answer body over
// MaxStoredBody is not stored: the key is released instead.
func (s *Store) Complete(ctx context.Context, c Claim, r Response) error {
	if len(r.Body) > MaxStoredBody {
		return s.Release(ctx, c)
	}
	resp, err := attributevalue.MarshalMap(r)
	if err != nil {
		return fmt.Errorf("marshal idempotent answer: %w", err)
	}
	names := map[string]string{"#state": "state", "#token": "token"}
	values := map[string]types.AttributeValue{
		":done": &types.AttributeValueMemberS{Value: stateDone},
		":tok":  &types.AttributeValueMemberS{Value: c.token},
	}
	set := "#state = :done"
	i := 0
	for attr, v := range resp {
		i++
		n, p := "#r"+strconv.Itoa(i), ":r"+strconv.Itoa(i)
		names[n], values[p] = attr, v
		set += ", " + n + " = " + p
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       itemKey(c.siteID, c.key),
		UpdateExpression:          aws.String("SET " + set + " REMOVE lease_until"),
		ConditionExpression:       aws.String("#token = :tok"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return nil // the lease ran out and another call took the key over
	}
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// Release frees c's key, so the same request can run again.
func (s *Store) Release(ctx context.Context, c Claim) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       itemKey(c.siteID, c.key),
		ConditionExpression:       aws.String("#token = :tok"),
		ExpressionAttributeNames:  map[string]string{"#token": "token"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":tok": &types.AttributeValueMemberS{Value: c.token}},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// claimCondition is the condition under which a key is free: new, past
// its TTL (DynamoDB deletes expired items lazily) or held by a call whose
// lease ran out.
func claimCondition(now time.Time) (string, map[string]string, map[string]types.AttributeValue) {
	return "attribute_not_exists(PK) OR expires_at < :nows OR (#state = :inflight AND lease_until < :nowms)",
		map[string]string{"#state": "state"},
		map[string]types.AttributeValue{
			":nows": num(now.Unix()), ":nowms": num(now.UnixMilli()),
			":inflight": &types.AttributeValueMemberS{Value: stateInFlight},
		}
}

// DonePut returns the write that claims key for fingerprint with its
// answer r already stored (state done), conditional on the key being
// free, for the caller to put in its own transaction with the change
// itself: a call that writes it never holds the key in flight. A failed
// condition means the key is taken: Lookup says by what. The claim lets
// the caller Release the key when what followed the transaction failed.
// ok is false when r is too large to store (MaxStoredBody).
func (s *Store) DonePut(siteID, key, fingerprint string, r Response) (put types.Put, c Claim, ok bool, err error) {
	if len(r.Body) > MaxStoredBody {
		return types.Put{}, Claim{}, false, nil
	}
	tok := make([]byte, 16)
	if _, err := s.rand(tok); err != nil {
		return types.Put{}, Claim{}, false, fmt.Errorf("idempotency token: %w", err)
	}
	c = Claim{siteID: siteID, key: key, token: hex.EncodeToString(tok)}
	now := s.now()
	item, err := attributevalue.MarshalMap(record{
		Fingerprint: fingerprint, State: stateDone, Token: c.token, ExpiresAt: now.Add(s.TTL).Unix(),
		CreatedAt: now.UTC().Format(time.RFC3339Nano), Response: r,
	})
	if err != nil {
		return types.Put{}, Claim{}, false, fmt.Errorf("marshal idempotency key: %w", err)
	}
	delete(item, "lease_until")
	for k, v := range itemKey(siteID, key) {
		item[k] = v
	}
	cond, names, values := claimCondition(now)
	return types.Put{TableName: &s.table, Item: item, ConditionExpression: &cond,
		ExpressionAttributeNames: names, ExpressionAttributeValues: values}, c, true, nil
}

// Lookup reads key as Begin does after a failed claim: the stored answer
// when the key completed the same request, ErrReused when it served
// another request, ErrInFlight while another call holds it, and neither
// (nil, nil) when the key is free.
func (s *Store) Lookup(ctx context.Context, siteID, key, fingerprint string) (*Response, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: itemKey(siteID, key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if out.Item == nil {
		return nil, nil
	}
	var got record
	if err := attributevalue.UnmarshalMap(out.Item, &got); err != nil {
		return nil, fmt.Errorf("unmarshal idempotency key: %w", err)
	}
	now := s.now()
	switch {
	case got.ExpiresAt < now.Unix():
		return nil, nil
	case got.Fingerprint != fingerprint:
		return nil, ErrReused
	case got.State == stateDone:
		r := got.Response
		return &r, nil
	case got.LeaseUntil < now.UnixMilli():
		return nil, nil
	default:
		return nil, ErrInFlight
	}
}
