package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/infra/local/lambdaenv"
	"github.com/posse-dev/posse/infra/local/lambdaenv/lambdaenvtest"
	"github.com/posse-dev/posse/infra/local/moto"
	"github.com/posse-dev/posse/infra/local/mototest"
	"github.com/posse-dev/posse/infra/platformsim"
	"github.com/posse-dev/posse/shared/connection"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestScheduledEventFixture(t *testing.T) {
	t.Parallel()
	lambdaenvtest.CheckScheduledFixture(t, filepath.Join("testdata", "scheduled-event.json"), "posse.refresh")
}

// TestBootstrapUnderRIE deploys template.yaml into moto, connects an X
// account whose token expires in 15 minutes, and invokes the real refresh
// bootstrap under the RIE with the Scheduler payload: the token is
// refreshed once and the answer counts it.
func TestBootstrapUnderRIE(t *testing.T) {
	srv := mototest.Server(t)
	ctx := context.Background()
	awsCfg := moto.Config(srv.Endpoint())
	st := lambdaenvtest.Deploy(t, awsCfg, nil)
	fn := lambdaenvtest.Function(t, st, "RefreshFunction")
	lambdaenvtest.RequireSchedule(t, st, "RefreshFunction", "rate(5 minutes)")

	// The simulator's clock starts 105 minutes in the past, so the X token
	// issued at connect time expires 15 minutes from now.
	var offset atomic.Int64
	offset.Store(int64(-105 * time.Minute))
	simNow := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	client := oauth.Client{ID: "x-app", Secret: base64.RawURLEncoding.EncodeToString(secret)}
	sim := platformsim.New(platformsim.Options{Now: simNow, Clients: map[string]platformsim.Client{"x": {ID: client.ID, Secret: client.Secret}}})
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	sim.SetPublicURL(simSrv.URL)

	db, keys := dynamodb.NewFromConfig(awsCfg), kms.NewFromConfig(awsCfg)
	table := st.Tables["Table"].Name
	sites := site.NewStore(db, table, simNow, nil)
	s, err := sites.Create(ctx, site.NewSite{Name: "Blog", Timezone: "UTC", ReturnURL: "https://blog.example.test/back"})
	if err != nil {
		t.Fatalf("create site: %v", err)
	}
	sealer, err := vault.NewSealer(keys, vault.Config{KeyID: st.Aliases["KeyAlias"].Name})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := connection.NewService(connection.ServiceConfig{
		Store: connection.NewStore(db, table), Sealer: sealer, Sites: sites,
		OAuth: oauth.New(oauth.Config{Clients: map[platform.Name]oauth.Client{platform.X: client}, BaseURL: simSrv.URL, Now: simNow}),
		MAC:   keys, StateKeyID: st.Aliases["OAuthStateKeyAlias"].Name, PublicURL: "https://api.example.test", Now: simNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	az, err := svc.Authorize(ctx, connection.AuthorizeRequest{SiteID: s.ID, Platform: platform.X})
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(az.AuthURL)
	if err != nil {
		t.Fatalf("authorize page: %v", err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	target, err := svc.Callback(ctx, platform.X, cb.Query())
	if err != nil || !strings.Contains(target, "connectionId=") {
		t.Fatalf("callback: got %q, %v; want a connection", target, err)
	}
	offset.Store(0)

	env := append(fn.EnvironmentList(), moto.Env(srv.Endpoint())...)
	env = append(env, "POSSE_PLATFORM_BASE_URL="+simSrv.URL, "POSSE_X_CLIENT_ID="+client.ID, "POSSE_X_CLIENT_SECRET="+client.Secret)
	pool := lambdaenvtest.Start(t, lambdaenv.Config{
		Name: fn.Name, Bootstrap: lambdaenvtest.Build(t, "RefreshFunction"), Instances: 1,
		Timeout: fn.Timeout, MemoryMB: fn.MemoryMB, Env: env,
	})
	payload, err := os.ReadFile(filepath.Join("testdata", "scheduled-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := pool.Invoke(ictx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var stats connection.RunStats
	if err := json.Unmarshal(out, &stats); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	if stats.Due != 1 || stats.Refreshed != 1 || stats.Failed != 0 {
		t.Errorf("refresh pass: got %s, want 1 due and 1 refreshed", out)
	}
	if n := sim.Calls("x", "token_refresh"); n != 1 {
		t.Errorf("token_refresh calls: got %d, want 1", n)
	}
	out, err = pool.Invoke(ictx, payload)
	if err != nil {
		t.Fatalf("second invoke: %v", err)
	}
	_ = json.Unmarshal(out, &stats)
	if stats.Refreshed != 0 || sim.Calls("x", "token_refresh") != 1 {
		t.Errorf("second pass: got %s, want nothing refreshed", out)
	}
	for _, f := range pool.LogFiles() {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), client.Secret) {
			t.Error("the function's log holds the client secret")
		}
	}
	if d, ok := pool.InitDuration(); ok {
		t.Logf("refresh bootstrap init duration under the RIE: %v", d)
	}
}
