package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/agent"
	"underlay.dev/agent/driver/inventory"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// TB is what the agent helpers need of a test; programs (the demo) can
// implement it too, unlike testing.TB.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// SimMachine is a simulated machine: the in-process agent's inventory
// driver reports a synthetic inventory built from these facts, and the real
// identity and hash functions of the inventory driver derive the rest.
type SimMachine struct {
	Name   string
	UUID   string
	Serial string
	MACs   []string
	Disks  int
	// Addresses are reported on the first NIC ("10.0.0.5/24").
	Addresses []string

	mu    sync.Mutex
	extra func(*underlayv1.Inventory)
}

// NewSimMachine returns a machine with a random valid DMI UUID, serial,
// two NICs and two disks.
func NewSimMachine(tb TB, name string) *SimMachine {
	tb.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("random: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return &SimMachine{
		Name:   name,
		UUID:   fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]),
		Serial: fmt.Sprintf("SN-%x", b[10:16]),
		MACs:   []string{RandomMAC(tb), RandomMAC(tb)},
		Disks:  2,
	}
}

// RandomMAC returns a random locally administered unicast MAC.
func RandomMAC(tb TB) string {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("random: %v", err)
	}
	b[0] = b[0]&0xfc | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// Change makes later inventories pass through fn (e.g. to show an array
// a fake RAID driver built).
func (h *SimMachine) Change(fn func(*underlayv1.Inventory)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.extra = fn
}

// Inventory is the synthetic inventory of h.
func (h *SimMachine) Inventory() *underlayv1.Inventory {
	inv := &underlayv1.Inventory{
		Hostname: h.Name, Arch: "amd64", Os: "linux", BootMode: "uefi",
		Cpu:    &underlayv1.CPU{Vendor: "GenuineIntel", Model: "Xeon Test", Sockets: 1, Cores: 8, Threads: 16},
		Memory: &underlayv1.Memory{TotalBytes: 64 << 30, UsableBytes: 63 << 30},
		Dmi: &underlayv1.DMI{
			SystemVendor: "Underlay Test Systems", ProductName: "Simulated Server",
			ProductSerial: h.Serial, ProductUuid: h.UUID,
		},
		Collected: timestamppb.Now(),
	}
	for i, mac := range h.MACs {
		n := &underlayv1.NIC{
			Name: fmt.Sprintf("eno%d", i+1), Mac: mac, PermanentMac: mac, Kind: "device",
			Driver: "ixgbe", LinkUp: true, Mtu: 1500, PciAddress: fmt.Sprintf("0000:0%d:00.0", i+1),
		}
		if i == 0 {
			n.Addresses = h.Addresses
		}
		inv.Nics = append(inv.Nics, n)
	}
	for i := 0; i < h.Disks; i++ {
		inv.Disks = append(inv.Disks, &underlayv1.BlockDevice{
			Name: fmt.Sprintf("nvme%dn1", i), SizeBytes: 960 << 30, Serial: fmt.Sprintf("%s-D%d", h.Serial, i),
			DriveType: "ssd", Controller: "nvme",
		})
	}
	h.mu.Lock()
	extra := h.extra
	h.mu.Unlock()
	if extra != nil {
		extra(inv)
	}
	return inv
}

// Identity is what the agent reports for h.
func (h *SimMachine) Identity() *underlayv1.MachineIdentity { return inventory.Identity(h.Inventory()) }

// simInventory implements agent.Inventory over a simulated machine.
type simInventory struct{ hw *SimMachine }

func (f simInventory) Collect(context.Context) (*underlayv1.Inventory, error) {
	return f.hw.Inventory(), nil
}

func (simInventory) Identity(inv *underlayv1.Inventory) *underlayv1.MachineIdentity {
	return inventory.Identity(inv)
}

func (simInventory) Hash(inv *underlayv1.Inventory) string { return inventory.Hash(inv) }

// LogBuffer collects log lines; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Has reports whether one line contains every part.
func (l *LogBuffer) Has(parts ...string) bool {
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

// AgentSpec describes an in-process agent.
type AgentSpec struct {
	Servers     []string
	Fingerprint string
	Token       string
	// StateDir defaults to a fresh temporary directory.
	StateDir string
	Machine  *SimMachine
	Hardware agent.Hardware
	// Reboot, when set, is called instead of rebooting; Agent.Restart is
	// the usual choice (the agent process "reboots").
	Reboot func(a *Agent)
	// Heartbeat defaults to 2s.
	Heartbeat time.Duration
}

// Agent is an in-process agent that can be stopped and started again on
// the same state directory (a reboot).
type Agent struct {
	tb   TB
	spec AgentSpec
	Log  *LogBuffer

	mu     sync.Mutex
	cur    *agent.Agent
	cancel context.CancelFunc
	done   chan error
	// Boots counts how often the agent started.
	Boots int
}

// StartAgent runs an agent until the end of the test.
func StartAgent(tb TB, s AgentSpec) *Agent {
	tb.Helper()
	if s.StateDir == "" {
		s.StateDir = filepath.Join(tb.TempDir(), "state")
	}
	if s.Heartbeat == 0 {
		s.Heartbeat = 2 * time.Second
	}
	a := &Agent{tb: tb, spec: s, Log: &LogBuffer{}}
	a.start()
	tb.Cleanup(func() {
		if err := a.Stop(); err != nil {
			tb.Errorf("agent %s: %v", s.Machine.Name, err)
		}
		if tb.Failed() {
			tb.Logf("log of agent %s:\n%s", s.Machine.Name, tail([]byte(a.Log.String()), 16<<10))
		}
	})
	return a
}

func (a *Agent) start() {
	log := slog.New(slog.NewTextHandler(a.Log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("machine", a.spec.Machine.Name)
	cfg := agent.Config{
		Servers: a.spec.Servers, Fingerprint: a.spec.Fingerprint, Token: a.spec.Token,
		StateDir: a.spec.StateDir, Heartbeat: a.spec.Heartbeat, Hardware: a.spec.Hardware,
	}
	if a.spec.Reboot != nil {
		cfg.Reboot = func(context.Context) error {
			go a.spec.Reboot(a)
			return nil
		}
	}
	ag, err := agent.New(cfg, simInventory{a.spec.Machine}, log)
	if err != nil {
		a.tb.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	a.mu.Lock()
	a.cur, a.cancel, a.done = ag, cancel, done
	a.Boots++
	a.mu.Unlock()
	go func() { done <- ag.Run(ctx) }()
}

// Stop cancels the agent and waits for Run to return.
func (a *Agent) Stop() error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("run did not return within 30s of cancellation")
	}
}

// Restart stops the agent and starts it again on the same state
// directory, like a machine that rebooted.
func (a *Agent) Restart() {
	if err := a.Stop(); err != nil {
		a.tb.Errorf("agent %s: %v", a.spec.Machine.Name, err)
	}
	a.Log.Write([]byte("---- reboot ----\n"))
	a.start()
}

// MachineID is the machine ID the agent enrolled as, or "".
func (a *Agent) MachineID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur.MachineID()
}

// Connected reports the node holding the session, if any.
func (a *Agent) Connected() (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur.Connected()
}

// WaitEnrolled waits for the agent to enroll and hold a session.
func (a *Agent) WaitEnrolled(tb TB, d time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, ok := a.Connected(); ok && a.MachineID() != "" {
			return a.MachineID()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("agent %s did not enroll and connect within %s", a.spec.Machine.Name, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
