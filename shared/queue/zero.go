package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// zeroReceiveTimeouts makes a ReceiveMessage call send VisibilityTimeout 0
// and WaitTimeSeconds 0. The SDK omits integer fields that are zero
// (aws/aws-sdk-go-v2#1704), so without this the queue's own visibility
// timeout would apply and a "peek" would hide every message it read for
// that long.
func zeroReceiveTimeouts(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		return s.Serialize.Insert(zeroFields{}, "OperationSerializer", middleware.After)
	})
}

// zeroFields sets the zero-valued fields in the serialized JSON body.
type zeroFields struct{}

// ID implements middleware.SerializeMiddleware.
func (zeroFields) ID() string { return "posse.ZeroReceiveTimeouts" }

// HandleSerialize implements middleware.SerializeMiddleware.
func (zeroFields) HandleSerialize(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (
	middleware.SerializeOutput, middleware.Metadata, error,
) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok || req.GetStream() == nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("zero receive timeouts: unexpected request %T", in.Request)
	}
	raw, err := io.ReadAll(req.GetStream())
	if err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("zero receive timeouts: read body: %w", err)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("zero receive timeouts: the body is not a JSON object: %w", err)
	}
	body["VisibilityTimeout"] = json.RawMessage("0")
	body["WaitTimeSeconds"] = json.RawMessage("0")
	out, err := json.Marshal(body)
	if err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("zero receive timeouts: %w", err)
	}
	if req, err = req.SetStream(bytes.NewReader(out)); err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("zero receive timeouts: %w", err)
	}
	in.Request = req
	return next.HandleSerialize(ctx, in)
}
