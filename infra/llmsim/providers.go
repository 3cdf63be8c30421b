package llmsim

// Each provider's request checks and answer shapes, as its API reference
// documents them.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/posse-dev/posse/shared/llm"
)

// present reports whether a raw JSON value was sent and is not null.
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

func at(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// chatRequest is the part OpenAI's and Cohere's chat requests share.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// messages reads the system and the last user message of a chat request
// and records where they were.
func (r chatRequest) messages(c *Call, systemRoles ...string) input {
	in := input{model: r.Model}
	for i, m := range r.Messages {
		switch {
		case m.Role == "user":
			in.user = textOf(m.Content)
			c.UserAt = at("messages", i)
		case contains(systemRoles, m.Role):
			in.system += textOf(m.Content)
			if c.SystemAt == "" {
				c.SystemAt = at("messages", i)
			}
		}
	}
	c.Model = r.Model
	c.SystemChars, c.UserChars = chars(in.system), chars(in.user)
	return in
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// openAI: POST /openai/v1/chat/completions, Authorization: Bearer.
type openAI struct{}

func (openAI) name() llm.Name                       { return llm.OpenAI }
func (openAI) key(r *http.Request) (string, string) { return "Authorization", bearer(r) }
func (openAI) overloadStatus() int                  { return http.StatusServiceUnavailable }

func (openAI) parse(_ *http.Request, body []byte, c *Call) (input, string) {
	var req struct {
		chatRequest
		ResponseFormat *struct {
			Type       string `json:"type"`
			JSONSchema *struct {
				Name   string          `json:"name"`
				Schema json.RawMessage `json:"schema"`
				Strict bool            `json:"strict"`
			} `json:"json_schema"`
		} `json:"response_format"`
		MaxCompletionTokens *int `json:"max_completion_tokens"`
		MaxTokens           *int `json:"max_tokens"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return input{}, "We could not parse the JSON body of your request."
	}
	in := req.messages(c, "system", "developer")
	switch {
	case req.MaxCompletionTokens != nil:
		c.TokenLimitField, c.TokenLimit = "max_completion_tokens", *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		c.TokenLimitField, c.TokenLimit = "max_tokens", *req.MaxTokens
	}
	if rf := req.ResponseFormat; rf != nil {
		c.ResponseFormat = rf.Type
		if js := rf.JSONSchema; js != nil {
			c.SchemaName, c.Strict = js.Name, js.Strict
			if present(js.Schema) {
				c.SchemaAt = "response_format.json_schema.schema"
			}
		}
		if rf.Type == "json_schema" && (rf.JSONSchema == nil || rf.JSONSchema.Name == "") {
			return in, "Missing required parameter: 'response_format.json_schema.name'."
		}
	}
	switch {
	case in.model == "":
		return in, "you must provide a model parameter"
	case in.user == "":
		return in, "'messages' must contain a user message"
	}
	return in, ""
}

func (openAI) success(seq int, now time.Time, in input, answer string, u *usage) any {
	m := map[string]any{
		"id": fmt.Sprintf("chatcmpl-sim%06d", seq), "object": "chat.completion", "created": now.Unix(), "model": in.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": answer, "refusal": nil, "annotations": []any{}},
			"logprobs":      nil,
			"finish_reason": "stop",
		}},
	}
	if u != nil {
		m["usage"] = map[string]any{"prompt_tokens": u.in, "completion_tokens": u.out, "total_tokens": u.in + u.out}
	}
	return m
}

// openAIRefusal is what the refusal fault's model says.
const openAIRefusal = "I'm sorry, but I can't help with that request."

func (openAI) refusal(seq int, now time.Time, in input, u usage) any {
	out := tokens(openAIRefusal)
	return map[string]any{
		"id": fmt.Sprintf("chatcmpl-sim%06d", seq), "object": "chat.completion", "created": now.Unix(), "model": in.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": nil, "refusal": openAIRefusal, "annotations": []any{}},
			"logprobs":      nil,
			"finish_reason": "stop",
		}},
		"usage": map[string]any{"prompt_tokens": u.in, "completion_tokens": out, "total_tokens": u.in + out},
	}
}

func (openAI) failure(e apiError) (int, any) {
	status, typ, msg := e.status, "invalid_request_error", e.message
	var code any
	switch e.kind {
	case errAuth:
		status, code = http.StatusUnauthorized, "invalid_api_key"
		msg = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
		if e.missingKey {
			code = nil
			msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth."
		}
	case errRateLimit:
		typ, code = "requests", "rate_limit_exceeded"
	case errServer, errOverloaded:
		typ = "server_error"
	}
	return status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
}

// anthropic: POST /anthropic/v1/messages, x-api-key and anthropic-version.
type anthropic struct{}

func (anthropic) name() llm.Name                       { return llm.Anthropic }
func (anthropic) key(r *http.Request) (string, string) { return "x-api-key", r.Header.Get("x-api-key") }
func (anthropic) overloadStatus() int                  { return 529 }

// anthropicVersions are the anthropic-version values the API knows.
var anthropicVersions = []string{"2023-06-01", "2023-01-01"}

func (anthropic) parse(r *http.Request, body []byte, c *Call) (input, string) {
	version := r.Header.Get("anthropic-version")
	if version != "" {
		c.Headers["anthropic-version"] = version
	}
	var req struct {
		Model     string          `json:"model"`
		MaxTokens *int            `json:"max_tokens"`
		System    json.RawMessage `json:"system"`
		Messages  []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
		ToolChoice *struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tool_choice"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return input{}, "There was an issue with your request body: it is not valid JSON."
	}
	in := input{model: req.Model, system: textOf(req.System)}
	c.Model = req.Model
	if present(req.System) {
		c.SystemAt = "system"
	}
	if req.MaxTokens != nil {
		c.TokenLimitField, c.TokenLimit = "max_tokens", *req.MaxTokens
	}
	roleProblem := ""
	for i, m := range req.Messages {
		switch m.Role {
		case "user":
			in.user, c.UserAt = textOf(m.Content), at("messages", i)
		case "assistant":
		default:
			roleProblem = fmt.Sprintf("messages.%d.role: Unexpected role %q. The Messages API accepts a top-level `system` parameter, not %q as an input message role.", i, m.Role, m.Role)
		}
	}
	c.SystemChars, c.UserChars = chars(in.system), chars(in.user)
	toolIndex := -1
	if tc := req.ToolChoice; tc != nil {
		c.ResponseFormat, c.SchemaName = "tool_choice:"+tc.Type, tc.Name
		switch tc.Type {
		case "tool":
			for i, t := range req.Tools {
				if t.Name == tc.Name {
					toolIndex = i
				}
			}
			if toolIndex < 0 {
				return in, fmt.Sprintf("tool_choice.name: tool %q not found in tools", tc.Name)
			}
		case "any":
			if len(req.Tools) > 0 {
				toolIndex = 0
			}
		}
	}
	if toolIndex >= 0 {
		in.tool = req.Tools[toolIndex].Name
		if present(req.Tools[toolIndex].InputSchema) {
			c.SchemaAt = at("tools", toolIndex) + ".input_schema"
		}
	}
	switch {
	case version == "":
		return in, "anthropic-version: header is required"
	case !contains(anthropicVersions, version):
		return in, fmt.Sprintf("anthropic-version: %q is not a valid version", version)
	case req.Model == "":
		return in, "model: Field required"
	case req.MaxTokens == nil:
		return in, "max_tokens: Field required"
	case *req.MaxTokens < 1:
		return in, "max_tokens: Input should be greater than or equal to 1"
	case roleProblem != "":
		return in, roleProblem
	case in.user == "":
		return in, "messages: at least one user message is required"
	}
	return in, ""
}

func (anthropic) success(seq int, _ time.Time, in input, answer string, u *usage) any {
	content, stop := []any{map[string]any{"type": "text", "text": answer}}, "end_turn"
	if in.tool != "" {
		content = []any{map[string]any{
			"type": "tool_use", "id": fmt.Sprintf("toolu_sim%06d", seq), "name": in.tool, "input": json.RawMessage(answer),
		}}
		stop = "tool_use"
	}
	m := map[string]any{
		"id": fmt.Sprintf("msg_sim%06d", seq), "type": "message", "role": "assistant", "model": in.model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
	}
	if u != nil {
		m["usage"] = map[string]any{"input_tokens": u.in, "output_tokens": u.out}
	}
	return m
}

func (anthropic) refusal(seq int, _ time.Time, in input, u usage) any {
	return map[string]any{
		"id": fmt.Sprintf("msg_sim%06d", seq), "type": "message", "role": "assistant", "model": in.model,
		"content": []any{}, "stop_reason": "refusal", "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": u.in, "output_tokens": 0},
	}
}

func (anthropic) failure(e apiError) (int, any) {
	status, typ, msg := e.status, "invalid_request_error", e.message
	switch e.kind {
	case errAuth:
		status, typ, msg = http.StatusUnauthorized, "authentication_error", "invalid x-api-key"
		if e.missingKey {
			msg = "x-api-key header is required"
		}
	case errTooLarge:
		typ = "request_too_large"
	case errRateLimit:
		typ = "rate_limit_error"
	case errServer:
		typ = "api_error"
	case errOverloaded:
		typ, msg = "overloaded_error", "Overloaded"
	}
	return status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}}
}

// gemini: POST /gemini/v1beta/models/{model}:generateContent,
// x-goog-api-key (or the key query parameter).
type gemini struct{}

func (gemini) name() llm.Name      { return llm.Gemini }
func (gemini) overloadStatus() int { return http.StatusServiceUnavailable }

func (gemini) key(r *http.Request) (string, string) {
	if k := r.Header.Get("x-goog-api-key"); k != "" {
		return "x-goog-api-key", k
	}
	if k := r.URL.Query().Get("key"); k != "" {
		return "key (query)", k
	}
	return "x-goog-api-key", ""
}

func (gemini) parse(r *http.Request, body []byte, c *Call) (input, string) {
	model, ok := strings.CutSuffix(r.PathValue("call"), ":generateContent")
	c.Model = model
	var req struct {
		SystemInstruction *struct {
			Parts []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"systemInstruction"`
		Contents []struct {
			Role  string `json:"role"`
			Parts []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"contents"`
		GenerationConfig *struct {
			ResponseMimeType   string          `json:"responseMimeType"`
			ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
			ResponseSchema     json.RawMessage `json:"responseSchema"`
			MaxOutputTokens    *int            `json:"maxOutputTokens"`
		} `json:"generationConfig"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return input{}, "Invalid JSON payload received."
	}
	in := input{model: model}
	if si := req.SystemInstruction; si != nil {
		c.SystemAt = "systemInstruction"
		for _, p := range si.Parts {
			in.system += p.Text
		}
	}
	for i, ct := range req.Contents {
		if ct.Role == "user" || ct.Role == "" {
			in.user, c.UserAt = "", at("contents", i)
			for _, p := range ct.Parts {
				in.user += p.Text
			}
		}
	}
	c.SystemChars, c.UserChars = chars(in.system), chars(in.user)
	schemas := 0
	if gc := req.GenerationConfig; gc != nil {
		c.ResponseFormat = gc.ResponseMimeType
		if gc.MaxOutputTokens != nil {
			c.TokenLimitField, c.TokenLimit = "generationConfig.maxOutputTokens", *gc.MaxOutputTokens
		}
		if present(gc.ResponseSchema) {
			c.SchemaAt = "generationConfig.responseSchema"
			schemas++
		}
		if present(gc.ResponseJSONSchema) {
			c.SchemaAt = "generationConfig.responseJsonSchema"
			schemas++
		}
	}
	switch {
	case !ok || model == "":
		return in, "the simulator serves models/{model}:generateContent only"
	case len(req.Contents) == 0:
		return in, "* GenerateContentRequest.contents: contents is not specified"
	case schemas > 1:
		return in, "responseSchema and responseJsonSchema cannot both be set"
	case schemas == 1 && c.ResponseFormat != "application/json":
		return in, "a response schema needs responseMimeType application/json"
	case in.user == "":
		return in, "* GenerateContentRequest.contents: a user turn with text is required"
	}
	return in, ""
}

func (gemini) success(seq int, _ time.Time, in input, answer string, u *usage) any {
	m := map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"parts": []any{map[string]any{"text": answer}}, "role": "model"},
			"finishReason": "STOP",
			"index":        0,
		}},
		"modelVersion": in.model,
		"responseId":   fmt.Sprintf("sim%06d", seq),
	}
	if u != nil {
		m["usageMetadata"] = map[string]any{"promptTokenCount": u.in, "candidatesTokenCount": u.out, "totalTokenCount": u.in + u.out}
	}
	return m
}

func (gemini) refusal(seq int, _ time.Time, in input, u usage) any {
	return map[string]any{
		"promptFeedback": map[string]any{"blockReason": "SAFETY"},
		"usageMetadata":  map[string]any{"promptTokenCount": u.in, "totalTokenCount": u.in},
		"modelVersion":   in.model,
		"responseId":     fmt.Sprintf("sim%06d", seq),
	}
}

// googleStatus is the google.rpc status name of an HTTP status.
func googleStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}

func (gemini) failure(e apiError) (int, any) {
	status, msg := e.status, e.message
	var details []any
	switch e.kind {
	case errAuth:
		// Google answers a wrong key 400 API_KEY_INVALID, a missing one 403.
		status, msg = http.StatusBadRequest, "API key not valid. Please pass a valid API key."
		details = []any{map[string]any{
			"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
			"metadata": map[string]any{"service": "generativelanguage.googleapis.com"},
		}}
		if e.missingKey {
			status, details = http.StatusForbidden, nil
			msg = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
		}
	case errRateLimit:
		msg = "You exceeded your current quota, please check your plan and billing details."
		details = []any{map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fmt.Sprintf("%ds", e.retryAfter)}}
	}
	body := map[string]any{"code": status, "message": msg, "status": googleStatus(status)}
	if details != nil {
		body["details"] = details
	}
	return status, map[string]any{"error": body}
}

// cohere: POST /cohere/v2/chat, Authorization: Bearer.
type cohere struct{}

func (cohere) name() llm.Name                       { return llm.Cohere }
func (cohere) key(r *http.Request) (string, string) { return "Authorization", bearer(r) }
func (cohere) overloadStatus() int                  { return http.StatusServiceUnavailable }

func (cohere) parse(_ *http.Request, body []byte, c *Call) (input, string) {
	var req struct {
		chatRequest
		ResponseFormat *struct {
			Type       string          `json:"type"`
			JSONSchema json.RawMessage `json:"json_schema"`
			Schema     json.RawMessage `json:"schema"`
		} `json:"response_format"`
		MaxTokens *int `json:"max_tokens"`
		Stream    bool `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return input{}, "invalid request: the body is not valid JSON"
	}
	in := req.messages(c, "system")
	if req.MaxTokens != nil {
		c.TokenLimitField, c.TokenLimit = "max_tokens", *req.MaxTokens
	}
	if rf := req.ResponseFormat; rf != nil {
		c.ResponseFormat = rf.Type
		switch {
		case present(rf.JSONSchema):
			c.SchemaAt = "response_format.json_schema"
		case present(rf.Schema):
			c.SchemaAt = "response_format.schema"
		}
	}
	switch {
	case req.Stream:
		return in, "the simulator does not stream; send stream false"
	case in.model == "":
		return in, "invalid request: model is required"
	case in.user == "":
		return in, "invalid request: messages must contain a user message"
	}
	return in, ""
}

func (cohere) success(seq int, _ time.Time, _ input, answer string, u *usage) any {
	m := map[string]any{
		"id":            fmt.Sprintf("sim-%06d", seq),
		"finish_reason": "COMPLETE",
		"message":       map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "text", "text": answer}}},
	}
	if u != nil {
		t := map[string]any{"input_tokens": u.in, "output_tokens": u.out}
		m["usage"] = map[string]any{"billed_units": t, "tokens": t}
	}
	return m
}

func (cohere) refusal(seq int, _ time.Time, _ input, u usage) any {
	t := map[string]any{"input_tokens": u.in, "output_tokens": 0}
	return map[string]any{
		"id":            fmt.Sprintf("sim-%06d", seq),
		"finish_reason": "ERROR_TOXIC",
		"message":       map[string]any{"role": "assistant", "content": []any{}},
		"usage":         map[string]any{"billed_units": t, "tokens": t},
	}
}

func (cohere) failure(e apiError) (int, any) {
	status, msg := e.status, e.message
	if e.kind == errAuth {
		status, msg = http.StatusUnauthorized, "invalid api token"
		if e.missingKey {
			msg = "no api key supplied"
		}
	}
	return status, map[string]any{"id": "sim-error", "message": msg}
}
