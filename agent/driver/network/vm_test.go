//go:build vmtest

package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"underlay.dev/test/vmtest/guest"
)

// These tests run inside a test/vmtest VM with Debian's kernel (bonding and
// 8021q loaded) and two virtio NICs, 52:54:00:76:00:01 and :02; see
// test/vmtest/network_test.go. Outside such a VM they skip: they change the
// machine's real NICs.

func TestMain(m *testing.M) { guest.Main(m) }

const (
	vmMAC0 = "52:54:00:76:00:01"
	vmMAC1 = "52:54:00:76:00:02"
)

func requireVM(t *testing.T) *netlink.Handle {
	t.Helper()
	if !guest.InVM() {
		t.Skip("changes the machine's NICs; runs inside a test/vmtest VM (go test ./test/vmtest -run TestNetworkDriver)")
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// vmNIC returns the NIC with a permanent MAC.
func vmNIC(t *testing.T, h *netlink.Handle, mac string) netlink.Link {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().PermHWAddr.String() == mac || (len(l.Attrs().PermHWAddr) == 0 && l.Attrs().HardwareAddr.String() == mac) {
			return l
		}
	}
	t.Fatalf("no NIC with MAC %s", mac)
	return nil
}

// resetVM deletes bonds and VLANs and leaves the machine as DHCP would:
// NIC 0 up with 10.0.2.15/24 (expiring) and a default route via 10.0.2.2,
// NIC 1 down without addresses.
func resetVM(t *testing.T, h *netlink.Handle) {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Type() == "vlan" {
			_ = h.LinkDel(l)
		}
	}
	for _, l := range links {
		if l.Type() == "bond" {
			_ = h.LinkDel(l)
		}
	}
	for i, mac := range []string{vmMAC0, vmMAC1} {
		l := vmNIC(t, h, mac)
		must(t, h.LinkSetDown(l))
		addrs, _ := h.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			must(t, h.AddrDel(l, &a))
		}
		must(t, h.LinkSetMTU(l, 1500))
		if i == 0 {
			must(t, h.LinkSetUp(l))
			must(t, h.AddrAdd(l, &netlink.Addr{IPNet: mustCIDR("10.0.2.15/24"), ValidLft: 3000, PreferedLft: 3000}))
			must(t, h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: mustCIDR("0.0.0.0/0"),
				Gw: net.ParseIP("10.0.2.2"), Protocol: 16, Priority: 100}))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func vmBondVLAN(mode, extra string) string {
	return `{"links":[{"id":"nic0","type":"phy","ethernet_mac_address":"` + vmMAC0 + `"},
		{"id":"nic1","type":"phy","ethernet_mac_address":"` + vmMAC1 + `"},
		{"id":"bond0","type":"bond","bond_links":["nic0","nic1"],"bond_mode":"` + mode + `"` + extra + `},
		{"id":"bond0.100","type":"vlan","vlan_link":"bond0","vlan_id":100}],
	"networks":[{"id":"prod","type":"ipv4","link":"bond0.100","ip_address":"10.100.0.50/24",
		"routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.100.0.1"},{"network":"10.200.0.0/16","gateway":"10.100.0.254"}]}],
	"services":[{"type":"dns","address":"10.100.0.2"}]}`
}

func vmDriver(t *testing.T, h *netlink.Handle, timeout time.Duration) (Driver, string) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.0.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return New(Config{ResolvConf: resolv, CheckTimeout: timeout, Handle: h}), resolv
}

// adminUp is a check for bonds without a partner (802.3ad): the link
// exists and is set up.
func adminUp(h *netlink.Handle, name string) func(context.Context) error {
	return func(context.Context) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("%s is down", name)
		}
		return nil
	}
}

// linkUp is the guest's check: the link exists, is up and has carrier.
func linkUp(h *netlink.Handle, name string) func(context.Context) error {
	return func(context.Context) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().OperState != netlink.OperUp {
			return fmt.Errorf("%s is %s", name, l.Attrs().OperState)
		}
		return nil
	}
}

func TestVMBondVLAN(t *testing.T) {
	h := requireVM(t)
	resetVM(t, h)
	d, resolv := vmDriver(t, h, 30*time.Second)
	var log bytes.Buffer
	rep, err := d.Apply(context.Background(), parse(t, vmBondVLAN("active-backup", "")), linkUp(h, "bond0.100"), &log)
	t.Logf("apply:\n%s", log.String())
	if err != nil || !rep.Changed {
		t.Fatalf("Apply = %v, changed %v", err, rep.Changed)
	}
	bl, err := h.LinkByName("bond0")
	if err != nil {
		t.Fatal(err)
	}
	bond, ok := bl.(*netlink.Bond)
	if !ok || bond.Mode != netlink.BOND_MODE_ACTIVE_BACKUP || bond.Miimon != 100 {
		t.Errorf("bond0 = %T mode %v miimon %d, want active-backup, 100", bl, bond.Mode, bond.Miimon)
	}
	for _, mac := range []string{vmMAC0, vmMAC1} {
		if n := vmNIC(t, h, mac); n.Attrs().MasterIndex != bl.Attrs().Index || n.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("NIC %s (%s): master %d up %v, want bond0 (%d) and up", mac, n.Attrs().Name, n.Attrs().MasterIndex,
				n.Attrs().Flags&net.FlagUp != 0, bl.Attrs().Index)
		}
		addrs, _ := h.AddrList(vmNIC(t, h, mac), netlink.FAMILY_V4)
		if len(addrs) != 0 {
			t.Errorf("slave %s keeps addresses %v", mac, addrs)
		}
	}
	vl, err := h.LinkByName("bond0.100")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := vl.(*netlink.Vlan); !ok || v.VlanId != 100 || v.ParentIndex != bl.Attrs().Index {
		t.Errorf("bond0.100 = %T %+v, want vlan 100 on bond0", vl, vl)
	}
	addrs, _ := h.AddrList(vl, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.100.0.50/24" {
		t.Errorf("bond0.100 addresses = %v, want 10.100.0.50/24", addrs)
	}
	routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
	var got []string
	for _, r := range routes {
		if r.Protocol != protoKernel {
			dev := ""
			if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
				dev = l.Attrs().Name
			}
			dst := "default"
			if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
				dst = r.Dst.String()
			}
			got = append(got, fmt.Sprintf("%s via %s dev %s", dst, r.Gw, dev))
		}
	}
	if want := "default via 10.100.0.1 dev bond0.100, 10.200.0.0/16 via 10.100.0.254 dev bond0.100"; strings.Join(got, ", ") != want {
		t.Errorf("routes = %q, want %q", strings.Join(got, ", "), want)
	}
	if b, _ := os.ReadFile(resolv); !strings.Contains(string(b), "nameserver 10.100.0.2\n") {
		t.Errorf("resolv.conf = %q", b)
	}
	rep, err = d.Apply(context.Background(), parse(t, vmBondVLAN("active-backup", "")), linkUp(h, "bond0.100"), nil)
	if err != nil || rep.Changed {
		t.Errorf("second Apply = %+v, %v; want no change", rep, err)
	}
}

func TestVMRollback(t *testing.T) {
	h := requireVM(t)
	resetVM(t, h)
	d, _ := vmDriver(t, h, 3*time.Second)
	sys := &netlinkSystem{h: h}
	before, err := sys.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// The check wants the old network: the management server is only
	// reachable there, so moving to the bond fails it.
	check := func(context.Context) error {
		addrs, err := h.AddrList(vmNIC(t, h, vmMAC0), netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a.IPNet.String() == "10.0.2.15/24" {
				return nil
			}
		}
		return errors.New("dial 10.0.2.2:7443: no route to host")
	}
	var log bytes.Buffer
	_, err = d.Apply(context.Background(), parse(t, vmBondVLAN("active-backup", `,"mtu":9000`)), check, &log)
	t.Logf("apply:\n%s", log.String())
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "no route to host") {
		t.Fatalf("Apply error = %v, want a rollback after the failed check", err)
	}
	if !strings.Contains(log.String(), "create bond bond0") || !strings.Contains(log.String(), "enslave") {
		t.Errorf("the config was not applied before the rollback:\n%s", log.String())
	}
	after, err := sys.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	after.Resolv, before.Resolv = nil, nil
	sameState(t, stable(before), stable(after))
	for _, l := range after.Links {
		if l.Kind == "bond" || l.Kind == "vlan" {
			t.Errorf("%s %s left behind", l.Kind, l.Name)
		}
	}
}

func TestVMBondModes(t *testing.T) {
	h := requireVM(t)
	for _, tc := range []struct {
		mode, extra string
		want        netlink.BondMode
		policy      netlink.BondXmitHashPolicy
		miimon      int
	}{
		{"802.3ad", `,"bond_xmit_hash_policy":"layer3+4","bond_miimon":200`, netlink.BOND_MODE_802_3AD, netlink.BOND_XMIT_HASH_POLICY_LAYER3_4, 200},
		{"balance-xor", ``, netlink.BOND_MODE_BALANCE_XOR, netlink.BOND_XMIT_HASH_POLICY_LAYER2, 100},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			resetVM(t, h)
			d, _ := vmDriver(t, h, 30*time.Second)
			var log bytes.Buffer
			if _, err := d.Apply(context.Background(), parse(t, vmBondVLAN(tc.mode, tc.extra)), adminUp(h, "bond0.100"), &log); err != nil {
				t.Fatalf("Apply: %v\n%s", err, log.String())
			}
			bl, err := h.LinkByName("bond0")
			if err != nil {
				t.Fatal(err)
			}
			b, ok := bl.(*netlink.Bond)
			if !ok || b.Mode != tc.want || b.XmitHashPolicy != tc.policy || b.Miimon != tc.miimon {
				t.Errorf("bond0 = mode %v policy %v miimon %d, want %v %v %d", b.Mode, b.XmitHashPolicy, b.Miimon, tc.want, tc.policy, tc.miimon)
			}
			for _, mac := range []string{vmMAC0, vmMAC1} {
				if n := vmNIC(t, h, mac); n.Attrs().MasterIndex != bl.Attrs().Index {
					t.Errorf("NIC %s is not a slave of bond0", mac)
				}
			}
			if _, err := h.LinkByName("bond0.100"); err != nil {
				t.Errorf("no vlan on the %s bond: %v", tc.mode, err)
			}
		})
	}
}
