package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/posse-dev/posse/shared/apperr"
)

// TestDecodeJSONNamesTheType: a value of the wrong JSON type is refused
// naming the field and the type the document gives it. Schemathesis sent
// {"overlapSeconds": 10206.0} and {"maxMessagesPerSecond": 264.0} (integers
// in the document) and was told "must be a number", which it was.
func TestDecodeJSONNamesTheType(t *testing.T) {
	t.Parallel()
	type body struct {
		Count int     `json:"count"`
		Rate  float64 `json:"rate"`
		On    bool    `json:"on"`
		Name  string  `json:"name"`
		Tags  []string
	}
	tests := []struct{ in, field, message string }{
		{`{"count": 10206.0}`, "count", "must be an integer"},
		{`{"count": 1.5}`, "count", "must be an integer"},
		{`{"count": "3"}`, "count", "must be an integer"},
		{`{"rate": "fast"}`, "rate", "must be a number"},
		{`{"on": 1}`, "on", "must be a boolean"},
		{`{"name": 42}`, "name", "must be a string"},
		{`{"Tags": "a"}`, "Tags", "must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.in))
			var v body
			e, ok := apperr.As(decodeJSON(httptest.NewRecorder(), r, 1<<10, &v))
			if !ok || e.Kind != apperr.KindInvalid || len(e.Problems) != 1 {
				t.Fatalf("decode %s: got %v, want one invalid field", tt.in, e)
			}
			if p := e.Problems[0]; p.Field != tt.field || p.Message != tt.message {
				t.Errorf("decode %s: got %s %q, want %s %q", tt.in, p.Field, p.Message, tt.field, tt.message)
			}
		})
	}
}
