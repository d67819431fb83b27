//go:build !linux

package redfish

import "syscall"

// procAttr puts QEMU in its own process group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
