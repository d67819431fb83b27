package redfish

import "syscall"

// procAttr puts QEMU in its own process group and kills it when the
// simulator dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
