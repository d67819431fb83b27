package harness

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
	"testing"
	"time"
)

// Link is a network namespace joined to the root namespace by a veth pair
// on a /30 inside 10.213.0.0/16.
type Link struct {
	NS       string
	HostDev  string
	HostIP   string
	GuestDev string
	GuestIP  string
}

// Run runs a command and fails the test with its output if it fails.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewLink creates a namespace and a veth pair with a free /30; both are
// removed at the end of the test, also when it fails. It needs root.
func NewLink(tb testing.TB) *Link {
	tb.Helper()
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("%s is needed for a network namespace: %v", bin, err)
		}
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	used := Run(tb, "ip", "-4", "-o", "addr", "show")
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(256*64))
		if err != nil {
			tb.Fatal(err)
		}
		third, fourth := n.Int64()/64, n.Int64()%64*4
		base := fmt.Sprintf("10.213.%d.", third)
		if strings.Contains(used, fmt.Sprintf(" %s%d/", base, fourth+1)) || strings.Contains(used, fmt.Sprintf(" %s%d/", base, fourth+2)) {
			continue
		}
		l := &Link{
			NS:       "ul-e2e-" + suffix,
			HostDev:  "ulh" + suffix,
			GuestDev: "ulg" + suffix,
			HostIP:   base + strconv.Itoa(int(fourth+1)),
			GuestIP:  base + strconv.Itoa(int(fourth+2)),
		}
		l.create(tb)
		return l
	}
}

func (l *Link) create(tb testing.TB) {
	tb.Helper()
	Run(tb, "ip", "netns", "add", l.NS)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", l.NS).CombinedOutput(); err != nil {
			tb.Errorf("remove netns %s: %v %s", l.NS, err, out)
		}
	})
	Run(tb, "ip", "link", "add", l.HostDev, "type", "veth", "peer", "name", l.GuestDev)
	tb.Cleanup(func() {
		// Removing the namespace removes the pair; this covers a failure
		// before the guest end moved.
		if exec.Command("ip", "link", "show", l.HostDev).Run() == nil {
			_ = exec.Command("ip", "link", "del", l.HostDev).Run()
		}
	})
	Run(tb, "ip", "link", "set", l.GuestDev, "netns", l.NS)
	Run(tb, "ip", "addr", "add", l.HostIP+"/30", "dev", l.HostDev)
	Run(tb, "ip", "link", "set", l.HostDev, "up")
	Run(tb, "ip", "-n", l.NS, "addr", "add", l.GuestIP+"/30", "dev", l.GuestDev)
	Run(tb, "ip", "-n", l.NS, "link", "set", l.GuestDev, "up")
	Run(tb, "ip", "-n", l.NS, "link", "set", "lo", "up")
	if _, err := exec.LookPath("ping"); err == nil {
		Eventually(tb, 30*time.Second, "the namespace to reach "+l.HostIP, func() bool {
			return exec.Command("ip", "netns", "exec", l.NS, "ping", "-c1", "-W1", l.HostIP).Run() == nil
		})
	}
}

// HostRxBytes is what the host end of the pair received.
func (l *Link) HostRxBytes(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/net", l.HostDev, "statistics", "rx_bytes"))
	if err != nil {
		tb.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// NetnsAgent is the underlay-agent binary running in a Link's namespace.
type NetnsAgent struct {
	Log  string
	cmd  *exec.Cmd
	done chan error
}

// StartNetnsAgent runs the agent binary in l's network namespace only
// (nsenter --net: /sys stays the host's, so the inventory sees real
// hardware) until the end of the test.
func StartNetnsAgent(tb testing.TB, l *Link, bin string, servers []string, fingerprint, token string, extra ...string) *NetnsAgent {
	tb.Helper()
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("heartbeat: 2s\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	a := &NetnsAgent{Log: filepath.Join(dir, "agent.log"), done: make(chan error, 1)}
	logf, err := os.Create(a.Log)
	if err != nil {
		tb.Fatal(err)
	}
	args := append([]string{"--net=/run/netns/" + l.NS, "--", bin, "run",
		"--server", strings.Join(servers, ","), "--ca-fingerprint", fingerprint,
		"--token", token, "--state-dir", filepath.Join(dir, "state"), "--config", cfg}, extra...)
	a.cmd = exec.Command("nsenter", args...)
	a.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		tb.Fatalf("start agent: %v", err)
	}
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	tb.Cleanup(func() {
		_ = a.cmd.Process.Signal(os.Interrupt)
		select {
		case <-a.done:
		case <-time.After(20 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if tb.Failed() {
			tb.Logf("agent log:\n%s", tail([]byte(a.Output()), 16<<10))
		}
	})
	return a
}

// Output is the agent's log so far.
func (a *NetnsAgent) Output() string {
	b, err := os.ReadFile(a.Log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Exited returns the agent's exit error if it has exited.
func (a *NetnsAgent) Exited() (error, bool) {
	select {
	case err := <-a.done:
		a.done <- err
		return err, true
	default:
		return nil, false
	}
}
