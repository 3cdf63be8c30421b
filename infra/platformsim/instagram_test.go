package platformsim_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
)

const igRedirect = "https://cms.example/oauth/instagram/callback"

func TestInstagramOAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]platformsim.Client{"instagram": {ID: "ig-app", Secret: "ig-secret"}})
	q := e.authorize(t, "/instagram/oauth/authorize", url.Values{"client_id": {"ig-app"}, "redirect_uri": {igRedirect},
		"response_type": {"code"}, "scope": {"instagram_business_basic,instagram_business_content_publish"}, "state": {"st"}})
	code := q.Get("code")
	if !strings.HasSuffix(code, "#_") || q.Get("state") != "st" {
		t.Fatalf("authorize: got %v, want a code ending in #_ and the state", q)
	}
	exchange := func(code, secret string) (int, string) {
		form := url.Values{"client_id": {"ig-app"}, "client_secret": {secret}, "grant_type": {"authorization_code"},
			"redirect_uri": {igRedirect}, "code": {code}}
		resp, err := http.PostForm(e.sim.URL+"/instagram/oauth/access_token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if status, body := exchange(code, "ig-secret"); status != http.StatusBadRequest || !strings.Contains(body, "error_message") {
		t.Fatalf("code with #_: got %d %s, want 400 in the OAuth error shape", status, body)
	}
	q = e.authorize(t, "/instagram/oauth/authorize", url.Values{"client_id": {"ig-app"}, "redirect_uri": {igRedirect},
		"response_type": {"code"}, "scope": {"instagram_business_basic"}})
	clean := strings.TrimSuffix(q.Get("code"), "#_")
	if status, body := exchange(clean, "wrong"); status != http.StatusBadRequest || !strings.Contains(body, "Invalid platform app") {
		t.Fatalf("wrong secret: got %d %s, want 400 Invalid platform app", status, body)
	}
	status, body := exchange(strings.TrimSuffix(e.authorizeIG(t), "#_"), "ig-secret")
	if status != http.StatusOK || !strings.Contains(body, `"user_id":1784`) {
		t.Fatalf("exchange: got %d %s, want a token and a numeric user_id", status, body)
	}
	short := body[strings.Index(body, `"access_token":"`)+16:]
	short = short[:strings.Index(short, `"`)]

	longQ := url.Values{"grant_type": {"ig_exchange_token"}, "client_secret": {"ig-secret"}, "access_token": {short}}
	st, ll, _ := e.call(t, http.MethodGet, "/instagram/access_token?"+longQ.Encode(), nil, nil)
	if st != http.StatusOK || ll["expires_in"] != float64(5183944) {
		t.Fatalf("ig_exchange_token: got %d %v, want a 60-day token", st, ll)
	}
	long := str(ll, "access_token")
	refresh := func(tok string) (int, map[string]any) {
		st, body, _ := e.call(t, http.MethodGet, "/instagram/refresh_access_token?"+url.Values{"grant_type": {"ig_refresh_token"}, "access_token": {tok}}.Encode(), nil, nil)
		return st, body
	}
	if st, body := refresh(long); st != http.StatusBadRequest {
		t.Fatalf("refresh of a token under 24 h old: got %d %v, want 400", st, body)
	}
	e.clock.Advance(25 * time.Hour)
	st, fresh := refresh(long)
	if st != http.StatusOK || str(fresh, "access_token") == long {
		t.Fatalf("refresh: got %d %v, want a new 60-day token", st, fresh)
	}
	if st, _, _ := e.call(t, http.MethodGet, "/instagram/v26.0/me?fields=user_id,username", nil, bearerHeader(str(fresh, "access_token"))); st != http.StatusOK {
		t.Fatalf("me with the refreshed token: got %d, want 200", st)
	}
	if n := e.sim.Calls("instagram", "token_refresh"); n != 2 {
		t.Fatalf("got %d token_refresh calls, want 2", n)
	}
	e.sim.AddFault(platformsim.Fault{Platform: "instagram", Kind: platformsim.FaultAccessDenied})
	q = e.authorize(t, "/instagram/oauth/authorize", url.Values{"client_id": {"ig-app"}, "redirect_uri": {igRedirect},
		"response_type": {"code"}, "scope": {"instagram_business_basic"}, "state": {"s"}})
	if q.Get("error") != "access_denied" || q.Get("state") != "s" {
		t.Fatalf("denied: got %v, want error=access_denied", q)
	}
}

func (e *env) authorizeIG(t *testing.T) string {
	t.Helper()
	return e.authorize(t, "/instagram/oauth/authorize", url.Values{"client_id": {"ig-app"}, "redirect_uri": {igRedirect},
		"response_type": {"code"}, "scope": {"instagram_business_basic"}}).Get("code")
}

func TestInstagramContainerLifecycle(t *testing.T) {
	t.Parallel()
	const user = "17841400000000009"
	e := newEnv(t, nil)
	e.sim.AddAccount(platformsim.Account{Platform: "instagram", ID: user, Handle: "h", AccessToken: "tok"})
	auth := bearerHeader("tok")
	create := func() string {
		form := url.Values{"image_url": {e.sim.URL + "/_sim/media/a.jpg"}, "caption": {"hi"}}
		st, body, _ := e.call(t, http.MethodPost, "/instagram/v26.0/"+user+"/media", form, auth)
		if st != http.StatusOK || str(body, "id") == "" {
			t.Fatalf("create: got %d %v, want a container id", st, body)
		}
		return str(body, "id")
	}
	status := func(id string) string {
		_, body, _ := e.call(t, http.MethodGet, "/instagram/v26.0/"+id+"?fields=status_code,status", nil, auth)
		return str(body, "status_code")
	}
	publish := func(id string) (int, map[string]any) {
		st, body, _ := e.call(t, http.MethodPost, "/instagram/v26.0/"+user+"/media_publish", url.Values{"creation_id": {id}}, auth)
		return st, body
	}

	id := create()
	if st, body := publish(id); st != http.StatusBadRequest {
		t.Fatalf("publish before FINISHED: got %d %v, want 400", st, body)
	} else if code, sub := graphCode(body); code != 9007 || sub != 2207027 {
		t.Fatalf("publish before FINISHED: got %v/%v, want 9007/2207027", code, sub)
	}
	for i, want := range []string{"IN_PROGRESS", "FINISHED"} {
		if got := status(id); got != want {
			t.Fatalf("status read %d: got %s, want %s", i, got, want)
		}
	}
	if st, body := publish(id); st != http.StatusOK || str(body, "id") == "" {
		t.Fatalf("publish: got %d %v, want a media id", st, body)
	}
	if got := status(id); got != "PUBLISHED" {
		t.Fatalf("after publish: got %s, want PUBLISHED", got)
	}

	_, limit, _ := e.call(t, http.MethodGet, "/instagram/v26.0/"+user+"/content_publishing_limit?fields=quota_usage,config", nil, auth)
	data, _ := limit["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["quota_usage"] != float64(1) {
		t.Fatalf("content_publishing_limit: got %v, want quota_usage 1", limit)
	}

	stale := create()
	e.clock.Advance(25 * time.Hour)
	if got := status(stale); got != "EXPIRED" {
		t.Fatalf("after 25 h: got %s, want EXPIRED", got)
	}
	if _, body := publish(stale); func() bool { _, sub := graphCode(body); return sub != 2207020 }() {
		t.Fatalf("publish of an expired container: got %v, want subcode 2207020", body)
	}

	form := url.Values{"image_url": {e.sim.URL + "/_sim/media/a.png"}}
	if st, body, _ := e.call(t, http.MethodPost, "/instagram/v26.0/"+user+"/media", form, auth); st != http.StatusBadRequest {
		t.Fatalf("PNG image: got %d %v, want 400 (JPEG only)", st, body)
	}
	if st, body, _ := e.call(t, http.MethodPost, "/instagram/v26.0/"+user+"/media", url.Values{"caption": {"no media"}}, auth); st != http.StatusBadRequest {
		t.Fatalf("no media: got %d %v, want 400", st, body)
	}
}
