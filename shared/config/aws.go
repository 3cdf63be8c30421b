package config

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// LoadAWS builds the AWS SDK configuration of a function from the
// variables the Lambda runtime sets in every execution environment:
// AWS_REGION, and the execution role's temporary credentials in
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. It also
// reads AWS_ENDPOINT_URL (the local stack points every client at moto with
// it) and AWS_SDK_UA_APP_ID (an application id the SDK adds to its
// User-Agent; the local stack names each function with it, so moto can
// count calls per function).
//
// It replaces the SDK's config.LoadDefaultConfig on purpose: the default
// chain links the shared-config parser, IMDS and the STS, SSO, SSO-OIDC and
// Sign-In clients into every bootstrap (about 1.7 MiB of a linux/arm64
// binary) for credential sources a Lambda function never has. Tools that
// run on a workstation (infra/rotatekeys) keep the default chain.
func LoadAWS(getenv func(string) string) (aws.Config, error) {
	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		return aws.Config{}, errors.New("config: AWS_REGION is required (the Lambda runtime sets it)")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return aws.Config{}, errors.New("config: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required (the Lambda runtime sets them from the execution role)")
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))),
		AppID:       getenv("AWS_SDK_UA_APP_ID"),
	}
	if e := getenv("AWS_ENDPOINT_URL"); e != "" {
		if u, err := url.Parse(e); err != nil || u.Scheme == "" || u.Host == "" {
			return aws.Config{}, fmt.Errorf("config: AWS_ENDPOINT_URL %q is not an absolute URL", e)
		}
		cfg.BaseEndpoint = aws.String(e)
	}
	return cfg, nil
}
