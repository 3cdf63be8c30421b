package lambdaenv

// ProcessIDs lists the emulator processes and the runtime processes they
// started, for tests that check Close stops everything.
func (p *Pool) ProcessIDs() []int {
	var out []int
	for _, inst := range p.instances {
		inst.mu.Lock()
		if inst.cmd != nil && inst.cmd.Process != nil {
			pid := inst.cmd.Process.Pid
			out = append(out, pid)
			out = append(out, childPIDs(pid)...)
		}
		inst.mu.Unlock()
	}
	return out
}

// Classify exposes classify to the tests.
var Classify = classify
