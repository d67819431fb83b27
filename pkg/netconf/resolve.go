package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// ErrAllocate wraps an Allocator's failure in Resolve.
var ErrAllocate = errors.New("address allocation failed")

// Allocator reserves a static address for key (the MAC of the machine's
// link) in the IPAM subnet named subnet, and returns it in CIDR form with
// the subnet's gateway and DNS servers (either may be empty). It must return
// the same address for the same subnet and key every time.
type Allocator func(subnet, key string) (cidr string, gateway string, dns []string, err error)

// Resolve validates d against the machine's NICs and returns a copy ready
// for the agent:
//
//   - every phy link without a name gets the matched NIC's current name;
//   - every network with a subnet and no ip_address gets an address from
//     alloc, keyed by the MAC of its link (a phy link's NIC MAC, a bond's
//     ethernet_mac_address or first slave's, a VLAN's vlan_mac_address or
//     its parent's); the subnet's gateway becomes the default route when the
//     document has none of that family yet, and the subnet's DNS servers the
//     network's dns_nameservers when it lists none;
//   - every static ip_address is in CIDR form, without netmask.
//
// d is not modified. The result depends only on d, nics and alloc's answers,
// which are asked for in document order. A nil alloc is an error only when
// an address must be allocated.
func Resolve(d *Data, nics []*underlayv1.NIC, alloc Allocator) (*Data, error) {
	if nics == nil {
		nics = []*underlayv1.NIC{}
	}
	if err := Validate(d, nics); err != nil {
		return nil, err
	}
	out, err := clone(d)
	if err != nil {
		return nil, err
	}
	for i := range out.Links {
		l := &out.Links[i]
		if l.IsPhy() && l.Name == "" {
			l.Name = LinkName(l, nics)
		}
	}
	used := map[[2]string]string{} // subnet, key -> network id
	for i := range out.Networks {
		n := &out.Networks[i]
		if !n.Static() {
			continue
		}
		if n.IPAddress == "" {
			if err := allocate(out, n, nics, alloc, used); err != nil {
				return nil, err
			}
			continue
		}
		p, err := n.Prefix()
		if err != nil {
			return nil, err
		}
		n.IPAddress, n.Netmask = p.String(), ""
	}
	if err := Validate(out, nics); err != nil {
		return nil, err
	}
	return out, nil
}

func allocate(d *Data, n *Network, nics []*underlayv1.NIC, alloc Allocator, used map[[2]string]string) error {
	key := linkMAC(d, d.Link(n.Link), nics, 0)
	if key == "" {
		return problem("network %s: no MAC to allocate an address from subnet %s with", n.ID, n.Subnet)
	}
	if o, ok := used[[2]string{n.Subnet, key}]; ok {
		return problem("network %s: network %s already allocates from subnet %s for %s; give one of them an ip_address", n.ID, o, n.Subnet, key)
	}
	used[[2]string{n.Subnet, key}] = n.ID
	if alloc == nil {
		return fmt.Errorf("network %s: subnet %s: no allocator: %w", n.ID, n.Subnet, ErrAllocate)
	}
	cidr, gw, dns, err := alloc(n.Subnet, key)
	if err != nil {
		return fmt.Errorf("network %s: allocate from subnet %s for %s: %w: %w", n.ID, n.Subnet, key, ErrAllocate, err)
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("network %s: subnet %s gave %q, not an IPv4 address in CIDR form: %w", n.ID, n.Subnet, cidr, ErrAllocate)
	}
	n.IPAddress, n.Netmask = p.String(), ""
	if gw != "" && !hasDefault(d, true) {
		n.Routes = append(n.Routes, Route{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: gw})
	}
	if len(n.DNSNameservers) == 0 && len(dns) > 0 {
		n.DNSNameservers = append([]string(nil), dns...)
	}
	return nil
}

// linkMAC is the MAC that identifies a link of the machine.
func linkMAC(d *Data, l *Link, nics []*underlayv1.NIC, depth int) string {
	if l == nil || depth > 2 {
		return ""
	}
	switch {
	case l.IsPhy():
		if n := MatchNIC(l.EthernetMACAddress, nics); n != nil {
			if m := NormalMAC(n.GetPermanentMac()); m != "" {
				return m
			}
			return NormalMAC(n.GetMac())
		}
		return NormalMAC(l.EthernetMACAddress)
	case l.Type == LinkBond:
		if m := NormalMAC(l.EthernetMACAddress); m != "" {
			return m
		}
		if len(l.BondLinks) > 0 {
			return linkMAC(d, d.Link(l.BondLinks[0]), nics, depth+1)
		}
	case l.Type == LinkVLAN:
		if m := NormalMAC(l.VLANMACAddress); m != "" {
			return m
		}
		return linkMAC(d, d.Link(l.VLANLink), nics, depth+1)
	}
	return ""
}

func hasDefault(d *Data, v4 bool) bool {
	for _, n := range d.Networks {
		for _, r := range n.Routes {
			if dst, _, err := r.Parse(); err == nil && dst.Bits() == 0 && dst.Addr().Is4() == v4 {
				return true
			}
		}
	}
	return false
}

// clone deep-copies d.
func clone(d *Data) (*Data, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	var out Data
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	return &out, nil
}
