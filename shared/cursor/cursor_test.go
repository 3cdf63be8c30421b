package cursor

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func TestRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	key := map[string]types.AttributeValue{"PK": s("SITE#a"), "SK": s("CONN#1")}
	c, err := Encode(key)
	if err != nil || c == "" {
		t.Fatalf("Encode: got %q, %v", c, err)
	}
	mine := func(m map[string]string) bool { return m["PK"] == "SITE#a" && strings.HasPrefix(m["SK"], "CONN#") }
	got, err := Decode(c, mine)
	if err != nil || got["SK"].(*types.AttributeValueMemberS).Value != "CONN#1" {
		t.Fatalf("Decode: got %v, %v; want the key back", got, err)
	}
	other := func(m map[string]string) bool { return m["PK"] == "SITE#b" }
	for name, cur := range map[string]string{"another site's": c, "garbage": "%%%", "not json": "bm90LWpzb24", "empty object": "e30"} {
		valid := mine
		if name == "another site's" {
			valid = other
		}
		if _, err := Decode(cur, valid); apperr.KindOf(err) != apperr.KindInvalid {
			t.Errorf("Decode %s cursor: got %v, want an invalid-request error", name, err)
		}
	}
	if c, err := Encode(nil); c != "" || err != nil {
		t.Errorf("Encode(nil): got %q, %v; want empty", c, err)
	}
	if _, err := Encode(map[string]types.AttributeValue{"N": &types.AttributeValueMemberN{Value: "1"}}); err == nil {
		t.Errorf("Encode of a number attribute: got nil error")
	}
}
