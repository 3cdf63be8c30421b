package llm

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
)

// cohere speaks Cohere's v2 chat API: POST {base}/v2/chat with a bearer key,
// JSON through response_format (json_object with json_schema), the answer
// in message.content[*].text.
type cohere struct{}

type cohereRequest struct {
	Model          string        `json:"model"`
	Messages       []chatMessage `json:"messages"`
	ResponseFormat cohereFormat  `json:"response_format"`
	MaxTokens      int           `json:"max_tokens"`
	Stream         bool          `json:"stream"`
}

type cohereFormat struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

func (cohere) request(key, model string, req Request, maxOut int) (string, map[string]string, any) {
	return "/v2/chat", map[string]string{"Authorization": "Bearer " + key}, cohereRequest{
		Model: model, Messages: chatMessages(req), MaxTokens: maxOut,
		ResponseFormat: cohereFormat{Type: "json_object", JSONSchema: req.Schema},
	}
}

type cohereTokens struct {
	InputTokens  *float64 `json:"input_tokens"`
	OutputTokens *float64 `json:"output_tokens"`
}

func (t *cohereTokens) usage() (Usage, bool) {
	if t == nil || t.InputTokens == nil || t.OutputTokens == nil {
		return Usage{}, false
	}
	return Usage{InputTokens: int(math.Round(*t.InputTokens)), OutputTokens: int(math.Round(*t.OutputTokens)), Reported: true}, true
}

type cohereResponse struct {
	FinishReason string `json:"finish_reason"`
	Message      *struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"message"`
	Usage *struct {
		BilledUnits *cohereTokens `json:"billed_units"`
		Tokens      *cohereTokens `json:"tokens"`
	} `json:"usage"`
}

func (cohere) decode(body []byte, _ Request) (Response, error) {
	var r cohereResponse
	if err := decodeJSON(body, &r); err != nil {
		return Response{}, err
	}
	switch reason := strings.ToUpper(r.FinishReason); reason {
	case "MAX_TOKENS", "ERROR_LIMIT":
		return Response{}, &answerError{code: CodeTruncated, reason: reason, cause: errors.New("the answer reached the token limit")}
	case "ERROR_TOXIC":
		return Response{}, &answerError{code: CodeRefusal, reason: reason, cause: errors.New("the answer was blocked as toxic")}
	case "ERROR":
		// Documented as "the generation failed due to an internal error".
		return Response{}, &answerError{code: CodeServer, reason: reason, cause: errors.New("the generation failed")}
	case "TIMEOUT":
		return Response{}, &answerError{code: CodeTimeout, reason: reason, cause: errors.New("the generation exceeded the provider's time limit")}
	}
	if r.Message == nil {
		return Response{}, malformed("no message (finish reason %q)", r.FinishReason)
	}
	var text strings.Builder
	for _, c := range r.Message.Content {
		if c.Type == "text" {
			text.WriteString(c.Text)
		}
	}
	t, aerr := objectText([]byte(text.String()))
	if aerr != nil {
		return Response{}, aerr
	}
	out := Response{Text: t}
	if r.Usage != nil {
		if u, ok := r.Usage.Tokens.usage(); ok {
			out.Usage = u
		} else if u, ok := r.Usage.BilledUnits.usage(); ok {
			out.Usage = u
		}
	}
	return out, nil
}

// cohereInvalidToken is the status Cohere answers a bad key with besides
// 401 ("invalid token").
const cohereInvalidToken = 498

func (cohere) errorInfo(status int, body []byte) errorInfo {
	info := errorInfo{Auth: status == cohereInvalidToken}
	var r struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &r) == nil {
		info.Message = r.Message
	}
	if status == http.StatusServiceUnavailable {
		info.Overloaded = true
	}
	return info
}
