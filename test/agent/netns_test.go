package agent_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// link is a network namespace joined to the root namespace by a veth pair
// on a /30 inside 10.213.0.0/16.
type link struct {
	ns       string
	hostDev  string
	hostIP   string
	guestDev string
	guestIP  string
}

func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLink creates the namespace and the veth pair; both are removed at the
// end of the test, also when it fails.
func newLink(tb testing.TB) *link {
	tb.Helper()
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("%s is needed for the network namespace test: %v", bin, err)
		}
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	used := run(tb, "ip", "-4", "-o", "addr", "show")
	var base string
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(256*64))
		if err != nil {
			tb.Fatal(err)
		}
		third, fourth := n.Int64()/64, n.Int64()%64*4
		base = fmt.Sprintf("10.213.%d.", third)
		if !strings.Contains(used, fmt.Sprintf(" %s%d/", base, fourth+1)) && !strings.Contains(used, fmt.Sprintf(" %s%d/", base, fourth+2)) {
			l := &link{
				ns:       "ul-e2e-" + suffix,
				hostDev:  "ulh" + suffix,
				guestDev: "ulg" + suffix,
				hostIP:   base + strconv.Itoa(int(fourth+1)),
				guestIP:  base + strconv.Itoa(int(fourth+2)),
			}
			l.create(tb)
			return l
		}
	}
}

func (l *link) create(tb testing.TB) {
	tb.Helper()
	run(tb, "ip", "netns", "add", l.ns)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", l.ns).CombinedOutput(); err != nil {
			tb.Errorf("remove netns %s: %v %s", l.ns, err, out)
		}
	})
	run(tb, "ip", "link", "add", l.hostDev, "type", "veth", "peer", "name", l.guestDev)
	tb.Cleanup(func() {
		// Removing the namespace removes the pair; this covers a failure
		// before the guest end moved.
		if exec.Command("ip", "link", "show", l.hostDev).Run() == nil {
			_ = exec.Command("ip", "link", "del", l.hostDev).Run()
		}
	})
	run(tb, "ip", "link", "set", l.guestDev, "netns", l.ns)
	run(tb, "ip", "addr", "add", l.hostIP+"/30", "dev", l.hostDev)
	run(tb, "ip", "link", "set", l.hostDev, "up")
	run(tb, "ip", "-n", l.ns, "addr", "add", l.guestIP+"/30", "dev", l.guestDev)
	run(tb, "ip", "-n", l.ns, "link", "set", l.guestDev, "up")
	run(tb, "ip", "-n", l.ns, "link", "set", "lo", "up")
	if _, err := exec.LookPath("ping"); err == nil {
		harness.Eventually(tb, 30*time.Second, "the namespace to reach "+l.hostIP, func() bool {
			return exec.Command("ip", "netns", "exec", l.ns, "ping", "-c1", "-W1", l.hostIP).Run() == nil
		})
	}
}

// hostRxBytes is what the host end of the pair received.
func (l *link) hostRxBytes(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/net", l.hostDev, "statistics", "rx_bytes"))
	if err != nil {
		tb.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

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
	server, agentBin := buildBinaries(t)
	l := newLink(t)
	pc := harness.StartProcs(t, server, 3, harness.ProcOptions{APIHost: l.hostIP})
	cl := pc.Client()
	tok := pc.Token(agentToken, time.Hour, 1)
	before := l.hostRxBytes(t)

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
	cmd := exec.Command("nsenter", "--net=/run/netns/"+l.ns, "--", agentBin, "run",
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
	harness.Eventually(t, waitLong, "the agent in "+l.ns+" to enroll and show online", func() bool {
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
	if after := l.hostRxBytes(t); after <= before {
		t.Errorf("host end of the veth received %d bytes before and %d after enrollment", before, after)
	}
	t.Logf("machine %s (%s) enrolled from namespace %s (%s) via %s, connected to %s",
		m.GetId(), m.GetHostname(), l.ns, l.guestIP, l.hostIP, m.GetConnectedNode())
}
