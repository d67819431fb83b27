package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
)

// labVM is the machine every scenario boots: 2 vCPUs, 1.5 GiB, two disks
// of different sizes, two NICs.
func labVM(name string, uefi bool) VMConfig {
	return VMConfig{Name: name, CPUs: 2, MemoryMiB: 1536, Disks: []int64{2 * gib, 3 * gib}, NICs: 2, UEFI: uefi}
}

func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root for network namespaces, taps and DHCP")
	}
	EnsurePackages(t)
}

// hardware is what the inventory must say about a lab VM.
type hardware struct {
	Threads    uint32
	MemoryMiB  int64 // rounded to 64 MiB
	DiskBytes  []int64
	NICMACs    []string
	IdentMACs  []string
	BootMode   string
	Discovered bool
}

func expected(vm *VM) hardware {
	macs := slices.Clone(vm.MACs)
	slices.Sort(macs)
	mode := "legacy"
	if vm.Config.UEFI {
		mode = "uefi"
	}
	return hardware{Threads: uint32(vm.Config.CPUs), MemoryMiB: int64(vm.Config.MemoryMiB), DiskBytes: vm.Config.Disks,
		NICMACs: macs, IdentMACs: macs, BootMode: mode, Discovered: true}
}

// reported summarises a boot. Memory counts as the configured size when
// the total the kernel reports is within 10% below it (firmware and the
// kernel keep some).
func reported(b Boot, want hardware) hardware {
	inv := b.Inventory
	h := hardware{Threads: inv.GetCpu().GetThreads(), BootMode: inv.GetBootMode(),
		Discovered: b.Machine.GetState() == underlayv1.MachineState_MACHINE_STATE_DISCOVERED}
	total := int64(inv.GetMemory().GetTotalBytes())
	if w := want.MemoryMiB * mib; total <= w && total >= w*9/10 {
		h.MemoryMiB = want.MemoryMiB
	} else {
		h.MemoryMiB = total / mib
	}
	for _, d := range inv.GetDisks() {
		if d.GetController() == "virtio" {
			h.DiskBytes = append(h.DiskBytes, int64(d.GetSizeBytes()))
		}
	}
	slices.Sort(h.DiskBytes)
	for _, n := range inv.GetNics() {
		if mac := strings.ToLower(n.GetMac()); strings.HasPrefix(mac, "52:54:00:") {
			h.NICMACs = append(h.NICMACs, mac)
		}
	}
	slices.Sort(h.NICMACs)
	h.IdentMACs = b.Machine.GetIdentity().GetMacs()
	return h
}

func checkBoot(t *testing.T, cl *client.Client, vm *VM) Boot {
	t.Helper()
	b := WaitDiscovered(t, cl, vm)
	want := expected(vm)
	if diff := cmp.Diff(want, reported(b, want)); diff != "" {
		t.Errorf("%s: inventory mismatch (-want +got):\n%s", vm.Config.Name, diff)
	}
	t.Logf("BOOT TIME %s: power-on to discovered %v (milestones %v)", vm.Config.Name, b.Discovered, b.Seen)
	return b
}

// TestNetworkBootAuthoritative runs a three-node cluster serving
// authoritative DHCP and boots: a BIOS VM and a UEFI VM side by side, then,
// with the node that answered the first VM stopped, a third VM. No address
// may go to two MACs.
func TestNetworkBootAuthoritative(t *testing.T) {
	requireLab(t)
	lab := NewNetwork(t)
	c := StartCluster(t, lab, ClusterConfig{DHCPMode: Authoritative})
	cl := c.Client()

	bios := StartVM(t, lab, labVM("bios", false))
	// The UEFI VM has no iPXE option ROM: OVMF's own PXE client asks for a
	// boot file (arch 7), gets ipxe.efi over TFTP, and iPXE goes on.
	uefiCfg := labVM("uefi", true)
	uefiCfg.FirmwarePXE = true
	uefi := StartVM(t, lab, uefiCfg)
	t.Run("bios", func(t *testing.T) { checkBoot(t, cl, bios) })
	t.Run("uefi", func(t *testing.T) {
		checkBoot(t, cl, uefi)
		path := uefiPath(c, uefi)
		t.Logf("uefi boot path: %s; firmware and iPXE on the serial console:\n%s", path, bootLines(uefi.SerialLog()))
		if !strings.Contains(path, "ipxe.efi over TFTP") {
			t.Errorf("the UEFI VM did not boot through ipxe.efi over TFTP")
		}
	})
	t.Run("ha", func(t *testing.T) {
		served := firstOffer(t, c, bios.MACs[0])
		t.Logf("stopping %s, which sent the first DHCP offer to %s", served.ID, bios.MACs[0])
		served.Stop()
		ha := StartVM(t, lab, labVM("ha", false))
		checkBoot(t, cl, ha)
		checkLeases(t, cl, bios, uefi, ha)
	})
}

// TestNetworkBootProxy runs dnsmasq as the site's DHCP server (addresses
// only, no PXE options) and a cluster in proxy mode beside it.
func TestNetworkBootProxy(t *testing.T) {
	requireLab(t)
	lab := NewNetwork(t)
	ns := fmt.Sprintf("ulab%d-dhcp", lab.N)
	lab.AddNamespace(ns, lab.Addr(2))
	dir := t.TempDir()
	dnsmasq := StartProc(t, "dnsmasq", ns, filepath.Join(dir, "dnsmasq.log"), "dnsmasq", "--no-daemon",
		"--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-range="+lab.Addr(100).String()+","+lab.Addr(150).String()+",255.255.255.0,1h",
		"--dhcp-option=3,"+lab.HostAddr().String(), "--dhcp-leasefile="+filepath.Join(dir, "leases"),
		"--pid-file=", "--log-dhcp", "--log-facility=-")
	c := StartCluster(t, lab, ClusterConfig{DHCPMode: Proxy})
	cl := c.Client()
	vm := StartVM(t, lab, labVM("proxy", false))
	checkBoot(t, cl, vm)
	t.Run("site dhcp gave the address", func(t *testing.T) {
		if !bytes.Contains(dnsmasq.Output(), []byte("DHCPACK(eth0) ")) {
			t.Errorf("dnsmasq acknowledged no lease; its log:\n%s", tail(dnsmasq.Output(), 30))
		}
		proxied := 0
		for _, n := range c.Nodes {
			for _, line := range strings.Split(string(n.Output()), "\n") {
				if !strings.Contains(line, `msg="dhcp reply sent" `) {
					continue
				}
				if !strings.Contains(line, " yiaddr=0.0.0.0 ") {
					t.Errorf("%s handed out an address in proxy mode: %s", n.ID, line)
				} else if strings.Contains(line, " mac="+vm.MACs[0]+" ") {
					proxied++
				}
			}
		}
		if proxied == 0 {
			t.Errorf("no node sent a proxy DHCP reply to %s", vm.MACs[0])
		}
	})
}

// uefiPath says how a UEFI VM reached iPXE: through the firmware's PXE and
// ipxe.efi over TFTP, or straight from the NIC's EFI iPXE ROM.
func uefiPath(c *Cluster, vm *VM) string {
	for _, n := range c.Nodes {
		if tftpSent(n.Output(), "ipxe.efi") && bytes.Contains(n.Output(), []byte(vm.MACs[0])) {
			return "OVMF PXE -> ipxe.efi over TFTP from " + n.ID + " -> HTTP script"
		}
	}
	return "NIC's EFI iPXE ROM (user class iPXE) -> HTTP script directly"
}

// tftpSent reports whether a node's log shows a completed TFTP transfer of
// file (UEFI firmware often aborts a first request after learning the size).
func tftpSent(log []byte, file string) bool {
	for _, l := range bytes.Split(log, []byte("\n")) {
		if bytes.Contains(l, []byte(`msg="tftp transfer done"`)) && bytes.Contains(l, []byte("file="+file)) {
			return true
		}
	}
	return false
}

var bootLine = regexp.MustCompile(`(?i)ipxe|net\d|pxe|dhcp|http|boot`)

// bootLines returns the serial lines before the kernel that concern the
// network boot.
func bootLines(serial []byte) string {
	pre, _, _ := bytes.Cut(serial, []byte("Linux version"))
	var out []string
	for _, l := range strings.Split(string(pre), "\n") {
		if l = strings.TrimSpace(l); bootLine.MatchString(l) {
			out = append(out, l)
		}
	}
	return tail([]byte(strings.Join(out, "\n")), 25)
}

var logTime = regexp.MustCompile(`^time=(\S+) `)

// firstOffer finds the node whose log shows the earliest DHCP OFFER to mac.
func firstOffer(t *testing.T, c *Cluster, mac string) *Node {
	t.Helper()
	var first *Node
	var at time.Time
	for _, n := range c.Nodes {
		sc := bufio.NewScanner(bytes.NewReader(n.Output()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="dhcp reply sent" `) || !strings.Contains(line, " type=OFFER mac="+mac+" ") {
				continue
			}
			m := logTime.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			ts, err := time.Parse(time.RFC3339Nano, m[1])
			if err == nil && (first == nil || ts.Before(at)) {
				first, at = n, ts
			}
			break
		}
	}
	if first == nil {
		t.Fatalf("no node logged a DHCP offer to %s", mac)
	}
	return first
}

// checkLeases asserts that no address is leased to two MACs and that
// every VM's booting NIC holds a lease.
func checkLeases(t *testing.T, cl *client.Client, vms ...*VM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.IPAM.ListLeases(ctx, &underlayv1.ListLeasesRequest{Subnet: SubnetName, All: true})
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	owner := map[string]string{}
	var dup []string
	for _, l := range res.GetLeases() {
		if prev, ok := owner[l.GetIp()]; ok && prev != l.GetMac() {
			dup = append(dup, l.GetIp()+" to "+prev+" and "+l.GetMac())
		}
		owner[l.GetIp()] = l.GetMac()
		t.Logf("lease %s -> %s", l.GetIp(), l.GetMac())
	}
	if diff := cmp.Diff([]string(nil), dup); diff != "" {
		t.Errorf("addresses handed out twice (-want +got):\n%s", diff)
	}
	var missing []string
	for _, vm := range vms {
		found := false
		for ip, mac := range owner {
			found = found || (mac == vm.MACs[0] && netip.MustParseAddr(ip).IsValid())
		}
		if !found {
			missing = append(missing, vm.MACs[0])
		}
	}
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("booting NICs without a lease (-want +got):\n%s", diff)
	}
}
