package bootenv

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route is one route to install; a zero Dst is the default route.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
}

// NetConfig is what a DHCP lease tells a link to become.
type NetConfig struct {
	Interface string
	Address   netip.Prefix
	Server    netip.Addr
	Routes    []Route
	DNS       []netip.Addr
	Search    []string
	Hostname  string
	MTU       int
	Lease     time.Duration
	Renew     time.Duration
}

// fromLease translates a DHCP ACK into a NetConfig. Classless static
// routes (option 121), when present, replace the router option, as RFC
// 3442 says.
func fromLease(iface string, ack *dhcpv4.DHCPv4) (NetConfig, error) {
	nc := NetConfig{Interface: iface}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return nc, fmt.Errorf("your address %v: %w", ack.YourIPAddr, ErrBadLease)
	}
	bits := 32
	if m := ack.SubnetMask(); m != nil {
		ones, size := m.Size()
		if size != 32 {
			return nc, fmt.Errorf("subnet mask %v: %w", m, ErrBadLease)
		}
		bits = ones
	} else {
		bits = classfulBits(ip)
	}
	nc.Address = netip.PrefixFrom(ip, bits)
	if s, ok := netip.AddrFromSlice(ack.ServerIdentifier().To4()); ok {
		nc.Server = s
	}
	if csr := ack.ClasslessStaticRoute(); len(csr) > 0 {
		for _, r := range csr {
			dst, ok := netip.AddrFromSlice(r.Dest.IP.To4())
			ones, _ := r.Dest.Mask.Size()
			gw, gok := netip.AddrFromSlice(r.Router.To4())
			if !ok || !gok {
				continue
			}
			rt := Route{Gateway: gw}
			if ones > 0 {
				rt.Dst = netip.PrefixFrom(dst, ones).Masked()
			}
			if gw.IsUnspecified() {
				rt.Gateway = netip.Addr{}
			}
			nc.Routes = append(nc.Routes, rt)
		}
	} else if rs := ack.Router(); len(rs) > 0 {
		if gw, ok := netip.AddrFromSlice(rs[0].To4()); ok && !gw.IsUnspecified() {
			nc.Routes = append(nc.Routes, Route{Gateway: gw})
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			nc.DNS = append(nc.DNS, a)
		}
	}
	if labels := ack.DomainSearch(); labels != nil {
		nc.Search = append(nc.Search, labels.Labels...)
	}
	if d := ack.DomainName(); d != "" && len(nc.Search) == 0 {
		nc.Search = []string{d}
	}
	nc.Hostname = ack.HostName()
	if b := ack.GetOneOption(dhcpv4.OptionInterfaceMTU); len(b) == 2 {
		nc.MTU = int(binary.BigEndian.Uint16(b))
	}
	nc.Lease = ack.IPAddressLeaseTime(0)
	nc.Renew = ack.IPAddressRenewalTime(nc.Lease / 2)
	return nc, nil
}

func classfulBits(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	default:
		return 24
	}
}

// resolvConf renders /etc/resolv.conf for nc; empty when the lease named
// no servers.
func resolvConf(nc NetConfig) string {
	if len(nc.DNS) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# written by underlay-agent from the dhcp lease on " + nc.Interface + "\n")
	if len(nc.Search) > 0 {
		b.WriteString("search " + strings.Join(nc.Search, " ") + "\n")
	}
	for _, d := range nc.DNS {
		b.WriteString("nameserver " + d.String() + "\n")
	}
	return b.String()
}

// linksUp sets every non-loopback link up and returns the DHCP candidates,
// sorted: the links named in only, or else the physical ones (netlink type
// "device").
func linksUp(log *slog.Logger, only []string) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var phys []string
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		if err := netlink.LinkSetUp(l); err != nil {
			log.Warn("link up failed", "link", a.Name, "err", err)
			continue
		}
		log.Info("link up", "link", a.Name, "type", l.Type(), "mac", a.HardwareAddr.String())
		if len(only) > 0 && slices.Contains(only, a.Name) ||
			len(only) == 0 && l.Type() == "device" && len(a.HardwareAddr) == 6 {
			phys = append(phys, a.Name)
		}
	}
	sort.Strings(phys)
	if len(phys) == 0 {
		return nil, ErrNoLinks
	}
	return phys, nil
}

// apply configures nc on its link: MTU, address, routes, resolv.conf and
// host name.
func apply(log *slog.Logger, nc NetConfig, resolvPath string) error {
	l, err := netlink.LinkByName(nc.Interface)
	if err != nil {
		return fmt.Errorf("link %s: %w", nc.Interface, err)
	}
	if nc.MTU >= 576 && nc.MTU != l.Attrs().MTU {
		if err := netlink.LinkSetMTU(l, nc.MTU); err != nil {
			log.Warn("set mtu failed", "link", nc.Interface, "mtu", nc.MTU, "err", err)
		}
	}
	addr := &netlink.Addr{IPNet: prefixNet(nc.Address)}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", nc.Address, nc.Interface, err)
	}
	for _, r := range nc.Routes {
		rt := &netlink.Route{LinkIndex: l.Attrs().Index}
		if r.Dst.IsValid() {
			rt.Dst = prefixNet(r.Dst)
		}
		if r.Gateway.IsValid() {
			rt.Gw = r.Gateway.AsSlice()
		} else {
			rt.Scope = netlink.SCOPE_LINK
		}
		if err := netlink.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %v via %v: %w", r.Dst, r.Gateway, err)
		}
	}
	if rc := resolvConf(nc); rc != "" {
		if err := os.WriteFile(resolvPath, []byte(rc), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", resolvPath, err)
		}
	}
	if nc.Hostname != "" {
		if err := unix.Sethostname([]byte(nc.Hostname)); err != nil {
			log.Warn("set hostname failed", "hostname", nc.Hostname, "err", err)
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
