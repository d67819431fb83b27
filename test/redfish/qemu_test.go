package redfish_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	sim "underlay.dev/test/redfish"
)

// requireQEMU skips without root and installs QEMU when it is missing.
func requireQEMU(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the QEMU power driver test needs root (it installs and runs QEMU)")
	}
	if path, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		return path
	}
	// Serialise with other tests' apt-get runs (the lab uses this lock).
	f, err := os.OpenFile("/run/underlay-lab-apt.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	t.Log("installing qemu-system-x86")
	cmd := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "qemu-system-x86")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get install qemu-system-x86: %v\n%s", err, out)
	}
	path, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// cmdline reads a process's command line.
func cmdline(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Fatalf("read cmdline of %d: %v", pid, err)
	}
	return strings.Split(string(bytes.TrimRight(data, "\x00")), "\x00")
}

// TestQEMUPower powers a real QEMU VM (TCG, SeaBIOS, no disk) through the
// simulator's Redfish API.
func TestQEMUPower(t *testing.T) {
	qemu := requireQEMU(t)
	dir := t.TempDir()

	var mu sync.Mutex
	var built []string // bootOnce of every argv built
	argv := func(bootOnce string) []string {
		mu.Lock()
		built = append(built, bootOnce)
		mu.Unlock()
		args := []string{qemu, "-nodefaults", "-display", "none", "-accel", "tcg", "-m", "64", "-no-user-config"}
		switch bootOnce {
		case "Pxe":
			args = append(args, "-boot", "once=n")
		case "Hdd":
			args = append(args, "-boot", "once=c")
		}
		return args
	}
	var out bytes.Buffer
	qp, err := sim.NewQEMUPower(sim.QEMUConfig{
		Argv: argv, QMPSocket: filepath.Join(dir, "qmp.sock"), GracefulTimeout: 2 * time.Second, Output: &syncWriter{w: &out},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := qp.Close(); err != nil {
			t.Errorf("close qemu: %v", err)
		}
		if t.Failed() {
			t.Logf("qemu output:\n%s", out.String())
		}
	})
	bmc := startBMC(t, sim.Config{Systems: []sim.SystemConfig{{ID: "1", Attributes: sim.DefaultAttributes(), Power: qp}}})
	c := newRaw(t, bmc)
	state := func() string {
		_, sys, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", nil)
		return sys["PowerState"].(string)
	}
	setBoot := func(target string) {
		if status, body, _ := c.do(http.MethodPatch, "/redfish/v1/Systems/1", map[string]any{"Boot": map[string]string{
			"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": "Once",
		}}); status != http.StatusOK {
			t.Fatalf("set boot: %d %v", status, body)
		}
	}
	mustReset := func(rt string) {
		t.Helper()
		if got := reset(t, c, rt); got != http.StatusNoContent {
			t.Fatalf("reset %s: status %d", rt, got)
		}
	}

	if got := state(); got != "Off" {
		t.Fatalf("PowerState %s before power-on, want Off", got)
	}

	// One-time PXE boot: the builder gets Pxe, QEMU gets -boot once=n.
	setBoot("Pxe")
	mustReset("On")
	pid := qp.PID()
	if pid == 0 || state() != "On" {
		t.Fatalf("after On: pid %d, PowerState %s", pid, state())
	}
	if args := cmdline(t, pid); !slices.Contains(args, "once=n") || !slices.Contains(args, "-qmp") {
		t.Errorf("qemu command line %q lacks -boot once=n or -qmp", args)
	}

	// The next boot has no override: QEMU restarts without once=n.
	mustReset("ForceRestart")
	pid2 := qp.PID()
	if pid2 == 0 || pid2 == pid {
		t.Errorf("ForceRestart after a one-time boot kept pid %d (want a new QEMU)", pid)
	}
	if args := cmdline(t, pid2); slices.Contains(args, "once=n") {
		t.Errorf("qemu command line %q still boots PXE once", args)
	}

	// Same boot order again: a QMP system_reset of the same process.
	mustReset("ForceRestart")
	if got := qp.PID(); got != pid2 {
		t.Errorf("plain ForceRestart changed pid %d -> %d (want system_reset)", pid2, got)
	}
	if got := state(); got != "On" {
		t.Errorf("PowerState %s after system_reset, want On", got)
	}

	// A disk boot once, through a reset of the running VM.
	setBoot("Hdd")
	mustReset("ForceRestart")
	if args := cmdline(t, qp.PID()); !slices.Contains(args, "once=c") {
		t.Errorf("qemu command line %q lacks -boot once=c", args)
	}

	// SeaBIOS ignores the ACPI power button: graceful falls back to quit.
	mustReset("GracefulShutdown")
	if got, pid := state(), qp.PID(); got != "Off" || pid != 0 {
		t.Errorf("after GracefulShutdown: PowerState %s, pid %d; want Off, 0", got, pid)
	}
	mustReset("On")
	mustReset("ForceOff")
	if got := state(); got != "Off" {
		t.Errorf("PowerState %s after ForceOff, want Off", got)
	}

	mu.Lock()
	defer mu.Unlock()
	var starts []string
	for _, b := range bmc.Boots("1") {
		starts = append(starts, b.ResetType+":"+b.Device)
	}
	if diff := cmp.Diff([]string{"On:Pxe", "ForceRestart:", "ForceRestart:", "ForceRestart:Hdd", "On:"}, starts); diff != "" {
		t.Errorf("boots (-want +got):\n%s", diff)
	}
	for _, want := range []string{"Pxe", "Hdd", ""} {
		if !slices.Contains(built, want) {
			t.Errorf("the argv builder never got boot device %q (got %q)", want, built)
		}
	}
}

// syncWriter serialises writes from QEMU's stdout and stderr copiers.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
