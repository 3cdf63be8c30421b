// Package site owns sites and their API keys: creating a site, issuing a
// key (shown once, stored only as its SHA-256), revoking it, and resolving a
// presented key to its site for the API's authentication.
//
// Items (one table, see the architecture's data model):
//
//	SITE#<site>  META            the site
//	KEY#<sha256> META            a key, looked up on every request
//	SITE#<site>  APIKEY#<keyId>  the site's index of its keys (hash, name, state)
package site

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/cursor"
)

// KeyPrefix starts every site API key, so leaked keys are recognisable by
// secret scanners and by our log redaction.
const KeyPrefix = "posse_sk_"

// lastUsedEvery bounds how often a key's last-used time is written.
const lastUsedEvery = time.Minute

// Site is a CMS installation using POSSE.
type Site struct {
	ID        string `json:"id" dynamodbav:"site_id"`
	Name      string `json:"name" dynamodbav:"name"`
	Timezone  string `json:"timezone" dynamodbav:"timezone"`
	ReturnURL string `json:"returnUrl" dynamodbav:"return_url"`
	// AI is the site's AI adaptation settings (PATCH /v1/sites/{siteId}).
	AI        AI        `json:"ai" dynamodbav:"ai"`
	CreatedAt time.Time `json:"createdAt" dynamodbav:"created_at"`
}

// Key is an API key's record. The key itself is never stored.
type Key struct {
	ID         string     `json:"id" dynamodbav:"key_id"`
	SiteID     string     `json:"siteId" dynamodbav:"site_id"`
	Name       string     `json:"name" dynamodbav:"name"`
	Hint       string     `json:"hint" dynamodbav:"hint"` // the last 4 characters, to tell keys apart
	Hash       string     `json:"-" dynamodbav:"hash"`
	CreatedAt  time.Time  `json:"createdAt" dynamodbav:"created_at"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty" dynamodbav:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty" dynamodbav:"revoked_at,omitempty"`
}

// NewSite is the input of Create.
type NewSite struct {
	Name      string `json:"name"`
	Timezone  string `json:"timezone"`
	ReturnURL string `json:"returnUrl"`
}

// dynamoAPI is what Store calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store keeps sites and keys in DynamoDB.
type Store struct {
	db    dynamoAPI
	table string
	now   func() time.Time
	rand  func([]byte) (int, error)
}

// NewStore returns a Store on table. now and random may be nil for the real
// clock and crypto/rand.
func NewStore(db dynamoAPI, table string, now func() time.Time, random func([]byte) (int, error)) *Store {
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Read
	}
	return &Store{db: db, table: table, now: now, rand: random}
}

// HashKey returns the lowercase hex SHA-256 of a presented key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix + 16 random bytes in lowercase base32.
func (s *Store) newID(prefix string) (string, error) {
	b := make([]byte, 16)
	if _, err := s.rand(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return prefix + idEncoding.EncodeToString(b), nil
}

// Validate checks a NewSite and returns every problem, naming the field.
func (n NewSite) Validate() []apperr.Problem {
	var ps []apperr.Problem
	name := strings.TrimSpace(n.Name)
	switch {
	case name == "":
		ps = append(ps, apperr.Problem{Field: "name", Message: "is required"})
	case utf8.RuneCountInString(name) > 100:
		ps = append(ps, apperr.Problem{Field: "name", Message: "must be at most 100 characters"})
	}
	if n.Timezone == "" {
		ps = append(ps, apperr.Problem{Field: "timezone", Message: "is required (an IANA time zone such as Europe/Berlin)"})
	} else if _, err := time.LoadLocation(n.Timezone); err != nil || n.Timezone == "Local" {
		ps = append(ps, apperr.Problem{Field: "timezone", Message: fmt.Sprintf("%q is not an IANA time zone", n.Timezone)})
	}
	if n.ReturnURL == "" {
		ps = append(ps, apperr.Problem{Field: "returnUrl", Message: "is required (where OAuth flows send the browser back)"})
	} else if u, err := url.Parse(n.ReturnURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		ps = append(ps, apperr.Problem{Field: "returnUrl", Message: "must be an absolute http(s) URL"})
	}
	return ps
}

// Create stores a new site.
func (s *Store) Create(ctx context.Context, n NewSite) (Site, error) {
	if ps := n.Validate(); len(ps) > 0 {
		return Site{}, apperr.InvalidProblems(ps)
	}
	id, err := s.newID("site_")
	if err != nil {
		return Site{}, err
	}
	site := Site{ID: id, Name: strings.TrimSpace(n.Name), Timezone: n.Timezone, ReturnURL: n.ReturnURL, CreatedAt: s.now().UTC()}
	item, err := attributevalue.MarshalMap(site)
	if err != nil {
		return Site{}, fmt.Errorf("marshal site %s: %w", id, err)
	}
	item["PK"] = str("SITE#" + id)
	item["SK"] = str("META")
	item["GSI1PK"] = str("SITES")
	item["GSI1SK"] = str(site.CreatedAt.Format(time.RFC3339Nano) + "#" + id)
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &s.table,
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err != nil {
		return Site{}, fmt.Errorf("put site %s: %w", id, err)
	}
	return site, nil
}

// Get returns a site.
func (s *Store) Get(ctx context.Context, id string) (Site, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            map[string]types.AttributeValue{"PK": str("SITE#" + id), "SK": str("META")},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Site{}, fmt.Errorf("get site %s: %w", id, err)
	}
	if out.Item == nil {
		return Site{}, apperr.NotFound("site")
	}
	var site Site
	if err := attributevalue.UnmarshalMap(out.Item, &site); err != nil {
		return Site{}, fmt.Errorf("unmarshal site %s: %w", id, err)
	}
	return site, nil
}

// List returns up to limit sites, oldest first, after cursor (an opaque
// value returned as next by the previous page; "" starts at the beginning).
func (s *Store) List(ctx context.Context, limit int, after string) ([]Site, string, error) {
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		IndexName:              aws.String("GSI1"),
		KeyConditionExpression: aws.String("GSI1PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str("SITES"),
		},
		Limit: aws.Int32(int32(limit)),
	}
	if after != "" {
		start, err := cursor.Decode(after, func(m map[string]string) bool { return m["GSI1PK"] == "SITES" })
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list sites: %w", err)
	}
	sites := make([]Site, 0, len(out.Items))
	for _, it := range out.Items {
		var site Site
		if err := attributevalue.UnmarshalMap(it, &site); err != nil {
			return nil, "", fmt.Errorf("unmarshal site: %w", err)
		}
		sites = append(sites, site)
	}
	next, err := cursor.Encode(out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return sites, next, nil
}

// IssueKey creates a key for site and returns its record and the key itself,
// which is never retrievable again.
func (s *Store) IssueKey(ctx context.Context, siteID, name string) (Key, string, error) {
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > 100 {
		return Key{}, "", apperr.Invalid("name", "must be at most 100 characters")
	}
	if _, err := s.Get(ctx, siteID); err != nil {
		return Key{}, "", err
	}
	raw := make([]byte, 32)
	if _, err := s.rand(raw); err != nil {
		return Key{}, "", fmt.Errorf("generate key: %w", err)
	}
	secret := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	id, err := s.newID("key_")
	if err != nil {
		return Key{}, "", err
	}
	k := Key{ID: id, SiteID: siteID, Name: name, Hint: secret[len(secret)-4:], Hash: HashKey(secret), CreatedAt: s.now().UTC()}
	lookup, err := attributevalue.MarshalMap(k)
	if err != nil {
		return Key{}, "", fmt.Errorf("marshal key %s: %w", id, err)
	}
	index := make(map[string]types.AttributeValue, len(lookup)+2)
	for a, v := range lookup {
		index[a] = v
	}
	lookup["PK"], lookup["SK"] = str("KEY#"+k.Hash), str("META")
	index["PK"], index["SK"] = str("SITE#"+siteID), str("APIKEY#"+id)
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &s.table, Item: lookup, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Put: &types.Put{TableName: &s.table, Item: index, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{ConditionCheck: &types.ConditionCheck{TableName: &s.table,
			Key:                 map[string]types.AttributeValue{"PK": str("SITE#" + siteID), "SK": str("META")},
			ConditionExpression: aws.String("attribute_exists(PK)")}},
	}})
	if err != nil {
		return Key{}, "", fmt.Errorf("store key %s: %w", id, err)
	}
	return k, secret, nil
}

// Keys lists a site's keys, revoked ones included.
func (s *Store) Keys(ctx context.Context, siteID string) ([]Key, error) {
	var keys []Key
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :p AND begins_with(SK, :k)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str("SITE#" + siteID), ":k": str("APIKEY#"),
		},
		ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list keys of %s: %w", siteID, err)
		}
		for _, it := range out.Items {
			var k Key
			if err := attributevalue.UnmarshalMap(it, &k); err != nil {
				return nil, fmt.Errorf("unmarshal key: %w", err)
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// RevokeKey revokes a site's key; revoking twice is not an error.
func (s *Store) RevokeKey(ctx context.Context, siteID, keyID string) error {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            map[string]types.AttributeValue{"PK": str("SITE#" + siteID), "SK": str("APIKEY#" + keyID)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("get key %s: %w", keyID, err)
	}
	if out.Item == nil {
		return apperr.NotFound("key")
	}
	var k Key
	if err := attributevalue.UnmarshalMap(out.Item, &k); err != nil {
		return fmt.Errorf("unmarshal key %s: %w", keyID, err)
	}
	if k.RevokedAt != nil {
		return nil
	}
	now := str(s.now().UTC().Format(time.RFC3339Nano))
	update := func(pk, sk string) types.TransactWriteItem {
		return types.TransactWriteItem{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       map[string]types.AttributeValue{"PK": str(pk), "SK": str(sk)},
			UpdateExpression:          aws.String("SET revoked_at = if_not_exists(revoked_at, :t)"),
			ConditionExpression:       aws.String("attribute_exists(PK)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": now},
		}}
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		update("KEY#"+k.Hash, "META"), update("SITE#"+siteID, "APIKEY#"+keyID),
	}})
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", keyID, err)
	}
	return nil
}

// ErrUnknownKey is returned by Authenticate for a key that does not exist or
// was revoked. Callers answer 401 without saying which.
var ErrUnknownKey = apperr.New(apperr.KindUnauthorized, "invalid_key", "the API key is missing, unknown or revoked")

// Authenticate resolves a presented site key to its record, and records
// when it was last used (at most once a minute per key).
func (s *Store) Authenticate(ctx context.Context, presented string) (Key, error) {
	if !strings.HasPrefix(presented, KeyPrefix) {
		return Key{}, ErrUnknownKey
	}
	hash := HashKey(presented)
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table,
		Key:       map[string]types.AttributeValue{"PK": str("KEY#" + hash), "SK": str("META")},
	})
	if err != nil {
		return Key{}, fmt.Errorf("look up key: %w", err)
	}
	if out.Item == nil {
		return Key{}, ErrUnknownKey
	}
	var k Key
	if err := attributevalue.UnmarshalMap(out.Item, &k); err != nil {
		return Key{}, fmt.Errorf("unmarshal key: %w", err)
	}
	if k.RevokedAt != nil {
		return Key{}, ErrUnknownKey
	}
	now := s.now().UTC()
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedEvery {
		if err := s.touch(ctx, k, now); err != nil {
			return Key{}, err
		}
		k.LastUsedAt = &now
	}
	return k, nil
}

// touch records a key's last use on both of its items. A revoked or
// concurrently touched key is left as it is.
func (s *Store) touch(ctx context.Context, k Key, now time.Time) error {
	for _, key := range []map[string]types.AttributeValue{
		{"PK": str("KEY#" + k.Hash), "SK": str("META")},
		{"PK": str("SITE#" + k.SiteID), "SK": str("APIKEY#" + k.ID)},
	} {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           &s.table,
			Key:                 key,
			UpdateExpression:    aws.String("SET last_used_at = :t"),
			ConditionExpression: aws.String("attribute_exists(PK) AND attribute_not_exists(revoked_at)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":t": str(now.Format(time.RFC3339Nano)),
			},
		})
		var ccf *types.ConditionalCheckFailedException
		if err != nil && !errors.As(err, &ccf) {
			return fmt.Errorf("record use of key %s: %w", k.ID, err)
		}
	}
	return nil
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
