package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"underlay.dev/pkg/netconf"
)

// These tests run the netlink driver for real in network namespaces the
// test creates: veth pairs, MTUs, static addresses, routes, resolv.conf and
// rollback. Bonds and VLANs need a kernel with bonding and 8021q; they are
// tested in a VM (vm_test.go, run by test/vmtest).

var nsSeq atomic.Int32

// peer is a namespace pair: the "host" namespace the driver configures,
// with veths a0 and a1, and a peer namespace holding their other ends p0
// (10.9.0.1/24) and p1 (10.8.0.1/24) with a TCP listener on each.
type peer struct {
	host, peer string
	h          *netlink.Handle
	port       int
	resolv     string
}

const (
	macA0 = "52:54:00:76:10:01"
	macA1 = "52:54:00:76:10:02"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns tests need root for network namespaces")
	}
}

func sh(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	n := nsSeq.Add(1)
	p := &peer{host: fmt.Sprintf("ulnet%d-%d-h", os.Getpid(), n), peer: fmt.Sprintf("ulnet%d-%d-p", os.Getpid(), n)}
	for _, ns := range []string{p.host, p.peer} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	h, peerNS := "ip -n "+p.host, "ip -n "+p.peer
	for _, c := range []string{
		h + " link set lo up",
		h + " link add a0 address " + macA0 + " type veth peer name p0 netns " + p.peer,
		h + " link add a1 address " + macA1 + " type veth peer name p1 netns " + p.peer,
		peerNS + " link set lo up",
		peerNS + " addr add 10.9.0.1/24 dev p0",
		peerNS + " addr add 10.8.0.1/24 dev p1",
		peerNS + " link set p0 up",
		peerNS + " link set p1 up",
		// As a DHCP client leaves it: an address with a lifetime and a
		// default route of protocol dhcp.
		h + " addr add 10.9.0.2/24 dev a0 valid_lft 3000 preferred_lft 3000",
		h + " link set a0 up",
		h + " route add default via 10.9.0.1 dev a0 proto dhcp metric 100",
	} {
		sh(t, strings.Fields(c)...)
	}
	ns, err := netns.GetFromName(p.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	p.h, err = netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.h.Close)
	p.resolv = filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p.resolv, []byte("nameserver 10.9.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"10.9.0.1:0", "10.8.0.1:0"} {
		var ln net.Listener
		if err := inNS(p.peer, func() error {
			var err error
			if p.port != 0 {
				addr = strings.Replace(addr, ":0", fmt.Sprintf(":%d", p.port), 1)
			}
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatalf("listen in %s: %v", p.peer, err)
		}
		p.port = ln.Addr().(*net.TCPAddr).Port
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	return p
}

// inNS runs fn on a thread in namespace name; sockets it opens stay there.
func inNS(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	defer netns.Set(orig) //nolint:errcheck
	return fn()
}

// dial is a check: a TCP connection from the host namespace to addr.
func (p *peer) dial(ip string) func(context.Context) error {
	return func(ctx context.Context) error {
		return inNS(p.host, func() error {
			ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", ip, p.port))
			if err != nil {
				return err
			}
			return c.Close()
		})
	}
}

func (p *peer) driver(timeout time.Duration) *driver {
	return newDriver(Config{ResolvConf: p.resolv, CheckTimeout: timeout}, &netlinkSystem{h: p.h})
}

// stable drops what the kernel changes by itself (lifetimes counting down,
// IPv6 link-local addresses and their DAD flags) so states compare.
func stable(st *State) *State {
	st = st.clone()
	for i := range st.Links {
		l := &st.Links[i]
		var keep []Addr
		for _, a := range l.Addrs {
			if !a.dynamic() {
				a.ValidLft, a.PreferredLft = 0, 0
				keep = append(keep, a)
			}
		}
		l.Addrs = keep
	}
	return st
}

func TestNetnsApply(t *testing.T) {
	requireRoot(t)
	p := newPeer(t)
	d := p.driver(10 * time.Second)
	doc := `{"links":[{"id":"up","type":"phy","ethernet_mac_address":"` + strings.ToUpper(macA0) + `","mtu":1400}],
		"networks":[{"id":"n","type":"ipv4","link":"up","ip_address":"10.9.0.50","netmask":"255.255.255.0",
			"routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.9.0.1"},{"network":"10.77.0.0/16","gateway":"10.9.0.254"}]}],
		"services":[{"type":"dns","address":"10.9.0.53"}]}`
	var log bytes.Buffer
	rep, err := d.Apply(context.Background(), parse(t, doc), p.dial("10.9.0.1"), &log)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, log.String())
	}
	if !rep.Changed {
		t.Error("Changed = false")
	}
	l, err := p.h.LinkByName("a0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MTU != 1400 || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("a0: mtu %d flags %v, want 1400 and up", l.Attrs().MTU, l.Attrs().Flags)
	}
	addrs, err := p.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if strings.Join(got, " ") != "10.9.0.50/24" {
		t.Errorf("a0 IPv4 addresses = %v, want only 10.9.0.50/24 (the DHCP one removed)", got)
	}
	routes, err := p.h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, r := range routes {
		if r.Protocol != protoKernel {
			got = append(got, fmt.Sprintf("%v via %s metric %d", r.Dst, r.Gw, r.Priority))
		}
	}
	if want := "0.0.0.0/0 via 10.9.0.1 metric 0, 10.77.0.0/16 via 10.9.0.254 metric 0"; strings.Join(got, ", ") != want &&
		strings.Join(got, ", ") != strings.Replace(want, "0.0.0.0/0", "<nil>", 1) {
		t.Errorf("a0 routes = %v, want %s", got, want)
	}
	b, _ := os.ReadFile(p.resolv)
	if !strings.Contains(string(b), "nameserver 10.9.0.53\n") || strings.Contains(string(b), "10.9.0.1") {
		t.Errorf("resolv.conf = %q", b)
	}
	rep, err = d.Apply(context.Background(), parse(t, doc), p.dial("10.9.0.1"), nil)
	if err != nil || rep.Changed {
		t.Errorf("second Apply = %+v, %v; want no change", rep, err)
	}
}

func TestNetnsRollback(t *testing.T) {
	requireRoot(t)
	p := newPeer(t)
	d := p.driver(2 * time.Second)
	before, err := d.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Moves the host to other networks without a default route: the
	// server at 10.9.0.1 is out of reach, so the check fails.
	doc := `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"` + macA0 + `","mtu":1280},
			{"id":"b","type":"phy","ethernet_mac_address":"` + macA1 + `"}],
		"networks":[{"id":"x","type":"ipv4","link":"a","ip_address":"10.7.0.5/24"},
			{"id":"y","type":"ipv4","link":"b","ip_address":"10.8.0.5/24","routes":[{"network":"10.200.0.0/16","gateway":"10.8.0.1"}]}],
		"services":[{"type":"dns","address":"10.8.0.53"}]}`
	var log bytes.Buffer
	rep, err := d.Apply(context.Background(), parse(t, doc), p.dial("10.9.0.1"), &log)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("Apply error = %v, want ErrRolledBack\n%s", err, log.String())
	}
	if rep.Changed {
		t.Error("Changed = true after a rollback")
	}
	after, err := d.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, stable(before), stable(after))
	// The restored DHCP address still expires.
	for _, a := range after.link("a0").Addrs {
		if a.Prefix.String() == "10.9.0.2/24" && (a.ValidLft == 0 || a.ValidLft > 3000) {
			t.Errorf("restored address lifetime = %d, want 1..3000", a.ValidLft)
		}
	}
	if err := p.dial("10.9.0.1")(context.Background()); err != nil {
		t.Errorf("after the rollback the server is still out of reach: %v", err)
	}
	for _, want := range []string{"add address 10.8.0.5/24 to a1", "rolling back: check failed", "add address 10.9.0.2/24 to a0",
		"set mtu of a0 to 1500", "set a1 down", "add route default via 10.9.0.1 dev a0 metric 100", "previous configuration restored"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestNetnsRefuses(t *testing.T) {
	requireRoot(t)
	p := newPeer(t)
	d := p.driver(time.Second)
	before, _ := d.snapshot()
	_, err := d.Apply(context.Background(), parse(t, `{"links":[{"id":"eth9","type":"phy","ethernet_mac_address":"52:54:00:aa:bb:cc"}]}`), nil, nil)
	want := "link eth9 (52:54:00:aa:bb:cc): no NIC with this MAC; the machine has " + macA0 + " (a0), " + macA1 + " (a1)"
	if !errors.Is(err, netconf.ErrInvalid) || !strings.Contains(fmt.Sprint(err), want) {
		t.Errorf("Apply error = %v, want %q", err, want)
	}
	after, _ := d.snapshot()
	sameState(t, stable(before), stable(after))
}

// TestNetnsBondWhereUnsupported applies a bond: on a kernel without bonding
// (the build host) creating it fails and everything done before (the
// enslaved NIC's address and route removed) is rolled back.
func TestNetnsBondWhereUnsupported(t *testing.T) {
	requireRoot(t)
	p := newPeer(t)
	d := p.driver(time.Second)
	before, _ := d.snapshot()
	doc := `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"` + macA0 + `"},{"id":"b","type":"phy","ethernet_mac_address":"` + macA1 + `"},
		{"id":"ulbond0","type":"bond","bond_links":["a","b"],"bond_mode":"active-backup"}],
		"networks":[{"id":"n","type":"ipv4","link":"ulbond0","ip_address":"10.9.0.60/24"}]}`
	var log bytes.Buffer
	_, err := d.Apply(context.Background(), parse(t, doc), p.dial("10.9.0.1"), &log)
	if err == nil {
		if _, lerr := p.h.LinkByName("ulbond0"); lerr != nil {
			t.Fatalf("Apply succeeded but there is no bond: %v", lerr)
		}
		t.Log("this kernel has bonding; the bond was created")
		return
	}
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "create bond ulbond0") {
		t.Fatalf("Apply error = %v, want a rolled-back bond creation\n%s", err, log.String())
	}
	after, _ := d.snapshot()
	sameState(t, stable(before), stable(after))
}
