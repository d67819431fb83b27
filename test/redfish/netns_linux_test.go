package redfish_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	sim "underlay.dev/test/redfish"
)

// TestListenNetns serves the simulator inside a network namespace and
// reaches it from there with curl.
func TestListenNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	ns := fmt.Sprintf("rfsim-%d", os.Getpid())
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "addr", "add", "192.0.2.10/24", "dev", "lo")

	ln, err := sim.ListenNetns(ns, "192.0.2.10:0")
	if err != nil {
		t.Fatal(err)
	}
	bmc, err := sim.Start(context.Background(), sim.Config{Username: user, Password: password, Listener: ln,
		Systems: []sim.SystemConfig{{ID: "1"}}})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { bmc.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, bmc.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// The certificate names the namespace address, so curl verifies it.
	out := run("ip", "netns", "exec", ns, "curl", "-sS", "--fail", "--cacert", ca, "-u", user+":"+password, bmc.URL()+"/redfish/v1/Systems/1")
	var sys struct{ Id, PowerState string }
	if err := json.Unmarshal(out, &sys); err != nil || sys.Id != "1" || sys.PowerState != "Off" {
		t.Errorf("system from inside the namespace: %+v, %v (%s)", sys, err, out)
	}
}
