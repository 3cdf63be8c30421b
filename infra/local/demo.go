package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// demoSite is the site (and its API key) created for the ready block.
type demoSite struct {
	id, key string
	err     error
}

// createDemoSite calls the API through the gateway with the admin key, as
// a person would: POST /sites, then POST /sites/{id}/keys.
func createDemoSite(ctx context.Context, apiURL, adminKey string) demoSite {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var site struct {
		ID string `json:"id"`
	}
	err := postJSON(ctx, apiURL+"/sites", adminKey, map[string]string{
		"name": "Demo site", "timezone": "Europe/Berlin", "returnUrl": apiURL + "/health",
	}, &site)
	if err != nil {
		return demoSite{err: err}
	}
	if site.ID == "" {
		return demoSite{err: fmt.Errorf("POST /sites answered without an id")}
	}
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := postJSON(ctx, apiURL+"/sites/"+url.PathEscape(site.ID)+"/keys", adminKey, map[string]string{"name": "make dev"}, &key); err != nil {
		return demoSite{id: site.ID, err: err}
	}
	if key.Key == "" {
		return demoSite{id: site.ID, err: fmt.Errorf("POST /sites/%s/keys answered without a key", site.ID)}
	}
	return demoSite{id: site.ID, key: key.Key}
}

// postJSON posts body and decodes a 201 answer into out; any other status
// is an error quoting the start of the answer (never the key).
func postJSON(ctx context.Context, u, bearer string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		if len(data) > 300 {
			data = data[:300]
		}
		return fmt.Errorf("POST %s: answered %d, want 201: %s", u, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", u, err)
	}
	return nil
}

// demoAccounts are the accounts the simulator knows from the start, so the
// README's manual connections work as written under make dev: a Mastodon
// token good on any instance URL (every instance is the simulator there)
// and a Bluesky handle with its app password.
type demoAccounts struct {
	mastodonToken, blueskyHandle, blueskyPassword string
	err                                           error
}

// demoBlueskyHandle is the handle of the README's Bluesky example.
const demoBlueskyHandle = "me.bsky.social"

// seedDemoAccounts tells the simulator about the demo accounts, with
// credentials new on every start.
func seedDemoAccounts(ctx context.Context, simURL string) demoAccounts {
	tok := make([]byte, 24)
	pw := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return demoAccounts{err: fmt.Errorf("generate demo credentials: %w", err)}
	}
	if _, err := rand.Read(pw); err != nil {
		return demoAccounts{err: fmt.Errorf("generate demo credentials: %w", err)}
	}
	d := demoAccounts{
		mastodonToken: "sim-mastodon-" + base64.RawURLEncoding.EncodeToString(tok),
		blueskyHandle: demoBlueskyHandle,
		// An app password's shape: four groups of four.
		blueskyPassword: appPassword(pw),
	}
	for _, a := range []map[string]string{
		{"platform": "mastodon", "accountId": "1", "handle": "me", "accessToken": d.mastodonToken},
		{"platform": "bluesky", "accountId": "did:plc:makedevdemoaccount", "handle": d.blueskyHandle, "password": d.blueskyPassword},
	} {
		if err := postSim(ctx, simURL+"/_sim/accounts", a); err != nil {
			return demoAccounts{err: err}
		}
	}
	return d
}

// appPassword formats 16 random bytes as xxxx-xxxx-xxxx-xxxx.
func appPassword(b []byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}

// postSim posts body to a simulator control endpoint, which answers 204.
func postSim(ctx context.Context, u string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s: answered %d, want 204", u, resp.StatusCode)
	}
	return nil
}
