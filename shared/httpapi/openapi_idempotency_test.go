package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIIdempotencyKeyWhereHonoured fails when the document offers
// Idempotency-Key on a route that ignores it, or a route that honours it
// does not document it (and the 400 and 422 it can answer). Schemathesis
// found PATCH /v1/sites/{siteId} (admin) documenting a header the admin
// routes ignore, and five site routes without the 400 and 422 of the key.
func TestOpenAPIIdempotencyKeyWhereHonoured(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	for _, r := range New(Deps{}).Routes() {
		raw, ok := doc.Paths[r.Pattern][strings.ToLower(r.Method)]
		if !ok {
			continue // TestOpenAPIMatchesRoutes reports it
		}
		var op struct {
			Parameters []struct {
				Ref string `json:"$ref"`
			} `json:"parameters"`
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s %s: %v", r.Method, r.Pattern, err)
		}
		documented := false
		for _, p := range op.Parameters {
			documented = documented || p.Ref == "#/components/parameters/IdempotencyKey"
		}
		honoured := r.Access == SiteKey && r.Method != http.MethodGet && r.Method != http.MethodHead
		switch {
		case documented && !honoured:
			t.Errorf("%s %s documents Idempotency-Key, which the route ignores", r.Method, r.Pattern)
		case honoured && !documented:
			t.Errorf("%s %s honours Idempotency-Key and does not document it", r.Method, r.Pattern)
		case honoured:
			for _, code := range []string{"400", "409", "422"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s %s takes Idempotency-Key and does not document its %s", r.Method, r.Pattern, code)
				}
			}
		}
	}
}
