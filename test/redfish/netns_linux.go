package redfish

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenNetns opens a TCP listener inside the network namespace name (as
// made by ip netns add, /run/netns/NAME), for Config.Listener: the socket
// stays in that namespace while the simulator runs in this process, so
// machines in a lab namespace reach their BMC there. Needs root.
func ListenNetns(name, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread switches namespaces; if it cannot switch back it stays
		// locked and dies with this goroutine.
		runtime.LockOSThread()
		ln, restored, err := listenIn(name, addr)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

func listenIn(name, addr string) (_ net.Listener, restored bool, _ error) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("listen in netns %s: %w", name, err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		return nil, true, fmt.Errorf("listen in netns %s: %w", name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("enter netns %s: %w", name, err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, false, fmt.Errorf("leave netns %s: %w", name, err)
	}
	if lerr != nil {
		return nil, true, fmt.Errorf("listen %s in netns %s: %w", addr, name, lerr)
	}
	return ln, true, nil
}
