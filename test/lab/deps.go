package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Packages are the Debian packages the lab runs, keyed by a file each
// installs.
var Packages = map[string]string{
	"/usr/bin/qemu-system-x86_64":       "qemu-system-x86",
	"/usr/lib/ipxe/qemu/efi-virtio.rom": "ipxe-qemu",
	"/usr/share/OVMF/OVMF_CODE.fd":      "ovmf",
	"/usr/lib/ipxe/ipxe.efi":            "ipxe",
	"/usr/sbin/dnsmasq":                 "dnsmasq",
}

// aptLock serialises the lab's own apt-get runs across processes; apt's
// lock (waited for with DPkg::Lock::Timeout) covers everyone else.
const aptLock = "/run/underlay-lab-apt.lock"

// EnsurePackages installs the Debian packages of Packages that are missing.
func EnsurePackages(tb TB) {
	tb.Helper()
	var missing []string
	for file, pkg := range Packages {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	tb.Logf("installing Debian packages %v", missing)
	if err := aptInstall(missing); err != nil {
		tb.Fatalf("install %v: %v", missing, err)
	}
}

func aptInstall(pkgs []string) error {
	f, err := os.OpenFile(aptLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("apt lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("apt lock: %w", err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	run := func(args ...string) error {
		var last error
		for attempt := 0; attempt < 5; attempt++ {
			cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=120"}, args...)...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err == nil {
				return nil
			}
			last = fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, out)
			time.Sleep(time.Duration(attempt+1) * 3 * time.Second)
		}
		return last
	}
	if err := run("update", "-qq"); err != nil {
		return err
	}
	return run(append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)...)
}
