package netconf

import (
	"fmt"
	"strings"
)

// Summary describes the document in one line per interface (bond slaves are
// shown in their bond's line) and a last line for DNS, for plans and logs:
//
//	bond0: active-backup of eth0 (52:54:00:76:00:01), eth1 (52:54:00:76:00:02)
//	bond0.100: vlan 100 on bond0, 10.100.0.50/24 gw 10.100.0.1
//	dns: 10.100.0.2
func (d *Data) Summary() []string {
	slave := map[string]bool{}
	for _, l := range d.Links {
		if l.Type == LinkBond {
			for _, s := range l.BondLinks {
				slave[s] = true
			}
		}
	}
	var out []string
	for i := range d.Links {
		l := &d.Links[i]
		if slave[l.ID] {
			continue
		}
		parts := []string{}
		switch {
		case l.IsPhy():
			parts = append(parts, "NIC "+macOr(l.EthernetMACAddress))
		case l.Type == LinkBond:
			mode := l.BondMode
			if l.BondHashPolicy != "" {
				mode += " (" + l.BondHashPolicy + ")"
			}
			var slaves []string
			for _, s := range l.BondLinks {
				if sl := d.Link(s); sl != nil {
					slaves = append(slaves, fmt.Sprintf("%s (%s)", d.name(sl), macOr(sl.EthernetMACAddress)))
				} else {
					slaves = append(slaves, s)
				}
			}
			parts = append(parts, mode+" of "+strings.Join(slaves, ", "))
		case l.Type == LinkVLAN:
			parent := l.VLANLink
			if p := d.Link(l.VLANLink); p != nil {
				parent = d.name(p)
			}
			parts = append(parts, fmt.Sprintf("vlan %d on %s", l.VLANID, parent))
		default:
			parts = append(parts, l.Type)
		}
		if l.MTU != 0 {
			parts = append(parts, fmt.Sprintf("mtu %d", l.MTU))
		}
		for _, n := range d.Networks {
			if n.Link == l.ID {
				parts = append(parts, networkSummary(&n)...)
			}
		}
		out = append(out, d.name(l)+": "+strings.Join(parts, ", "))
	}
	if ns := d.Nameservers(); len(ns) > 0 {
		out = append(out, "dns: "+strings.Join(ns, ", "))
	}
	return out
}

func networkSummary(n *Network) []string {
	var addr string
	switch {
	case n.Type == NetIPv4DHCP:
		addr = "dhcp"
	case n.IPAddress != "":
		if p, err := n.Prefix(); err == nil {
			addr = p.String()
		} else {
			addr = n.IPAddress
		}
	case n.Subnet != "":
		addr = "address from subnet " + n.Subnet
	default:
		addr = n.Type + " without address"
	}
	var extra []string
	for _, r := range n.Routes {
		dst, gw, err := r.Parse()
		switch {
		case err != nil:
			extra = append(extra, fmt.Sprintf("route %s via %s", r.Network, r.Gateway))
		case dst.Bits() == 0:
			addr += " gw " + gw.String()
		default:
			extra = append(extra, fmt.Sprintf("route %s via %s", dst, gw))
		}
	}
	return append([]string{addr}, extra...)
}

// name is the link's interface name as far as the document knows it.
func (d *Data) name(l *Link) string {
	if n := LinkName(l, nil); n != "" {
		return n
	}
	return l.ID
}

// macOr is NormalMAC, or s unchanged when it is not a MAC.
func macOr(s string) string {
	if m := NormalMAC(s); m != "" {
		return m
	}
	return s
}
