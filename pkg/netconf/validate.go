package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// MTU bounds.
const (
	MinMTU = 68
	MaxMTU = 9216
)

var (
	bondModes    = []string{BondActiveBackup, Bond8023AD, BondBalanceXOR}
	hashPolicies = []string{"layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"}
)

// Physical reports whether a NIC of the inventory can be named by a phy link:
// a real device (not virtual, or a veth, so that containers and network
// namespaces work), never loopback, a bond, VLAN, bridge or tun/tap.
func Physical(n *underlayv1.NIC) bool {
	switch n.GetKind() {
	case "loopback", "bond", "vlan", "bridge", "tuntap", "tun", "macvlan", "dummy":
		return false
	case "veth":
		return true
	}
	return !n.GetVirtual() && n.GetName() != "lo"
}

// MatchNIC returns the physical NIC that mac names: the one whose permanent
// MAC it is, else the one whose current MAC it is (a bond slave's current MAC
// is its bond's, so the permanent MAC wins). Case does not matter.
func MatchNIC(mac string, nics []*underlayv1.NIC) *underlayv1.NIC {
	mac = NormalMAC(mac)
	if mac == "" {
		return nil
	}
	for _, n := range nics {
		if Physical(n) && NormalMAC(n.GetPermanentMac()) == mac {
			return n
		}
	}
	for _, n := range nics {
		if Physical(n) && NormalMAC(n.GetMac()) == mac {
			return n
		}
	}
	return nil
}

// Validate checks d, and, when nics is not nil, that every phy link names a
// physical NIC of the machine. It returns every problem found, joined
// (errors.Join), each matching ErrInvalid; nil when d is valid.
func Validate(d *Data, nics []*underlayv1.NIC) error {
	if d == nil {
		return problem("no document")
	}
	v := &validator{d: d, nics: nics, links: map[string]*Link{}, slaveOf: map[string]string{}, reported: map[string]bool{}}
	v.checkLinks()
	v.checkNetworks()
	v.checkServices()
	return errors.Join(v.errs...)
}

type validator struct {
	d       *Data
	nics    []*underlayv1.NIC
	errs    []error
	links   map[string]*Link
	slaveOf map[string]string // phy id -> bond id
	// reported are links whose name clash was reported already.
	reported map[string]bool
}

func (v *validator) add(format string, args ...any) {
	v.errs = append(v.errs, problem(format, args...))
}

func (v *validator) checkLinks() {
	for i := range v.d.Links {
		l := &v.d.Links[i]
		switch {
		case l.ID == "":
			v.add("links[%d]: no id", i)
		case v.links[l.ID] != nil:
			v.add("link %s: duplicate id", l.ID)
		default:
			v.links[l.ID] = l
		}
	}
	if len(v.d.Links) == 0 {
		v.add("no links")
	}
	nicOf := map[*underlayv1.NIC]string{}
	for i := range v.d.Links {
		l := &v.d.Links[i]
		if l.ID == "" {
			continue
		}
		if l.MTU != 0 && (l.MTU < MinMTU || l.MTU > MaxMTU) {
			v.add("link %s: mtu %d is outside %d..%d", l.ID, l.MTU, MinMTU, MaxMTU)
		}
		if l.Type != LinkBond && (len(l.BondLinks) > 0 || l.BondMode != "" || l.BondMiimon != 0 || l.BondHashPolicy != "") {
			v.add("link %s: bond_* fields are for bond links, not %s", l.ID, l.Type)
		}
		if l.Type != LinkVLAN && (l.VLANLink != "" || l.VLANID != 0 || l.VLANMACAddress != "") {
			v.add("link %s: vlan_* fields are for vlan links, not %s", l.ID, l.Type)
		}
		switch {
		case l.IsPhy():
			v.checkPhy(l, nicOf)
		case l.Type == LinkBond:
			v.checkBond(l)
		case l.Type == LinkVLAN:
			v.checkVLAN(l)
		case l.Type == "":
			v.add("link %s: no type (want phy, bond or vlan)", l.ID)
		default:
			v.add("link %s: unsupported type %q (want phy, bond or vlan)", l.ID, l.Type)
		}
	}
	v.checkNames()
}

func (v *validator) checkPhy(l *Link, nicOf map[*underlayv1.NIC]string) {
	mac := NormalMAC(l.EthernetMACAddress)
	switch {
	case l.EthernetMACAddress == "":
		v.add("link %s: a phy link needs ethernet_mac_address", l.ID)
		return
	case mac == "":
		v.add("link %s: ethernet_mac_address %q is not a MAC address", l.ID, l.EthernetMACAddress)
		return
	}
	if v.nics == nil {
		return
	}
	n := MatchNIC(mac, v.nics)
	if n == nil {
		var have []string
		for _, n := range v.nics {
			if Physical(n) {
				m := NormalMAC(n.GetPermanentMac())
				if m == "" {
					m = NormalMAC(n.GetMac())
				}
				have = append(have, fmt.Sprintf("%s (%s)", m, n.GetName()))
			}
		}
		list := "no physical NIC"
		if len(have) > 0 {
			list = strings.Join(have, ", ")
		}
		v.add("link %s (%s): no NIC with this MAC; the machine has %s", l.ID, mac, list)
		return
	}
	if other, ok := nicOf[n]; ok {
		v.add("link %s (%s): NIC %s is already link %s", l.ID, mac, n.GetName(), other)
		v.reported[l.ID] = true
		return
	}
	nicOf[n] = l.ID
}

func (v *validator) checkBond(l *Link) {
	if l.EthernetMACAddress != "" && NormalMAC(l.EthernetMACAddress) == "" {
		v.add("link %s: ethernet_mac_address %q is not a MAC address", l.ID, l.EthernetMACAddress)
	}
	if len(l.BondLinks) == 0 {
		v.add("link %s: a bond needs bond_links", l.ID)
	}
	for _, s := range l.BondLinks {
		sl := v.links[s]
		switch {
		case sl == nil:
			v.add("link %s: bond_links names %q, which is not a link", l.ID, s)
		case sl.ID == l.ID:
			v.add("link %s: a bond cannot contain itself", l.ID)
		case !sl.IsPhy():
			v.add("link %s: bond_links names %s, a %s link; only phy links can be bonded", l.ID, s, sl.Type)
		case v.slaveOf[s] == l.ID:
			v.add("link %s: bond_links names %s twice", l.ID, s)
		case v.slaveOf[s] != "":
			v.add("link %s: %s is already in bond %s; a phy link can be in one bond only", l.ID, s, v.slaveOf[s])
		default:
			v.slaveOf[s] = l.ID
			if sl.MTU != 0 && l.MTU != 0 && sl.MTU != l.MTU {
				v.add("link %s: slave %s has mtu %d but the bond %d (the bond sets its slaves' mtu)", l.ID, s, sl.MTU, l.MTU)
			}
		}
	}
	switch {
	case l.BondMode == "":
		v.add("link %s: no bond_mode (want %s)", l.ID, strings.Join(bondModes, ", "))
	case !slices.Contains(bondModes, l.BondMode):
		v.add("link %s: unsupported bond_mode %q (want %s)", l.ID, l.BondMode, strings.Join(bondModes, ", "))
	}
	if l.BondMiimon < 0 {
		v.add("link %s: bond_miimon %d is negative", l.ID, l.BondMiimon)
	}
	if p := l.BondHashPolicy; p != "" {
		if !slices.Contains(hashPolicies, p) {
			v.add("link %s: unknown bond_xmit_hash_policy %q (want %s)", l.ID, p, strings.Join(hashPolicies, ", "))
		} else if l.BondMode != Bond8023AD && l.BondMode != BondBalanceXOR {
			v.add("link %s: bond_xmit_hash_policy is for 802.3ad and balance-xor bonds, not %s", l.ID, l.BondMode)
		}
	}
}

func (v *validator) checkVLAN(l *Link) {
	if l.VLANMACAddress != "" && NormalMAC(l.VLANMACAddress) == "" {
		v.add("link %s: vlan_mac_address %q is not a MAC address", l.ID, l.VLANMACAddress)
	}
	if l.EthernetMACAddress != "" {
		v.add("link %s: a vlan link takes vlan_mac_address, not ethernet_mac_address", l.ID)
	}
	if l.VLANID < 1 || l.VLANID > 4094 {
		v.add("link %s: vlan_id %d is outside 1..4094", l.ID, l.VLANID)
	}
	p := v.links[l.VLANLink]
	switch {
	case l.VLANLink == "":
		v.add("link %s: a vlan needs vlan_link", l.ID)
		return
	case p == nil:
		v.add("link %s: vlan_link names %q, which is not a link", l.ID, l.VLANLink)
		return
	case !p.IsPhy() && p.Type != LinkBond:
		v.add("link %s: vlan_link %s is a %s link; VLANs go on a phy or bond link", l.ID, p.ID, p.Type)
		return
	}
	if p.MTU != 0 && l.MTU > p.MTU {
		v.add("link %s: mtu %d is above the mtu %d of its vlan_link %s", l.ID, l.MTU, p.MTU, p.ID)
	}
	for i := range v.d.Links {
		o := &v.d.Links[i]
		if o == l {
			break
		}
		if o.Type == LinkVLAN && o.VLANLink == l.VLANLink && o.VLANID == l.VLANID {
			v.add("link %s: vlan %d on %s is already link %s", l.ID, l.VLANID, l.VLANLink, o.ID)
		}
	}
}

// checkNames checks interface names and that bond slaves carry nothing else.
func (v *validator) checkNames() {
	owner := map[string]string{}
	for i := range v.d.Links {
		l := &v.d.Links[i]
		if l.ID == "" {
			continue
		}
		if b := v.slaveOf[l.ID]; b != "" {
			for j := range v.d.Links {
				if o := &v.d.Links[j]; o.Type == LinkVLAN && o.VLANLink == l.ID {
					v.add("link %s: vlan_link %s is a slave of bond %s; put the VLAN on the bond", o.ID, l.ID, b)
				}
			}
		}
		name := LinkName(l, v.nics)
		if name == "" || v.reported[l.ID] {
			continue
		}
		if err := checkIfName(name); err != nil {
			if l.Name == "" {
				v.add("link %s: the id is not usable as an interface name (%v); set name", l.ID, err)
			} else {
				v.add("link %s: name %q: %v", l.ID, l.Name, err)
			}
			continue
		}
		if o, ok := owner[name]; ok {
			v.add("link %s: interface name %s is already used by link %s", l.ID, name, o)
			continue
		}
		owner[name] = l.ID
	}
}

// LinkName is the interface name a link gets: its name, else the id for bond
// and vlan links and the matched NIC's name for phy links ("" when nics does
// not have it).
func LinkName(l *Link, nics []*underlayv1.NIC) string {
	if l.Name != "" {
		return l.Name
	}
	if !l.IsPhy() {
		return l.ID
	}
	if n := MatchNIC(l.EthernetMACAddress, nics); n != nil {
		return n.GetName()
	}
	return ""
}

func checkIfName(s string) error {
	switch {
	case len(s) > 15:
		return fmt.Errorf("longer than 15 bytes")
	case s == "." || s == "..":
		return fmt.Errorf("not a usable name")
	case strings.ContainsAny(s, "/: \t\n\x00"):
		return fmt.Errorf("contains '/', ':' or white space")
	}
	return nil
}

func (v *validator) checkNetworks() {
	ids := map[string]bool{}
	addrs := map[netip.Addr]string{}
	defaults := map[bool][]string{} // is4 -> "network n via gw"
	for i := range v.d.Networks {
		n := &v.d.Networks[i]
		switch {
		case n.ID == "":
			v.add("networks[%d]: no id", i)
		case ids[n.ID]:
			v.add("network %s: duplicate id", n.ID)
		}
		ids[n.ID] = true
		name := n.ID
		if name == "" {
			name = fmt.Sprintf("networks[%d]", i)
		}
		l := v.links[n.Link]
		switch {
		case n.Link == "":
			v.add("network %s: no link", name)
		case l == nil:
			v.add("network %s: link %q does not exist", name, n.Link)
		case v.slaveOf[n.Link] != "":
			v.add("network %s: link %s is a slave of bond %s; configure the bond", name, n.Link, v.slaveOf[n.Link])
		}
		v4 := true
		switch n.Type {
		case NetIPv4, NetIPv4DHCP:
		case NetIPv6:
			v4 = false
		case "ipv6_dhcp", "ipv6_slaac":
			v.add("network %s: type %s is not supported (want ipv4, ipv4_dhcp or ipv6)", name, n.Type)
			continue
		default:
			v.add("network %s: unknown type %q (want ipv4, ipv4_dhcp or ipv6)", name, n.Type)
			continue
		}
		v.checkAddress(n, name, v4, addrs)
		if n.Type == NetIPv4DHCP && len(n.Routes) > 0 {
			v.add("network %s: an ipv4_dhcp network takes no routes (the DHCP server gives them)", name)
			continue
		}
		for _, r := range n.Routes {
			dst, gw, err := r.Parse()
			if err != nil {
				v.add("network %s: route %s: %v", name, r.Network, err)
				continue
			}
			if dst.Addr().Is4() != v4 {
				v.add("network %s: route %s is not %s", name, dst, family(v4))
				continue
			}
			if !v.onLink(n.Link, gw) {
				v.add("network %s: route %s: gateway %s is not inside a network of link %s", name, dst, gw, n.Link)
			}
			if dst.Bits() == 0 {
				defaults[v4] = append(defaults[v4], fmt.Sprintf("network %s via %s", name, gw))
			}
		}
		for _, s := range n.DNSNameservers {
			if _, err := netip.ParseAddr(s); err != nil {
				v.add("network %s: dns_nameservers: %q is not an IP address", name, s)
			}
		}
		for _, s := range n.Services {
			v.checkService(fmt.Sprintf("network %s: service", name), s)
		}
	}
	for _, v4 := range []bool{true, false} {
		if len(defaults[v4]) > 1 {
			v.add("more than one %s default route: %s", family(v4), strings.Join(defaults[v4], ", "))
		}
	}
}

func (v *validator) checkAddress(n *Network, name string, v4 bool, addrs map[netip.Addr]string) {
	if n.Type == NetIPv4DHCP {
		if n.IPAddress != "" || n.Netmask != "" || n.Subnet != "" {
			v.add("network %s: an ipv4_dhcp network takes no ip_address, netmask or subnet", name)
		}
		return
	}
	if n.IPAddress == "" {
		switch {
		case n.Netmask != "":
			v.add("network %s: netmask without ip_address", name)
		case !v4 && n.Subnet != "":
			v.add("network %s: subnet allocation is for ipv4 networks; give ip_address", name)
		case !v4:
			v.add("network %s: an ipv6 network needs ip_address", name)
		case n.Subnet == "":
			v.add("network %s: an ipv4 network needs ip_address or subnet", name)
		}
		return
	}
	p, err := addrMask(n.IPAddress, n.Netmask)
	if err != nil {
		v.add("network %s: ip_address %q: %v", name, n.IPAddress, err)
		return
	}
	a := p.Addr()
	switch {
	case a.Is4() != v4:
		v.add("network %s: ip_address %s is not %s", name, a, family(v4))
	case !a.IsGlobalUnicast():
		v.add("network %s: ip_address %s is not a unicast host address", name, a)
	case p.Bits() < p.Addr().BitLen()-1 && a == p.Masked().Addr():
		v.add("network %s: ip_address %s is the network address of %s", name, a, p.Masked())
	case v4 && p.Bits() < 31 && a == lastAddr(p):
		v.add("network %s: ip_address %s is the broadcast address of %s", name, a, p.Masked())
	case addrs[a] != "":
		v.add("network %s: ip_address %s is also network %s", name, a, addrs[a])
	default:
		addrs[a] = name
	}
}

// onLink reports whether gw is inside a static network of link, or cannot
// be checked yet (a DHCP network or an address still to be allocated).
func (v *validator) onLink(link string, gw netip.Addr) bool {
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		return true
	}
	for i := range v.d.Networks {
		n := &v.d.Networks[i]
		if n.Link != link {
			continue
		}
		if n.Type == NetIPv4DHCP && gw.Is4() {
			return true // the DHCP address is not known yet
		}
		if !n.Static() {
			continue
		}
		if n.IPAddress == "" {
			if gw.Is4() && n.Subnet != "" {
				return true
			}
			continue
		}
		if p, err := addrMask(n.IPAddress, n.Netmask); err == nil && p.Masked().Contains(gw) {
			return true
		}
	}
	return false
}

func (v *validator) checkServices() {
	for _, s := range v.d.Services {
		v.checkService("service", s)
	}
}

func (v *validator) checkService(where string, s Service) {
	if s.Type != ServiceDNS {
		v.add("%s: unsupported type %q (want dns)", where, s.Type)
		return
	}
	if _, err := netip.ParseAddr(s.Address); err != nil {
		v.add("%s: dns address %q is not an IP address", where, s.Address)
	}
}

func family(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
