package connection

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/shared/platform"
)

// retriedPutClient is a DynamoDB client whose first answer to a put was
// lost after the item was stored, so the put is sent again.
type retriedPutClient struct{ *dynamodb.Client }

func (c retriedPutClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, err := c.Client.PutItem(ctx, in, opts...); err != nil {
		return nil, err
	}
	return c.Client.PutItem(ctx, in, opts...)
}

// TestPutStateRetriedOnDynamoDB is TestAuthorizeSurvivesARetriedPut on
// DynamoDB's own semantics (moto): the item returned with the failed
// condition is compared as DynamoDB sends it back.
func TestPutStateRetriedOnDynamoDB(t *testing.T) {
	t.Parallel()
	db := dynamodb.NewFromConfig(mototest.Config(t))
	table := mototest.Table(t, db)
	st := oauthState{SiteID: "site_a", Platform: platform.X, RedirectURI: "https://api.example/v1/oauth/x/callback",
		ReturnURL: "https://cms.example/back", CreatedAt: time.Date(2026, 12, 4, 8, 40, 9, 668392967, time.UTC), ExpiresAt: 1796373009}
	ctx := context.Background()
	state := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{9}, stateBytes))
	if err := NewStore(retriedPutClient{db}, table).putState(ctx, state, st); err != nil {
		t.Fatalf("putState with a retried put: got %v, want nil", err)
	}
	other := st
	other.CreatedAt = st.CreatedAt.Add(time.Second)
	if err := NewStore(db, table).putState(ctx, state, other); err == nil {
		t.Fatal("putState over another item: got nil, want an error")
	}
	got, found, err := NewStore(db, table).consumeState(ctx, state)
	if err != nil || !found || !got.CreatedAt.Equal(st.CreatedAt) {
		t.Fatalf("consumeState: got %+v (found %v, %v), want the first item", got, found, err)
	}
}
