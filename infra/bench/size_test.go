package main

import "testing"

func TestDepOf(t *testing.T) {
	t.Parallel()
	tests := []struct{ sym, want string }{
		{"github.com/aws/aws-sdk-go-v2/service/dynamodb/schemas.init.0", "github.com/aws/aws-sdk-go-v2/service/dynamodb"},
		{"github.com/aws/aws-sdk-go-v2/service/kms.(*Client).Decrypt", "github.com/aws/aws-sdk-go-v2/service/kms"},
		{"github.com/aws/aws-sdk-go-v2/aws/signer/v4.(*Signer).SignHTTP", "github.com/aws/aws-sdk-go-v2"},
		{"github.com/posse-dev/posse/shared/platform/x.(*Adapter).Publish", "github.com/posse-dev/posse/shared/platform"},
		{"github.com/posse-dev/posse/shared/httpapi..gobytes.1", "github.com/posse-dev/posse/shared/httpapi"},
		{"golang.org/x/text/unicode/norm.decomps", "golang.org/x/text"},
		{"crypto/internal/fips140/nistec.p256PrecomputedEmbed", "crypto"},
		{"net/http.(*Transport).dialConn", "net/http"},
		{"encoding/json/v2.parseFieldOptions", "encoding/json"},
		{"slices.SortFunc[go.shape.[]string,go.shape.string]", "slices"},
		{"runtime.mallocgc", "runtime"},
		{"go:func.*", "(go:func linker data)"},
		{"main.main", "main"},
	}
	for _, tt := range tests {
		t.Run(tt.sym, func(t *testing.T) {
			t.Parallel()
			if got := depOf(tt.sym); got != tt.want {
				t.Errorf("depOf(%q) = %q, want %q", tt.sym, got, tt.want)
			}
		})
	}
}
