package compose

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/platform"
)

// Post is a post as the CMS dispatched it, frozen at dispatch time.
type Post struct {
	PostID   string           `json:"postId" dynamodbav:"post_id"`
	Revision string           `json:"revision" dynamodbav:"revision"`
	Title    string           `json:"title" dynamodbav:"title"`
	Excerpt  string           `json:"excerpt" dynamodbav:"excerpt"`
	URL      string           `json:"url" dynamodbav:"url"`
	Body     string           `json:"body" dynamodbav:"body"`
	Media    []platform.Media `json:"media" dynamodbav:"media"`
}

// Snapshot is a stored post.
type Snapshot struct {
	Post
	SiteID    string    `json:"-" dynamodbav:"site_id"`
	CreatedAt time.Time `json:"createdAt" dynamodbav:"created_at"`
}

// dynamoAPI is what Snapshots calls.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Snapshots keeps post snapshots in DynamoDB:
//
//	SITE#<site>  POST#<postId>#<revision>  the post as first dispatched
//
// A revision is frozen by its first dispatch: saving it again keeps the
// first snapshot, as the ledger keeps the first deliveries.
type Snapshots struct {
	db    dynamoAPI
	table string
	now   func() time.Time
}

// NewSnapshots returns a Snapshots on table; now may be nil for the wall
// clock. It does no I/O.
func NewSnapshots(db dynamoAPI, table string, now func() time.Time) *Snapshots {
	if now == nil {
		now = time.Now
	}
	return &Snapshots{db: db, table: table, now: now}
}

func snapshotKey(siteID, postID, revision string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "SITE#" + siteID},
		"SK": &types.AttributeValueMemberS{Value: "POST#" + postID + "#" + revision},
	}
}

// Save stores p as siteID's snapshot of its revision unless one exists;
// it reports whether it wrote.
func (s *Snapshots) Save(ctx context.Context, siteID string, p Post) (bool, error) {
	put, err := s.Put(siteID, p)
	if err != nil {
		return false, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           put.TableName,
		Item:                put.Item,
		ConditionExpression: put.ConditionExpression,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("save snapshot of post %s revision %s: %w", p.PostID, p.Revision, err)
	}
	return true, nil
}

// Put returns the write Save makes (conditional on no snapshot of the
// revision existing), for a caller that writes the snapshot in the same
// transaction as the deliveries of its first dispatch.
func (s *Snapshots) Put(siteID string, p Post) (types.Put, error) {
	snap := Snapshot{Post: p, SiteID: siteID, CreatedAt: s.now().UTC()}
	if snap.Media == nil {
		snap.Media = []platform.Media{}
	}
	item, err := attributevalue.MarshalMap(snap)
	if err != nil {
		return types.Put{}, fmt.Errorf("marshal snapshot of post %s: %w", p.PostID, err)
	}
	for k, v := range snapshotKey(siteID, p.PostID, p.Revision) {
		item[k] = v
	}
	return types.Put{TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}, nil
}

// Get returns siteID's snapshot of a post revision.
func (s *Snapshots) Get(ctx context.Context, siteID, postID, revision string) (Snapshot, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, Key: snapshotKey(siteID, postID, revision), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("get snapshot of post %s revision %s: %w", postID, revision, err)
	}
	if out.Item == nil {
		return Snapshot{}, apperr.NotFound("post snapshot")
	}
	var snap Snapshot
	if err := attributevalue.UnmarshalMap(out.Item, &snap); err != nil {
		return Snapshot{}, fmt.Errorf("unmarshal snapshot of post %s: %w", postID, err)
	}
	return snap, nil
}
