// Command floorfn is the smallest useful Lambda function: the floor that
// `make bench` measures cold starts and binary sizes against.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil })
}
