package llm

import (
	"encoding/json"
	"errors"
)

// openAI speaks OpenAI's chat completions API: POST {base}/chat/completions
// with a bearer key, Structured Outputs through response_format.json_schema
// (strict), the answer in choices[0].message.content and a refusal in
// choices[0].message.refusal.
type openAI struct{}

type openAIRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	ResponseFormat      openAIFormat  `json:"response_format"`
	MaxCompletionTokens int           `json:"max_completion_tokens"`
}

type openAIFormat struct {
	Type       string            `json:"type"`
	JSONSchema *openAIJSONSchema `json:"json_schema,omitempty"`
}

type openAIJSONSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
	Strict bool            `json:"strict"`
}

func (openAI) request(key, model string, req Request, maxOut int) (string, map[string]string, any) {
	format := openAIFormat{Type: "json_object"}
	if len(req.Schema) > 0 {
		format = openAIFormat{Type: "json_schema", JSONSchema: &openAIJSONSchema{Name: req.SchemaName, Schema: req.Schema, Strict: true}}
	}
	return "/chat/completions", map[string]string{"Authorization": "Bearer " + key}, openAIRequest{
		Model: model, Messages: chatMessages(req), ResponseFormat: format, MaxCompletionTokens: maxOut,
	}
}

type openAIResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     *int `json:"prompt_tokens"`
		CompletionTokens *int `json:"completion_tokens"`
	} `json:"usage"`
}

func (openAI) decode(body []byte, _ Request) (Response, error) {
	var r openAIResponse
	if err := decodeJSON(body, &r); err != nil {
		return Response{}, err
	}
	if len(r.Choices) == 0 {
		return Response{}, malformed("no choices")
	}
	ch := r.Choices[0]
	switch {
	case ch.Message.Refusal != nil && *ch.Message.Refusal != "":
		return Response{}, &answerError{code: CodeRefusal, reason: "refusal", cause: errors.New("the model refused")}
	case ch.FinishReason == "content_filter":
		return Response{}, &answerError{code: CodeRefusal, reason: ch.FinishReason, cause: errors.New("the content filter stopped the answer")}
	case ch.FinishReason == "length":
		return Response{}, &answerError{code: CodeTruncated, reason: ch.FinishReason, cause: errors.New("the answer reached the token limit")}
	case ch.Message.Content == nil:
		return Response{}, malformed("no content (finish reason %q)", ch.FinishReason)
	}
	text, aerr := objectText([]byte(*ch.Message.Content))
	if aerr != nil {
		return Response{}, aerr
	}
	out := Response{Text: text, Model: r.Model}
	if r.Usage != nil && r.Usage.PromptTokens != nil && r.Usage.CompletionTokens != nil {
		out.Usage = Usage{InputTokens: *r.Usage.PromptTokens, OutputTokens: *r.Usage.CompletionTokens, Reported: true}
	}
	return out, nil
}

type openAIError struct {
	Error *struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"` // a string, a number or null
	} `json:"error"`
}

func (openAI) errorInfo(_ int, body []byte) errorInfo {
	var r openAIError
	if json.Unmarshal(body, &r) != nil || r.Error == nil {
		return errorInfo{}
	}
	code := jsonScalar(r.Error.Code)
	info := errorInfo{Code: r.Error.Type, Message: r.Error.Message}
	if code != "" {
		info.Code = code
	}
	info.Quota = code == "insufficient_quota" || r.Error.Type == "insufficient_quota"
	return info
}

// jsonScalar is a JSON string's value or a number's text; "" otherwise.
func jsonScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}
