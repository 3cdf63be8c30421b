package vault

// FormatV1 is the only record format: a KMS data key (AES-256) encrypted
// under a KMS key with the owner's encryption context, and the secret
// encrypted with AES-256-GCM under that data key, a 12-byte random nonce and
// the canonical context as additional authenticated data.
const FormatV1 = 1

// NonceSize is the AES-GCM nonce length of FormatV1.
const NonceSize = 12

// dataKeySize is the length of an AES-256 data key.
const dataKeySize = 32

// The DynamoDB attribute names of a Sealed map; Rotate updates two of them.
const (
	attrKeyID        = "key_id"
	attrEncryptedKey = "encrypted_key"
)

// Sealed is one envelope-encrypted secret as stored in DynamoDB (marshal it
// with attributevalue into a map attribute named sealed_<what>, which is where
// Rotate looks for it). Nothing in it is secret on its own.
type Sealed struct {
	// Version is the record format, FormatV1.
	Version int `dynamodbav:"version"`
	// KeyID is the ARN of the KMS key that encrypted the data key, as KMS
	// returned it. Rotation changes it; it is not authenticated.
	KeyID string `dynamodbav:"key_id"`
	// EncryptedKey is the KMS ciphertext blob of the data key.
	EncryptedKey []byte `dynamodbav:"encrypted_key"`
	// Nonce is the AES-GCM nonce, NonceSize bytes.
	Nonce []byte `dynamodbav:"nonce"`
	// Ciphertext is the AES-GCM output: encrypted secret and tag.
	Ciphertext []byte `dynamodbav:"ciphertext"`
	// Context is the encryption context the record was sealed with. Open
	// compares it with the context the caller expects; Rotate passes it to
	// KMS ReEncrypt.
	Context map[string]string `dynamodbav:"context"`
}
