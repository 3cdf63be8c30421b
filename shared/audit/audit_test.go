package audit

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/cursor"
)

// pagedDB answers one page whose last key is site_a's, and counts queries.
type pagedDB struct{ queries int }

func (d *pagedDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

func (d *pagedDB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	d.queries++
	return &dynamodb.QueryOutput{LastEvaluatedKey: map[string]types.AttributeValue{
		"PK": str(partition("site_a")), "SK": str("2026-11-26T10:00:00.000000000Z#aud_x")}}, nil
}

func TestCursorIsBoundToItsSite(t *testing.T) {
	t.Parallel()
	db := &pagedDB{}
	s := NewStore(db, "t", 0, nil, nil)
	_, next, err := s.List(context.Background(), "site_a", 10, "")
	if err != nil || next == "" {
		t.Fatalf("first page: got cursor %q, %v", next, err)
	}
	if _, _, err := s.List(context.Background(), "site_a", 10, next); err != nil {
		t.Errorf("own cursor: %v", err)
	}
	other, _ := cursor.Encode(map[string]types.AttributeValue{"PK": str("SITE#site_a#DLV"), "SK": str("x")})
	asked := db.queries
	for name, c := range map[string]struct{ cur, site string }{
		"another site's": {next, "site_b"}, "garbage": {"!!", "site_a"}, "another listing's": {other, "site_a"},
	} {
		if _, _, err := s.List(context.Background(), c.site, 10, c.cur); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("%s cursor: got %v, want invalid", name, err)
		}
	}
	if db.queries != asked {
		t.Errorf("refused cursors reached DynamoDB: %d queries, want none", db.queries-asked)
	}
}
