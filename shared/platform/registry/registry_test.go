package registry_test

import (
	"net/http"
	"testing"

	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/registry"
)

func TestEveryPlatformHasAnAdapter(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Config{HTTPClient: &http.Client{}})
	pubs, ids := r.Publishers(), r.Identifiers()
	for _, p := range platform.All {
		pub, ok := r.Publisher(p)
		if !ok || pub.Name() != p || pubs[p] == nil || ids[p] == nil {
			t.Errorf("%s: publisher %v (%v), want one named %s with an identifier", p, pub, ok, p)
		}
	}
	if len(pubs) != len(platform.All) {
		t.Errorf("publishers: got %d, want %d", len(pubs), len(platform.All))
	}
	if _, ok := r.Publisher("myspace"); ok {
		t.Error("an unknown platform has an adapter")
	}
	if ids[platform.Bluesky] != r.Bluesky() {
		t.Error("the Bluesky identifier is not the Bluesky adapter")
	}
}

func TestBase(t *testing.T) {
	t.Parallel()
	if got := registry.New(registry.Config{}).Base(platform.X); got != "" {
		t.Errorf("without a base URL: got %q, want the adapter's default", got)
	}
	if got := registry.New(registry.Config{BaseURL: "http://127.0.0.1:4599"}).Base(platform.TikTok); got != "http://127.0.0.1:4599/tiktok" {
		t.Errorf("with a base URL: got %q", got)
	}
}
