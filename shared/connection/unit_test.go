package connection

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/posse-dev/posse/shared/apperr"
	"github.com/posse-dev/posse/shared/oauth"
	"github.com/posse-dev/posse/shared/outbound"
	"github.com/posse-dev/posse/shared/platform"
	"github.com/posse-dev/posse/shared/platform/mastodon"
	"github.com/posse-dev/posse/shared/site"
	"github.com/posse-dev/posse/shared/vault"
)

// fakeDB keeps items in memory and understands the two conditions the
// state items use. Other calls fail: unit tests do not reach them.
type fakeDB struct {
	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue
}

func newFakeDB() *fakeDB { return &fakeDB{items: map[string]map[string]types.AttributeValue{}} }

func itemKey(k map[string]types.AttributeValue) string {
	return k["PK"].(*types.AttributeValueMemberS).Value + "|" + k["SK"].(*types.AttributeValueMemberS).Value
}

var errUnused = errors.New("fakeDB: not used by unit tests")

func (f *fakeDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errUnused
}

func (f *fakeDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := itemKey(in.Item)
	if old, ok := f.items[k]; ok && in.ConditionExpression != nil {
		ccf := &types.ConditionalCheckFailedException{}
		if in.ReturnValuesOnConditionCheckFailure == types.ReturnValuesOnConditionCheckFailureAllOld {
			ccf.Item = old
		}
		return nil, ccf
	}
	f.items[k] = in.Item
	return &dynamodb.PutItemOutput{}, nil
}

func (f *fakeDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, errUnused
}

func (f *fakeDB) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := itemKey(in.Key)
	old, ok := f.items[k]
	if !ok {
		return nil, &types.ConditionalCheckFailedException{}
	}
	delete(f.items, k)
	return &dynamodb.DeleteItemOutput{Attributes: old}, nil
}

func (f *fakeDB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, errUnused
}

// fakeMAC is HMAC-SHA-256 with a fixed key, like KMS GenerateMac.
type fakeMAC struct{ calls int }

func (f *fakeMAC) GenerateMac(_ context.Context, in *kms.GenerateMacInput, _ ...func(*kms.Options)) (*kms.GenerateMacOutput, error) {
	f.calls++
	m := hmac.New(sha256.New, []byte("test-hmac-key"))
	m.Write(in.Message)
	return &kms.GenerateMacOutput{Mac: m.Sum(nil)}, nil
}

type fakeSites map[string]site.Site

func (f fakeSites) Get(_ context.Context, id string) (site.Site, error) {
	s, ok := f[id]
	if !ok {
		return site.Site{}, apperr.NotFound("site")
	}
	return s, nil
}

type fakeSealer struct{}

func (fakeSealer) Seal(context.Context, vault.Context, []byte) (vault.Sealed, error) {
	return vault.Sealed{}, errors.New("fakeSealer: not used")
}

// fakeVault neither seals nor opens: plan tests never reach it.
type fakeVault struct{ fakeSealer }

func (fakeVault) Open(context.Context, vault.Context, vault.Sealed) ([]byte, error) {
	return nil, errors.New("fakeVault: not used")
}

type unitEnv struct {
	svc *Service
	db  *fakeDB
	mac *fakeMAC
	now time.Time
	mu  sync.Mutex
}

func (u *unitEnv) clock() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.now
}

func (u *unitEnv) advance(d time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.now = u.now.Add(d)
}

func newUnitEnv(t *testing.T) *unitEnv {
	t.Helper()
	u := &unitEnv{db: newFakeDB(), mac: &fakeMAC{}, now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	clients := map[platform.Name]oauth.Client{}
	for _, p := range oauth.Platforms {
		clients[p] = oauth.Client{ID: "id-" + string(p), Secret: "secret-" + string(p)}
	}
	svc, err := NewService(ServiceConfig{
		Store: NewStore(u.db, "t"), Sealer: fakeSealer{}, OAuth: oauth.New(oauth.Config{Clients: clients}),
		Sites: fakeSites{"site_a": {ID: "site_a", ReturnURL: "https://cms.example/back?x=1"}},
		MAC:   u.mac, StateKeyID: "alias/state", PublicURL: "https://api.example", Now: u.clock,
		Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 4096)),
	})
	if err != nil {
		t.Fatal(err)
	}
	u.svc = svc
	return u
}

func TestAuthorizeStoresABoundState(t *testing.T) {
	t.Parallel()
	u := newUnitEnv(t)
	a, err := u.svc.Authorize(context.Background(), AuthorizeRequest{SiteID: "site_a", Platform: platform.X})
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(a.State)
	if err != nil || len(raw)*8 < 128 {
		t.Fatalf("state: got %d bits (%v), want at least 128 random bits in base64url", len(raw)*8, err)
	}
	if !a.ExpiresAt.Equal(u.now.Add(10 * time.Minute)) {
		t.Errorf("expiresAt: got %v, want %v", a.ExpiresAt, u.now.Add(10*time.Minute))
	}
	item := u.db.items["OAUTH#"+a.State+"|META"]
	if item == nil {
		t.Fatal("no state item stored")
	}
	exp, ok := item["expires_at"].(*types.AttributeValueMemberN)
	if !ok || exp.Value != strconv.FormatInt(u.now.Add(10*time.Minute).Unix(), 10) {
		t.Errorf("expires_at: got %#v, want the epoch seconds 10 minutes ahead as a Number (the TTL attribute)", item["expires_at"])
	}
	for attr, want := range map[string]string{"site_id": "site_a", "platform": "x", "redirect_uri": "https://api.example/v1/oauth/x/callback", "return_url": "https://cms.example/back?x=1"} {
		if got, _ := item[attr].(*types.AttributeValueMemberS); got == nil || got.Value != want {
			t.Errorf("%s: got %#v, want %q", attr, item[attr], want)
		}
	}
	for attr := range item {
		if strings.Contains(attr, "verifier") || strings.HasPrefix(attr, "sealed") {
			t.Errorf("the state item stores %s: the PKCE verifier must be derived, never stored", attr)
		}
	}
	// The challenge sent is S256 of the verifier the callback will derive.
	v, err := deriveVerifier(context.Background(), u.mac, "alias/state", a.State)
	if err != nil || len(v) != 43 {
		t.Fatalf("verifier: got %q (%v), want 43 characters", v, err)
	}
	q := mustQuery(t, a.AuthURL)
	if q.Get("code_challenge") != oauth.S256Challenge(v) || q.Get("code_challenge_method") != "S256" {
		t.Errorf("code_challenge: got %q, want S256 of the derived verifier", q.Get("code_challenge"))
	}
	other, _ := deriveVerifier(context.Background(), u.mac, "alias/state", a.State+"x")
	if other == v {
		t.Error("two states derive the same verifier")
	}
}

// retriedPutDB is fakeDB behind an SDK whose first PutItem answer was lost
// after the item was stored: it sends the put again and returns the
// second answer, as the SDK's retryer does.
type retriedPutDB struct{ *fakeDB }

func (r retriedPutDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, err := r.fakeDB.PutItem(ctx, in, opts...); err != nil {
		return nil, err
	}
	return r.fakeDB.PutItem(ctx, in, opts...)
}

// TestAuthorizeSurvivesARetriedPut is a regression test for a finding of
// the API fuzzing (500 on POST /v1/connections/{platform}/authorize): the
// SDK retried the state's conditional put after a first attempt that was
// stored, and the retry's failed condition was answered as an internal
// error. Our own item is success; another item under the key is not.
func TestAuthorizeSurvivesARetriedPut(t *testing.T) {
	t.Parallel()
	u := newUnitEnv(t)
	u.svc.cfg.Store = NewStore(retriedPutDB{u.db}, "t")
	a, err := u.svc.Authorize(context.Background(), AuthorizeRequest{SiteID: "site_a", Platform: platform.X})
	if err != nil {
		t.Fatalf("Authorize with a retried put: got %v, want the state stored", err)
	}
	if u.db.items["OAUTH#"+a.State+"|META"] == nil {
		t.Fatal("no state item stored")
	}
	// The fake's randomness repeats: a later Authorize draws the same state,
	// and finds an item that is not its own.
	u.advance(time.Second)
	u.svc.cfg.Store = NewStore(u.db, "t")
	if _, err := u.svc.Authorize(context.Background(), AuthorizeRequest{SiteID: "site_a", Platform: platform.X}); err == nil {
		t.Fatal("Authorize over another state item: got nil, want an error")
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	u := newUnitEnv(t)
	tests := []struct {
		name string
		r    AuthorizeRequest
		kind apperr.Kind
	}{
		{"unknown platform", AuthorizeRequest{SiteID: "site_a", Platform: "myspace"}, apperr.KindNotFound},
		{"manual platform", AuthorizeRequest{SiteID: "site_a", Platform: platform.Mastodon}, apperr.KindUnprocessable},
		{"page id on x", AuthorizeRequest{SiteID: "site_a", Platform: platform.X, PageID: "1"}, apperr.KindInvalid},
		{"bad page id", AuthorizeRequest{SiteID: "site_a", Platform: platform.Facebook, PageID: "1; drop"}, apperr.KindInvalid},
	}
	for _, tt := range tests {
		if _, err := u.svc.Authorize(context.Background(), tt.r); apperr.KindOf(err) != tt.kind {
			t.Errorf("%s: got %v, want kind %s", tt.name, err, tt.kind)
		}
	}
	noMAC := newUnitEnv(t)
	noMAC.svc.cfg.MAC = nil
	if _, err := noMAC.svc.Authorize(context.Background(), AuthorizeRequest{SiteID: "site_a", Platform: platform.X}); apperr.KindOf(err) != apperr.KindUnprocessable {
		t.Errorf("x without a state key: got %v, want 422 platform_not_configured", err)
	}
}

func TestCallbackBranches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		issuedFor platform.Name
		on        platform.Name
		query     func(state string) url.Values
		wait      time.Duration
		wantErr   string // the error param of the redirect; "" means a 400
	}{
		{"access denied", platform.X, platform.X, func(s string) url.Values { return url.Values{"state": {s}, "error": {"access_denied"}} }, 0, "access_denied"},
		{"linkedin cancel", platform.LinkedIn, platform.LinkedIn, func(s string) url.Values {
			return url.Values{"state": {s}, "error": {"user_cancelled_authorize"}, "error_description": {"<script>"}}
		}, 0, "access_denied"},
		{"unknown platform error", platform.TikTok, platform.TikTok, func(s string) url.Values { return url.Values{"state": {s}, "error": {"weird<b>"}} }, 0, "authorization_failed"},
		{"no code", platform.Threads, platform.Threads, func(s string) url.Values { return url.Values{"state": {s}} }, 0, "invalid_request"},
		{"expired", platform.X, platform.X, func(s string) url.Values { return url.Values{"state": {s}, "code": {"c"}} }, 10 * time.Minute, "expired_state"},
		{"other platform", platform.X, platform.LinkedIn, func(s string) url.Values { return url.Values{"state": {s}, "code": {"c"}} }, 0, "invalid_state"},
		{"unknown state", platform.X, platform.X, func(string) url.Values { return url.Values{"state": {strings.Repeat("B", 43)}, "code": {"c"}} }, 0, ""},
		{"malformed state", platform.X, platform.X, func(string) url.Values { return url.Values{"state": {"OAUTH#x|y"}, "code": {"c"}} }, 0, ""},
		{"no state", platform.X, platform.X, func(string) url.Values { return url.Values{"code": {"c"}} }, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUnitEnv(t)
			a, err := u.svc.Authorize(context.Background(), AuthorizeRequest{SiteID: "site_a", Platform: tt.issuedFor})
			if err != nil {
				t.Fatal(err)
			}
			u.advance(tt.wait)
			target, err := u.svc.Callback(context.Background(), tt.on, tt.query(a.State))
			if tt.wantErr == "" {
				if !errors.Is(err, ErrInvalidState) {
					t.Fatalf("Callback: got %q, %v; want ErrInvalidState", target, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Callback: %v", err)
			}
			q := mustQuery(t, target)
			if !strings.HasPrefix(target, "https://cms.example/back?") || q.Get("x") != "1" || q.Get("error") != tt.wantErr || q.Get("connectionId") != "" {
				t.Errorf("redirect: got %s, want the return URL with error=%s", target, tt.wantErr)
			}
			if _, err := u.svc.Callback(context.Background(), tt.on, tt.query(a.State)); !errors.Is(err, ErrInvalidState) {
				t.Errorf("second use of the state: got %v, want ErrInvalidState", err)
			}
		})
	}
}

func TestConnectValidation(t *testing.T) {
	t.Parallel()
	u := newUnitEnv(t)
	tests := []struct {
		name   string
		m      ManualRequest
		kind   apperr.Kind
		fields []string
	}{
		{"no platform", ManualRequest{}, apperr.KindInvalid, []string{"platform"}},
		{"unknown platform", ManualRequest{Platform: "myspace"}, apperr.KindInvalid, []string{"platform"}},
		{"oauth platform", ManualRequest{Platform: platform.X}, apperr.KindUnprocessable, []string{"platform"}},
		{"bluesky empty", ManualRequest{Platform: platform.Bluesky}, apperr.KindInvalid, []string{"handle", "appPassword"}},
		{"bluesky bad handle", ManualRequest{Platform: platform.Bluesky, Handle: "a b", AppPassword: "p"}, apperr.KindInvalid, []string{"handle"}},
		{"mastodon empty", ManualRequest{Platform: platform.Mastodon}, apperr.KindInvalid, []string{"instanceUrl", "accessToken"}},
		{"mastodon http", ManualRequest{Platform: platform.Mastodon, InstanceURL: "http://mastodon.social", AccessToken: "t"}, apperr.KindInvalid, []string{"instanceUrl"}},
		{"mastodon private ip", ManualRequest{Platform: platform.Mastodon, InstanceURL: "https://10.0.0.1", AccessToken: "t"}, apperr.KindInvalid, []string{"instanceUrl"}},
		{"mastodon metadata ip", ManualRequest{Platform: platform.Mastodon, InstanceURL: "https://[fd00:ec2::254]", AccessToken: "t"}, apperr.KindInvalid, []string{"instanceUrl"}},
		{"mastodon cgnat ip", ManualRequest{Platform: platform.Mastodon, InstanceURL: "https://100.64.0.1", AccessToken: "t"}, apperr.KindInvalid, []string{"instanceUrl"}},
		{"mastodon query", ManualRequest{Platform: platform.Mastodon, InstanceURL: "https://m.example/?a=b", AccessToken: "t"}, apperr.KindInvalid, []string{"instanceUrl"}},
		{"mastodon without adapter", ManualRequest{Platform: platform.Mastodon, InstanceURL: "m.example", AccessToken: "t"}, apperr.KindUnprocessable, nil},
		{"bluesky without adapter", ManualRequest{Platform: platform.Bluesky, Handle: "a.bsky.social", AppPassword: "p"}, apperr.KindUnprocessable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := u.svc.Connect(context.Background(), "site_a", tt.m)
			e, ok := apperr.As(err)
			if !ok || e.Kind != tt.kind {
				t.Fatalf("Connect: got %v, want kind %s", err, tt.kind)
			}
			var got []string
			for _, p := range e.Problems {
				got = append(got, p.Field)
			}
			sort.Strings(got)
			want := append([]string(nil), tt.fields...)
			sort.Strings(want)
			if tt.fields != nil && fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("problem fields: got %v, want %v", got, want)
			}
		})
	}
}

func TestInstanceURL(t *testing.T) {
	t.Parallel()
	s := &Service{}
	local := &Service{cfg: ServiceConfig{AllowHTTPInstances: true}}
	tests := []struct {
		svc  *Service
		in   string
		want string
	}{
		{s, "mastodon.social", "https://mastodon.social"},
		{s, "https://mastodon.social/", "https://mastodon.social"},
		{s, " https://mastodon.social ", "https://mastodon.social"},
		{s, "http://127.0.0.1:4700/mastodon", ""},
		{local, "http://127.0.0.1:4700/mastodon/", "http://127.0.0.1:4700/mastodon"},
		{s, "https://user:pw@mastodon.social", ""},
		{s, "ftp://mastodon.social", ""},
	}
	for _, tt := range tests {
		got, problem := tt.svc.instanceURL(tt.in)
		if got != tt.want || (tt.want == "") != (problem != "") {
			t.Errorf("instanceURL(%q): got %q (%q), want %q", tt.in, got, problem, tt.want)
		}
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clients := map[platform.Name]oauth.Client{}
	for _, p := range oauth.Platforms {
		clients[p] = oauth.Client{ID: "a", Secret: "b"}
	}
	reg := oauth.New(oauth.Config{Clients: clients, Now: func() time.Time { return now }})
	r, err := NewRefresher(RefresherConfig{Store: NewStore(newFakeDB(), "t"), Vault: fakeVault{}, OAuth: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(p platform.Name, s Status) record {
		return record{Connection: Connection{Platform: p, Status: s}}
	}
	in := func(d time.Duration) time.Time { return now.Add(d) }
	tests := []struct {
		name  string
		rec   record
		creds Credentials
		want  action
	}{
		{"x due", rec(platform.X, StatusActive), Credentials{RefreshToken: "r", Expiry: in(20 * time.Minute)}, actRefresh},
		{"x not due", rec(platform.X, StatusActive), Credentials{RefreshToken: "r", Expiry: in(90 * time.Minute)}, actNone},
		{"x expired, refreshable", rec(platform.X, StatusActive), Credentials{RefreshToken: "r", Expiry: in(-time.Hour)}, actRefresh},
		{"x without refresh token, expired", rec(platform.X, StatusActive), Credentials{Expiry: in(-time.Minute)}, actBroken},
		{"broken stays", rec(platform.X, StatusBroken), Credentials{RefreshToken: "r", Expiry: in(time.Minute)}, actNone},
		{"facebook page token", rec(platform.Facebook, StatusActive), Credentials{AccessToken: "a"}, actNone},
		{"mastodon", rec(platform.Mastodon, StatusActive), Credentials{AccessToken: "a"}, actNone},
		{"linkedin far", rec(platform.LinkedIn, StatusActive), Credentials{AccessToken: "a", Expiry: in(30 * 24 * time.Hour)}, actNone},
		{"linkedin near", rec(platform.LinkedIn, StatusActive), Credentials{AccessToken: "a", Expiry: in(6 * 24 * time.Hour)}, actExpiring},
		{"linkedin already expiring", rec(platform.LinkedIn, StatusExpiring), Credentials{AccessToken: "a", Expiry: in(6 * 24 * time.Hour)}, actNone},
		{"linkedin over", rec(platform.LinkedIn, StatusExpiring), Credentials{AccessToken: "a", Expiry: in(-time.Second)}, actBroken},
		{"linkedin partner", rec(platform.LinkedIn, StatusActive), Credentials{AccessToken: "a", RefreshToken: "r", Expiry: in(10 * time.Minute)}, actRefresh},
		{"instagram in window, old", rec(platform.Instagram, StatusActive), Credentials{AccessToken: "a", Expiry: in(6 * 24 * time.Hour), IssuedAt: in(-54 * 24 * time.Hour)}, actRefresh},
		{"instagram in window, young", rec(platform.Instagram, StatusActive), Credentials{AccessToken: "a", Expiry: in(6 * 24 * time.Hour), IssuedAt: in(-time.Hour)}, actNone},
		{"threads outside window", rec(platform.Threads, StatusActive), Credentials{AccessToken: "a", Expiry: in(30 * 24 * time.Hour), IssuedAt: in(-30 * 24 * time.Hour)}, actNone},
		{"threads expired", rec(platform.Threads, StatusActive), Credentials{AccessToken: "a", Expiry: in(-time.Minute), IssuedAt: in(-61 * 24 * time.Hour)}, actBroken},
		{"bluesky without adapter", rec(platform.Bluesky, StatusActive), Credentials{RefreshToken: "r", Expiry: in(-time.Minute)}, actBroken},
	}
	for _, tt := range tests {
		if got := r.plan(tt.rec, tt.creds, now); got != tt.want {
			t.Errorf("%s: got action %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestSmallHelpers(t *testing.T) {
	t.Parallel()
	a := ConnectionID("site_a", platform.X, "123")
	if a != ConnectionID("site_a", platform.X, "123") || !validID(a) {
		t.Errorf("ConnectionID: got %q, want a stable valid id", a)
	}
	if a == ConnectionID("site_b", platform.X, "123") || a == ConnectionID("site_a", platform.TikTok, "123") {
		t.Error("ConnectionID: another site or platform gives the same id")
	}
	for _, id := range []string{"", "conn_", "conn_ABC", "conn_a#b", "CONN#x", "conn_" + strings.Repeat("a", 80)} {
		if id != "conn_" && validID(id) {
			t.Errorf("validID(%q): got true, want false", id)
		}
	}
	if validState("short") || validState(strings.Repeat("A", 42)+"#") || !validState(strings.Repeat("A", 43)) {
		t.Error("validState accepts or refuses the wrong values")
	}
	if got := refreshSK(time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600)), "s", "c"); got != "2026-01-02T02:04:05Z#s#c" {
		t.Errorf("refreshSK: got %q, want UTC seconds then owner", got)
	}
	creds := Credentials{AccessToken: "AT-secret", RefreshToken: "RT-secret"}
	for _, s := range []string{fmt.Sprint(creds), fmt.Sprintf("%+v", creds), fmt.Sprintf("%#v", creds)} {
		if strings.Contains(s, "secret") {
			t.Errorf("formatting Credentials shows a token: %s", s)
		}
	}
	m := ManualRequest{Platform: platform.Bluesky, Handle: "h", AppPassword: "pw-secret", AccessToken: "tok-secret"}
	for _, s := range []string{fmt.Sprint(m), fmt.Sprintf("%+v", m), fmt.Sprintf("%#v", m)} {
		if strings.Contains(s, "secret") {
			t.Errorf("formatting a ManualRequest shows a secret: %s", s)
		}
	}
	if got := keep("", "old"); got != "old" {
		t.Errorf("keep: got %q, want the old refresh token kept", got)
	}
	if got := withParams("https://cms.example/back?tab=1#frag", url.Values{"error": {"x y"}}); got != "https://cms.example/back?error=x+y&tab=1#frag" {
		t.Errorf("withParams: got %q", got)
	}
	if got := safeCode("bad<script>code"); got != "bad?script?code" {
		t.Errorf("safeCode: got %q", got)
	}
}

func TestJWTExpiry(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString([]byte(`{"alg":"ES256K"}`)) + "." + enc.EncodeToString([]byte(`{"exp":1800000000,"sub":"did:plc:x"}`)) + ".sig"
	if got := jwtExpiry(tok); !got.Equal(time.Unix(1800000000, 0)) {
		t.Errorf("jwtExpiry: got %v, want 1800000000", got)
	}
	for _, bad := range []string{"", "a.b", "a.!!.c", "a." + enc.EncodeToString([]byte(`{"exp":"soon"}`)) + ".c"} {
		if got := jwtExpiry(bad); !got.IsZero() {
			t.Errorf("jwtExpiry(%q): got %v, want zero", bad, got)
		}
	}
}

func TestLogErr(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf(`Get "https://graph.facebook.com/v26.0/me?access_token=EAAB-secret&fields=id": dial tcp: timeout`)
	got := logErr(err)
	if strings.Contains(got, "EAAB-secret") || !strings.Contains(got, "https://graph.facebook.com/v26.0/me?[REDACTED]") {
		t.Errorf("logErr: got %q, want the query removed and the URL kept", got)
	}
	if logErr(nil) != "" {
		t.Error("logErr(nil): want empty")
	}
}

// instanceNames maps instance host names to addresses, as an attacker's
// DNS could.
type instanceNames map[string][]netip.Addr

func (r instanceNames) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestConnectMastodonRefusesInstancesThatAreNotPublic: a host name that
// resolves to a private, link-local (metadata) or CGNAT address is a 422
// on instanceUrl, and the token never leaves: the instance (a real server
// on loopback, which the names point at through the dial) is never hit.
func TestConnectMastodonRefusesInstancesThatAreNotPublic(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"id":"1","username":"a","acct":"a"}`))
	}))
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	checked := instanceNames{
		"evil.example":     {netip.MustParseAddr("10.0.0.5")},
		"metadata.example": {netip.MustParseAddr("169.254.169.254")},
		"cgnat.example":    {netip.MustParseAddr("100.64.3.4")},
		"loop.example":     {netip.MustParseAddr("127.0.0.1")},
		// Public when checked, loopback when dialled: DNS rebinding.
		"rebind.example": {netip.MustParseAddr("93.184.215.14")},
	}
	dialled := instanceNames{}
	for k, v := range checked {
		dialled[k] = v
	}
	dialled["rebind.example"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for _, local := range []bool{false, true} {
		ad := mastodon.New(mastodon.Config{}, outbound.NewClient(outbound.Options{Resolver: dialled, AllowLoopback: false}), nil)
		svc, err := NewService(ServiceConfig{
			Store: NewStore(newFakeDB(), "t"), Sealer: fakeSealer{}, OAuth: oauth.New(oauth.Config{}),
			Sites: fakeSites{"site_a": {ID: "site_a"}}, Identifiers: map[platform.Name]platform.Identifier{platform.Mastodon: ad},
			AllowHTTPInstances: local, Resolver: checked,
		})
		if err != nil {
			t.Fatal(err)
		}
		hosts := []string{"evil.example", "metadata.example", "cgnat.example", "rebind.example"}
		if !local {
			hosts = append(hosts, "loop.example")
		}
		for _, h := range hosts {
			scheme := "https://"
			if local {
				scheme = "http://"
			}
			_, err := svc.Connect(context.Background(), "site_a", ManualRequest{Platform: platform.Mastodon,
				InstanceURL: scheme + net.JoinHostPort(h, port), AccessToken: "tok-secret"})
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.KindUnprocessable || e.Code != "mastodon.instance_not_public" ||
				len(e.Problems) != 1 || e.Problems[0].Field != "instanceUrl" {
				t.Errorf("local=%v %s: got %v, want a 422 mastodon.instance_not_public on instanceUrl", local, h, err)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the instance was reached %d times, want 0", n)
	}
}
