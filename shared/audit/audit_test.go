package audit

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

type dynamoValue = types.AttributeValue

func TestCursorIsBoundToItsSite(t *testing.T) {
	t.Parallel()
	c, err := encodeCursor(map[string]dynamoValue{"PK": str(partition("site_a")), "SK": str("2026-11-26T10:00:00.000000000Z#aud_x")})
	if err != nil || c == "" {
		t.Fatalf("encode: %q, %v", c, err)
	}
	if _, err := decodeCursor(c, "site_a"); err != nil {
		t.Errorf("own cursor: %v", err)
	}
	raw, _ := json.Marshal([2]string{"SITE#site_a#DLV", "x"})
	for name, bad := range map[string]string{
		"another site's": c, "garbage": "!!", "another listing's": base64.RawURLEncoding.EncodeToString(raw),
	} {
		site := "site_a"
		if name == "another site's" {
			site = "site_b"
		}
		if _, err := decodeCursor(bad, site); !apperr.Is(err, apperr.KindInvalid) {
			t.Errorf("%s cursor: got %v, want invalid", name, err)
		}
	}
}
