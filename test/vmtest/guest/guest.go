// Package guest is the in-VM side of vmtest: a package's vmtest-tagged
// TestMain calls Main, which runs the tests normally on the host and, inside
// a vmtest VM, prepares the VM, runs them, reports the result on the serial
// console and powers the VM off.
//
// A package opts in with a file like
//
//	//go:build vmtest
//
//	package raid_test
//
//	func TestMain(m *testing.M) { guest.Main(m) }
//
// and a host-side test that calls vmtest.Run with the package's import
// path.
package guest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Paths in the discovery image.
const (
	cmdlinePath = "/proc/cmdline"
	modulesFile = "/etc/underlay/modules"
	modulesRoot = "/lib/modules"
)

// Markers the host side (vmtest.Run) looks for; keep in step with vmtest.
const (
	cmdlineFlag  = "underlay.vmtest=1"
	startMarker  = "VMTEST-START"
	resultMarker = "VMTEST-RESULT"
)

// InVM reports whether this process runs in a vmtest VM: the kernel
// command line carries underlay.vmtest=1.
func InVM() bool {
	b, err := os.ReadFile(cmdlinePath)
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		if f == cmdlineFlag {
			return true
		}
	}
	return false
}

// Main runs the tests. Outside a vmtest VM it is os.Exit(m.Run()). Inside
// one it mounts /proc, /sys, /dev and /run where u-root's init has not,
// loads the kernel modules of /etc/underlay/modules (with their
// dependencies from modules.dep), runs m.Run, prints "VMTEST-RESULT
// exit=<code>", syncs and powers the VM off. It does not return.
func Main(m *testing.M) {
	if !InVM() {
		os.Exit(m.Run())
	}
	code := 1
	defer func() {
		// A panic here would take the VM down without a result line.
		if r := recover(); r != nil {
			fmt.Printf("vmtest guest: panic: %v\n", r)
			code = 2
		}
		finish(code)
	}()
	if err := mountPseudo(); err != nil {
		fmt.Printf("vmtest guest: %v\n", err)
	}
	fmt.Printf("vmtest guest: uinit started at uptime %s\n", uptime())
	rep, err := LoadModules(modulesFile, modulesRoot, "")
	if err != nil {
		fmt.Printf("vmtest guest: modules: %v\n", err)
	}
	fmt.Printf("vmtest guest: modules loaded %d, already %d, failed %d %v, missing %v\n",
		len(rep.Loaded), len(rep.Already), len(rep.Failed), rep.Failed, rep.Missing)
	fmt.Printf("%s uptime=%s\n", startMarker, uptime())
	code = m.Run()
}

// finish prints the result line, syncs and powers off.
func finish(code int) {
	fmt.Printf("\n%s exit=%d\n", resultMarker, code)
	_ = os.Stdout.Sync()
	unix.Sync()
	// Give the serial console a moment to drain.
	time.Sleep(200 * time.Millisecond)
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("vmtest guest: power off: %v\n", err)
	}
	os.Exit(code)
}

// uptime returns /proc/uptime's first field ("4.52"), or "?".
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// pseudoFS is one file system the tests need.
type pseudoFS struct {
	source, target, fstype string
	flags                  uintptr
}

var pseudoFSes = []pseudoFS{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV},
}

// mountPseudo mounts what of pseudoFSes is not mounted yet.
func mountPseudo() error {
	var errs []error
	for _, fs := range pseudoFSes {
		b, _ := os.ReadFile("/proc/self/mounts")
		if mounted(b, fs.target) {
			continue
		}
		if err := os.MkdirAll(fs.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(fs.source, fs.target, fs.fstype, fs.flags, ""); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", fs.fstype, fs.target, err))
		}
	}
	return errors.Join(errs...)
}

// mounted reports whether /proc/self/mounts content lists target.
func mounted(mounts []byte, target string) bool {
	for _, line := range bytes.Split(mounts, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) >= 2 && f[1] == target {
			return true
		}
	}
	return false
}
