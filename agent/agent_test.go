package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/version"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

var testInventory = &underlayv1.Inventory{
	Hostname: "host-1",
	Kernel:   "6.1.0",
	Cpu:      &underlayv1.CPU{Vendor: "GenuineIntel", Cores: 4},
}

// newTestAgent builds an agent for c; mod may change the config.
func newTestAgent(tb testing.TB, c *testCluster, servers []string, mod func(*Config)) (*Agent, *logSink) {
	tb.Helper()
	cfg := Config{
		Servers:     servers,
		Fingerprint: c.ca.fp,
		Token:       "tok",
		StateDir:    filepath.Join(tb.TempDir(), "state"),
		Heartbeat:   50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	sink := &logSink{}
	a, err := New(cfg, &fakeInventory{inv: testInventory}, slog.New(sink))
	if err != nil {
		tb.Fatal(err)
	}
	a.callTimeout = 10 * time.Second
	a.silentAfter = 40
	a.renewCheck = 10 * time.Millisecond
	return a, sink
}

// start runs a in the background; the returned func stops it and returns
// Run's error.
func start(tb testing.TB, a *Agent) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	tb.Cleanup(func() { _ = stop() })
	return stop
}

func (a *Agent) ackedSeq() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked
}

func TestEnrollSessionHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration // local clock minus real time
	}{
		{"clock right", 0},
		{"clock twenty years behind", -20 * 365 * 24 * time.Hour},
		{"clock three years ahead", 3 * 365 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, "a")
			a, _ := newTestAgent(t, c, c.addrs("a"), nil)
			a.clock.local = func() time.Time { return time.Now().Add(tc.skew) }
			stop := start(t, a)

			waitFor(t, "session with acked heartbeats and inventory", func() bool {
				c.mu.Lock()
				invs := len(c.inventories)
				c.mu.Unlock()
				_, ok := a.Connected()
				return ok && a.ackedSeq() >= 2 && invs >= 1
			})
			node, _ := a.Connected()
			if node != "a" {
				t.Errorf("Connected() node = %q, want a", node)
			}
			if got := a.MachineID(); got != c.machineID {
				t.Errorf("MachineID() = %q, want %q", got, c.machineID)
			}
			if err := stop(); err != nil {
				t.Errorf("Run() = %v, want nil after cancel", err)
			}

			off, _ := a.clock.Offset()
			if d := off + tc.skew; d > time.Minute || d < -time.Minute {
				t.Errorf("clock offset %s does not undo skew %s", off, tc.skew)
			}

			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.enrolls) != 1 {
				t.Fatalf("enrolls = %d, want 1", len(c.enrolls))
			}
			req := c.enrolls[0]
			wantReq := &underlayv1.EnrollRequest{
				Token:     "tok",
				CsrPem:    req.GetCsrPem(),
				Identity:  &underlayv1.MachineIdentity{Uuid: "uuid-of-host-1"},
				Hostname:  "host-1",
				Inventory: testInventory,
			}
			if diff := cmp.Diff(wantReq, req, protocmp.Transform()); diff != "" {
				t.Errorf("enroll request (-want +got):\n%s", diff)
			}
			wantHello := &underlayv1.Hello{AgentVersion: version.Version, InventoryHash: "hash-of-host-1"}
			if diff := cmp.Diff(wantHello, c.sessions[0].hello, protocmp.Transform()); diff != "" {
				t.Errorf("hello (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(testInventory, c.inventories[0], protocmp.Transform()); diff != "" {
				t.Errorf("inventory sent on request (-want +got):\n%s", diff)
			}

			// The state survives, with the key made here and private files.
			creds, err := mtls.LoadCreds(a.cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if got := creds.Leaf.SerialNumber.String(); got != c.sessions[0].serial {
				t.Errorf("stored cert serial %s, session used %s", got, c.sessions[0].serial)
			}
			for _, f := range []string{mtls.KeyFile, mtls.CertFile, mtls.CAFile, MachineIDFile} {
				st, err := os.Stat(filepath.Join(a.cfg.StateDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
				}
			}
			id, _ := os.ReadFile(filepath.Join(a.cfg.StateDir, MachineIDFile))
			if string(id) != c.machineID+"\n" {
				t.Errorf("machine-id file = %q", id)
			}
		})
	}
}

func TestRestartReusesState(t *testing.T) {
	c := newTestCluster(t, "a")
	a, _ := newTestAgent(t, c, c.addrs("a"), nil)
	stop := start(t, a)
	waitFor(t, "first session", func() bool { _, ok := a.Connected(); return ok })
	_ = stop()

	// A second agent on the same state directory, without a token.
	b, _ := newTestAgent(t, c, c.addrs("a"), func(cfg *Config) { cfg.StateDir = a.cfg.StateDir; cfg.Token = "" })
	start(t, b)
	waitFor(t, "second session", func() bool { _, _, _, s := c.snapshot(); return len(s) == 2 })
	enrolls, _, _, sessions := c.snapshot()
	if enrolls != 1 {
		t.Errorf("enrolls = %d, want 1 (state reused)", enrolls)
	}
	if sessions[0].serial != sessions[1].serial {
		t.Errorf("second run used serial %s, want %s", sessions[1].serial, sessions[0].serial)
	}
	if b.MachineID() != c.machineID {
		t.Errorf("MachineID() = %q after restart", b.MachineID())
	}
}

func TestFailover(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	a, _ := newTestAgent(t, c, c.addrs("a", "b"), nil)
	start(t, a)
	waitFor(t, "first session", func() bool { _, ok := a.Connected(); return ok })
	first, _ := a.Connected()
	c.stop(first)
	waitFor(t, "session on the other node", func() bool {
		n, ok := a.Connected()
		return ok && n != first
	})
	enrolls, _, _, _ := c.snapshot()
	if enrolls != 1 {
		t.Errorf("enrolls = %d, want 1: failover must not re-enroll", enrolls)
	}
}

// recordSleeps replaces the agent's sleep: it records the delays and cancels
// the run after n of them, so retry pacing is checked without waiting.
func recordSleeps(a *Agent, n int) (*[]time.Duration, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	var got []time.Duration
	a.sleep = func(_ context.Context, d time.Duration) error {
		got = append(got, d)
		if len(got) >= n {
			cancel()
			return context.Canceled
		}
		return nil
	}
	return &got, ctx
}

func TestWrongFingerprint(t *testing.T) {
	c := newTestCluster(t, "a")
	other := newTestCA(t)
	a, sink := newTestAgent(t, c, c.addrs("a"), func(cfg *Config) { cfg.Fingerprint = other.fp })
	sleeps, ctx := recordSleeps(a, 3)
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run() = %v, want nil after cancel", err)
	}
	c.mu.Lock()
	infos, enrolls := c.infos, len(c.enrolls)
	c.mu.Unlock()
	if infos != 0 || enrolls != 0 {
		t.Errorf("server answered %d info and %d enroll calls, want none", infos, enrolls)
	}
	if len(*sleeps) != 3 {
		t.Errorf("sleeps = %v, want 3 retries", *sleeps)
	}
	recs := sink.find("cluster info failed")
	if len(recs) == 0 {
		t.Fatal("no log of the refused server")
	}
	for _, r := range recs {
		if !strings.Contains(r.Attrs["error"], mtls.ErrFingerprint.Error()) {
			t.Errorf("logged error %q does not name the fingerprint mismatch", r.Attrs["error"])
		}
	}
	if _, err := os.Stat(a.cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir written after a failed pin: %v", err)
	}
}

func TestEnrollRefused(t *testing.T) {
	for _, tc := range []struct {
		code  codes.Code
		final bool
	}{
		{codes.PermissionDenied, true},
		{codes.Unauthenticated, true},
		{codes.InvalidArgument, true},
		{codes.Unavailable, false},
		{codes.Internal, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			c := newTestCluster(t, "a")
			c.enrollErr = status.Error(tc.code, "token expired")
			a, sink := newTestAgent(t, c, c.addrs("a"), nil)
			const attempts = 4
			sleeps, ctx := recordSleeps(a, attempts)
			if err := a.Run(ctx); err != nil {
				t.Fatalf("Run() = %v, want nil after cancel", err)
			}
			enrolls, _, _, _ := c.snapshot()
			if enrolls != attempts {
				t.Errorf("enroll calls = %d, want %d", enrolls, attempts)
			}
			type logged struct {
				Level        string
				Code, Reason string
			}
			var got, want []logged
			for _, m := range []string{"enrollment refused", "enrollment still refused"} {
				for _, r := range sink.find(m) {
					got = append(got, logged{r.Level.String(), r.Attrs["code"], r.Attrs["reason"]})
				}
			}
			if tc.final {
				want = append(want, logged{"ERROR", tc.code.String(), "token expired"})
				for range attempts - 1 {
					want = append(want, logged{"WARN", tc.code.String(), "token expired"})
				}
				for i, d := range *sleeps {
					if d != a.refusedRetry {
						t.Errorf("sleep %d = %s, want the slow retry %s", i, d, a.refusedRetry)
					}
				}
			} else {
				for i, d := range *sleeps {
					if ceiling := a.bo.base << i; d > ceiling {
						t.Errorf("sleep %d = %s, want backoff <= %s", i, d, ceiling)
					}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("refusal logs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNoToken(t *testing.T) {
	c := newTestCluster(t, "a")
	a, _ := newTestAgent(t, c, c.addrs("a"), func(cfg *Config) { cfg.Token = "" })
	if err := a.Run(context.Background()); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Run() = %v, want ErrNoToken", err)
	}
}

func TestRevokedReenrolls(t *testing.T) {
	c := newTestCluster(t, "a")
	a, sink := newTestAgent(t, c, c.addrs("a"), nil)
	start(t, a)
	waitFor(t, "first session", func() bool { _, ok := a.Connected(); return ok })
	_, _, _, sessions := c.snapshot()
	old := sessions[0].serial
	c.revoke(old)
	waitFor(t, "session with a new certificate", func() bool {
		_, _, _, s := c.snapshot()
		_, ok := a.Connected()
		return ok && s[len(s)-1].serial != old
	})
	enrolls, _, _, _ := c.snapshot()
	if enrolls != 2 {
		t.Errorf("enrolls = %d, want 2", enrolls)
	}
	if n := len(sink.find("cluster refused the machine certificate, dropping state and enrolling again")); n != 1 {
		t.Errorf("revocation logged %d times, want 1", n)
	}
}

func TestRenew(t *testing.T) {
	c := newTestCluster(t, "a")
	a, _ := newTestAgent(t, c, c.addrs("a"), nil)
	var skew atomic.Int64
	a.clock.local = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	start(t, a)
	waitFor(t, "first session", func() bool { _, ok := a.Connected(); return ok })
	oldKey, err := os.ReadFile(filepath.Join(a.cfg.StateDir, mtls.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := a.certs.Get().Leaf.SerialNumber.String()
	_, renews, _, _ := c.snapshot()
	if renews != 0 {
		t.Fatalf("renewed %d times before 2/3 of the lifetime", renews)
	}

	// 45 minutes into a one hour certificate: past 2/3.
	c.mu.Lock()
	c.life = 24 * time.Hour
	c.mu.Unlock()
	skew.Store(int64(45 * time.Minute))
	waitFor(t, "renewal", func() bool { _, r, _, _ := c.snapshot(); return r >= 1 })
	waitFor(t, "new certificate in use", func() bool { return a.certs.Get().Leaf.SerialNumber.String() != oldSerial })
	newSerial := a.certs.Get().Leaf.SerialNumber.String()

	// A new connection presents the new certificate.
	c.kickAll()
	waitFor(t, "session with the renewed certificate", func() bool {
		_, _, _, s := c.snapshot()
		return s[len(s)-1].serial == newSerial
	})
	_, renews, _, _ = c.snapshot()
	if renews != 1 {
		t.Errorf("renews = %d, want 1", renews)
	}
	creds, err := mtls.LoadCreds(a.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := creds.Leaf.SerialNumber.String(); got != newSerial {
		t.Errorf("stored serial %s, want renewed %s", got, newSerial)
	}
	newKey, _ := os.ReadFile(filepath.Join(a.cfg.StateDir, mtls.KeyFile))
	if string(newKey) == string(oldKey) {
		t.Error("renewal kept the old key")
	}
}
