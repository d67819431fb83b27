package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// infinity is the kernel's "forever" lifetime.
const infinity = 0xffffffff

// netlinkSystem reads and changes the host through a netlink handle.
type netlinkSystem struct {
	h *netlink.Handle
}

func (s *netlinkSystem) snapshot() (*State, error) {
	links, err := s.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	st := &State{}
	pos := map[int]int{}
	for _, l := range links {
		a := l.Attrs()
		sl := Link{Index: a.Index, Name: a.Name, Kind: l.Type(), MAC: a.HardwareAddr.String(), MTU: a.MTU,
			Up: a.Flags&net.FlagUp != 0, Master: names[a.MasterIndex]}
		if a.EncapType == "loopback" {
			sl.Kind = "loopback"
		}
		if len(a.PermHWAddr) > 0 && !allZero(a.PermHWAddr) {
			sl.PermMAC = a.PermHWAddr.String()
		} else if bs, ok := a.Slave.(*netlink.BondSlave); ok && len(bs.PermHardwareAddr) > 0 && !allZero(bs.PermHardwareAddr) {
			// A NIC without a burned-in MAC (veth) that the bond gave its
			// MAC: the bond remembers the one it had.
			sl.PermMAC = bs.PermHardwareAddr.String()
		}
		switch v := l.(type) {
		case *netlink.Bond:
			sl.Bond = &Bond{Mode: v.Mode.String(), Miimon: v.Miimon, HashPolicy: v.XmitHashPolicy.String()}
		case *netlink.Vlan:
			sl.VLAN = &VLAN{Parent: names[v.ParentIndex], ID: v.VlanId}
		}
		pos[a.Index] = len(st.Links)
		st.Links = append(st.Links, sl)
	}
	addrs, err := s.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		i, ok := pos[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		l := &st.Links[i]
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		sa := Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones), Flags: a.Flags, Scope: a.Scope,
			ValidLft: lifetime(a.ValidLft), PreferredLft: lifetime(a.PreferedLft)}
		if a.Label != l.Name {
			sa.Label = a.Label
		}
		if b, ok := netip.AddrFromSlice(a.Broadcast); ok {
			sa.Broadcast = b.Unmap()
		}
		l.Addrs = append(l.Addrs, sa)
	}
	routes, err := s.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Protocol == protoKernel || r.Protocol == protoRA || r.Type != typeUnicast || len(r.MultiPath) > 0 || names[r.LinkIndex] == "" {
			continue
		}
		sr := Route{Dev: names[r.LinkIndex], Priority: r.Priority, Protocol: int(r.Protocol), Scope: int(r.Scope),
			Type: r.Type, Table: r.Table, Flags: r.Flags}
		if r.Dst != nil {
			ip, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			sr.Dst = netip.PrefixFrom(ip.Unmap(), ones)
		} else if r.Family == unix.AF_INET6 {
			sr.Dst = netip.MustParsePrefix("::/0")
		} else {
			sr.Dst = netip.MustParsePrefix("0.0.0.0/0")
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			sr.Gw = gw.Unmap()
		}
		if src, ok := netip.AddrFromSlice(r.Src); ok {
			sr.Src = src.Unmap()
		}
		st.Routes = append(st.Routes, sr)
	}
	return st, nil
}

func lifetime(v int) int {
	if v >= infinity || v < 0 {
		return 0
	}
	return v
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipOf(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

func (s *netlinkSystem) link(name string) (netlink.Link, error) {
	l, err := s.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

func (s *netlinkSystem) exec(o op) error {
	switch o.kind {
	case opCreate:
		return s.create(o.spec)
	case opRouteDel, opRouteAdd:
		return s.route(o)
	}
	l, err := s.link(o.link)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if o.kind == opLinkDel && errors.As(err, &nf) {
			return nil
		}
		return err
	}
	switch o.kind {
	case opAddrDel:
		err = s.h.AddrDel(l, &netlink.Addr{IPNet: ipNet(o.addr.Prefix)})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			err = nil
		}
	case opAddrAdd:
		a := o.addr
		na := &netlink.Addr{IPNet: ipNet(a.Prefix), Flags: a.Flags & ifaUserFlags, Scope: a.Scope, Label: a.Label,
			Broadcast: ipOf(a.Broadcast), ValidLft: a.ValidLft, PreferedLft: a.PreferredLft}
		if na.Broadcast == nil && a.Prefix.Addr().Is4() {
			na.Broadcast = net.IPv4zero // none; netlink would compute one
		}
		if a.ValidLft != 0 && a.PreferredLft == 0 {
			na.PreferedLft = infinity
		}
		if a.PreferredLft != 0 && a.ValidLft == 0 {
			na.ValidLft = infinity
		}
		err = s.h.AddrAdd(l, na)
	case opLinkDel:
		err = s.h.LinkDel(l)
	case opNoMaster:
		err = s.h.LinkSetNoMaster(l)
	case opRename:
		err = s.h.LinkSetName(l, o.arg)
	case opEnslave:
		var m netlink.Link
		if m, err = s.link(o.arg); err == nil {
			if err = s.h.LinkSetDown(l); err == nil {
				err = s.h.LinkSetMaster(l, m)
			}
		}
	case opMTU:
		err = s.h.LinkSetMTU(l, o.mtu)
	case opMAC:
		var hw net.HardwareAddr
		if hw, err = net.ParseMAC(o.arg); err == nil {
			err = s.h.LinkSetHardwareAddr(l, hw)
		}
	case opUp:
		err = s.h.LinkSetUp(l)
	case opDown:
		err = s.h.LinkSetDown(l)
	default:
		err = fmt.Errorf("unknown step %d", o.kind)
	}
	return err
}

func (s *netlinkSystem) create(spec *Link) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.Name
	attrs.MTU = spec.MTU
	if spec.MAC != "" {
		hw, err := net.ParseMAC(spec.MAC)
		if err != nil {
			return fmt.Errorf("mac %q: %w", spec.MAC, err)
		}
		attrs.HardwareAddr = hw
	}
	var l netlink.Link
	switch {
	case spec.Bond != nil:
		b := netlink.NewLinkBond(attrs)
		b.Mode = netlink.StringToBondMode(spec.Bond.Mode)
		if b.Mode == netlink.BOND_MODE_UNKNOWN {
			return fmt.Errorf("bond mode %q is unknown", spec.Bond.Mode)
		}
		b.Miimon = spec.Bond.Miimon
		if spec.Bond.HashPolicy != "" && spec.Bond.Mode != "active-backup" {
			b.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(spec.Bond.HashPolicy)
		}
		l = b
	case spec.VLAN != nil:
		parent, err := s.link(spec.VLAN.Parent)
		if err != nil {
			return err
		}
		attrs.ParentIndex = parent.Attrs().Index
		l = &netlink.Vlan{LinkAttrs: attrs, VlanId: spec.VLAN.ID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
	default:
		return fmt.Errorf("cannot create a %s link", spec.Kind)
	}
	if err := s.h.LinkAdd(l); err != nil {
		return fmt.Errorf("create %s %s: %w", spec.Kind, spec.Name, err)
	}
	return nil
}

func (s *netlinkSystem) route(o op) error {
	r := o.route
	l, err := s.link(r.Dev)
	if err != nil {
		return err
	}
	nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(r.Dst), Gw: ipOf(r.Gw), Src: ipOf(r.Src),
		Priority: r.Priority, Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.Scope(r.Scope),
		Type: r.Type, Table: r.Table, Flags: r.Flags}
	if o.kind == opRouteDel {
		if err := s.h.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
		return nil
	}
	return s.h.RouteAdd(nr)
}
