package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
)

// v2Response is a payload 2.0 function response (events.APIGatewayV2HTTPResponse
// without its omitempty tags, so a missing statusCode can be told apart).
type v2Response struct {
	StatusCode        *int                `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
	Body              *string             `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// writeResponse maps a function's response to HTTP the way API Gateway does
// for payload format 2.0: an object with a statusCode is a structured
// response; any other valid JSON is sent as a 200 application/json body.
// It returns the status written, or an error (and writes nothing) when the
// response cannot be used.
func writeResponse(w http.ResponseWriter, out []byte) (int, error) {
	trimmed := bytes.TrimSpace(out)
	if !json.Valid(trimmed) {
		return 0, fmt.Errorf("response is not JSON (%d bytes)", len(out))
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(trimmed, &probe) != nil || probe["statusCode"] == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(trimmed)
		return http.StatusOK, nil
	}
	var resp v2Response
	if err := json.Unmarshal(trimmed, &resp); err != nil {
		return 0, fmt.Errorf("malformed response: %w", err)
	}
	if resp.StatusCode == nil {
		return 0, fmt.Errorf("response statusCode is null")
	}
	status := *resp.StatusCode
	if status < 100 || status > 599 {
		return 0, fmt.Errorf("response status %d is invalid", status)
	}
	var body []byte
	if resp.Body != nil {
		body = []byte(*resp.Body)
		if resp.IsBase64Encoded {
			dec, err := base64.StdEncoding.DecodeString(*resp.Body)
			if err != nil {
				return 0, fmt.Errorf("response body is not base64: %w", err)
			}
			body = dec
		}
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" {
		// API Gateway adds none; keep Go from sniffing one.
		h["Content-Type"] = nil
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status, nil
}
