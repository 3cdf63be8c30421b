package llm

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"
)

// gemini speaks the Gemini API's generateContent: POST
// {base}/v1beta/models/{model}:generateContent with x-goog-api-key, the
// instructions in systemInstruction, JSON through generationConfig
// (responseMimeType application/json and responseJsonSchema), the answer in
// candidates[0].content.parts[*].text.
type gemini struct{}

type geminiRequest struct {
	SystemInstruction *geminiContent  `json:"systemInstruction,omitempty"`
	Contents          []geminiContent `json:"contents"`
	GenerationConfig  geminiConfig    `json:"generationConfig"`
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiPart struct {
	Text    string `json:"text"`
	Thought bool   `json:"thought,omitempty"`
}

type geminiConfig struct {
	ResponseMimeType   string          `json:"responseMimeType"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	MaxOutputTokens    int             `json:"maxOutputTokens"`
}

// geminiRefusals are the finish reasons that mean the answer was blocked.
var geminiRefusals = map[string]bool{
	"SAFETY": true, "PROHIBITED_CONTENT": true, "BLOCKLIST": true, "RECITATION": true, "SPII": true, "IMAGE_SAFETY": true,
}

func (gemini) request(key, model string, req Request, maxOut int) (string, map[string]string, any) {
	body := geminiRequest{
		Contents: []geminiContent{{Role: "user", Parts: []geminiPart{{Text: req.User}}}},
		GenerationConfig: geminiConfig{
			ResponseMimeType: "application/json", ResponseJSONSchema: req.Schema, MaxOutputTokens: maxOut,
		},
	}
	if req.System != "" {
		body.SystemInstruction = &geminiContent{Parts: []geminiPart{{Text: req.System}}}
	}
	path := "/v1beta/models/" + url.PathEscape(strings.TrimPrefix(model, "models/")) + ":generateContent"
	return path, map[string]string{"x-goog-api-key": key}, body
}

type geminiResponse struct {
	Candidates []struct {
		Content *struct {
			Parts []geminiPart `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *struct {
		PromptTokenCount     *int `json:"promptTokenCount"`
		CandidatesTokenCount *int `json:"candidatesTokenCount"`
		ThoughtsTokenCount   int  `json:"thoughtsTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string `json:"modelVersion"`
}

func (gemini) decode(body []byte, _ Request) (Response, error) {
	var r geminiResponse
	if err := decodeJSON(body, &r); err != nil {
		return Response{}, err
	}
	if r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" {
		return Response{}, &answerError{code: CodeRefusal, reason: r.PromptFeedback.BlockReason, cause: errors.New("the prompt was blocked")}
	}
	if len(r.Candidates) == 0 {
		return Response{}, malformed("no candidates")
	}
	c := r.Candidates[0]
	switch {
	case c.FinishReason == "MAX_TOKENS":
		return Response{}, &answerError{code: CodeTruncated, reason: c.FinishReason, cause: errors.New("the answer reached the token limit")}
	case geminiRefusals[c.FinishReason]:
		return Response{}, &answerError{code: CodeRefusal, reason: c.FinishReason, cause: errors.New("the answer was blocked")}
	case c.Content == nil:
		return Response{}, malformed("no content (finish reason %q)", c.FinishReason)
	}
	var text strings.Builder
	for _, p := range c.Content.Parts {
		if !p.Thought {
			text.WriteString(p.Text)
		}
	}
	t, aerr := objectText([]byte(text.String()))
	if aerr != nil {
		return Response{}, aerr
	}
	out := Response{Text: t, Model: r.ModelVersion}
	if u := r.UsageMetadata; u != nil && u.PromptTokenCount != nil && u.CandidatesTokenCount != nil {
		// Thinking tokens are billed as output.
		out.Usage = Usage{InputTokens: *u.PromptTokenCount, OutputTokens: *u.CandidatesTokenCount + u.ThoughtsTokenCount, Reported: true}
	}
	return out, nil
}

type geminiError struct {
	Error *struct {
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type       string `json:"@type"`
			Reason     string `json:"reason"`
			RetryDelay string `json:"retryDelay"`
		} `json:"details"`
	} `json:"error"`
}

func (gemini) errorInfo(_ int, body []byte) errorInfo {
	var r geminiError
	if json.Unmarshal(body, &r) != nil || r.Error == nil {
		return errorInfo{}
	}
	info := errorInfo{Code: r.Error.Status, Message: r.Error.Message, Overloaded: r.Error.Status == "UNAVAILABLE"}
	for _, d := range r.Error.Details {
		switch {
		case d.Reason == "API_KEY_INVALID": // answered with 400 INVALID_ARGUMENT
			info.Auth = true
			info.Code = d.Reason
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
			if w, err := time.ParseDuration(d.RetryDelay); err == nil && w > 0 {
				info.RetryAfter = w
			}
		}
	}
	return info
}
