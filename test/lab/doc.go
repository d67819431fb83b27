// Package lab is the network-boot test lab: a provisioning network made of
// Linux network namespaces (a bridge, one namespace per management node, a
// veth from the host), real 'underlay server' processes serving DHCP, TFTP
// and HTTP boot on it, and QEMU virtual machines (TCG, legacy BIOS or OVMF)
// that PXE-boot the discovery image from it.
//
// Everything runs as root, inside namespaces the lab created, and is torn
// down through TB.Cleanup, also when a test fails. The API takes a TB, which
// *testing.T satisfies, so a non-test program (make demo) can drive the same
// harness with its own implementation.
package lab

import (
	"errors"
	"time"
)

// TB is what the lab needs from its caller; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// Sentinel errors.
var (
	// ErrNotRoot is returned when the lab is used without root privileges.
	ErrNotRoot = errors.New("the lab needs root")
	// ErrTimeout is returned when something the lab waits for does not happen in time.
	ErrTimeout = errors.New("timed out")
)

// Deadlines, generous because QEMU runs without KVM on small machines.
const (
	// BootDeadline bounds power-on to discovered.
	BootDeadline = 4 * time.Minute
	// NodeDeadline bounds a management node coming up.
	NodeDeadline = 90 * time.Second
)
