package lab

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"strings"
)

// Network is a provisioning network: a namespace holding bridge br0, and a
// veth from the root namespace into it so the test process can reach the
// nodes. Node namespaces and VM taps are added to it.
type Network struct {
	tb TB
	// N is the third octet: the network is 10.213.N.0/24.
	N int
	// NS is the namespace that holds the bridge (and QEMU, and dnsmasq).
	NS string
	// HostIf is the root-namespace end of the host veth.
	HostIf string
	taps   int
	vms    int
}

// Prefix is the network's address range.
func (n *Network) Prefix() netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/24", n.N))
}

// Addr returns 10.213.N.host.
func (n *Network) Addr(host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 213, byte(n.N), byte(host)})
}

// HostAddr is the test process's address on the network (.1).
func (n *Network) HostAddr() netip.Addr { return n.Addr(1) }

// NewNetwork creates the bridge namespace with a random N that no route of
// the root namespace uses, and removes everything at cleanup.
func NewNetwork(tb TB) *Network {
	tb.Helper()
	routes, _ := exec.Command("ip", "-4", "route", "show", "table", "all").CombinedOutput()
	n := &Network{tb: tb}
	for {
		n.N = 1 + rand.IntN(250)
		if !bytes.Contains(routes, []byte(fmt.Sprintf("10.213.%d.", n.N))) {
			break
		}
	}
	n.NS = fmt.Sprintf("ulab%d-br", n.N)
	n.HostIf = fmt.Sprintf("ulab%d", n.N)
	mustRun(tb, "ip", "netns", "add", n.NS)
	tb.Cleanup(func() {
		// Deleting the namespace removes the bridge, taps and veth peers.
		_ = exec.Command("ip", "link", "del", n.HostIf).Run()
		if out, err := exec.Command("ip", "netns", "del", n.NS).CombinedOutput(); err != nil {
			tb.Logf("ip netns del %s: %v: %s", n.NS, err, out)
		}
	})
	n.In("ip", "link", "set", "lo", "up")
	n.In("ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
	n.In("ip", "link", "set", "br0", "up")
	mustRun(tb, "ip", "link", "add", n.HostIf, "type", "veth", "peer", "name", "host", "netns", n.NS)
	n.In("ip", "link", "set", "host", "master", "br0", "up")
	mustRun(tb, "ip", "addr", "add", n.HostAddr().String()+"/24", "dev", n.HostIf)
	mustRun(tb, "ip", "link", "set", n.HostIf, "up")
	return n
}

// In runs a command inside the bridge namespace and fails the test on error.
func (n *Network) In(args ...string) {
	n.tb.Helper()
	mustRun(n.tb, append([]string{"ip", "netns", "exec", n.NS}, args...)...)
}

// AddNamespace creates namespace name with a veth "eth0" into the bridge
// carrying addr/24, removed at cleanup.
func (n *Network) AddNamespace(name string, addr netip.Addr) {
	n.tb.Helper()
	mustRun(n.tb, "ip", "netns", "add", name)
	n.tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			n.tb.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	port := "v" + strings.TrimPrefix(name, fmt.Sprintf("ulab%d-", n.N))
	n.In("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
	n.In("ip", "link", "set", port, "master", "br0", "up")
	in := func(args ...string) {
		n.tb.Helper()
		mustRun(n.tb, append([]string{"ip", "netns", "exec", name}, args...)...)
	}
	in("ip", "link", "set", "lo", "up")
	in("ip", "addr", "add", addr.String()+"/24", "dev", "eth0")
	in("ip", "link", "set", "eth0", "up")
}

// AddTap creates a tap device on the bridge for a VM NIC and returns its name.
func (n *Network) AddTap() string {
	n.tb.Helper()
	n.taps++
	name := fmt.Sprintf("tap%d", n.taps)
	n.In("ip", "tuntap", "add", name, "mode", "tap")
	n.In("ip", "link", "set", name, "master", "br0", "up")
	return name
}

func mustRun(tb TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
