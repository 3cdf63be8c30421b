package registry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/infra/platformsim/simtest"
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

// hostRecorder records the host of every request and refuses those not
// to allowed.
type hostRecorder struct {
	allowed string
	next    http.RoundTripper
	mu      sync.Mutex
	hosts   []string
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.URL.Host)
	h.mu.Unlock()
	if r.URL.Host != h.allowed {
		return nil, errors.New("refused by the test")
	}
	return h.next.RoundTrip(r)
}

// TestFederatedBaseURL checks that with a federated base URL a Mastodon
// account on any instance is identified through the simulator, and that
// without one the instance the account names is the one called.
func TestFederatedBaseURL(t *testing.T) {
	t.Parallel()
	sim := simtest.Start(t, simtest.Options{
		Accounts: []platformsim.Account{{Platform: "mastodon", ID: "109", Handle: "alice", AccessToken: "tok-alice"}}})
	simHost := strings.TrimPrefix(sim.URL, "http://")
	acct := platform.Account{AccessToken: "tok-alice", BaseURL: "https://mastodon.social"}
	for _, tc := range []struct {
		name      string
		federated string
		wantHost  string
		wantErr   bool
	}{
		{"routed", sim.URL, simHost, false},
		{"not routed", "", "mastodon.social", true},
	} {
		rec := &hostRecorder{allowed: simHost, next: sim.Client().Transport}
		// Mastodon instances are caller-chosen: the calls go through the
		// Instances client, not the platforms' HTTPClient.
		r := registry.New(registry.Config{BaseURL: sim.URL, FederatedBaseURL: tc.federated, HTTPClient: simtest.NoNetwork(t), Instances: &http.Client{Transport: rec}})
		id, err := r.Identifiers()[platform.Mastodon].WhoAmI(context.Background(), acct)
		if (err != nil) != tc.wantErr || len(rec.hosts) != 1 || rec.hosts[0] != tc.wantHost {
			t.Errorf("%s: got %+v %v calling %v, want one call to %s (error: %v)", tc.name, id, err, rec.hosts, tc.wantHost, tc.wantErr)
		}
		if !tc.wantErr && (id.ID != "109" || id.Handle != "alice@mastodon.social") {
			t.Errorf("%s: got %+v, want alice@mastodon.social (109)", tc.name, id)
		}
	}
}

func TestLocalBase(t *testing.T) {
	t.Parallel()
	for base, want := range map[string]bool{
		"": false, "https://api.example.com": false, "http://10.0.0.5:4700": false, "http://169.254.169.254": false,
		"http://127.0.0.1:4700": true, "http://[::1]:4700": true, "http://localhost:4700": true,
	} {
		if got := registry.LocalBase(base); got != want {
			t.Errorf("LocalBase(%q): got %v, want %v", base, got, want)
		}
	}
}

// TestSimulatorBlueskyVideo: with a simulator base URL the Bluesky video
// service is the simulator's too (it was the real video.bsky.app, so a
// video never published on the local stack), and the media is downloaded
// from loopback because the simulator is there.
func TestSimulatorBlueskyVideo(t *testing.T) {
	t.Parallel()
	const did = "did:plc:regvideo23456"
	sim := simtest.Start(t, simtest.Options{Accounts: []platformsim.Account{{Platform: "bluesky", ID: did, Handle: "reg.test", AccessToken: "tok-reg"}}})
	pub, _ := registry.New(registry.Config{BaseURL: sim.URL, HTTPClient: sim.Client(), MediaPollInterval: time.Millisecond}).Publisher(platform.Bluesky)
	acct := platform.Account{ID: did, Handle: "reg.test", AccessToken: "tok-reg", BaseURL: sim.URL + "/bluesky"}
	p := platform.Post{DeliveryID: "dlv-reg-video", Text: "film", Media: []platform.Media{{URL: sim.MediaURL("v.mp4"), Kind: platform.Video, AltText: "a film"}}}
	if _, err := pub.Publish(context.Background(), acct, p, &platformsim.MemJournal{}); err != nil {
		t.Fatalf("publish a video through the registry's Bluesky adapter: %v", err)
	}
}
