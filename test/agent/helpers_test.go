// Package agent_test runs the node agent end to end against real
// three-node clusters: in-process nodes (test/harness) for enrollment,
// identity, presence and deletion, real server processes for failover, and
// the real underlay-agent binary in its own network namespace.
package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/agent"
	"underlay.dev/agent/driver/inventory"
	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

const (
	agentToken     = underlayv1.TokenKind_TOKEN_KIND_AGENT
	serverToken    = underlayv1.TokenKind_TOKEN_KIND_SERVER
	waitLong       = 90 * time.Second
	agentHeartbeat = 2 * time.Second
)

// hardware is a simulated machine: the fake agent.Inventory returns a
// synthetic inventory built from these facts, and the real identity and
// hash functions of the inventory driver derive the rest.
type hardware struct {
	name   string
	uuid   string
	serial string
	macs   []string
	disks  int
}

// newHardware returns a machine with a random valid DMI UUID, serial and
// two NICs.
func newHardware(tb testing.TB, name string) *hardware {
	tb.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	return &hardware{
		name:   name,
		uuid:   uuid,
		serial: fmt.Sprintf("SN-%x", b[10:16]),
		macs:   []string{randomMAC(tb), randomMAC(tb)},
		disks:  2,
	}
}

// clone returns a different machine that carries the same DMI UUID (a VM
// image or firmware with a fixed UUID).
func (h *hardware) clone(tb testing.TB, name string) *hardware {
	tb.Helper()
	c := newHardware(tb, name)
	c.uuid = h.uuid
	return c
}

func randomMAC(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	b[0] = b[0]&0xfc | 0x02 // locally administered, unicast
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// inventory is the synthetic inventory of h.
func (h *hardware) inventory() *underlayv1.Inventory {
	inv := &underlayv1.Inventory{
		Hostname: h.name,
		Arch:     "amd64",
		Os:       "linux",
		BootMode: "uefi",
		Cpu:      &underlayv1.CPU{Vendor: "GenuineIntel", Model: "Xeon Test", Sockets: 1, Cores: 8, Threads: 16},
		Memory:   &underlayv1.Memory{TotalBytes: 64 << 30, UsableBytes: 63 << 30},
		Dmi: &underlayv1.DMI{
			SystemVendor:  "Underlay Test Systems",
			ProductName:   "Simulated Server",
			ProductSerial: h.serial,
			ProductUuid:   h.uuid,
		},
		Collected: timestamppb.Now(),
	}
	for i, mac := range h.macs {
		inv.Nics = append(inv.Nics, &underlayv1.NIC{
			Name: fmt.Sprintf("eno%d", i+1), Mac: mac, PermanentMac: mac, Kind: "device",
			Driver: "ixgbe", LinkUp: true, Mtu: 1500, PciAddress: fmt.Sprintf("0000:0%d:00.0", i+1),
		})
	}
	for i := 0; i < h.disks; i++ {
		inv.Disks = append(inv.Disks, &underlayv1.BlockDevice{
			Name: fmt.Sprintf("nvme%dn1", i), SizeBytes: 960 << 30, Serial: fmt.Sprintf("%s-D%d", h.serial, i),
			DriveType: "ssd", Controller: "nvme",
		})
	}
	return inv
}

// identity is what the agent reports for h.
func (h *hardware) identity() *underlayv1.MachineIdentity { return inventory.Identity(h.inventory()) }

// fakeInventory implements agent.Inventory over a simulated machine.
type fakeInventory struct{ hw *hardware }

func (f fakeInventory) Collect(context.Context) (*underlayv1.Inventory, error) {
	return f.hw.inventory(), nil
}

func (fakeInventory) Identity(inv *underlayv1.Inventory) *underlayv1.MachineIdentity {
	return inventory.Identity(inv)
}

func (fakeInventory) Hash(inv *underlayv1.Inventory) string { return inventory.Hash(inv) }

// logBuffer collects an agent's log lines; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// has reports whether one log line contains every part.
func (l *logBuffer) has(parts ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// runningAgent is an in-process agent.
type runningAgent struct {
	*agent.Agent
	log    *logBuffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

type agentSpec struct {
	servers     []string
	fingerprint string
	token       string
	stateDir    string
	hw          *hardware
}

// startAgent runs an agent until the end of the test (or stop).
func startAgent(tb testing.TB, s agentSpec) *runningAgent {
	tb.Helper()
	if s.stateDir == "" {
		s.stateDir = filepath.Join(tb.TempDir(), "state")
	}
	buf := &logBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("machine", s.hw.name)
	a, err := agent.New(agent.Config{
		Servers:     s.servers,
		Fingerprint: s.fingerprint,
		Token:       s.token,
		StateDir:    s.stateDir,
		Heartbeat:   agentHeartbeat,
	}, fakeInventory{s.hw}, log)
	if err != nil {
		tb.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{Agent: a, log: buf, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	tb.Cleanup(func() {
		if err := r.stop(); err != nil {
			tb.Errorf("agent %s: %v", s.hw.name, err)
		}
		if tb.Failed() {
			tb.Logf("log of agent %s:\n%s", s.hw.name, buf.String())
		}
	})
	return r
}

// stop cancels the agent and waits for Run to return its error.
func (r *runningAgent) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = fmt.Errorf("run did not return within 30s of cancellation")
		}
	})
	return r.err
}

// waitLog waits for a log line containing every part.
func (r *runningAgent) waitLog(tb testing.TB, parts ...string) {
	tb.Helper()
	harness.Eventually(tb, waitLong, fmt.Sprintf("agent log line with %q", parts), func() bool { return r.log.has(parts...) })
}

// waitEnrolled waits for the agent to know its machine ID and hold a
// session, and returns the ID.
func (r *runningAgent) waitEnrolled(tb testing.TB) string {
	tb.Helper()
	harness.Eventually(tb, waitLong, "the agent to enroll and connect", func() bool {
		_, ok := r.Connected()
		return ok && r.MachineID() != ""
	})
	return r.MachineID()
}

// getMachine reads one machine; ok is false when it does not exist.
func getMachine(tb testing.TB, cl *client.Client, id string) (m *underlayv1.Machine, ok bool) {
	tb.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := cl.Machines.Get(ctx, &underlayv1.GetMachineRequest{Id: id})
		cancel()
		switch {
		case err == nil:
			return m, true
		case status.Code(err) == codes.NotFound:
			return nil, false
		case attempt >= 5:
			tb.Fatalf("get machine %s: %v", id, err)
		}
		time.Sleep(time.Second)
	}
}

// listMachines lists every machine.
func listMachines(tb testing.TB, cl *client.Client) []*underlayv1.Machine {
	tb.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cl.Machines.List(ctx, &underlayv1.ListMachinesRequest{})
		cancel()
		if err == nil {
			return res.GetMachines()
		}
		if attempt >= 5 {
			tb.Fatalf("list machines: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// waitMachine polls machine id until cond holds and returns it.
func waitMachine(tb testing.TB, cl *client.Client, id, what string, cond func(m *underlayv1.Machine) bool) *underlayv1.Machine {
	tb.Helper()
	var last *underlayv1.Machine
	harness.Eventually(tb, waitLong, "machine "+id+" "+what, func() bool {
		m, ok := getMachine(tb, cl, id)
		last = m
		return ok && cond(m)
	})
	return last
}

func online(m *underlayv1.Machine) bool { return m.GetOnline() }

// machineIDs returns the IDs of ms.
func machineIDs(ms []*underlayv1.Machine) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.GetId())
	}
	return out
}

// enrollDirect calls AgentService.Enroll with token and a fresh key, the
// way an agent does, and returns the status error.
func enrollDirect(tb testing.TB, c *harness.Cluster, token string, hw *hardware) error {
	tb.Helper()
	key, _, err := mtls.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := mtls.NewCSR(key, mtls.Identity{Kind: mtls.KindMachine, Name: "pending"}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cl := c.AnonymousClient()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = underlayv1.NewAgentServiceClient(cl.Conn).Enroll(ctx, &underlayv1.EnrollRequest{
		Token: token, CsrPem: csr, Identity: hw.identity(), Hostname: hw.name, Inventory: hw.inventory(),
	})
	return err
}

// binaries builds the server and agent binaries once per test binary.
var binaries struct {
	once          sync.Once
	dir           string
	server, agent string
	err           error
}

func buildBinaries(tb testing.TB) (server, agentBin string) {
	tb.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "underlay-agent-e2e-")
		if binaries.err != nil {
			return
		}
		binaries.server = harness.Build(tb, binaries.dir, "underlay.dev/server/cmd/underlay")
		binaries.agent = harness.Build(tb, binaries.dir, "underlay.dev/agent/cmd/underlay-agent")
	})
	if binaries.err != nil {
		tb.Fatal(binaries.err)
	}
	if binaries.server == "" || binaries.agent == "" {
		tb.Fatal("binaries were not built (an earlier build failed)")
	}
	return binaries.server, binaries.agent
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}
