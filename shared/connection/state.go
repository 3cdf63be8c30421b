package connection

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/posse-dev/posse/shared/platform"
)

// StateTTL is how long an OAuth state may be used.
const StateTTL = 10 * time.Minute

// stateBytes is the entropy of a state: 256 bits.
const stateBytes = 32

// oauthState is an OAuth state item. The state itself is only in the key.
type oauthState struct {
	SiteID      string        `dynamodbav:"site_id"`
	Platform    platform.Name `dynamodbav:"platform"`
	RedirectURI string        `dynamodbav:"redirect_uri"`
	ReturnURL   string        `dynamodbav:"return_url"`
	PageID      string        `dynamodbav:"page_id,omitempty"`
	CreatedAt   time.Time     `dynamodbav:"created_at"`
	// ExpiresAt is epoch seconds: the table's TTL attribute. DynamoDB may
	// delete the item up to days later, so consumers also compare times.
	ExpiresAt int64 `dynamodbav:"expires_at"`
}

func stateKey(state string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str("OAUTH#" + state), "SK": str("META")}
}

// validState reports whether s can be a state we issued: 256 bits in
// unpadded base64url.
func validState(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(stateBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// putState stores a new state; a (practically impossible) existing one is
// never overwritten. When the SDK retries a put whose first attempt was
// stored but whose answer was lost (a timeout, a reset connection, a body
// that fails its CRC32 check), the retry's condition fails on our own item:
// the item DynamoDB returns with the failure is then exactly ours, and the
// state is stored.
func (s *Store) putState(ctx context.Context, state string, st oauthState) error {
	item, err := attributevalue.MarshalMap(st)
	if err != nil {
		return fmt.Errorf("marshal oauth state: %w", err)
	}
	item["PK"], item["SK"] = str("OAUTH#"+state), str("META")
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(s.table),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(PK)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) && reflect.DeepEqual(ccf.Item, item) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put oauth state for site %s: %w", st.SiteID, err)
	}
	return nil
}

// consumeState deletes a state and returns what it held: a state works
// once. found is false when there was none (never issued, already used, or
// swept by the TTL).
func (s *Store) consumeState(ctx context.Context, state string) (oauthState, bool, error) {
	if !validState(state) {
		return oauthState{}, false, nil
	}
	out, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:           aws.String(s.table),
		Key:                 stateKey(state),
		ConditionExpression: aws.String("attribute_exists(PK)"),
		ReturnValues:        types.ReturnValueAllOld,
	})
	if isConditionFailed(err) {
		return oauthState{}, false, nil
	}
	if err != nil {
		return oauthState{}, false, fmt.Errorf("consume oauth state: %w", err)
	}
	if len(out.Attributes) == 0 {
		return oauthState{}, false, nil
	}
	var st oauthState
	if err := attributevalue.UnmarshalMap(out.Attributes, &st); err != nil {
		return oauthState{}, false, fmt.Errorf("unmarshal oauth state: %w", err)
	}
	return st, true, nil
}

// macAPI is the part of the KMS client that derives PKCE verifiers: a
// client limited to kms:GenerateMac on the OAuth state key is enough.
type macAPI interface {
	GenerateMac(ctx context.Context, in *kms.GenerateMacInput, optFns ...func(*kms.Options)) (*kms.GenerateMacOutput, error)
}

// verifierPrefix separates this use of the state key from any other.
const verifierPrefix = "pkce-verifier:"

// deriveVerifier returns the PKCE code verifier of state:
// base64url(HMAC-SHA-256(stateKey, "pkce-verifier:" + state)), 43
// characters, the same at authorize and at callback and never stored.
func deriveVerifier(ctx context.Context, mac macAPI, keyID, state string) (string, error) {
	out, err := mac.GenerateMac(ctx, &kms.GenerateMacInput{
		KeyId:        aws.String(keyID),
		MacAlgorithm: kmstypes.MacAlgorithmSpecHmacSha256,
		Message:      []byte(verifierPrefix + state),
	})
	if err != nil {
		return "", fmt.Errorf("kms generate mac for the pkce verifier under %s: %w", keyID, err)
	}
	if len(out.Mac) < 32 {
		return "", fmt.Errorf("kms generate mac under %s: got %d bytes, want 32", keyID, len(out.Mac))
	}
	return base64.RawURLEncoding.EncodeToString(out.Mac), nil
}
