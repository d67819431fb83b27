package agent_test

import (
	"slices"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestAgentFailsOverWhenNodeKilled runs three real server processes and an
// agent that knows all of them, SIGKILLs the node holding the agent's
// session, and checks that the agent moves to a live node by itself and the
// machine stays one machine, online.
func TestAgentFailsOverWhenNodeKilled(t *testing.T) {
	server, _ := harness.Binaries(t)
	pc := harness.StartProcs(t, server, 3, harness.ProcOptions{})
	cl := pc.Client()
	hw := harness.NewSimMachine(t, "failover")
	a := startAgent(t, agentSpec{servers: pc.Addrs(), fingerprint: pc.Fingerprint, token: pc.Token(agentToken, time.Hour, 1), hw: hw})
	id := a.waitEnrolled(t)
	m := waitMachine(t, cl, id, "online", func(m *underlayv1.Machine) bool {
		held, ok := a.Connected()
		return m.GetOnline() && ok && m.GetConnectedNode() == held
	})
	victim := m.GetConnectedNode()
	i := pc.Index(victim)
	if i < 0 {
		t.Fatalf("machine connected to unknown node %q", victim)
	}
	t.Logf("machine %s is connected to %s; killing it", id, victim)
	pc.Kill(i)

	m = waitMachine(t, cl, id, "online on a live node", func(m *underlayv1.Machine) bool {
		held, ok := a.Connected()
		return m.GetOnline() && m.GetConnectedNode() != victim && ok && held == m.GetConnectedNode()
	})
	if j := pc.Index(m.GetConnectedNode()); j < 0 || !pc.Procs[j].Running() {
		t.Errorf("machine shown on node %q, which is not running", m.GetConnectedNode())
	}
	if got := a.MachineID(); got != id {
		t.Errorf("agent machine id %s after failover, want %s", got, id)
	}
	// The token had one use: a second enrollment would have been refused,
	// and the log would say so.
	if a.log.Has("enrollment refused") || a.log.Has("dropping state") {
		t.Errorf("agent re-enrolled during failover:\n%s", a.log.String())
	}
	if ids := machineIDs(listMachines(t, cl)); !slices.Equal(ids, []string{id}) {
		t.Errorf("machines %v after failover, want only %s", ids, id)
	}
	t.Logf("machine %s moved from %s to %s", id, victim, m.GetConnectedNode())
}
