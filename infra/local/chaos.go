package main

import (
	"cmp"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/posse-dev/posse/infra/platformsim"
)

// killer crashes the runtime of a busy instance: *lambdaenv.Pool.
type killer interface {
	KillBusy(pick func(n int) int) int
}

// ChaosConfig is what the runner's crash injection does, set with POST
// /_local/chaos on the simulator's address (loopback only). The zero value
// does nothing.
type ChaosConfig struct {
	// Function is the logical id of the function whose instances are
	// crashed (default DispatchFunction).
	Function string `json:"function,omitempty"`
	// AfterCreate is the probability, from 0 to 1, that a post the
	// simulator has just created (before its answer is written) crashes a
	// busy instance of Function: the post exists and the instance that
	// asked for it most likely dies before it can record it.
	AfterCreate float64 `json:"afterCreate,omitempty"`
	// EveryMillis crashes a busy instance of Function every so many
	// milliseconds on average (jittered ±50%), at whatever point of an
	// invocation it is: claim, publish, outcome. 0 turns it off.
	EveryMillis int `json:"everyMillis,omitempty"`
	// MaxKills bounds the crashes of this configuration (0: no bound).
	MaxKills int `json:"maxKills,omitempty"`
	// Seed seeds the random choices (0: random).
	Seed uint64 `json:"seed,omitempty"`
}

// ChaosStats counts what the crash injection did since it was configured.
type ChaosStats struct {
	// Kills is every runtime killed; AfterCreate and Timed split it.
	Kills       int `json:"kills"`
	AfterCreate int `json:"afterCreate"`
	Timed       int `json:"timed"`
	// Idle counts the times a crash was due and no instance was busy.
	Idle int `json:"idle"`
}

// chaos is the runner's crash injection: it kills the runtime (the
// bootstrap under the emulator) of busy instances with SIGKILL, when the
// simulator has just created a post or on a timer, as ChaosConfig says.
// The emulator answers the invocation with Runtime.ExitError, the event
// source keeps the batch, and the messages come back after the queue's
// visibility timeout; the next invocation starts a fresh runtime.
type chaos struct {
	// pool finds the pool of a function by logical id.
	pool func(logicalID string) (killer, bool)

	mu    sync.Mutex
	cfg   ChaosConfig
	rng   *rand.Rand
	stats ChaosStats
	// gen changes with every configuration, so an old timer loop stops.
	gen int

	ctx  context.Context // ends timer loops at close
	stop context.CancelFunc
}

func newChaos(pool func(string) (killer, bool)) *chaos {
	ctx, stop := context.WithCancel(context.Background())
	return &chaos{pool: pool, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), ctx: ctx, stop: stop}
}

// configure replaces the configuration and zeroes the counts; a timer loop
// runs until the next configuration or close.
func (c *chaos) configure(cfg ChaosConfig) {
	if cfg.Function == "" {
		cfg.Function = "DispatchFunction"
	}
	c.mu.Lock()
	c.cfg, c.stats = cfg, ChaosStats{}
	c.gen++
	gen := c.gen
	if cfg.Seed != 0 {
		c.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	}
	c.mu.Unlock()
	if cfg.EveryMillis > 0 {
		go c.timer(c.ctx, gen)
	}
}

// snapshot is the configuration and counts now.
func (c *chaos) snapshot() (ChaosConfig, ChaosStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg, c.stats
}

// afterCreate is the simulator's AfterCreate hook.
func (c *chaos) afterCreate(platformsim.Post) {
	c.mu.Lock()
	due := c.cfg.AfterCreate > 0 && c.rng.Float64() < c.cfg.AfterCreate
	c.mu.Unlock()
	if due {
		c.kill(&c.stats.AfterCreate)
	}
}

// timer kills a busy instance every EveryMillis on average while gen is
// the current configuration.
func (c *chaos) timer(ctx context.Context, gen int) {
	for {
		c.mu.Lock()
		if c.gen != gen || c.cfg.EveryMillis <= 0 {
			c.mu.Unlock()
			return
		}
		wait := time.Duration(float64(c.cfg.EveryMillis)*(0.5+c.rng.Float64())) * time.Millisecond
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		c.mu.Lock()
		current := c.gen == gen
		c.mu.Unlock()
		if !current {
			return
		}
		c.kill(&c.stats.Timed)
	}
}

// kill crashes one busy instance of the configured function and counts it
// in counter, unless MaxKills is reached.
func (c *chaos) kill(counter *int) {
	c.mu.Lock()
	cfg := c.cfg
	if cfg.MaxKills > 0 && c.stats.Kills >= cfg.MaxKills {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	p, ok := c.pool(cfg.Function)
	if !ok {
		return
	}
	n := p.KillBusy(func(n int) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.rng.IntN(n)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 0 {
		c.stats.Idle++
		return
	}
	c.stats.Kills++
	*counter++
}

// handler serves /_local/chaos: GET answers {"config":...,"stats":...};
// POST sets a ChaosConfig (and zeroes the counts); DELETE turns crashes off
// and answers the final counts.
func (c *chaos) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			var cfg ChaosConfig
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cfg); err != nil || cfg.AfterCreate < 0 || cfg.AfterCreate > 1 || cfg.EveryMillis < 0 || cfg.MaxKills < 0 {
				http.Error(w, `want {"function"?, "afterCreate": 0..1, "everyMillis"?, "maxKills"?, "seed"?}`, http.StatusBadRequest)
				return
			}
			if _, ok := c.pool(cmp.Or(cfg.Function, "DispatchFunction")); !ok {
				http.Error(w, "no such function: "+cmp.Or(cfg.Function, "DispatchFunction"), http.StatusNotFound)
				return
			}
			c.configure(cfg)
		case http.MethodDelete:
			c.mu.Lock()
			c.cfg = ChaosConfig{}
			c.gen++
			c.mu.Unlock()
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		cfg, st := c.snapshot()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"config": cfg, "stats": st})
	})
}
