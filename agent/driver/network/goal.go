package network

import (
	"fmt"
	"net/netip"
	"strings"

	"underlay.dev/pkg/netconf"
)

// forwardGoal maps a document onto the host as it is: which links it
// becomes, what is created or recreated, and what the document owns. It
// validates the document against the host's NICs first.
func forwardGoal(d *netconf.Data, cur *State) (*goal, error) {
	nics := cur.NICs()
	if err := netconf.Validate(d, nics); err != nil {
		return nil, err
	}
	g := &goal{target: &State{}, exact: map[string]bool{}, keepV4: map[string]bool{},
		routeDevs: map[string]bool{}, defaults: map[bool]bool{}}
	names := map[string]string{}  // link id -> interface name
	master := map[string]string{} // phy id -> bond interface name
	for i := range d.Links {
		l := &d.Links[i]
		names[l.ID] = netconf.LinkName(l, nics)
	}
	for _, l := range d.Links {
		for _, s := range l.BondLinks {
			master[s] = names[l.ID]
		}
	}
	addrs := map[string][]Addr{}
	for i := range d.Networks {
		n := &d.Networks[i]
		name := names[n.Link]
		switch {
		case n.Type == netconf.NetIPv4DHCP:
			g.keepV4[name] = true
			g.dhcp = append(g.dhcp, name)
			continue
		case n.IPAddress == "":
			return nil, fmt.Errorf("network %s: no ip_address (the server allocates one from subnet %s; apply the resolved config): %w",
				n.ID, n.Subnet, netconf.ErrInvalid)
		}
		p, err := n.Prefix()
		if err != nil {
			return nil, err
		}
		addrs[name] = append(addrs[name], Addr{Prefix: p, Broadcast: broadcast(p)})
		for _, r := range n.Routes {
			dst, gw, err := r.Parse()
			if err != nil {
				return nil, fmt.Errorf("network %s: route: %w: %w", n.ID, err, netconf.ErrInvalid)
			}
			g.target.Routes = append(g.target.Routes, Route{Dst: dst, Gw: gw, Dev: name, Protocol: protoStatic,
				Table: tableMain, Type: typeUnicast})
			if dst.Bits() == 0 {
				g.defaults[dst.Addr().Is4()] = true
			}
		}
	}
	// NICs that the document renames free their names for bonds and VLANs.
	renamedAway := map[string]bool{}
	for i := range d.Links {
		l := &d.Links[i]
		if !l.IsPhy() {
			continue
		}
		n := netconf.MatchNIC(l.EthernetMACAddress, nics)
		c := cur.link(n.GetName())
		t := Link{Index: c.Index, Name: names[l.ID], Kind: c.Kind, PermMAC: c.PermMAC, MTU: l.MTU, Up: true,
			Master: master[l.ID], Addrs: addrs[names[l.ID]]}
		if t.Master != "" {
			t.MTU = 0 // the bond sets it
		}
		if c.Name != t.Name {
			renamedAway[c.Name] = true
		}
		g.target.Links = append(g.target.Links, t)
	}
	for _, kind := range []string{netconf.LinkBond, netconf.LinkVLAN} {
		for i := range d.Links {
			l := &d.Links[i]
			if l.Type != kind {
				continue
			}
			t := Link{Name: names[l.ID], Kind: kind, MTU: l.MTU, Up: true, Addrs: addrs[names[l.ID]]}
			if kind == netconf.LinkBond {
				t.MAC = netconf.NormalMAC(l.EthernetMACAddress)
				t.Bond = &Bond{Mode: l.BondMode, Miimon: l.Miimon()}
				if l.BondMode != netconf.BondActiveBackup {
					t.Bond.HashPolicy = l.BondHashPolicy
					if t.Bond.HashPolicy == "" {
						t.Bond.HashPolicy = "layer2"
					}
				}
			} else {
				t.MAC = netconf.NormalMAC(l.VLANMACAddress)
				t.VLAN = &VLAN{Parent: names[l.VLANLink], ID: l.VLANID}
			}
			c := cur.link(t.Name)
			switch {
			case c == nil || renamedAway[c.Name]:
			case c.Kind == kind && sameParams(cur, g.target, c, &t):
				t.Index = c.Index
			case c.Kind == netconf.LinkBond || c.Kind == netconf.LinkVLAN:
				g.delete = append(g.delete, c.Index)
			default:
				return nil, fmt.Errorf("link %s: interface name %s is taken by a %s link the config does not manage: %w", l.ID, t.Name, c.Kind, ErrConflict)
			}
			g.target.Links = append(g.target.Links, t)
		}
	}
	for _, t := range g.target.Links {
		g.exact[t.Name] = true
		g.routeDevs[t.Name] = true
	}
	if ns := d.Nameservers(); len(ns) > 0 {
		g.target.Resolv = &File{Data: renderResolv(ns, cur.Resolv)}
	}
	return g, nil
}

// sameParams reports whether the existing bond or VLAN c already is t.
func sameParams(cur, tgt *State, c, t *Link) bool {
	if t.Bond != nil {
		b := c.Bond
		return b != nil && b.Mode == t.Bond.Mode && b.Miimon == t.Bond.Miimon &&
			(t.Bond.HashPolicy == "" || b.HashPolicy == t.Bond.HashPolicy)
	}
	if c.VLAN == nil || c.VLAN.ID != t.VLAN.ID {
		return false
	}
	// The parent must be the link the target's parent is now.
	parent := tgt.link(t.VLAN.Parent)
	if parent == nil || parent.Index == 0 {
		return false
	}
	now := cur.byIndex(parent.Index)
	return now != nil && now.Name == c.VLAN.Parent
}

// restoreGoal is the way back to before from cur: links created since are
// deleted, links deleted since are created again, and every link, address,
// route and resolv.conf is as it was.
func restoreGoal(before, cur *State) *goal {
	t := before.clone()
	g := &goal{target: t, exact: map[string]bool{}, keepV4: map[string]bool{}, routeDevs: map[string]bool{},
		allRoutes: true, defaults: map[bool]bool{}}
	for i := range t.Links {
		l := &t.Links[i]
		if l.Master != "" {
			l.MAC = "" // the bond sets its slaves' MACs
		}
		g.exact[l.Name] = true
		g.routeDevs[l.Name] = true
	}
	// A bond or VLAN deleted since gets a new index when it is created
	// again: one with its name and parameters is it. Parents come first.
	kept := map[int]bool{}
	for _, kind := range []string{netconf.LinkBond, netconf.LinkVLAN} {
		for i := range t.Links {
			l := &t.Links[i]
			if l.Kind != kind || cur.byIndex(l.Index) != nil {
				continue
			}
			l.Index = 0
			if c := cur.link(l.Name); c != nil && c.Kind == kind && before.byIndex(c.Index) == nil && sameParams(cur, t, c, l) {
				l.Index = c.Index
				kept[c.Index] = true
			}
		}
	}
	for _, c := range cur.Links {
		if before.byIndex(c.Index) == nil && !kept[c.Index] && (c.Kind == netconf.LinkBond || c.Kind == netconf.LinkVLAN) {
			g.delete = append(g.delete, c.Index)
		}
	}
	return g
}

// renderResolv writes nameservers, keeping the search, domain and options
// lines of the current file.
func renderResolv(ns []string, cur *File) []byte {
	var b strings.Builder
	b.WriteString("# Written by underlay-agent from the machine's network config.\n")
	for _, s := range ns {
		if a, err := netip.ParseAddr(s); err == nil {
			s = a.String()
		}
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if cur != nil && !cur.Missing {
		for _, line := range strings.Split(string(cur.Data), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
				b.WriteString(strings.Join(f, " ") + "\n")
			}
		}
	}
	return []byte(b.String())
}

// broadcast is the IPv4 broadcast address of p, as "ip addr add ... brd +"
// sets it; none for IPv6, /31 and /32.
func broadcast(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() || p.Bits() >= 31 {
		return netip.Addr{}
	}
	b := p.Masked().Addr().As4()
	for i := range b {
		bits := max(0, min(8, p.Bits()-8*i))
		b[i] |= byte(0xff >> bits)
	}
	return netip.AddrFrom4(b)
}
