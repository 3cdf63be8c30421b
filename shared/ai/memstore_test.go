package ai

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posse-dev/posse/shared/llm"
)

// memStore is an in-memory store with the semantics of dynamoStore, for
// unit tests. fail makes an operation return an error.
type memStore struct {
	mu     sync.Mutex
	gens   map[string]genItem
	budget map[string]int64
	calls  []callRecord
	cool   map[llm.Name]coolState
	ops    map[string]int
	fail   map[string]error
}

func newMemStore() *memStore {
	return &memStore{gens: map[string]genItem{}, budget: map[string]int64{}, cool: map[llm.Name]coolState{}, ops: map[string]int{}, fail: map[string]error{}}
}

func (m *memStore) op(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops[name]++
	return m.fail[name]
}

func (m *memStore) count(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops[name]
}

func (m *memStore) records() []callRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func (m *memStore) getGen(_ context.Context, siteID, k string) (genItem, error) {
	if err := m.op("getGen"); err != nil {
		return genItem{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gens[siteID+"\x00"+k], nil
}

func (m *memStore) leaseGen(_ context.Context, siteID, k, leaseID string, now, until time.Time) (bool, error) {
	if err := m.op("leaseGen"); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.gens[siteID+"\x00"+k]
	if ok && it.State != stateFailed && !(it.State == stateGenerating && it.LeaseUntil.Before(now)) {
		return false, nil
	}
	m.gens[siteID+"\x00"+k] = genItem{State: stateGenerating, LeaseID: leaseID, LeaseUntil: until}
	return true, nil
}

func (m *memStore) putGen(_ context.Context, siteID, k, leaseID string, g genItem, _ time.Time) error {
	if err := m.op("putGen"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gens[siteID+"\x00"+k].LeaseID != leaseID {
		return nil
	}
	g.State = stateDone
	m.gens[siteID+"\x00"+k] = g
	return nil
}

func (m *memStore) failGen(_ context.Context, siteID, k, leaseID, reason string, now time.Time) error {
	if err := m.op("failGen"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it := m.gens[siteID+"\x00"+k]
	if it.LeaseID != leaseID {
		return nil
	}
	it.State, it.Reason, it.LeaseUntil = stateFailed, reason, now
	m.gens[siteID+"\x00"+k] = it
	return nil
}

func (m *memStore) reserve(_ context.Context, siteID, month string, est, budget int64, _ time.Time) (bool, int64, error) {
	if err := m.op("reserve"); err != nil {
		return false, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.budget[siteID+"\x00"+month]
	if est > budget || c > budget-est {
		return false, 0, nil
	}
	m.budget[siteID+"\x00"+month] = c + est
	return true, c + est, nil
}

func (m *memStore) settle(_ context.Context, siteID, month string, delta int64) error {
	if err := m.op("settle"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.budget[siteID+"\x00"+month] += delta
	return nil
}

func (m *memStore) monthCost(_ context.Context, siteID, month string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.budget[siteID+"\x00"+month], nil
}

func (m *memStore) recordCall(_ context.Context, c callRecord) error {
	if err := m.op("recordCall"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, c)
	return nil
}

func (m *memStore) usage(_ context.Context, siteID, fromDay, toDay string) ([]UsageRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := map[string]*UsageRow{}
	var keys []string
	for _, c := range m.calls {
		day := c.At.UTC().Format(dayLayout)
		if c.SiteID != siteID || day < fromDay || day > toDay {
			continue
		}
		k := day + "#" + string(c.Provider) + "#" + c.Model
		r := rows[k]
		if r == nil {
			r = &UsageRow{Day: day, Provider: c.Provider, Model: c.Model}
			rows[k] = r
			keys = append(keys, k)
		}
		r.Calls++
		if c.Outcome != CodeOK {
			r.Failures++
		}
		r.InputTokens += int64(c.InputTokens)
		r.OutputTokens += int64(c.OutputTokens)
		r.CostMicros += c.CostMicros
	}
	slices.SortFunc(keys, strings.Compare)
	out := []UsageRow{}
	for _, k := range keys {
		out = append(out, *rows[k])
	}
	return out, nil
}

func (m *memStore) cooldowns(context.Context) (map[llm.Name]coolState, error) {
	if err := m.op("cooldowns"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[llm.Name]coolState{}
	for k, v := range m.cool {
		out[k] = v
	}
	return out, nil
}

func (m *memStore) failure(_ context.Context, name llm.Name, now time.Time, p CooldownPolicy, minUntil time.Time) (coolState, error) {
	if err := m.op("failure"); err != nil {
		return coolState{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.cool[name]
	if st.WindowStart.IsZero() || st.WindowStart.After(now.Add(-p.Window)) {
		if st.WindowStart.IsZero() {
			st.WindowStart = now
		}
		st.Failures++
	} else {
		st.WindowStart, st.Failures = now, 1
	}
	until := time.Time{}
	if st.Failures >= p.Failures {
		until = now.Add(p.Duration)
	}
	if minUntil.After(until) {
		until = minUntil
	}
	if !until.IsZero() && until.After(st.Until) {
		if st.Failures >= p.Failures {
			st.Failures, st.WindowStart = 0, time.Time{}
		}
		st.Until = until
	}
	m.cool[name] = st
	return st, nil
}

func (m *memStore) success(_ context.Context, name llm.Name) error {
	if err := m.op("success"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.cool[name]
	st.Failures, st.WindowStart = 0, time.Time{}
	m.cool[name] = st
	return nil
}
