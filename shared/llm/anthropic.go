package llm

import (
	"encoding/json"
	"errors"
)

// AnthropicVersion is the anthropic-version header every Anthropic call
// sends.
const AnthropicVersion = "2023-06-01"

// anthropic speaks Anthropic's messages API: POST {base}/v1/messages with
// x-api-key and anthropic-version. Schema-shaped JSON comes from forced tool
// use: one tool whose input_schema is the schema, tool_choice naming it, and
// the answer is that tool_use block's input.
type anthropic struct{}

type anthropicRequest struct {
	Model      string              `json:"model"`
	MaxTokens  int                 `json:"max_tokens"`
	System     string              `json:"system,omitempty"`
	Messages   []chatMessage       `json:"messages"`
	Tools      []anthropicTool     `json:"tools"`
	ToolChoice anthropicToolChoice `json:"tool_choice"`
}

type anthropicTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthropicToolChoice struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

func (anthropic) request(key, model string, req Request, maxOut int) (string, map[string]string, any) {
	return "/v1/messages", map[string]string{"x-api-key": key, "anthropic-version": AnthropicVersion}, anthropicRequest{
		Model:     model,
		MaxTokens: maxOut,
		System:    req.System,
		Messages:  []chatMessage{{Role: "user", Content: req.User}},
		Tools: []anthropicTool{{
			Name:        req.SchemaName,
			Description: "Give the answer as this tool's input, following its schema exactly.",
			InputSchema: schemaOrObject(req.Schema),
		}},
		ToolChoice: anthropicToolChoice{Type: "tool", Name: req.SchemaName},
	}
}

type anthropicResponse struct {
	Model   string `json:"model"`
	Content []struct {
		Type  string          `json:"type"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
	StopReason string `json:"stop_reason"`
	Usage      *struct {
		InputTokens  *int `json:"input_tokens"`
		OutputTokens *int `json:"output_tokens"`
	} `json:"usage"`
}

func (anthropic) decode(body []byte, req Request) (Response, error) {
	var r anthropicResponse
	if err := decodeJSON(body, &r); err != nil {
		return Response{}, err
	}
	switch r.StopReason {
	case "refusal":
		return Response{}, &answerError{code: CodeRefusal, reason: r.StopReason, cause: errors.New("the model refused")}
	case "max_tokens", "model_context_window_exceeded":
		return Response{}, &answerError{code: CodeTruncated, reason: r.StopReason, cause: errors.New("the answer reached the token limit")}
	}
	var input json.RawMessage
	for _, b := range r.Content {
		if b.Type == "tool_use" && (input == nil || b.Name == req.SchemaName) {
			input = b.Input
		}
	}
	if input == nil {
		return Response{}, malformed("no tool_use block (stop reason %q)", r.StopReason)
	}
	text, aerr := objectText(input)
	if aerr != nil {
		return Response{}, aerr
	}
	out := Response{Text: text, Model: r.Model}
	if r.Usage != nil && r.Usage.InputTokens != nil && r.Usage.OutputTokens != nil {
		out.Usage = Usage{InputTokens: *r.Usage.InputTokens, OutputTokens: *r.Usage.OutputTokens, Reported: true}
	}
	return out, nil
}

type anthropicError struct {
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func (anthropic) errorInfo(_ int, body []byte) errorInfo {
	var r anthropicError
	if json.Unmarshal(body, &r) != nil || r.Error == nil {
		return errorInfo{}
	}
	return errorInfo{
		Code: r.Error.Type, Message: r.Error.Message,
		Overloaded: r.Error.Type == "overloaded_error",
		Auth:       r.Error.Type == "authentication_error" || r.Error.Type == "permission_error",
	}
}
