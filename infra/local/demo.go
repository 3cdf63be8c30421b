package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
