package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// State is the part of the host's networking the driver reads and changes:
// links, their addresses, the main routing table (without the routes the
// kernel or router advertisements add) and resolv.conf. Links refer to each
// other by name.
type State struct {
	Links  []Link
	Routes []Route
	// Resolv is resolv.conf; in a goal, nil leaves the file alone.
	Resolv *File
}

// File is a file's content, or that it does not exist.
type File struct {
	Data    []byte
	Missing bool
}

// Link is one interface. In a goal, an empty MAC or a zero MTU means "leave
// as it is", and Index 0 means "create it".
type Link struct {
	Index   int
	Name    string
	Kind    string // netlink kind: device, veth, bond, vlan, bridge, ...
	MAC     string
	PermMAC string
	MTU     int
	Up      bool
	Master  string // the master's name, "" for none
	Bond    *Bond
	VLAN    *VLAN
	Addrs   []Addr
}

// Bond holds a bond's parameters.
type Bond struct {
	Mode       string
	Miimon     int
	HashPolicy string // "" when it does not matter (active-backup)
}

// VLAN holds a VLAN's parameters.
type VLAN struct {
	Parent string
	ID     int
}

// Addr is an interface address with what is needed to restore it exactly.
type Addr struct {
	Prefix    netip.Prefix
	Flags     int // IFA_F_* as the kernel reports them
	Scope     int
	Label     string
	Broadcast netip.Addr
	// ValidLft and PreferredLft are the remaining lifetimes in seconds; 0
	// is forever.
	ValidLft, PreferredLft int
}

// Address flags the driver looks at (linux/if_addr.h).
const (
	ifaFPermanent = 0x80
	// ifaUserFlags are the flags that can be given when adding an address:
	// nodad, homeaddress, noprefixroute, mcautojoin, managetempaddr.
	ifaUserFlags = 0x02 | 0x10 | 0x200 | 0x400 | 0x100
)

// Route is a route of the main table.
type Route struct {
	Dst      netip.Prefix
	Gw       netip.Addr
	Dev      string
	Src      netip.Addr
	Priority int
	Protocol int
	Scope    int
	Type     int
	Table    int
	Flags    int
}

// Route protocols and tables (linux/rtnetlink.h).
const (
	protoKernel = 2
	protoStatic = 4
	protoRA     = 9
	tableMain   = 254
	typeUnicast = 1
)

func (a Addr) String() string { return a.Prefix.String() }

// dynamic reports whether the kernel or a daemon owns the address in a way
// the driver does not manage: IPv6 link-local and autoconfigured addresses.
func (a Addr) dynamic() bool {
	p := a.Prefix.Addr()
	return p.Is6() && (p.IsLinkLocalUnicast() || a.Flags&ifaFPermanent == 0)
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Dst.Bits() == 0 {
		s = "default"
	}
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	s += " dev " + r.Dev
	if r.Priority != 0 {
		s += fmt.Sprintf(" metric %d", r.Priority)
	}
	return s
}

// routeKey identifies a route; dev is a link's identity (see diff).
type routeKey struct {
	dst      netip.Prefix
	gw       netip.Addr
	dev      string
	priority int
	table    int
}

func (s *State) link(name string) *Link {
	for i := range s.Links {
		if s.Links[i].Name == name {
			return &s.Links[i]
		}
	}
	return nil
}

func (s *State) byIndex(idx int) *Link {
	if idx == 0 {
		return nil
	}
	for i := range s.Links {
		if s.Links[i].Index == idx {
			return &s.Links[i]
		}
	}
	return nil
}

// clone deep-copies s.
func (s *State) clone() *State {
	out := &State{Routes: slices.Clone(s.Routes)}
	for _, l := range s.Links {
		l.Addrs = slices.Clone(l.Addrs)
		if l.Bond != nil {
			b := *l.Bond
			l.Bond = &b
		}
		if l.VLAN != nil {
			v := *l.VLAN
			l.VLAN = &v
		}
		out.Links = append(out.Links, l)
	}
	if s.Resolv != nil {
		f := File{Data: slices.Clone(s.Resolv.Data), Missing: s.Resolv.Missing}
		out.Resolv = &f
	}
	return out
}

// NICs describes the links as inventory NICs, for netconf.Validate.
func (s *State) NICs() []*underlayv1.NIC {
	var out []*underlayv1.NIC
	for _, l := range s.Links {
		kind := l.Kind
		if l.Name == "lo" {
			kind = "loopback"
		}
		out = append(out, &underlayv1.NIC{Name: l.Name, Mac: l.MAC, PermanentMac: l.PermMAC, Kind: kind,
			Virtual: kind != "device", Mtu: uint32(l.MTU), Master: l.Master, LinkUp: l.Up})
	}
	return out
}

// String is a compact description, for logs and test failures.
func (s *State) String() string {
	var b strings.Builder
	for _, l := range s.Links {
		fmt.Fprintf(&b, "%d %s %s mac=%s mtu=%d up=%v", l.Index, l.Name, l.Kind, l.MAC, l.MTU, l.Up)
		if l.Master != "" {
			fmt.Fprintf(&b, " master=%s", l.Master)
		}
		if l.Bond != nil {
			fmt.Fprintf(&b, " bond=%+v", *l.Bond)
		}
		if l.VLAN != nil {
			fmt.Fprintf(&b, " vlan=%+v", *l.VLAN)
		}
		for _, a := range l.Addrs {
			fmt.Fprintf(&b, " %s", a)
		}
		b.WriteByte('\n')
	}
	for _, r := range s.Routes {
		fmt.Fprintf(&b, "route %s\n", r)
	}
	return b.String()
}
