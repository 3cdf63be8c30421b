package platformsim_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
)

func TestBlueskySessions(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t)
	sim.AddAccount(platformsim.Account{Platform: "bluesky", ID: "did:plc:carol234567", Handle: "carol.test", Password: "pw-1"})
	x := sim.URL + "/bluesky/xrpc/"
	call := func(method, nsid, tok, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, x+nsid, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength == 0 {
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		return resp.StatusCode, decodeJSON(t, resp)
	}

	st, m := call(http.MethodPost, "com.atproto.server.createSession", "", `{"identifier":"carol.test","password":"nope"}`)
	if st != http.StatusUnauthorized || m["error"] != "AuthenticationRequired" {
		t.Errorf("bad password: got %d %v, want 401 AuthenticationRequired", st, m)
	}
	st, m = call(http.MethodPost, "com.atproto.server.createSession", "", `{"identifier":"did:plc:carol234567","password":"pw-1"}`)
	if st != http.StatusOK || m["did"] != "did:plc:carol234567" {
		t.Fatalf("createSession: got %d %v, want 200 with the DID", st, m)
	}
	access1, refresh1 := m["accessJwt"].(string), m["refreshJwt"].(string)

	if st, m = call(http.MethodGet, "com.atproto.server.getSession", refresh1, ""); st != http.StatusBadRequest || m["error"] != "InvalidToken" {
		t.Errorf("refresh JWT as access: got %d %v, want 400 InvalidToken", st, m)
	}
	st, m = call(http.MethodPost, "com.atproto.server.refreshSession", refresh1, "")
	if st != http.StatusOK || m["refreshJwt"] == refresh1 {
		t.Fatalf("refreshSession: got %d %v, want a new pair", st, m)
	}
	refresh2 := m["refreshJwt"].(string)
	if st, m = call(http.MethodPost, "com.atproto.server.refreshSession", refresh1, ""); st != http.StatusBadRequest || m["error"] != "ExpiredToken" {
		t.Errorf("old refresh JWT: got %d %v, want 400 ExpiredToken", st, m)
	}
	if st, _ = call(http.MethodGet, "com.atproto.server.getSession", access1, ""); st != http.StatusOK {
		t.Errorf("earlier access JWT: got %d, want 200 until it expires", st)
	}
	sim.AddFault(platformsim.Fault{Platform: "bluesky", Kind: platformsim.FaultInvalidGrant})
	if st, _ = call(http.MethodPost, "com.atproto.server.refreshSession", refresh2, ""); st != http.StatusBadRequest {
		t.Errorf("invalid_grant fault: got %d, want 400", st)
	}
	if n := sim.Calls("bluesky", "token_refresh"); n != 1 {
		t.Errorf("token_refresh: got %d, want 1", n)
	}

	body := `{"repo":"did:plc:carol234567","collection":"app.bsky.feed.post","rkey":"3kabcdefghijk","record":{"$type":"app.bsky.feed.post","text":"hi","createdAt":"2026-11-20T10:00:00.000Z"}}`
	if st, _ = call(http.MethodPost, "com.atproto.repo.createRecord", access1, body); st != http.StatusOK {
		t.Fatalf("createRecord: got %d, want 200", st)
	}
	if st, m = call(http.MethodPost, "com.atproto.repo.createRecord", access1, body); st != http.StatusInternalServerError {
		t.Errorf("duplicate rkey: got %d %v, want 500 like the reference PDS", st, m)
	}
	long := strings.Replace(body, `"hi"`, `"`+strings.Repeat("a", 301)+`"`, 1)
	long = strings.Replace(long, "3kabcdefghijk", "3kabcdefghijm", 1)
	if st, m = call(http.MethodPost, "com.atproto.repo.createRecord", access1, long); st != http.StatusBadRequest || m["error"] != "InvalidRequest" {
		t.Errorf("301 graphemes: got %d %v, want 400 InvalidRequest", st, m)
	}
	if st, m = call(http.MethodGet, "com.atproto.repo.getRecord?repo=carol.test&collection=app.bsky.feed.post&rkey=3kabcdefghijk", "", ""); st != http.StatusOK {
		t.Errorf("getRecord: got %d %v, want 200", st, m)
	}
}
