package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/test/harness"
)

// lockedBuffer is a bytes.Buffer that a running command may write while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func leafOf(t testing.TB, dir string) *mtls.Creds {
	t.Helper()
	c, err := mtls.LoadCreds(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEndToEnd runs the CLI against a real management node (in-process,
// real Raft, real mTLS), the way an operator uses it.
func TestEndToEnd(t *testing.T) {
	c := harness.Start(t, 1, harness.Options{})
	live := c.Addrs()[0]
	dead := deadAddr(t)
	admin := c.AdminDir
	adminCreds := leafOf(t, admin)
	otherCA := harness.Start(t, 1, harness.Options{}).AdminDir
	roDir := filepath.Join(t.TempDir(), "ro-creds")
	bobDir := filepath.Join(t.TempDir(), "bob-creds")

	run := func(t *testing.T, env map[string]string, args ...string) (int, string, string) {
		t.Helper()
		a, stdout, stderr := testApp(t, env, t.TempDir())
		code := a.execute(context.Background(), args)
		return code, stdout.String(), stderr.String()
	}
	expect := func(t *testing.T, code, wantCode int, stderr string) {
		t.Helper()
		if code != wantCode {
			t.Fatalf("exit code = %d, want %d; stderr: %s", code, wantCode, stderr)
		}
	}

	t.Run("whoami fails over from a dead server", func(t *testing.T) {
		code, out, errOut := run(t, map[string]string{envServer: dead + "," + live}, "--creds", admin, "whoami", "-o", "json")
		expect(t, code, exitOK, errOut)
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("whoami -o json is not JSON: %v\n%s", err, out)
		}
		want := map[string]any{
			"identity":  "spiffe://underlay/operator/admin",
			"kind":      "operator",
			"name":      "admin",
			"role":      "OPERATOR_ROLE_ADMIN",
			"serial":    adminCreds.Leaf.SerialNumber.String(),
			"not_after": adminCreds.Leaf.NotAfter.UTC().Format(time.RFC3339),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("whoami (-want +got):\n%s", diff)
		}
	})

	var tokenID string
	t.Run("token create prints the secret once with usage", func(t *testing.T) {
		code, out, errOut := run(t, map[string]string{envServer: live, envCreds: admin}, "token", "create", "--kind", "discovery", "--uses", "5", "--ttl", "0")
		expect(t, code, exitOK, errOut)
		m := regexp.MustCompile(`Created discovery token ([0-9a-f]{12}) \(5 uses, never expires\)\.`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no creation line:\n%s", out)
		}
		tokenID = m[1]
		want := "underlay.servers=" + live + " underlay.fp=" + c.Fingerprint + " underlay.token=" + tokenID + "."
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks the kernel command line %q:\n%s", want, out)
		}
	})

	t.Run("token ls shows the token", func(t *testing.T) {
		code, out, errOut := run(t, map[string]string{envServer: live, envCreds: admin}, "token", "ls")
		expect(t, code, exitOK, errOut)
		if !regexp.MustCompile(regexp.QuoteMeta(tokenID) + `\s+discovery\s+active\s+0/5\s`).MatchString(out) {
			t.Errorf("token %s not listed as active 0/5:\n%s", tokenID, out)
		}
		if !strings.Contains(out, "spiffe://underlay/operator/admin") {
			t.Errorf("creator missing:\n%s", out)
		}
	})

	t.Run("read-only operator is refused", func(t *testing.T) {
		code, _, errOut := run(t, map[string]string{envServer: live, envCreds: admin}, "operator", "create", "ro", "--role", "readonly", "--out", roDir)
		expect(t, code, exitOK, errOut)
		code, _, errOut = run(t, map[string]string{envServer: live}, "--creds", roDir, "token", "create", "--kind", "agent")
		expect(t, code, exitError, errOut)
		if want := "error: permission denied: operator \"ro\" is read-only"; !strings.HasPrefix(errOut, want) {
			t.Errorf("stderr = %q, want prefix %q", errOut, want)
		}
	})

	t.Run("flag server beats env", func(t *testing.T) {
		code, out, errOut := run(t, map[string]string{envServer: dead, envCreds: admin}, "--server", live, "whoami")
		expect(t, code, exitOK, errOut)
		for _, s := range []string{"Identity:  spiffe://underlay/operator/admin", "Role:      admin", "Serial:    " + adminCreds.Leaf.SerialNumber.String()} {
			if !strings.Contains(out, s) {
				t.Errorf("stdout lacks %q:\n%s", s, out)
			}
		}
	})

	t.Run("unavailable names the address", func(t *testing.T) {
		code, _, errOut := run(t, map[string]string{envServer: dead, envCreds: admin}, "whoami")
		expect(t, code, exitError, errOut)
		if want := "error: unavailable: no server answered (tried " + dead + "; set the servers with --server or UNDERLAY_SERVER)"; !strings.HasPrefix(errOut, want) {
			t.Errorf("stderr = %q, want prefix %q", errOut, want)
		}
	})

	t.Run("a server from another CA is refused", func(t *testing.T) {
		code, _, errOut := run(t, map[string]string{envServer: live, envCreds: otherCA}, "whoami")
		expect(t, code, exitError, errOut)
		if want := "error: unavailable: no server answered (tried " + live; !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, "verify server") {
			t.Errorf("stderr = %q, want prefix %q and \"verify server\"", errOut, want)
		}
	})

	t.Run("operator create writes working credentials", func(t *testing.T) {
		code, out, errOut := run(t, map[string]string{envServer: live, envCreds: admin}, "operator", "create", "bob", "--role", "readonly", "--out", bobDir)
		expect(t, code, exitOK, errOut)
		for _, s := range []string{"Operator bob (readonly) created.", "Credentials written to " + bobDir} {
			if !strings.Contains(out, s) {
				t.Errorf("stdout lacks %q:\n%s", s, out)
			}
		}
		code, out, errOut = run(t, map[string]string{envServer: live, envCreds: bobDir}, "whoami")
		expect(t, code, exitOK, errOut)
		for _, s := range []string{"Identity:  spiffe://underlay/operator/bob", "Serial:    " + leafOf(t, bobDir).Leaf.SerialNumber.String()} {
			if !strings.Contains(out, s) {
				t.Errorf("stdout lacks %q:\n%s", s, out)
			}
		}
	})

	t.Run("operator create never overwrites a key", func(t *testing.T) {
		code, _, errOut := run(t, map[string]string{envServer: live, envCreds: admin}, "operator", "create", "bob2", "--role", "admin", "--out", bobDir)
		expect(t, code, exitError, errOut)
		if want := "error: credentials already exist in " + bobDir; !strings.HasPrefix(errOut, want) {
			t.Errorf("stderr = %q, want prefix %q", errOut, want)
		}
	})

	t.Run("watch prints one json object per event", func(t *testing.T) {
		a, _, stderr := testApp(t, map[string]string{envServer: live, envCreds: admin}, t.TempDir())
		stdout := &lockedBuffer{}
		a.stdout = stdout
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() { done <- a.execute(ctx, []string{"watch", "-o", "json"}) }()
		// Events only flow from the moment the watch is open: write until
		// the watcher has seen one, then stop it as Ctrl-C would.
		var lines []string
		harness.Eventually(t, 30*time.Second, "a token event on the watch", func() bool {
			if code, _, errOut := run(t, map[string]string{envServer: live, envCreds: admin}, "token", "create", "--kind", "agent"); code != exitOK {
				t.Fatalf("token create: %s", errOut)
			}
			lines = nil
			for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				if l != "" {
					lines = append(lines, l)
				}
			}
			return len(lines) > 0
		})
		cancel()
		if code := <-done; code != exitOK {
			t.Fatalf("watch exit code %d; stderr: %s", code, stderr)
		}
		for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("watch line is not one JSON object: %q: %v", l, err)
			}
			if ev["kind"] == nil || ev["index"] == nil {
				t.Errorf("event without kind or index: %q", l)
			}
		}
	})
}
