//go:build vmtest

package guest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"underlay.dev/test/vmtest/guest"
)

// These tests run inside the VM that test/vmtest's TestHarness boots with
// two disks (1 MiB, 2 MiB) and one NIC; they check what the harness
// promises the guest.

func TestMain(m *testing.M) { guest.Main(m) }

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return strings.TrimSpace(string(b))
}

func TestGuestEnvironment(t *testing.T) {
	if !guest.InVM() {
		t.Skip("runs inside a test/vmtest VM")
	}
	t.Run("disks with serials and sizes", func(t *testing.T) {
		for _, d := range []struct{ name, serial, sectors string }{{"vda", "vmtest-d0", "2048"}, {"vdb", "vmtest-d1", "4096"}} {
			if got := read(t, filepath.Join("/sys/block", d.name, "serial")); got != d.serial {
				t.Errorf("%s serial = %q, want %q", d.name, got, d.serial)
			}
			if got := read(t, filepath.Join("/sys/block", d.name, "size")); got != d.sectors {
				t.Errorf("%s size = %s sectors, want %s", d.name, got, d.sectors)
			}
		}
		if _, err := os.Stat("/dev/vdb"); err != nil {
			t.Errorf("device node: %v", err)
		}
	})
	t.Run("nic with the vmtest MAC", func(t *testing.T) {
		links, _ := filepath.Glob("/sys/class/net/*/address")
		var macs []string
		for _, l := range links {
			macs = append(macs, read(t, l))
		}
		if !strings.Contains(strings.Join(macs, " "), "52:54:00:76:00:01") {
			t.Errorf("no link with MAC 52:54:00:76:00:01; have %v", macs)
		}
	})
	t.Run("md, bonding and 8021q modules loaded", func(t *testing.T) {
		mods := read(t, "/proc/modules")
		for _, m := range []string{"md_mod", "raid1", "bonding", "8021q", "virtio_net"} {
			if !strings.Contains(mods, m+" ") {
				t.Errorf("module %s not loaded", m)
			}
		}
		if _, err := os.Stat("/proc/mdstat"); err != nil {
			t.Errorf("mdstat: %v", err)
		}
	})
	t.Run("pseudo file systems", func(t *testing.T) {
		mounts := read(t, "/proc/self/mounts")
		for _, m := range []string{" /proc ", " /sys ", " /dev ", " /run "} {
			if !strings.Contains(mounts, m) {
				t.Errorf("%s is not mounted", strings.TrimSpace(m))
			}
		}
	})
}

// TestNotSelected must not run: the harness passes -test.run.
func TestNotSelected(t *testing.T) {
	if guest.InVM() {
		t.Fatal("ran although -test.run selects TestGuestEnvironment only")
	}
}
