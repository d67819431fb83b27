// Package agent is the runtime of underlay-agent, the program that runs on
// every managed machine: in the PXE discovery image and as a systemd service.
//
// Run learns the cluster's clock from a management node (the CA fingerprint
// is the trust anchor, so certificate validity is checked against the
// server's time, not the machine's possibly wrong RTC), enrolls with a token
// if the state directory holds no usable certificate, and then keeps one
// mTLS session open to one of the nodes: heartbeats, inventory updates and
// certificate renewal. When a node goes away the agent moves to the next one
// with jittered exponential backoff; when its certificate is refused it
// drops its state and enrolls again.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"underlay.dev/agent/runner"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Defaults.
const (
	DefaultStateDir  = "/var/lib/underlay-agent"
	DefaultHeartbeat = 10 * time.Second
	// DefaultPort is used for a server address given without a port.
	DefaultPort = "7443"
)

// MachineIDFile is the file in the state directory holding the machine ID
// the cluster assigned at enrollment.
const MachineIDFile = "machine-id"

// Sentinel errors.
var (
	// ErrConfig means the Config given to New is unusable.
	ErrConfig = errors.New("invalid agent config")
	// ErrNoToken means the agent must enroll but has no token.
	ErrNoToken = errors.New("no enrollment token")
	// ErrFingerprint means a CA bundle does not contain the pinned root.
	ErrFingerprint = errors.New("ca does not match the pinned fingerprint")
	// ErrProtocol means a server broke the session protocol.
	ErrProtocol = errors.New("session protocol error")

	errRevoked = errors.New("certificate no longer accepted")
	errSilent  = errors.New("server stopped answering heartbeats")
	errNetwork = errors.New("host network changed; reconnecting")
)

// Config configures an Agent.
type Config struct {
	Servers     []string      // host:port of management nodes (any node works)
	Fingerprint string        // SHA-256 of the cluster root CA
	Token       string        // enrollment token (agent or discovery kind)
	StateDir    string        // key.pem, cert.pem, ca.pem, machine-id live here
	Heartbeat   time.Duration // 0: from the server's Welcome, else DefaultHeartbeat
	// Labels are optional; the protocol has no field for them yet, so they
	// are only logged at enrollment.
	Labels map[string]string
	// Hardware are the drivers of hardware steps (RAID, BIOS, network,
	// wipe); nil ones make their steps fail saying so.
	Hardware Hardware
	// Reboot restarts the machine when a job asks for it (after the
	// cluster committed the job's result).
	Reboot func(ctx context.Context) error
	// RunnerEnv is the base environment of job scripts (default: the
	// agent's own).
	RunnerEnv []string
}

// Inventory is what the agent needs from the hardware inventory driver.
type Inventory interface {
	Collect(ctx context.Context) (*underlayv1.Inventory, error)
	Identity(inv *underlayv1.Inventory) *underlayv1.MachineIdentity
	Hash(inv *underlayv1.Inventory) string
}

// Agent is one running node agent.
type Agent struct {
	cfg   Config
	fp    string // normalized fingerprint
	hw    Inventory
	log   *slog.Logger
	clock *clock
	certs *mtls.CertStore
	bo    *backoff

	// Tunables, replaced by tests.
	sleep          func(ctx context.Context, d time.Duration) error
	callTimeout    time.Duration // unary calls and session setup
	refusedRetry   time.Duration // retry interval after a final enrollment refusal
	renewCheck     time.Duration // how often the renewal condition is checked
	inventoryEvery time.Duration // how often the inventory is re-collected
	silentAfter    int           // missed heartbeat intervals before a session is dropped

	// Owned by the Run goroutine.
	caPEM      []byte
	inv        *underlayv1.Inventory
	invHash    string
	conns      map[string]*grpc.ClientConn
	connsStale bool
	next       int
	refusal    string

	exec       *executor
	runner     *runner.Runner
	runnerErr  string
	netChanged atomic.Bool
	hwDirty    atomic.Bool // a hardware step ran since the last inventory was sent

	mu        sync.Mutex
	servers   []string
	machineID string
	node      string
	connected bool
	acked     uint64
}

// New checks cfg and returns an agent. inv is the inventory driver; log may
// be nil to discard logs.
func New(cfg Config, inv Inventory, log *slog.Logger) (*Agent, error) {
	if inv == nil {
		return nil, fmt.Errorf("no inventory driver: %w", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	servers, err := NormalizeServers(cfg.Servers)
	if err != nil {
		return nil, err
	}
	fp, err := mtls.NormalizeFingerprint(cfg.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("ca fingerprint: %v: %w", err, ErrConfig)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.Heartbeat < 0 {
		return nil, fmt.Errorf("heartbeat %s: %w", cfg.Heartbeat, ErrConfig)
	}
	a := &Agent{
		cfg:   cfg,
		fp:    fp,
		hw:    inv,
		log:   log,
		clock: &clock{local: time.Now},
		certs: &mtls.CertStore{},
		bo: &backoff{
			base:    200 * time.Millisecond,
			max:     15 * time.Second,
			healthy: time.Minute,
			rand:    rand.Int64N,
		},
		sleep:          sleepCtx,
		callTimeout:    15 * time.Second,
		refusedRetry:   5 * time.Minute,
		renewCheck:     time.Minute,
		inventoryEvery: 5 * time.Minute,
		silentAfter:    3,
		conns:          map[string]*grpc.ClientConn{},
		servers:        servers,
	}
	a.exec = newExecutor(a)
	r, err := runner.New(runner.Config{
		WorkDir: filepath.Join(cfg.StateDir, "work"),
		Actions: a.actions(),
		Logger:  log.With("component", "runner"),
		Env:     cfg.RunnerEnv,
	})
	if err != nil {
		// The agent still enrolls and reports; jobs fail saying why.
		a.runnerErr = err.Error()
		log.Error("job runner unavailable", "error", err.Error())
	} else {
		a.runner = r
	}
	return a, nil
}

// NormalizeServers trims, deduplicates and adds DefaultPort to host
// addresses given without one. It fails on an empty list.
func NormalizeServers(in []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(strings.Trim(s, "[]"), DefaultPort)
		}
		if h, p, err := net.SplitHostPort(s); err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("server address %q: %w", s, ErrConfig)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no management servers: %w", ErrConfig)
	}
	return out, nil
}

// MachineID returns the machine ID assigned at enrollment, or "".
func (a *Agent) MachineID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.machineID
}

// Connected returns the ID of the node holding the session, if any.
func (a *Agent) Connected() (node string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node, a.connected
}

// Run runs the agent until ctx is done; it then returns nil. It returns an
// error only when it cannot go on without a human: the machine must enroll
// and no token is configured.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeConns()
	defer a.exec.wait()
	a.exec.load()
	if err := a.syncClock(ctx); err != nil {
		return done(ctx, err)
	}
	if err := a.loadState(); err != nil {
		a.log.Info("no usable credentials, enrolling", "state_dir", a.cfg.StateDir, "reason", err.Error())
		a.dropState()
	}
	for {
		if a.certs.Get() == nil {
			if err := a.enroll(ctx); err != nil {
				return done(ctx, err)
			}
		}
		err := a.sessions(ctx)
		if !errors.Is(err, errRevoked) {
			return done(ctx, err)
		}
		a.dropState()
	}
}

// done maps a cancellation to a clean return.
func done(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// nextServer returns the next server in rotation.
func (a *Agent) nextServer() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.servers[a.next%len(a.servers)]
	a.next = (a.next + 1) % len(a.servers)
	return s
}

// addServers appends servers learnt from the cluster to the rotation.
func (a *Agent) addServers(list []string) {
	more, err := NormalizeServers(list)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	have := map[string]bool{}
	for _, s := range a.servers {
		have[s] = true
	}
	for _, s := range more {
		if !have[s] {
			a.servers = append(a.servers, s)
		}
	}
}

func (a *Agent) setConnected(node string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.node, a.connected = node, ok
}

func (a *Agent) setMachineID(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.machineID = id
}

// loadState loads the credentials and machine ID from the state directory
// and checks them against the pin and the corrected clock.
func (a *Agent) loadState() error {
	c, err := mtls.LoadCreds(a.cfg.StateDir)
	if err != nil {
		return err
	}
	if err := a.checkCA(c.CAPEM); err != nil {
		return err
	}
	if now := a.clock.Now(); now.After(c.Leaf.NotAfter) {
		return fmt.Errorf("certificate expired at %s (server time %s)", c.Leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	id, err := os.ReadFile(filepath.Join(a.cfg.StateDir, MachineIDFile))
	if err != nil {
		return fmt.Errorf("read machine id: %w", err)
	}
	cert := c.Cert
	a.certs.Set(&cert)
	a.caPEM = c.CAPEM
	a.setMachineID(strings.TrimSpace(string(id)))
	a.log.Info("loaded credentials", "machine_id", a.MachineID(), "not_after", c.Leaf.NotAfter)
	return nil
}

// saveState persists credentials and the machine ID.
func (a *Agent) saveState(caPEM, certPEM, keyPEM []byte, machineID string) error {
	if err := mtls.WriteCreds(a.cfg.StateDir, caPEM, certPEM, keyPEM); err != nil {
		return err
	}
	p := filepath.Join(a.cfg.StateDir, MachineIDFile)
	if err := os.WriteFile(p, []byte(machineID+"\n"), 0o600); err != nil {
		return fmt.Errorf("write machine id: %w", err)
	}
	return nil
}

// dropState forgets the credentials, on disk and in memory, and closes
// connections that were made with them.
func (a *Agent) dropState() {
	for _, f := range []string{mtls.KeyFile, mtls.CertFile, mtls.CAFile, MachineIDFile} {
		err := os.Remove(filepath.Join(a.cfg.StateDir, f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			a.log.Warn("cannot remove state file", "file", f, "error", err.Error())
		}
	}
	a.certs.Set(nil)
	a.setMachineID("")
	a.closeConns()
}

// setCert installs a new key pair for future connections.
func (a *Agent) setCert(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := mtls.KeyPair(certPEM, keyPEM, a.caPEM)
	if err != nil {
		return nil, err
	}
	a.certs.Set(c)
	return c, nil
}

func (a *Agent) closeConns() {
	for addr, c := range a.conns {
		_ = c.Close()
		delete(a.conns, addr)
	}
	a.connsStale = false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
