package agent_test

import (
	"os"
	"strings"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestCloudVMAgentInNetns runs the real underlay-agent binary in its own
// network namespace, like a cloud VM whose only way to the cluster is one
// routed link, against three real server processes listening on the host
// end of that link.
//
// The agent enters only the network namespace (nsenter --net). 'ip netns
// exec' would also remount /sys for the namespace, and the inventory would
// then see nothing but the veth, which is virtual and identifies no
// machine; on hosts without DMI (a Firecracker VM, say) the server would
// then rightly refuse an identity with no UUID, MAC or serial.
func TestCloudVMAgentInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and a veth pair")
	}
	server, agentBin := harness.Binaries(t)
	l := harness.NewLink(t)
	pc := harness.StartProcs(t, server, 3, harness.ProcOptions{APIHost: l.HostIP})
	cl := pc.Client()
	tok := pc.Token(agentToken, time.Hour, 1)
	before := l.HostRxBytes(t)

	agent := harness.StartNetnsAgent(t, l, agentBin, pc.Addrs(), pc.Fingerprint, tok)
	agentLog := agent.Output

	var m *underlayv1.Machine
	harness.Eventually(t, waitLong, "the agent in "+l.NS+" to enroll and show online", func() bool {
		if err, exited := agent.Exited(); exited {
			t.Fatalf("agent exited: %v\n%s", err, agentLog())
		}
		ms := listMachines(t, cl)
		if len(ms) == 1 && ms[0].GetOnline() {
			m = ms[0]
			return true
		}
		return false
	})
	// The server may show the machine online a moment before the agent has
	// written its log line.
	logged := func() bool {
		l := agentLog()
		return strings.Contains(l, "machine enrolled") && strings.Contains(l, "session established")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !logged() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !logged() {
		t.Errorf("agent log lacks enrollment and session:\n%s", agentLog())
	}
	if pc.Index(m.GetConnectedNode()) < 0 {
		t.Errorf("connected to unknown node %q", m.GetConnectedNode())
	}
	host, _ := os.Hostname()
	if m.GetHostname() != host {
		t.Errorf("hostname %q, want this host's %q", m.GetHostname(), host)
	}
	if m.GetState() != underlayv1.MachineState_MACHINE_STATE_DISCOVERED {
		t.Errorf("state %v, want discovered", m.GetState())
	}
	id := m.GetIdentity()
	if id.GetUuid() == "" && len(id.GetMacs()) == 0 && len(id.GetSerials()) == 0 {
		t.Errorf("machine has an empty identity: %v", id)
	}
	inv, err := cl.Machines.GetInventory(t.Context(), &underlayv1.GetMachineRequest{Id: m.GetId()})
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	if inv.GetCpu().GetThreads() == 0 || inv.GetMemory().GetTotalBytes() == 0 {
		t.Errorf("inventory lacks CPU or memory: cpu %v memory %v", inv.GetCpu(), inv.GetMemory())
	}
	// The agent's only way out of its namespace is the veth pair.
	if after := l.HostRxBytes(t); after <= before {
		t.Errorf("host end of the veth received %d bytes before and %d after enrollment", before, after)
	}
	t.Logf("machine %s (%s) enrolled from namespace %s (%s) via %s, connected to %s",
		m.GetId(), m.GetHostname(), l.NS, l.GuestIP, l.HostIP, m.GetConnectedNode())
}
