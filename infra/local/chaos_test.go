package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
)

// fakeKiller counts KillBusy calls; busy says whether an instance is busy.
type fakeKiller struct {
	mu    sync.Mutex
	busy  bool
	calls int
}

func (f *fakeKiller) KillBusy(pick func(int) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if !f.busy {
		return 0
	}
	return pick(2) + 1
}

func newTestChaos(k *fakeKiller) *chaos {
	return newChaos(func(id string) (killer, bool) {
		if id != "DispatchFunction" {
			return nil, false
		}
		return k, true
	})
}

func TestChaosAfterCreate(t *testing.T) {
	t.Parallel()
	k := &fakeKiller{busy: true}
	c := newTestChaos(k)
	defer c.stop()
	c.afterCreate(platformsim.Post{})
	if _, st := c.snapshot(); st.Kills != 0 || k.calls != 0 {
		t.Fatalf("unconfigured: got %+v and %d calls, want nothing", st, k.calls)
	}
	c.configure(ChaosConfig{AfterCreate: 1, MaxKills: 3, Seed: 7})
	for range 5 {
		c.afterCreate(platformsim.Post{})
	}
	if _, st := c.snapshot(); st.Kills != 3 || st.AfterCreate != 3 || k.calls != 3 {
		t.Errorf("afterCreate 1, maxKills 3, five posts: got %+v and %d calls, want 3 kills", st, k.calls)
	}
	k.mu.Lock()
	k.busy = false
	k.mu.Unlock()
	c.configure(ChaosConfig{AfterCreate: 1})
	c.afterCreate(platformsim.Post{})
	if _, st := c.snapshot(); st.Kills != 0 || st.Idle != 1 {
		t.Errorf("nothing busy: got %+v, want 1 idle and no kill", st)
	}
	c.configure(ChaosConfig{AfterCreate: 0.5, Seed: 1})
	for range 400 {
		c.afterCreate(platformsim.Post{})
	}
	if _, st := c.snapshot(); st.Idle < 150 || st.Idle > 250 {
		t.Errorf("afterCreate 0.5 over 400 posts: got %d attempts, want about 200", st.Idle)
	}
}

func TestChaosTimer(t *testing.T) {
	t.Parallel()
	k := &fakeKiller{busy: true}
	c := newTestChaos(k)
	defer c.stop()
	c.configure(ChaosConfig{EveryMillis: 10, MaxKills: 4})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, st := c.snapshot(); st.Timed == 4 {
			break
		}
		if time.Now().After(deadline) {
			_, st := c.snapshot()
			t.Fatalf("timer: got %+v after 10 s, want 4 timed kills", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if _, st := c.snapshot(); st.Kills != 4 {
		t.Errorf("timer past maxKills: got %d kills, want 4", st.Kills)
	}
	// A new configuration stops the old loop.
	c.configure(ChaosConfig{})
	k.mu.Lock()
	before := k.calls
	k.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	k.mu.Lock()
	after := k.calls
	k.mu.Unlock()
	if after != before {
		t.Errorf("timer after reconfiguring off: %d more calls, want none", after-before)
	}
}

func TestChaosHandler(t *testing.T) {
	t.Parallel()
	k := &fakeKiller{busy: true}
	c := newTestChaos(k)
	defer c.stop()
	srv := httptest.NewServer(c.handler())
	defer srv.Close()
	do := func(method, body string) (int, map[string]json.RawMessage) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, bad := range []string{`{"afterCreate":2}`, `{"everyMillis":-1}`, `{"unknown":1}`, `not json`} {
		if code, _ := do("POST", bad); code != 400 {
			t.Errorf("POST %s: got %d, want 400", bad, code)
		}
	}
	if code, _ := do("POST", `{"function":"NoSuchFunction","afterCreate":1}`); code != 404 {
		t.Errorf("unknown function: got %d, want 404", code)
	}
	if code, out := do("POST", `{"afterCreate":1}`); code != 200 || !strings.Contains(string(out["config"]), `"function":"DispatchFunction"`) {
		t.Errorf("POST: got %d %s, want 200 with the default function", code, out["config"])
	}
	c.afterCreate(platformsim.Post{})
	if code, out := do("DELETE", ""); code != 200 || string(out["stats"]) != `{"kills":1,"afterCreate":1,"timed":0,"idle":0}` {
		t.Errorf("DELETE: got %d %s, want the counts with one kill", code, out["stats"])
	}
	c.afterCreate(platformsim.Post{})
	if code, out := do("GET", ""); code != 200 || !strings.Contains(string(out["stats"]), `"kills":1`) {
		t.Errorf("GET after DELETE: got %d %s, want crashes off and the counts kept", code, out["stats"])
	}
}
