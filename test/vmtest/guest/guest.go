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
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"underlay.dev/agent/bootenv"
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
// quiet drops bootenv's logs: Main prints its own summary lines.
var quiet = slog.New(slog.DiscardHandler)

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
	if _, err := bootenv.MountPseudo(quiet); err != nil {
		fmt.Printf("vmtest guest: %v\n", err)
	}
	fmt.Printf("vmtest guest: uinit started at uptime %s\n", uptime())
	rep, err := bootenv.LoadModules(quiet, bootenv.Options{ModulesFile: modulesFile, ModulesRoot: modulesRoot})
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
