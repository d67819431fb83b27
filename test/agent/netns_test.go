package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("heartbeat: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+l.NS, "--", agentBin, "run",
		"--server", strings.Join(pc.Addrs(), ","), "--ca-fingerprint", pc.Fingerprint,
		"--token", tok, "--state-dir", filepath.Join(dir, "state"), "--config", cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", b)
		}
	})
	agentLog := func() string {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return err.Error()
		}
		return string(b)
	}

	var m *underlayv1.Machine
	harness.Eventually(t, waitLong, "the agent in "+l.NS+" to enroll and show online", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("agent exited: %v\n%s", err, agentLog())
		default:
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
