package httpapi

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/posse-dev/posse/shared/site"
)

// TestKeyCacheBoundsRevocation checks the warm-instance API key cache: a
// key revoked behind an instance's back passes for at most the TTL; one
// revoked through the instance is refused at once; unknown keys are never
// cached.
func TestKeyCacheBoundsRevocation(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: now}
	fs := newFakeSites()
	ctx := context.Background()
	st, err := fs.Create(ctx, site.NewSite{Name: "Blog", Timezone: "UTC", ReturnURL: "https://blog.example/back"})
	if err != nil {
		t.Fatal(err)
	}
	k1, secret1, _ := fs.IssueKey(ctx, st.ID, "one")
	k2, secret2, _ := fs.IssueKey(ctx, st.ID, "two")
	srv := New(Deps{Sites: fs, AdminKeySHA256: hash(adminKey), Now: clk.Now, KeyCacheTTL: 30 * time.Second})
	status := func(method, path, key string) int {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	for _, secret := range []string{secret1, secret2} {
		if got := status("GET", "/v1/site", secret); got != 200 {
			t.Fatalf("fresh key: got %d, want 200", got)
		}
	}
	// Revoked in the store, not through this instance: cached for the TTL.
	if err := fs.RevokeKey(ctx, st.ID, k1.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(29 * time.Second)
	if got := status("GET", "/v1/site", secret1); got != 200 {
		t.Errorf("revoked elsewhere, within the TTL: got %d, want 200 (cached)", got)
	}
	clk.Advance(time.Second)
	if got := status("GET", "/v1/site", secret1); got != 401 {
		t.Errorf("revoked elsewhere, at the TTL: got %d, want 401", got)
	}
	// Revoked through this instance: refused at once.
	if got := status("DELETE", "/v1/sites/"+st.ID+"/keys/"+k2.ID, adminKey); got != 204 {
		t.Fatalf("revoke: got %d, want 204", got)
	}
	if got := status("GET", "/v1/site", secret2); got != 401 {
		t.Errorf("revoked through this instance: got %d, want 401", got)
	}
	if got := status("GET", "/v1/site", site.KeyPrefix+"unknown"); got != 401 {
		t.Errorf("unknown key: got %d, want 401", got)
	}
	if n := len(srv.keys.m); n != 0 {
		t.Errorf("cached keys after both were refused: got %d, want 0", n)
	}
}
