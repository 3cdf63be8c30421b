// Package connectiontest builds the whole connection stack for integration
// tests: a table and KMS keys in moto (through mototest, so the test binary
// needs TestMain → mototest.Main), the platform simulator with an app
// registered for every OAuth platform, a Bluesky and a Mastodon account, a
// site, the api function's Service (which can only seal) and the refresh
// function's Refresher, all on one settable clock and one captured log.
//
// Every secret it generates (client secrets, passwords, tokens) is
// remembered, so a test can assert that none reached the log.
package connectiontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/logging"
	"github.com/posse-dev/posse/shared/metrics"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/bluesky"
	"github.com/posse-dev/posse/shared/platform/facebook"
	"github.com/posse-dev/posse/shared/platform/instagram"
	"github.com/posse-dev/posse/shared/platform/linkedin"
	"github.com/posse-dev/posse/shared/platform/mastodon"
	"github.com/posse-dev/posse/shared/platform/threads"
	"github.com/posse-dev/posse/shared/platform/tiktok"
	"github.com/posse-dev/posse/shared/platform/x"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

// ReturnURL is where the test site wants browsers sent back.
const ReturnURL = "https://cms.example.test/posse/return?tab=social"

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Buffer is a log sink safe for concurrent writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Options adjust New.
type Options struct {
	// PublicURL is the API's public base in redirect URIs; default
	// https://api.example.test (the browser never follows it in tests).
	PublicURL string
	// Unconfigured leaves these OAuth platforms without app credentials.
	Unconfigured []platform.Name
	// Identifiers replaces adapter identifiers of the Service and Refresher.
	Identifiers map[platform.Name]platform.Identifier
	// OAuthIdentify drops the OAuth platforms' adapter identifiers, so the
	// oauth package's own "who am I" is used.
	OAuthIdentify bool
	// Metrics is the Refresher's metrics recorder (nil: none).
	Metrics *metrics.Recorder
}

// Env is one test's connection stack.
type Env struct {
	t   testing.TB
	Ctx context.Context

	DB         *dynamodb.Client
	KMS        *kms.Client
	Table      string
	KeyAlias   string
	StateKeyID string

	Sim    *platformsim.Server
	SimURL string
	Clock  *Clock

	Clients map[platform.Name]oauth.Client
	Sites   *site.Store
	Site    site.Site

	Service   *connection.Service
	Refresher *connection.Refresher
	Opener    *vault.Opener

	Logs *Buffer
	Log  *slog.Logger

	BlueskyHandle, BlueskyPassword, BlueskyDID string
	MastodonURL, MastodonToken, MastodonID     string

	mu      sync.Mutex
	secrets []string
}

// New builds an Env, skipping the test when moto is not available (or
// failing it under POSSE_INTEGRATION=1).
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	awsCfg := mototest.Config(t)
	e := &Env{t: t, Ctx: context.Background(), Clock: &Clock{t: time.Now().UTC().Truncate(time.Second)}, Logs: &Buffer{}}
	e.Log = logging.New(e.Logs, slog.LevelDebug, "test")
	e.DB = dynamodb.NewFromConfig(awsCfg)
	e.KMS = kms.NewFromConfig(awsCfg)
	e.Table = mototest.Table(t, e.DB)
	e.KeyAlias = e.newKey(kmstypes.KeySpecSymmetricDefault, kmstypes.KeyUsageTypeEncryptDecrypt)
	e.StateKeyID = e.newKey(kmstypes.KeySpecHmac256, kmstypes.KeyUsageTypeGenerateVerifyMac)

	e.Clients = map[platform.Name]oauth.Client{}
	simClients := map[string]platformsim.Client{}
	skip := map[platform.Name]bool{}
	for _, p := range opts.Unconfigured {
		skip[p] = true
	}
	for _, p := range oauth.Platforms {
		c := oauth.Client{ID: string(p) + "-app-" + e.Random(6), Secret: e.NewSecret("client-secret-" + string(p))}
		simClients[string(p)] = platformsim.Client{ID: c.ID, Secret: c.Secret}
		if !skip[p] {
			e.Clients[p] = c
		}
	}
	e.Sim = platformsim.New(platformsim.Options{Now: e.Clock.Now, Clients: simClients})
	srv := httptest.NewServer(e.Sim)
	t.Cleanup(srv.Close)
	e.SimURL = srv.URL
	e.Sim.SetPublicURL(srv.URL)

	e.BlueskyHandle = "poster-" + strings.ToLower(e.Random(4)) + ".bsky.test"
	e.BlueskyDID = "did:plc:" + e.hex(12)
	e.BlueskyPassword = e.NewSecret("app-pass")
	e.Sim.AddAccount(platformsim.Account{Platform: "bluesky", ID: e.BlueskyDID, Handle: e.BlueskyHandle, Password: e.BlueskyPassword})
	e.MastodonURL = srv.URL + "/mastodon"
	e.MastodonToken = e.NewSecret("masto-token")
	e.MastodonID = "1090" + e.hex(4)
	e.Sim.AddAccount(platformsim.Account{Platform: "mastodon", ID: e.MastodonID, Handle: "poster", AccessToken: e.MastodonToken})

	e.Sites = site.NewStore(e.DB, e.Table, e.Clock.Now, nil)
	st, err := e.Sites.Create(e.Ctx, site.NewSite{Name: "Test site", Timezone: "Europe/Berlin", ReturnURL: ReturnURL})
	if err != nil {
		t.Fatalf("create site: %v", err)
	}
	e.Site = st

	hc := &http.Client{Timeout: 10 * time.Second}
	reg := oauth.New(oauth.Config{Clients: e.Clients, BaseURL: srv.URL, HTTPClient: hc, Now: e.Clock.Now})
	// Every adapter identifies its accounts, as in the functions' wiring.
	bsky := bluesky.New(bluesky.Config{BaseURL: srv.URL + "/bluesky"}, hc, nil)
	ids := map[platform.Name]platform.Identifier{
		platform.X:         x.New(x.Config{BaseURL: srv.URL + "/x"}, hc, nil),
		platform.LinkedIn:  linkedin.New(linkedin.Config{BaseURL: srv.URL + "/linkedin"}, hc, nil),
		platform.Facebook:  facebook.New(facebook.Config{GraphURL: srv.URL + "/facebook"}, hc, nil),
		platform.Instagram: instagram.New(instagram.Config{GraphURL: srv.URL + "/instagram"}, hc, nil),
		platform.Threads:   threads.New(threads.Config{BaseURL: srv.URL + "/threads"}, hc, nil),
		platform.TikTok:    tiktok.New(tiktok.Config{BaseURL: srv.URL + "/tiktok"}, hc, nil),
		platform.Bluesky:   bsky,
		platform.Mastodon:  mastodon.New(mastodon.Config{}, hc, nil),
	}
	if opts.OAuthIdentify {
		for _, p := range oauth.Platforms {
			delete(ids, p)
		}
	}
	for p, idf := range opts.Identifiers {
		ids[p] = idf
	}
	store := connection.NewStore(e.DB, e.Table)
	sealer, err := vault.NewSealer(e.KMS, vault.Config{KeyID: e.KeyAlias, Logger: e.Log})
	if err != nil {
		t.Fatalf("sealer: %v", err)
	}
	public := opts.PublicURL
	if public == "" {
		public = "https://api.example.test"
	}
	e.Service, err = connection.NewService(connection.ServiceConfig{
		Store: store, Sealer: sealer, Sites: e.Sites, OAuth: reg, MAC: e.KMS, StateKeyID: e.StateKeyID,
		Identifiers: ids,
		Bluesky:     bsky, BlueskyPDS: srv.URL + "/bluesky", PublicURL: public, AllowHTTPInstances: true,
		Logger: e.Log, Now: e.Clock.Now,
	})
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	v, err := vault.New(e.KMS, vault.Config{KeyID: e.KeyAlias, Logger: e.Log})
	if err != nil {
		t.Fatalf("vault: %v", err)
	}
	e.Refresher, err = connection.NewRefresher(connection.RefresherConfig{
		Store: store, Vault: v, OAuth: reg, Bluesky: bsky, Identifiers: ids,
		PollInterval: 20 * time.Millisecond, Metrics: opts.Metrics, Logger: e.Log, Now: e.Clock.Now,
	})
	if err != nil {
		t.Fatalf("refresher: %v", err)
	}
	e.Opener, err = vault.NewOpener(e.KMS, vault.Config{CacheSize: -1})
	if err != nil {
		t.Fatalf("opener: %v", err)
	}
	return e
}

// newKey creates a KMS key with a unique alias and returns the alias.
func (e *Env) newKey(spec kmstypes.KeySpec, usage kmstypes.KeyUsageType) string {
	e.t.Helper()
	out, err := e.KMS.CreateKey(e.Ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: usage, Description: aws.String("connectiontest")})
	if err != nil {
		e.t.Fatalf("create %s key: %v", spec, err)
	}
	alias := "alias/connectiontest-" + e.hex(6)
	if _, err := e.KMS.CreateAlias(e.Ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		e.t.Fatalf("create alias: %v", err)
	}
	return alias
}

// Random returns n random bytes as unpadded base64url.
func (e *Env) Random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		e.t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hex returns n random bytes as lowercase hex.
func (e *Env) hex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		e.t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// NewSecret returns a fresh secret starting with prefix and remembers it.
func (e *Env) NewSecret(prefix string) string {
	s := prefix + "-" + e.Random(18)
	e.Remember(s)
	return s
}

// Remember adds s to the secrets that must never be logged.
func (e *Env) Remember(s string) {
	if s == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s)
}

// Secrets returns every remembered secret.
func (e *Env) Secrets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.secrets...)
}

// AssertLogsClean fails the test when a remembered secret is in the log.
func (e *Env) AssertLogsClean() {
	e.t.Helper()
	logs := e.Logs.String()
	if logs == "" {
		e.t.Error("the log is empty: nothing was checked")
	}
	for i, s := range e.Secrets() {
		if strings.Contains(logs, s) {
			e.t.Errorf("the log holds secret #%d (%d characters)", i, len(s))
		}
	}
}

// FollowAuthorize opens an authorize URL like a browser whose user
// approves (or, with a fault, denies) and returns the query the platform
// sent back to the callback. It remembers the code.
func (e *Env) FollowAuthorize(authURL string) url.Values {
	e.t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	if err != nil {
		e.t.Fatalf("GET authorize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: got HTTP %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatalf("authorize Location: %v", err)
	}
	q := loc.Query()
	e.Remember(q.Get("code"))
	return q
}

// Connect runs the OAuth flow of p through the Service and returns the new
// connection's id.
func (e *Env) Connect(p platform.Name) string {
	e.t.Helper()
	a, err := e.Service.Authorize(e.Ctx, connection.AuthorizeRequest{SiteID: e.Site.ID, Platform: p})
	if err != nil {
		e.t.Fatalf("Authorize %s: %v", p, err)
	}
	target, err := e.Service.Callback(e.Ctx, p, e.FollowAuthorize(a.AuthURL))
	if err != nil {
		e.t.Fatalf("Callback %s: %v", p, err)
	}
	u, _ := url.Parse(target)
	id := u.Query().Get("connectionId")
	if id == "" {
		e.t.Fatalf("Callback %s: redirected to %s, want a connectionId", p, target)
	}
	e.RememberCredentials(e.Site.ID, id)
	return id
}

// Item returns a connection's raw item, or nil.
func (e *Env) Item(siteID, connID string) map[string]types.AttributeValue {
	e.t.Helper()
	out, err := e.DB.GetItem(e.Ctx, &dynamodb.GetItemInput{
		TableName: aws.String(e.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"PK": &types.AttributeValueMemberS{Value: "SITE#" + siteID}, "SK": &types.AttributeValueMemberS{Value: "CONN#" + connID},
		},
	})
	if err != nil {
		e.t.Fatalf("get item: %v", err)
	}
	return out.Item
}

// Credentials opens a connection's sealed credentials (the test holds
// kms:Decrypt; the api never does).
func (e *Env) Credentials(siteID, connID string) connection.Credentials {
	e.t.Helper()
	item := e.Item(siteID, connID)
	if item == nil {
		e.t.Fatalf("connection %s: no item", connID)
	}
	var s vault.Sealed
	if err := attributevalue.Unmarshal(item["sealed_credentials"], &s); err != nil {
		e.t.Fatalf("unmarshal sealed_credentials: %v", err)
	}
	plain, err := e.Opener.Open(e.Ctx, vault.Context{Site: siteID, Connection: connID, Purpose: vault.PurposeOAuthTokens}, s)
	if err != nil {
		e.t.Fatalf("open credentials of %s: %v", connID, err)
	}
	var c connection.Credentials
	if err := json.Unmarshal(plain, &c); err != nil {
		e.t.Fatalf("decode credentials: %v", err)
	}
	return c
}

// RememberCredentials adds a connection's current tokens to the secrets.
func (e *Env) RememberCredentials(siteID, connID string) connection.Credentials {
	e.t.Helper()
	c := e.Credentials(siteID, connID)
	e.Remember(c.AccessToken)
	e.Remember(c.RefreshToken)
	return c
}
