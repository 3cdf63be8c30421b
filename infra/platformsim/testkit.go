package platformsim

// Test helpers for adapters driven against the simulator: a clock the
// simulator and an adapter can share, and an in-memory journal. The rest of
// the test fixtures are in package simtest.

import (
	"context"
	"maps"
	"sync"
	"time"
)

// ManualClock is a clock that moves only when slept on or advanced. Pass
// Now to Options.Now and the clock itself to an adapter (it implements
// platform.Clock), so reset headers and waits line up without real sleeps.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock standing at start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep advances the clock by d at once; it fails only when ctx is done.
func (c *ManualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// MemJournal is an in-memory journal (it implements platform.Journal). Set
// Fail to make Record fail.
type MemJournal struct {
	mu   sync.Mutex
	m    map[string]string
	Fail error
}

// Record implements platform.Journal.
func (j *MemJournal) Record(_ context.Context, key, value string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.Fail != nil {
		return j.Fail
	}
	if j.m == nil {
		j.m = map[string]string{}
	}
	j.m[key] = value
	return nil
}

// Entries returns a copy of what was recorded, shaped like Post.Journal.
func (j *MemJournal) Entries() map[string]string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.m)
}
