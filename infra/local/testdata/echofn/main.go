// Command echofn is the local runner's test function. It reports what it
// received so tests can check the events the runner builds:
//
//   - SQS batches: every record goes to the output queue
//     ($ECHO_OUTPUT_QUEUE_URL) as {"source":"sqs","record":...}. A body
//     containing "fail" is a batch item failure, "bad-id" makes it report an
//     item id that is not in the batch, "crash" makes the invocation fail.
//   - HTTP API (payload 2.0) requests: answered with the request event as the
//     body; a few paths stand in for the POSSE API (POST /v1/sites, POST
//     /v1/sites/{id}/keys, GET /v1/health), show the environment
//     (/env/NAME) or misbehave on purpose (/crash, /sleep, /binary, /raw).
//   - Anything else (a Scheduler event, say) goes to the output queue as
//     {"source":"event","event":...}.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

type sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

type handler struct {
	sqs       sender
	outputURL string
	adminHash string
}

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "load aws config:", err)
		os.Exit(1)
	}
	h := &handler{
		sqs:       sqs.NewFromConfig(cfg),
		outputURL: os.Getenv("ECHO_OUTPUT_QUEUE_URL"),
		adminHash: os.Getenv("ECHO_ADMIN_KEY_SHA256"),
	}
	lambda.Start(h.handle)
}

// probe tells the event kinds apart.
type probe struct {
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
	Version  string `json:"version"`
	RouteKey string `json:"routeKey"`
}

func (h *handler) handle(ctx context.Context, payload json.RawMessage) (any, error) {
	var p probe
	_ = json.Unmarshal(payload, &p)
	switch {
	case len(p.Records) > 0 && p.Records[0].EventSource == "aws:sqs":
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decode sqs event: %w", err)
		}
		return h.sqsBatch(ctx, ev)
	case p.Version == "2.0" && p.RouteKey != "":
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decode http event: %w", err)
		}
		return h.http(ev)
	default:
		return map[string]string{"ok": "event"}, h.send(ctx, map[string]any{"source": "event", "event": payload})
	}
}

func (h *handler) send(ctx context.Context, v any) error {
	if h.outputURL == "" {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if _, err := h.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(h.outputURL), MessageBody: aws.String(string(b))}); err != nil {
		return fmt.Errorf("send output: %w", err)
	}
	return nil
}

func (h *handler) sqsBatch(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	crash := false
	for _, r := range ev.Records {
		if err := h.send(ctx, map[string]any{"source": "sqs", "record": r}); err != nil {
			return resp, err
		}
		switch {
		case strings.Contains(r.Body, "crash"):
			crash = true
		case strings.Contains(r.Body, "bad-id"):
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: "not-in-this-batch"})
		case strings.Contains(r.Body, "fail"):
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	if crash {
		return resp, errors.New("crash requested")
	}
	return resp, nil
}

func (h *handler) http(ev events.APIGatewayV2HTTPRequest) (any, error) {
	path, method := ev.RawPath, ev.RequestContext.HTTP.Method
	switch {
	case strings.Contains(path, "/crash"):
		return nil, errors.New("crash requested")
	case strings.Contains(path, "/sleep"):
		time.Sleep(time.Minute)
	case strings.Contains(path, "/binary"):
		return events.APIGatewayV2HTTPResponse{
			StatusCode:      200,
			Headers:         map[string]string{"Content-Type": "application/octet-stream"},
			Body:            base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}),
			IsBase64Encoded: true,
		}, nil
	case strings.Contains(path, "/env/"):
		_, name, _ := strings.Cut(path, "/env/")
		return jsonResponse(http.StatusOK, map[string]string{"value": os.Getenv(name)}), nil
	case strings.Contains(path, "/raw"):
		return map[string]string{"hello": "world"}, nil
	case path == "/v1/health":
		return jsonResponse(http.StatusOK, map[string]any{"ok": true}), nil
	case method == http.MethodPost && path == "/v1/sites":
		if !h.admin(ev.Headers["authorization"]) {
			return jsonResponse(http.StatusUnauthorized, map[string]string{"title": "unauthorized"}), nil
		}
		return jsonResponse(http.StatusCreated, map[string]string{"id": "site_echo"}), nil
	case method == http.MethodPost && strings.HasSuffix(path, "/keys"):
		if !h.admin(ev.Headers["authorization"]) {
			return jsonResponse(http.StatusUnauthorized, map[string]string{"title": "unauthorized"}), nil
		}
		return jsonResponse(http.StatusCreated, map[string]string{"id": "key_echo", "key": "posse_sk_echo_" + ev.PathParameters["site"]}), nil
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode echo: %w", err)
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode:        200,
		Headers:           map[string]string{"Content-Type": "application/json", "X-Echo": "yes"},
		MultiValueHeaders: map[string][]string{"X-Multi": {"a", "b"}},
		Cookies:           []string{"c1=v1; Path=/", "c2=v2"},
		Body:              string(body),
	}, nil
}

func (h *handler) admin(authorization string) bool {
	key, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || h.adminHash == "" {
		return false
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) == h.adminHash
}

func jsonResponse(status int, v any) events.APIGatewayV2HTTPResponse {
	b, _ := json.Marshal(v)
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(b)}
}
