package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// pciAddrRe matches a PCI address such as 0000:00:03.0.
var pciAddrRe = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// nics lists every interface in Root/sys/class/net. On the live system,
// netlink adds addresses, the link kind and VLAN IDs, and ethtool the
// permanent MAC.
func (c *collector) nics(_ context.Context, inv *underlayv1.Inventory) error {
	classDir := c.path("sys", "class", "net")
	entries, err := os.ReadDir(classDir)
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	for _, e := range entries {
		// Interfaces are directories (or links to them); the bonding
		// driver also puts a plain file, bonding_masters, here.
		if e.Type().IsRegular() {
			continue
		}
		n := c.nicFromSys(classDir, e.Name())
		if c.live {
			c.nicFromNetlink(n)
		}
		inv.Nics = append(inv.Nics, n)
	}
	sort.Slice(inv.Nics, func(i, j int) bool { return inv.Nics[i].Name < inv.Nics[j].Name })
	return nil
}

// nicFromSys reads one interface from sysfs. Symlinks are resolved lexically
// so that a snapshot root works like the live /sys.
func (c *collector) nicFromSys(classDir, name string) *underlayv1.NIC {
	n := &underlayv1.NIC{Name: name}
	dir := filepath.Join(classDir, name)
	if l, err := os.Readlink(dir); err == nil {
		dir = filepath.Join(classDir, l)
	}
	rd := func(elem ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{dir}, elem...)...))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	n.Mac = normalMAC(rd("address"))
	if rd("addr_assign_type") == "0" {
		n.PermanentMac = n.Mac
	}
	if mtu, err := strconv.ParseUint(rd("mtu"), 10, 32); err == nil {
		n.Mtu = uint32(mtu)
	}
	if speed, err := strconv.ParseInt(rd("speed"), 10, 64); err == nil && speed > 0 {
		n.SpeedMbps = speed
	}
	n.LinkUp = rd("operstate") == "up" || rd("carrier") == "1"
	if l, err := os.Readlink(filepath.Join(dir, "master")); err == nil {
		n.Master = filepath.Base(l)
	}
	deviceLink, err := os.Readlink(filepath.Join(dir, "device"))
	n.Virtual = err != nil
	if !n.Virtual {
		deviceDir := filepath.Join(dir, deviceLink)
		if l, err := os.Readlink(filepath.Join(deviceDir, "driver")); err == nil {
			n.Driver = filepath.Base(l)
		}
		n.PciAddress = pciAddressOf(deviceDir)
	}
	n.Kind = c.sysKind(dir, name, n.Virtual, rd("type"), rd("uevent"))
	switch n.Kind {
	case "bond":
		n.Slaves = strings.Fields(rd("bonding", "slaves"))
	case "bridge":
		if ports, err := os.ReadDir(filepath.Join(dir, "brif")); err == nil {
			for _, p := range ports {
				n.Slaves = append(n.Slaves, p.Name())
			}
		}
	case "vlan":
		n.VlanId = c.procVLANID(name)
	}
	sort.Strings(n.Slaves)
	return n
}

// pciAddressOf returns the nearest PCI address in a device path.
func pciAddressOf(deviceDir string) string {
	for p := filepath.Clean(deviceDir); p != "/" && p != "."; p = filepath.Dir(p) {
		if pciAddrRe.MatchString(filepath.Base(p)) {
			return filepath.Base(p)
		}
	}
	return ""
}

// sysKind derives the link kind from sysfs, for snapshots; netlink overrides
// it on the live system.
func (c *collector) sysKind(dir, name string, virtual bool, arpType, uevent string) string {
	exists := func(elem ...string) bool {
		_, err := os.Stat(filepath.Join(append([]string{dir}, elem...)...))
		return err == nil
	}
	devType := ""
	for _, line := range strings.Split(uevent, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DEVTYPE="); ok {
			devType = v
		}
	}
	_, vlanErr := os.Stat(c.path("proc", "net", "vlan", name))
	switch {
	case arpType == "772" || name == "lo":
		return "loopback"
	case exists("bonding") || devType == "bond":
		return "bond"
	case exists("bridge") || devType == "bridge":
		return "bridge"
	case vlanErr == nil || devType == "vlan":
		return "vlan"
	case exists("tun_flags"):
		return "tuntap"
	case devType != "" && virtual:
		return devType
	case !virtual:
		return "device"
	}
	return ""
}

// procVLANID reads "VID: 10" from /proc/net/vlan/<name>.
func (c *collector) procVLANID(name string) uint32 {
	text := c.read("proc", "net", "vlan", name)
	if _, after, ok := strings.Cut(text, "VID:"); ok {
		fields := strings.Fields(after)
		if len(fields) > 0 {
			if id, err := strconv.ParseUint(fields[0], 10, 32); err == nil {
				return uint32(id)
			}
		}
	}
	return 0
}

// nicFromNetlink adds live facts: kind, VLAN ID, addresses and the permanent
// MAC from ethtool.
func (c *collector) nicFromNetlink(n *underlayv1.NIC) {
	if mac, err := permanentMAC(n.Name); err == nil && normalMAC(mac) != "" {
		n.PermanentMac = normalMAC(mac)
	}
	link, err := netlink.LinkByName(n.Name)
	if err != nil {
		c.log.Debug("netlink link", "nic", n.Name, "error", err)
		return
	}
	if t := link.Type(); t != "" && !(t == "device" && n.Kind == "loopback") {
		n.Kind = t
	}
	if v, ok := link.(*netlink.Vlan); ok {
		n.VlanId = uint32(v.VlanId)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		c.log.Debug("netlink addresses", "nic", n.Name, "error", err)
		return
	}
	for _, a := range addrs {
		if a.IPNet != nil {
			n.Addresses = append(n.Addresses, a.IPNet.String())
		}
	}
}
