package connection

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
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/vault"
)

// Index keys.
const (
	refreshPartition  = "REFRESH"  // GSI2PK of connections whose token expires
	validatePartition = "VALIDATE" // GSI1PK of connections awaiting validation
	sealedAttr        = "sealed_credentials"
)

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store keeps connections and OAuth states in DynamoDB. It does no
// cryptography: it stores and returns sealed records as they are.
type Store struct {
	db    dynamoAPI
	table string
}

// NewStore returns a Store on table. It does no I/O.
func NewStore(db dynamoAPI, table string) *Store {
	return &Store{db: db, table: table}
}

// record is a connection item as stored.
type record struct {
	Connection
	Sealed     vault.Sealed `dynamodbav:"sealed_credentials"`
	LeaseOwner string       `dynamodbav:"lease_owner,omitempty"`
	LeaseUntil int64        `dynamodbav:"lease_until,omitempty"` // unix milliseconds
}

// leaseHeld reports whether another refresher holds the lease at now.
func (r record) leaseHeld(now time.Time) bool {
	return r.LeaseOwner != "" && r.LeaseUntil > now.UnixMilli()
}

func connKey(siteID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str("SITE#" + siteID), "SK": str("CONN#" + id)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func timeAttr(t time.Time) types.AttributeValue { return str(t.UTC().Format(time.RFC3339Nano)) }

// sortableTime is a fixed-width UTC layout: sort keys built with it order
// as text exactly as the times they hold (RFC 3339 with a variable number
// of fractional digits does not).
const sortableTime = "2006-01-02T15:04:05.000000000Z"

// refreshSK is the GSI2 sort key: the expiry first (UTC, second precision,
// so it sorts as text), then the owner.
func refreshSK(expiry time.Time, siteID, id string) string {
	return expiry.UTC().Format(time.RFC3339) + "#" + siteID + "#" + id
}

// update builds an UpdateItem expression with named attributes.
type update struct {
	set    []string
	remove []string
	names  map[string]string
	values map[string]types.AttributeValue
	n      int
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// name returns the placeholder of attribute a.
func (u *update) name(a string) string {
	p := "#" + strings.ReplaceAll(a, "_", "")
	u.names[p] = a
	return p
}

// value returns a new placeholder for v.
func (u *update) value(v types.AttributeValue) string {
	u.n++
	p := ":v" + strconv.Itoa(u.n)
	u.values[p] = v
	return p
}

// Set adds "a = v".
func (u *update) Set(a string, v types.AttributeValue) *update {
	u.set = append(u.set, u.name(a)+" = "+u.value(v))
	return u
}

// SetExpr adds "a = expr", where expr uses %s for a's own placeholder.
func (u *update) SetExpr(a, expr string) *update {
	n := u.name(a)
	u.set = append(u.set, n+" = "+fmt.Sprintf(expr, n))
	return u
}

// Remove adds "REMOVE a".
func (u *update) Remove(attrs ...string) *update {
	for _, a := range attrs {
		u.remove = append(u.remove, u.name(a))
	}
	return u
}

func (u *update) expression() string {
	var parts []string
	if len(u.set) > 0 {
		parts = append(parts, "SET "+strings.Join(u.set, ", "))
	}
	if len(u.remove) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(u.remove, ", "))
	}
	return strings.Join(parts, " ")
}

// input returns the UpdateItem input for key with condition (which may use
// the placeholders of u).
func (u *update) input(table string, key map[string]types.AttributeValue, condition string) *dynamodb.UpdateItemInput {
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       key,
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
		ReturnValues:              types.ReturnValueAllNew,
	}
	if condition != "" {
		in.ConditionExpression = aws.String(condition)
	}
	return in
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// connected is what Save writes when an account is (re)connected.
type connected struct {
	SiteID      string
	ID          string
	Platform    platform.Name
	AccountID   string
	Handle      string
	Name        string
	InstanceURL string
	Scopes      []string
	Expiry      time.Time // zero: the token does not expire
	Sealed      vault.Sealed
	Now         time.Time
}

// save upserts a connected account: new credentials, status active, the
// next token_version, any lease, pending validation and broken reason
// cleared. A refresher that held a lease on the old credentials loses its
// compare-and-swap.
func (s *Store) save(ctx context.Context, c connected) (Connection, error) {
	sealed, err := attributevalue.Marshal(c.Sealed)
	if err != nil {
		return Connection{}, fmt.Errorf("marshal sealed credentials of %s: %w", c.ID, err)
	}
	u := newUpdate().
		Set("connection_id", str(c.ID)).
		Set("site_id", str(c.SiteID)).
		Set("platform", str(string(c.Platform))).
		Set("account_id", str(c.AccountID)).
		Set("handle", str(c.Handle)).
		Set("status", str(string(StatusActive))).
		Set(sealedAttr, sealed).
		Set("updated_at", timeAttr(c.Now)).
		Set("connected_at", timeAttr(c.Now))
	u.SetExpr("token_version", "if_not_exists(%s, "+u.value(num(0))+") + "+u.value(num(1)))
	u.SetExpr("created_at", "if_not_exists(%s, "+u.value(timeAttr(c.Now))+")")
	u.Remove("lease_owner", "lease_until", "status_reason", "validation_requested_at", "GSI1PK", "GSI1SK", "refreshed_at")
	setOptional(u, "display_name", c.Name)
	setOptional(u, "instance_url", c.InstanceURL)
	if len(c.Scopes) > 0 {
		u.Set("scopes", &types.AttributeValueMemberL{Value: strList(c.Scopes)})
	} else {
		u.Remove("scopes")
	}
	setExpiry(u, c.Expiry, c.SiteID, c.ID)
	out, err := s.db.UpdateItem(ctx, u.input(s.table, connKey(c.SiteID, c.ID), ""))
	if err != nil {
		return Connection{}, fmt.Errorf("save connection %s: %w", c.ID, err)
	}
	rec, err := unmarshalRecord(out.Attributes)
	if err != nil {
		return Connection{}, err
	}
	return rec.Connection, nil
}

func setOptional(u *update, attr, v string) {
	if v == "" {
		u.Remove(attr)
	} else {
		u.Set(attr, str(v))
	}
}

// setExpiry sets token_expires_at and the GSI2 refresh entry, or removes
// both for a token that does not expire.
func setExpiry(u *update, expiry time.Time, siteID, id string) {
	if expiry.IsZero() {
		u.Remove("token_expires_at", "GSI2PK", "GSI2SK")
		return
	}
	u.Set("token_expires_at", timeAttr(expiry)).
		Set("GSI2PK", str(refreshPartition)).
		Set("GSI2SK", str(refreshSK(expiry, siteID, id)))
}

func strList(ss []string) []types.AttributeValue {
	out := make([]types.AttributeValue, len(ss))
	for i, s := range ss {
		out[i] = str(s)
	}
	return out
}

func unmarshalRecord(item map[string]types.AttributeValue) (record, error) {
	var rec record
	if err := attributevalue.UnmarshalMap(item, &rec); err != nil {
		return record{}, fmt.Errorf("unmarshal connection: %w", err)
	}
	return rec, nil
}

// get returns a connection item, read consistently; not_found when the
// site has no such connection.
func (s *Store) get(ctx context.Context, siteID, id string) (record, error) {
	if !validID(id) {
		return record{}, apperr.NotFound("connection")
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: connKey(siteID, id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return record{}, fmt.Errorf("get connection %s: %w", id, err)
	}
	if out.Item == nil {
		return record{}, apperr.NotFound("connection")
	}
	return unmarshalRecord(out.Item)
}

// validID rejects ids that cannot be ours before they reach a key.
func validID(id string) bool {
	if !strings.HasPrefix(id, "conn_") || len(id) > 64 {
		return false
	}
	for _, r := range id[len("conn_"):] {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// Get returns a site's connection, without credentials.
func (s *Store) Get(ctx context.Context, siteID, id string) (Connection, error) {
	rec, err := s.get(ctx, siteID, id)
	if err != nil {
		return Connection{}, err
	}
	return rec.Connection, nil
}

// publicAttrs are the attributes List reads: never the sealed record.
var publicAttrs = []string{
	"connection_id", "site_id", "platform", "account_id", "handle", "display_name", "instance_url", "status",
	"status_reason", "scopes", "token_version", "token_expires_at", "created_at", "updated_at", "refreshed_at",
	"validated_at", "validation_requested_at",
}

// List returns up to limit of a site's connections after cursor (an opaque
// value a previous page returned; "" starts at the beginning).
func (s *Store) List(ctx context.Context, siteID string, limit int, after string) ([]Connection, string, error) {
	names := map[string]string{}
	proj := make([]string, len(publicAttrs))
	for i, a := range publicAttrs {
		p := "#a" + strconv.Itoa(i)
		names[p] = a
		proj[i] = p
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("PK = :p AND begins_with(SK, :c)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str("SITE#" + siteID), ":c": str("CONN#")},
		ExpressionAttributeNames:  names,
		ProjectionExpression:      aws.String(strings.Join(proj, ", ")),
		Limit:                     aws.Int32(int32(limit)),
		ConsistentRead:            aws.Bool(true),
	}
	if after != "" {
		start, err := cursor.Decode(after, func(m map[string]string) bool {
			return len(m) == 2 && m["PK"] == "SITE#"+siteID && strings.HasPrefix(m["SK"], "CONN#")
		})
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list connections of %s: %w", siteID, err)
	}
	conns := make([]Connection, 0, len(out.Items))
	for _, it := range out.Items {
		var c Connection
		if err := attributevalue.UnmarshalMap(it, &c); err != nil {
			return nil, "", fmt.Errorf("unmarshal connection: %w", err)
		}
		conns = append(conns, c)
	}
	next, err := cursor.Encode(out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return conns, next, nil
}

// Delete removes a site's connection and with it its sealed credentials.
func (s *Store) Delete(ctx context.Context, siteID, id string) error {
	if !validID(id) {
		return apperr.NotFound("connection")
	}
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:           aws.String(s.table),
		Key:                 connKey(siteID, id),
		ConditionExpression: aws.String("attribute_exists(PK)"),
	})
	if isConditionFailed(err) {
		return apperr.NotFound("connection")
	}
	if err != nil {
		return fmt.Errorf("delete connection %s: %w", id, err)
	}
	return nil
}

// requestValidation marks a connection for validation by the refresh
// function (GSI1 "VALIDATE").
func (s *Store) requestValidation(ctx context.Context, siteID, id string, now time.Time) (Connection, error) {
	if !validID(id) {
		return Connection{}, apperr.NotFound("connection")
	}
	u := newUpdate().
		Set("validation_requested_at", timeAttr(now)).
		Set("GSI1PK", str(validatePartition)).
		Set("GSI1SK", str(now.UTC().Format(sortableTime)+"#"+siteID+"#"+id))
	out, err := s.db.UpdateItem(ctx, u.input(s.table, connKey(siteID, id), "attribute_exists(PK)"))
	if isConditionFailed(err) {
		return Connection{}, apperr.NotFound("connection")
	}
	if err != nil {
		return Connection{}, fmt.Errorf("request validation of %s: %w", id, err)
	}
	rec, err := unmarshalRecord(out.Attributes)
	if err != nil {
		return Connection{}, err
	}
	return rec.Connection, nil
}

// acquireLease takes the refresh lease of a connection for owner until
// until, on the condition that its token_version is still version and no
// unexpired lease is held. It reports whether the lease was taken.
func (s *Store) acquireLease(ctx context.Context, siteID, id, owner string, version int64, now, until time.Time) (bool, error) {
	u := newUpdate().Set("lease_owner", str(owner)).Set("lease_until", num(until.UnixMilli()))
	v, n := u.value(num(version)), u.value(num(now.UnixMilli()))
	cond := fmt.Sprintf("attribute_exists(PK) AND %s = %s AND (attribute_not_exists(%s) OR %s < %s)",
		u.name("token_version"), v, u.name("lease_until"), u.name("lease_until"), n)
	_, err := s.db.UpdateItem(ctx, u.input(s.table, connKey(siteID, id), cond))
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease connection %s: %w", id, err)
	}
	return true, nil
}

// releaseLease gives a lease back after a refresh that changed nothing.
func (s *Store) releaseLease(ctx context.Context, siteID, id, owner string) error {
	u := newUpdate().Remove("lease_owner", "lease_until")
	cond := u.name("lease_owner") + " = " + u.value(str(owner))
	_, err := s.db.UpdateItem(ctx, u.input(s.table, connKey(siteID, id), cond))
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release lease of %s: %w", id, err)
	}
	return nil
}

// refreshed is what swapCredentials writes.
type refreshed struct {
	Sealed vault.Sealed
	Expiry time.Time
	Scopes []string
	Status Status
	Now    time.Time
}

// ErrLeaseLost is returned by swapCredentials when the connection changed
// under the lease: another writer reconnected, deleted or refreshed it.
var ErrLeaseLost = apperr.New(apperr.KindConflict, "connection.lease_lost", "the connection changed while its token was being refreshed")

// swapCredentials writes refreshed credentials on the condition that the
// token_version is still version and owner still holds the lease (even an
// expired one: nobody else took it). It bumps token_version and drops the
// lease.
func (s *Store) swapCredentials(ctx context.Context, siteID, id, owner string, version int64, r refreshed) (record, error) {
	sealed, err := attributevalue.Marshal(r.Sealed)
	if err != nil {
		return record{}, fmt.Errorf("marshal sealed credentials of %s: %w", id, err)
	}
	u := newUpdate().
		Set(sealedAttr, sealed).
		Set("status", str(string(r.Status))).
		Set("updated_at", timeAttr(r.Now)).
		Set("refreshed_at", timeAttr(r.Now))
	u.SetExpr("token_version", "%s + "+u.value(num(1)))
	u.Remove("lease_owner", "lease_until", "status_reason")
	if len(r.Scopes) > 0 {
		u.Set("scopes", &types.AttributeValueMemberL{Value: strList(r.Scopes)})
	}
	setExpiry(u, r.Expiry, siteID, id)
	cond := fmt.Sprintf("attribute_exists(PK) AND %s = %s AND %s = %s",
		u.name("token_version"), u.value(num(version)), u.name("lease_owner"), u.value(str(owner)))
	out, err := s.db.UpdateItem(ctx, u.input(s.table, connKey(siteID, id), cond))
	if isConditionFailed(err) {
		return record{}, ErrLeaseLost
	}
	if err != nil {
		return record{}, fmt.Errorf("store refreshed credentials of %s: %w", id, err)
	}
	return unmarshalRecord(out.Attributes)
}

// statusChange is what setStatus writes.
type statusChange struct {
	Status Status
	Reason string
	// Version, when non-zero, makes the write conditional on token_version.
	Version int64
	// Owner, when set, makes the write conditional on holding the lease,
	// and drops it.
	Owner string
	// From, when set, makes the write conditional on the current status.
	From Status
	// Validated records a finished validation: validated_at set, the
	// pending request cleared.
	Validated bool
	Now       time.Time
	// Conn, when the caller read it, fills the event's platform, account
	// and expiry.
	Conn *Connection
}

// setStatus changes a connection's status. Marking it broken drops its
// refresh entry: nothing can be done until it is connected again. A
// condition that no longer holds is reported as ErrLeaseLost.
//
// A change to broken or expiring records its event (connection.broken,
// connection.expiring) in the same transaction, conditional on the status
// actually changing, and returns it: only the write that makes the change
// records one. A connection already in that status is written as before,
// without an event.
func (s *Store) setStatus(ctx context.Context, siteID, id string, c statusChange) (*event.Event, error) {
	if tx, ok := s.db.(transactWriter); ok && (c.Status == StatusBroken || c.Status == StatusExpiring) {
		ev, err := s.setStatusWithEvent(ctx, tx, siteID, id, c)
		if !errors.Is(err, errNoChange) {
			return ev, err
		}
	}
	u, cond := statusUpdate(c)
	_, err := s.db.UpdateItem(ctx, u.input(s.table, connKey(siteID, id), cond))
	if isConditionFailed(err) {
		return nil, ErrLeaseLost
	}
	if err != nil {
		return nil, fmt.Errorf("set status of %s to %s: %w", id, c.Status, err)
	}
	return nil, nil
}

// statusUpdate is the update and condition of a status change.
func statusUpdate(c statusChange) (*update, string) {
	u := newUpdate().Set("status", str(string(c.Status))).Set("updated_at", timeAttr(c.Now))
	setOptional(u, "status_reason", c.Reason)
	if c.Status == StatusBroken {
		u.Remove("GSI2PK", "GSI2SK")
	}
	if c.Validated {
		u.Set("validated_at", timeAttr(c.Now))
		u.Remove("validation_requested_at", "GSI1PK", "GSI1SK")
	}
	cond := "attribute_exists(PK)"
	if c.Version != 0 {
		cond += " AND " + u.name("token_version") + " = " + u.value(num(c.Version))
	}
	if c.Owner != "" {
		cond += " AND " + u.name("lease_owner") + " = " + u.value(str(c.Owner))
		u.Remove("lease_owner", "lease_until")
	}
	if c.From != "" {
		cond += " AND " + u.name("status") + " = " + u.value(str(string(c.From)))
	}
	return u, cond
}

// transactWriter is the DynamoDB client's TransactWriteItems; a table
// without it (a unit test's fake) records no events.
type transactWriter interface {
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// errNoChange: the status change with its event did not apply (the status
// is that already, or another condition failed); the plain write decides.
var errNoChange = errors.New("the status did not change")

// statusEventTypes are the statuses whose changes are events.
var statusEventTypes = map[Status]event.Type{StatusBroken: event.ConnectionBroken, StatusExpiring: event.ConnectionExpiring}

// setStatusWithEvent writes a change to broken or expiring and its event
// in one transaction, conditional on the status changing.
func (s *Store) setStatusWithEvent(ctx context.Context, tx transactWriter, siteID, id string, c statusChange) (*event.Event, error) {
	typ := statusEventTypes[c.Status]
	data := event.ConnectionData{ConnectionID: id, Status: string(c.Status), Reason: c.Reason}
	if c.Conn != nil {
		data.Platform, data.AccountName = string(c.Conn.Platform), c.Conn.Handle
		if c.Status == StatusExpiring {
			data.ExpiresAt = c.Conn.TokenExpiresAt
		}
	}
	// Only one write makes the change (the status condition), so the time
	// of this attempt is enough to tell this change from a later one.
	ev, err := event.New(siteID, typ, c.Now, data, "connection", siteID, id, string(c.Status), strconv.FormatInt(c.Now.UnixNano(), 10))
	if err != nil {
		return nil, err
	}
	u, cond := statusUpdate(c)
	cond += " AND " + u.name("status") + " <> " + u.value(str(string(c.Status)))
	in := u.input(s.table, connKey(siteID, id), cond)
	items := []types.TransactWriteItem{
		{Update: &types.Update{TableName: in.TableName, Key: in.Key, UpdateExpression: in.UpdateExpression, ConditionExpression: in.ConditionExpression,
			ExpressionAttributeNames: in.ExpressionAttributeNames, ExpressionAttributeValues: in.ExpressionAttributeValues}},
		{Put: ev.Put(s.table)},
	}
	for range 3 {
		_, err = tx.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			break
		}
		if len(tce.CancellationReasons) == 0 || aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
			return nil, errNoChange
		}
		// Another transaction on the item: try again.
	}
	if err != nil {
		return nil, fmt.Errorf("set status of %s to %s: %w", id, c.Status, err)
	}
	return &ev, nil
}

// ref names one connection.
type ref struct{ SiteID, ID string }

// expiringBefore lists the connections whose token expires before t, oldest
// expiry first, at most max.
func (s *Store) expiringBefore(ctx context.Context, t time.Time, max int) ([]ref, error) {
	return s.indexRefs(ctx, "GSI2", "GSI2PK", "GSI2SK", refreshPartition, t.UTC().Format(time.RFC3339), max)
}

// pendingValidations lists connections awaiting validation, oldest first.
func (s *Store) pendingValidations(ctx context.Context, before time.Time, max int) ([]ref, error) {
	return s.indexRefs(ctx, "GSI1", "GSI1PK", "GSI1SK", validatePartition, before.UTC().Format(sortableTime), max)
}

// indexRefs queries index for partition with sort keys up to (and
// including every key starting with) upTo, reading connection refs from
// the table keys the index projects.
func (s *Store) indexRefs(ctx context.Context, index, pkAttr, skAttr, partition, upTo string, max int) ([]ref, error) {
	var out []ref
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String(pkAttr + " = :p AND " + skAttr + " <= :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(partition), ":t": str(upTo + "#\U0010FFFF")},
	})
	for p.HasMorePages() && len(out) < max {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query %s %s: %w", index, partition, err)
		}
		for _, it := range page.Items {
			pk, _ := it["PK"].(*types.AttributeValueMemberS)
			sk, _ := it["SK"].(*types.AttributeValueMemberS)
			if pk == nil || sk == nil || !strings.HasPrefix(pk.Value, "SITE#") || !strings.HasPrefix(sk.Value, "CONN#") {
				continue
			}
			out = append(out, ref{SiteID: strings.TrimPrefix(pk.Value, "SITE#"), ID: strings.TrimPrefix(sk.Value, "CONN#")})
			if len(out) >= max {
				break
			}
		}
	}
	return out, nil
}

// batchGetter is the BatchGetItem call GetMany makes when the store's
// client has it (the SDK's client does).
type batchGetter interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// GetMany returns a site's connections by id, without credentials, read
// consistently in one BatchGetItem (up to 100 ids; unprocessed keys are
// read again). An id the site has no connection of is absent.
func (s *Store) GetMany(ctx context.Context, siteID string, ids []string) (map[string]Connection, error) {
	out := make(map[string]Connection, len(ids))
	var keys []map[string]types.AttributeValue
	seen := map[string]bool{}
	for _, id := range ids {
		if validID(id) && !seen[id] {
			seen[id] = true
			keys = append(keys, connKey(siteID, id))
		}
	}
	bg, ok := s.db.(batchGetter)
	if !ok || len(keys) > 100 {
		for id := range seen {
			c, err := s.Get(ctx, siteID, id)
			switch {
			case apperr.Is(err, apperr.KindNotFound):
			case err != nil:
				return nil, err
			default:
				out[id] = c
			}
		}
		return out, nil
	}
	for attempt := 0; len(keys) > 0; attempt++ {
		if attempt == 5 {
			return nil, fmt.Errorf("get connections of %s: %d keys still unprocessed", siteID, len(keys))
		}
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt*attempt) * 25 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("get connections of %s: %w", siteID, ctx.Err())
			case <-t.C:
			}
		}
		res, err := bg.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			s.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
		}})
		if err != nil {
			return nil, fmt.Errorf("get connections of %s: %w", siteID, err)
		}
		for _, item := range res.Responses[s.table] {
			rec, err := unmarshalRecord(item)
			if err != nil {
				return nil, err
			}
			if rec.SiteID == siteID {
				out[rec.ID] = rec.Connection
			}
		}
		keys = res.UnprocessedKeys[s.table].Keys
	}
	return out, nil
}
