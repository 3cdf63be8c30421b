package connection_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/connection/connectiontest"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/platform"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func tokenVersion(t *testing.T, item map[string]types.AttributeValue) int64 {
	t.Helper()
	n, ok := item["token_version"].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("token_version: got %T, want a number", item["token_version"])
	}
	v, _ := strconv.ParseInt(n.Value, 10, 64)
	return v
}

// TestRefreshRaceIsSingleFlight: 20 concurrent callers need a fresh token
// for one X connection (X rotates refresh tokens). Exactly one refresh call
// reaches X, and every caller ends with the new token.
func TestRefreshRaceIsSingleFlight(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{})
	id := e.Connect(platform.X)
	before := e.Credentials(e.Site.ID, id)
	e.Clock.Advance(2*time.Hour - 10*time.Minute) // inside the 30-minute refresh window
	ctx, cancel := context.WithTimeout(e.Ctx, 60*time.Second)
	defer cancel()

	const n = 20
	tokens := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			acct, err := e.Refresher.Ensure(ctx, e.Site.ID, id)
			tokens[i], errs[i] = acct.AccessToken, err
		}()
	}
	close(start)
	wg.Wait()

	if got := e.Sim.Calls("x", "token_refresh"); got != 1 {
		t.Fatalf("refresh calls that reached X: got %d, want exactly 1", got)
	}
	after := e.RememberCredentials(e.Site.ID, id)
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken || after.RefreshToken == "" {
		t.Fatal("stored credentials: want a new access token and a new, non-empty refresh token")
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		} else if tokens[i] != after.AccessToken {
			t.Errorf("caller %d: got a token other than the stored new one", i)
		}
	}
	if v := tokenVersion(t, e.Item(e.Site.ID, id)); v != 2 {
		t.Errorf("token_version: got %d, want 2 (connect, one refresh)", v)
	}
	c, err := e.Service.Get(e.Ctx, e.Site.ID, id)
	if err != nil || c.Status != connection.StatusActive || c.RefreshedAt == nil {
		t.Errorf("connection after refresh: got %+v, %v; want active with refreshedAt", c, err)
	}
	// The refreshed token works at X.
	if _, err := e.Refresher.Validate(e.Ctx, e.Site.ID, id); err != nil {
		t.Errorf("Validate with the new token: %v", err)
	}
	e.AssertLogsClean()
}

func TestInvalidGrantMarksBroken(t *testing.T) {
	t.Parallel()
	for _, p := range []platform.Name{platform.X, platform.TikTok, platform.Bluesky} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			e := connectiontest.New(t, connectiontest.Options{})
			var id string
			if p == platform.Bluesky {
				c, err := e.Service.Connect(e.Ctx, e.Site.ID, connection.ManualRequest{Platform: p, Handle: e.BlueskyHandle, AppPassword: e.BlueskyPassword})
				if err != nil {
					t.Fatalf("Connect bluesky: %v", err)
				}
				id = c.ID
				e.RememberCredentials(e.Site.ID, id)
			} else {
				id = e.Connect(p)
			}
			e.Sim.AddFault(platformsim.Fault{Platform: string(p), Kind: platformsim.FaultInvalidGrant})
			e.Clock.Advance(2*time.Hour - 5*time.Minute)
			_, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, id)
			if !apperr.Is(err, apperr.KindReconnect) {
				t.Fatalf("Ensure after invalid_grant: got %v, want a reconnect error", err)
			}
			c, err := e.Service.Get(e.Ctx, e.Site.ID, id)
			if err != nil || c.Status != connection.StatusBroken || c.StatusReason == "" {
				t.Fatalf("connection: got status %q reason %q (%v), want broken with a reason", c.Status, c.StatusReason, err)
			}
			if _, ok := e.Item(e.Site.ID, id)["GSI2PK"]; ok {
				t.Error("a broken connection is still in the refresh index")
			}
			if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, id); !apperr.Is(err, apperr.KindReconnect) {
				t.Errorf("Ensure on a broken connection: got %v, want reconnect", err)
			}
			e.AssertLogsClean()
		})
	}
}

// TestRunOverTwoMonths drives the scheduled pass across the life of one
// connection per platform.
func TestRunOverTwoMonths(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{})
	ids := map[platform.Name]string{}
	for _, p := range []platform.Name{platform.X, platform.LinkedIn, platform.Facebook, platform.Instagram, platform.Threads, platform.TikTok} {
		ids[p] = e.Connect(p)
	}
	bs, err := e.Service.Connect(e.Ctx, e.Site.ID, connection.ManualRequest{Platform: platform.Bluesky, Handle: e.BlueskyHandle, AppPassword: e.BlueskyPassword})
	if err != nil {
		t.Fatalf("connect bluesky: %v", err)
	}
	ids[platform.Bluesky] = bs.ID
	ms, err := e.Service.Connect(e.Ctx, e.Site.ID, connection.ManualRequest{Platform: platform.Mastodon, InstanceURL: e.MastodonURL, AccessToken: e.MastodonToken})
	if err != nil {
		t.Fatalf("connect mastodon: %v", err)
	}
	ids[platform.Mastodon] = ms.ID
	for _, id := range ids {
		e.RememberCredentials(e.Site.ID, id)
	}

	st, err := e.Refresher.Run(e.Ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Refreshed != 0 || st.MarkedBroken != 0 || st.Failed != 0 {
		t.Errorf("first Run: got %+v, want nothing to do", st)
	}

	e.Clock.Advance(100 * time.Minute) // X, TikTok and Bluesky tokens (2 h) are due
	st, err = e.Refresher.Run(e.Ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Refreshed != 3 || st.Failed != 0 {
		t.Errorf("Run after 100 min: got %+v, want 3 refreshed (x, tiktok, bluesky)", st)
	}
	for _, p := range []platform.Name{platform.X, platform.TikTok, platform.Bluesky} {
		if n := e.Sim.Calls(string(p), "token_refresh"); n != 1 {
			t.Errorf("%s token_refresh calls: got %d, want 1", p, n)
		}
		e.RememberCredentials(e.Site.ID, ids[p])
	}

	e.Clock.Advance(54 * 24 * time.Hour) // LinkedIn, Instagram, Threads: < 7 days left
	st, err = e.Refresher.Run(e.Ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Refreshed != 5 || st.MarkedExpiring != 1 || st.Failed != 0 {
		t.Errorf("Run after 54 days: got %+v, want 5 refreshed (x, tiktok, bluesky, instagram, threads) and linkedin expiring", st)
	}
	li, _ := e.Service.Get(e.Ctx, e.Site.ID, ids[platform.LinkedIn])
	if li.Status != connection.StatusExpiring {
		t.Errorf("linkedin: got %q, want expiring", li.Status)
	}
	for _, p := range []platform.Name{platform.Instagram, platform.Threads} {
		c, _ := e.Service.Get(e.Ctx, e.Site.ID, ids[p])
		if c.TokenExpiresAt == nil || c.TokenExpiresAt.Sub(e.Clock.Now()) < 50*24*time.Hour {
			t.Errorf("%s: token expires %v, want ~60 days ahead after the extension", p, c.TokenExpiresAt)
		}
		e.RememberCredentials(e.Site.ID, ids[p])
	}
	for _, p := range []platform.Name{platform.Facebook, platform.Mastodon} {
		if _, ok := e.Item(e.Site.ID, ids[p])["GSI2PK"]; ok {
			t.Errorf("%s: a token that never expires is in the refresh index", p)
		}
	}

	e.Clock.Advance(7 * 24 * time.Hour) // LinkedIn's 60 days are over
	st, err = e.Refresher.Run(e.Ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.MarkedBroken != 1 {
		t.Errorf("Run after 61 days: got %+v, want linkedin broken", st)
	}
	li, _ = e.Service.Get(e.Ctx, e.Site.ID, ids[platform.LinkedIn])
	if li.Status != connection.StatusBroken || li.StatusReason != "token_expired" {
		t.Errorf("linkedin: got %q (%q), want broken (token_expired)", li.Status, li.StatusReason)
	}
	for p, id := range ids {
		if p == platform.LinkedIn {
			continue
		}
		if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, id); err != nil {
			t.Errorf("%s Ensure after two months: %v", p, err)
		}
	}
	e.AssertLogsClean()
}

func TestValidationRequestedThenRun(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{})
	good := e.Connect(platform.LinkedIn)
	bad := e.Connect(platform.X)
	ms, err := e.Service.Connect(e.Ctx, e.Site.ID, connection.ManualRequest{Platform: platform.Mastodon, InstanceURL: e.MastodonURL, AccessToken: e.MastodonToken})
	if err != nil {
		t.Fatalf("connect mastodon: %v", err)
	}
	for _, id := range []string{good, bad, ms.ID} {
		c, err := e.Service.RequestValidation(e.Ctx, e.Site.ID, id)
		if err != nil || c.ValidationRequestedAt == nil {
			t.Fatalf("RequestValidation: got %+v, %v; want validationRequestedAt set", c, err)
		}
	}
	// X refuses the token on "who am I".
	e.Sim.AddFault(platformsim.Fault{Platform: "x", Kind: platformsim.FaultExpiredToken})
	e.Clock.Advance(time.Minute)
	st, err := e.Refresher.Run(e.Ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Validated != 3 || st.ValidateFailed != 0 {
		t.Errorf("Run: got %+v, want 3 validated", st)
	}
	for id, want := range map[string]connection.Status{good: connection.StatusActive, ms.ID: connection.StatusActive, bad: connection.StatusBroken} {
		c, _ := e.Service.Get(e.Ctx, e.Site.ID, id)
		if c.Status != want || c.ValidatedAt == nil || c.ValidationRequestedAt != nil {
			t.Errorf("%s: got status %q validatedAt %v pending %v, want %q, validated, not pending", c.Platform, c.Status, c.ValidatedAt, c.ValidationRequestedAt, want)
		}
	}
	st, _ = e.Refresher.Run(e.Ctx)
	if st.Validated != 0 {
		t.Errorf("second Run: validated %d, want 0 (nothing pending)", st.Validated)
	}
	e.AssertLogsClean()
}

// TestReconnectUpdatesTheConnection: connecting the same account again
// keeps one connection and moves its token_version on.
func TestReconnectUpdatesTheConnection(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{})
	first := e.Connect(platform.TikTok)
	second := e.Connect(platform.TikTok)
	if first != second {
		t.Fatalf("reconnect: got a second connection %s, want %s updated", second, first)
	}
	if v := tokenVersion(t, e.Item(e.Site.ID, first)); v != 2 {
		t.Errorf("token_version after reconnect: got %d, want 2", v)
	}
	items, _, err := e.Service.List(e.Ctx, e.Site.ID, 50, "")
	if err != nil || len(items) != 1 {
		t.Errorf("List: got %d connections (%v), want 1", len(items), err)
	}
}

// TestOAuthIdentifyFallback connects and validates every OAuth platform
// without adapter identifiers: the oauth package's own "who am I" is used.
func TestOAuthIdentifyFallback(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{OAuthIdentify: true})
	for _, p := range []platform.Name{platform.X, platform.LinkedIn, platform.Facebook, platform.Instagram, platform.Threads, platform.TikTok} {
		id := e.Connect(p)
		c, err := e.Service.RequestValidation(e.Ctx, e.Site.ID, id)
		if err != nil {
			t.Fatalf("%s RequestValidation: %v", p, err)
		}
		if c.AccountID == "" || c.Handle == "" {
			t.Errorf("%s: got account %q handle %q, want both", p, c.AccountID, c.Handle)
		}
	}
	st, err := e.Refresher.Run(e.Ctx)
	if err != nil || st.Validated != 6 || st.ValidateFailed != 0 {
		t.Fatalf("Run: got %+v, %v; want 6 validated", st, err)
	}
	items, _, _ := e.Service.List(e.Ctx, e.Site.ID, 50, "")
	for _, c := range items {
		if c.Status != connection.StatusActive || c.ValidatedAt == nil {
			t.Errorf("%s: got %q validated %v, want active and validated (same account id as at connect)", c.Platform, c.Status, c.ValidatedAt)
		}
	}
	e.AssertLogsClean()
}

// TestRenewAfterRefusal: the platform refused a token before its expiry.
// Renew refreshes once for every caller holding that token; a caller with
// an older token gets the stored one; a connection that cannot be
// refreshed is marked broken.
func TestRenewAfterRefusal(t *testing.T) {
	t.Parallel()
	e := connectiontest.New(t, connectiontest.Options{})
	id := e.Connect(platform.TikTok)
	old := e.Credentials(e.Site.ID, id)
	var wg sync.WaitGroup
	got := make([]string, 5)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, err := e.Refresher.Renew(e.Ctx, e.Site.ID, id, old.AccessToken)
			if err != nil {
				t.Errorf("Renew: %v", err)
			}
			got[i] = acct.AccessToken
		}()
	}
	wg.Wait()
	if n := e.Sim.Calls("tiktok", "token_refresh"); n != 1 {
		t.Errorf("refresh calls: got %d, want 1", n)
	}
	fresh := e.RememberCredentials(e.Site.ID, id)
	for i, tok := range got {
		if tok != fresh.AccessToken || tok == old.AccessToken {
			t.Errorf("caller %d: want the new token", i)
		}
	}

	li := e.Connect(platform.LinkedIn)
	creds := e.Credentials(e.Site.ID, li)
	if _, err := e.Refresher.Renew(e.Ctx, e.Site.ID, li, creds.AccessToken); !apperr.Is(err, apperr.KindReconnect) {
		t.Fatalf("Renew of a LinkedIn token (no refresh token): got %v, want reconnect", err)
	}
	c, _ := e.Service.Get(e.Ctx, e.Site.ID, li)
	if c.Status != connection.StatusBroken || c.StatusReason != "token_refused" {
		t.Errorf("linkedin: got %q (%q), want broken (token_refused)", c.Status, c.StatusReason)
	}

	ms, err := e.Service.Connect(e.Ctx, e.Site.ID, connection.ManualRequest{Platform: platform.Mastodon, InstanceURL: e.MastodonURL, AccessToken: e.MastodonToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Refresher.MarkBroken(e.Ctx, e.Site.ID, ms.ID, "mastodon.401"); err != nil {
		t.Fatalf("MarkBroken: %v", err)
	}
	if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, ms.ID); !apperr.Is(err, apperr.KindReconnect) {
		t.Errorf("Ensure after MarkBroken: got %v, want reconnect", err)
	}
	if err := e.Refresher.MarkBroken(e.Ctx, e.Site.ID, "conn_"+strings.Repeat("a", 26), "x"); !apperr.Is(err, apperr.KindNotFound) {
		t.Errorf("MarkBroken of a missing connection: got %v, want not_found", err)
	}
	// Reconnecting repairs a broken connection.
	again, err := e.Service.Connect(e.Ctx, e.Site.ID, connection.ManualRequest{Platform: platform.Mastodon, InstanceURL: e.MastodonURL, AccessToken: e.MastodonToken})
	if err != nil || again.ID != ms.ID || again.Status != connection.StatusActive || again.StatusReason != "" {
		t.Errorf("reconnect: got %+v, %v; want the same connection active again", again, err)
	}
	e.AssertLogsClean()
}

// TestRefreshOutcomesAreCounted: a refresh that works and one the platform
// refuses each count one TokenRefreshes by platform and outcome.
func TestRefreshOutcomesAreCounted(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	rec := metrics.New(metrics.Options{Function: "refresh", Writer: &out})
	e := connectiontest.New(t, connectiontest.Options{Metrics: rec})
	ok, refused := e.Connect(platform.X), e.Connect(platform.TikTok)
	e.Clock.Advance(2*time.Hour - 10*time.Minute) // inside the 30-minute refresh window
	if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, ok); err != nil {
		t.Fatal(err)
	}
	e.Sim.AddFault(platformsim.Fault{Platform: "tiktok", Kind: platformsim.FaultInvalidGrant})
	if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, refused); !apperr.Is(err, apperr.KindReconnect) {
		t.Fatalf("Ensure after invalid_grant: got %v, want a reconnect error", err)
	}
	if _, err := e.Refresher.Ensure(e.Ctx, e.Site.ID, ok); err != nil { // fresh now: no refresh
		t.Fatal(err)
	}
	if err := rec.Flush(e.Ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got[fmt.Sprint(m["Platform"], "/", m["Outcome"], "=", m[metrics.TokenRefreshes])] = true
		if strings.Contains(line, e.Site.ID) || strings.Contains(line, "conn_") {
			t.Errorf("a metric line holds an id: %s", line)
		}
	}
	if len(got) != 2 || !got["x/refreshed=1"] || !got["tiktok/refused=1"] {
		t.Errorf("TokenRefreshes: got %v, want x/refreshed=1 and tiktok/refused=1", got)
	}
	e.AssertLogsClean()
}
