package platformsim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/posse-dev/posse/infra/platformsim"
)

// TestSecretsListsEveryIssuedCredential: the client secrets it was given,
// the codes and tokens an OAuth flow issued (the access token a refresh
// replaced too), a seeded account's token and password, and Bluesky's
// session JWTs are all in Secrets and in GET /_sim/secrets.
func TestSecretsListsEveryIssuedCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]platformsim.Client{"x": {ID: "x-client", Secret: "client-secret-x"}})
	e.sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "7", Handle: "m", AccessToken: "seeded-masto-token"})
	e.sim.AddAccount(platformsim.Account{Platform: "bluesky", ID: "did:plc:secrets", Handle: "s.bsky.social", Password: "seeded-app-password"})

	code := e.xCode(t)
	status, tok := e.xToken(t, xExchange(code), "client-secret-x")
	if status != 200 {
		t.Fatalf("x token: got %d %v, want 200", status, tok)
	}
	first := str(tok, "access_token")
	status, tok = e.xToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(tok, "refresh_token")}}, "client-secret-x")
	if status != 200 {
		t.Fatalf("x refresh: got %d %v, want 200", status, tok)
	}
	resp, err := http.Post(e.sim.URL+"/bluesky/xrpc/com.atproto.server.createSession", "application/json",
		strings.NewReader(`{"identifier":"s.bsky.social","password":"seeded-app-password"}`))
	if err != nil {
		t.Fatal(err)
	}
	sess := decodeJSON(t, resp)

	want := []string{"client-secret-x", code, first, str(tok, "access_token"), str(tok, "refresh_token"), "seeded-masto-token",
		"seeded-app-password", str(sess, "accessJwt"), str(sess, "refreshJwt")}
	got := e.sim.Secrets()
	resp, err = http.Get(e.sim.URL + "/_sim/secrets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served struct{ Secrets []string }
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if w == "" {
			t.Fatalf("credential %d of the flows is empty", i)
		}
		if !slices.Contains(got, w) {
			t.Errorf("Secrets lacks credential %d of the flows (%d listed)", i, len(got))
		}
		if !slices.Contains(served.Secrets, w) {
			t.Errorf("GET /_sim/secrets lacks credential %d of the flows (%d listed)", i, len(served.Secrets))
		}
	}
}

// TestAfterCreateSeesThePostBeforeTheAnswer: the hook is called with the
// post while the client still waits for the answer.
func TestAfterCreateSeesThePostBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	seen := make(chan platformsim.Post, 1)
	release := make(chan struct{})
	sim := platformsim.New(platformsim.Options{AfterCreate: func(p platformsim.Post) { seen <- p; <-release }})
	sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "9", Handle: "h", AccessToken: "tok-after-create"})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", srv.URL+"/mastodon/api/v1/statuses", strings.NewReader(url.Values{"status": {"hello"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer tok-after-create")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	var p platformsim.Post
	select {
	case p = <-seen:
	case code := <-answered:
		t.Fatalf("answered %d without calling the hook", code)
	}
	if p.Platform != "mastodon" || p.Text != "hello" {
		t.Errorf("hook got %+v, want the mastodon post", p)
	}
	select {
	case code := <-answered:
		t.Fatalf("the client got its answer (%d) before the hook returned", code)
	default:
	}
	close(release)
	if code := <-answered; code != 200 {
		t.Errorf("answer after the hook: got %d, want 200", code)
	}
}

// TestFaultsListsWhatIsPending: GET /_sim/faults shows each pending fault
// with the requests it will still affect, and drops it once used up.
func TestFaultsListsWhatIsPending(t *testing.T) {
	t.Parallel()
	sim, _ := startSim(t)
	sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: "9", Handle: "h", AccessToken: "tok-faults"})
	sim.AddFault(platformsim.Fault{Platform: "mastodon", Kind: platformsim.FaultServerError, Times: 2})
	list := func() []platformsim.Fault {
		t.Helper()
		resp, err := http.Get(sim.URL + "/_sim/faults")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Faults []platformsim.Fault }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out.Faults
	}
	if got := list(); len(got) != 1 || got[0].Kind != platformsim.FaultServerError || got[0].Times != 2 {
		t.Fatalf("pending: got %+v, want one server_error for 2 requests", got)
	}
	for i := range 2 {
		req, _ := http.NewRequest("POST", sim.URL+"/mastodon/api/v1/statuses", strings.NewReader(url.Values{"status": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer tok-faults")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := 1 - i; len(list()) != want {
			t.Fatalf("after request %d: got %d pending faults, want %d", i+1, len(list()), want)
		}
	}
}
