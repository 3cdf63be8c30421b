// Package cursor turns DynamoDB's LastEvaluatedKey into the opaque cursors
// the API hands out (?cursor=, nextCursor) and back, refusing a cursor that
// belongs to another listing — another site's above all — so a forged
// cursor is a 400, never a query outside the caller's site.
package cursor

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/shared/apperr"
)

// Encode turns a LastEvaluatedKey of string attributes into a cursor; an
// empty key (the last page) gives "".
func Encode(k map[string]types.AttributeValue) (string, error) {
	if len(k) == 0 {
		return "", nil
	}
	m := make(map[string]string, len(k))
	for name, v := range k {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			return "", fmt.Errorf("encode cursor: attribute %s is not a string", name)
		}
		m[name] = s.Value
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode reverses Encode. valid sees the cursor's attributes and says
// whether they belong to the listing being asked for; a cursor it refuses,
// or one that is not a cursor at all, is an invalid-request error naming
// the cursor parameter.
func Decode(c string, valid func(attrs map[string]string) bool) (map[string]types.AttributeValue, error) {
	bad := apperr.Invalid("cursor", "is not a cursor this listing returned")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, bad
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) == 0 || !valid(m) {
		return nil, bad
	}
	out := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		out[k] = &types.AttributeValueMemberS{Value: v}
	}
	return out, nil
}
