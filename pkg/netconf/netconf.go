package netconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every parse and validation error.
var ErrInvalid = errors.New("invalid network config")

// Link types. LinkEthernet is OpenStack's other name for a physical link and
// is treated exactly like LinkPhy.
const (
	LinkPhy      = "phy"
	LinkEthernet = "ethernet"
	LinkBond     = "bond"
	LinkVLAN     = "vlan"
)

// Network types.
const (
	NetIPv4     = "ipv4"
	NetIPv4DHCP = "ipv4_dhcp"
	NetIPv6     = "ipv6"
)

// Bond modes.
const (
	BondActiveBackup = "active-backup"
	Bond8023AD       = "802.3ad"
	BondBalanceXOR   = "balance-xor"
)

// DefaultMiimon is the MII link monitoring interval (ms) of a bond that does
// not set bond_miimon.
const DefaultMiimon = 100

// ServiceDNS is the only service type.
const ServiceDNS = "dns"

// Data is a network_data.json document.
type Data struct {
	Links    []Link    `json:"links"`
	Networks []Network `json:"networks,omitempty"`
	Services []Service `json:"services,omitempty"`
}

// Link is a layer-2 interface: a physical NIC, a bond or a VLAN.
type Link struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// EthernetMACAddress identifies a phy link's NIC (permanent or current
	// MAC); on a bond it sets the bond's MAC.
	EthernetMACAddress string `json:"ethernet_mac_address,omitempty"`
	MTU                int    `json:"mtu,omitempty"`
	// Name is an Underlay extension: the interface name to use. It defaults
	// to the id for bond and vlan links and to the NIC's current name for
	// phy links (a different name renames the NIC).
	Name string `json:"name,omitempty"`
	// VIFID is OpenStack's port id; accepted and ignored.
	VIFID string `json:"vif_id,omitempty"`

	BondLinks      []string `json:"bond_links,omitempty"`
	BondMode       string   `json:"bond_mode,omitempty"`
	BondMiimon     int      `json:"bond_miimon,omitempty"`
	BondHashPolicy string   `json:"bond_xmit_hash_policy,omitempty"`

	VLANLink       string `json:"vlan_link,omitempty"`
	VLANID         int    `json:"vlan_id,omitempty"`
	VLANMACAddress string `json:"vlan_mac_address,omitempty"`
}

// Network is a layer-3 configuration of a link.
type Network struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Link string `json:"link"`
	// IPAddress is a plain address (with Netmask) or CIDR (10.0.0.5/24).
	IPAddress string  `json:"ip_address,omitempty"`
	Netmask   string  `json:"netmask,omitempty"`
	Routes    []Route `json:"routes,omitempty"`
	// DNSNameservers are added to the host's resolvers.
	DNSNameservers []string `json:"dns_nameservers,omitempty"`
	// Services are per-network services (OpenStack); only dns.
	Services []Service `json:"services,omitempty"`
	// NetworkID is OpenStack's network UUID; accepted and ignored.
	NetworkID string `json:"network_id,omitempty"`
	// Subnet is an Underlay extension: the IPAM subnet the server allocates
	// the address from when IPAddress is empty.
	Subnet string `json:"subnet,omitempty"`
}

// Route is a static route through a network's link. Network is an address
// with Netmask, or a CIDR; 0.0.0.0/0.0.0.0 (or ::/::) is the default route.
type Route struct {
	Network string `json:"network"`
	Netmask string `json:"netmask,omitempty"`
	Gateway string `json:"gateway"`
}

// Service is a host-wide service; Type is "dns".
type Service struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// Parse decodes a document strictly: malformed JSON, trailing data, wrong
// value types and unknown fields (all of them, with their paths) are errors
// matching ErrInvalid. It does not validate the content; see Validate.
func Parse(b []byte) (*Data, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, problem("empty document")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, problem("parse: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, problem("parse: trailing data after the document")
	}
	if _, ok := raw.(map[string]any); !ok {
		return nil, problem("parse: the document must be a JSON object")
	}
	var unknown []string
	unknownFields(raw, reflect.TypeOf(Data{}), "", &unknown)
	if len(unknown) > 0 {
		return nil, problem("unknown fields: %s", strings.Join(unknown, ", "))
	}
	var d Data
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, problem("parse: %v", err)
	}
	return &d, nil
}

// unknownFields appends the paths of keys in raw that t has no field for.
func unknownFields(raw any, t reflect.Type, path string, out *[]string) {
	switch t.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return // a type error, reported by json.Unmarshal
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fields[name] = t.Field(i).Type
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, p)
				continue
			}
			unknownFields(m[k], ft, p, out)
		}
	case reflect.Slice:
		s, ok := raw.([]any)
		if !ok {
			return
		}
		for i, v := range s {
			unknownFields(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

// Link returns the link with id, or nil.
func (d *Data) Link(id string) *Link {
	for i := range d.Links {
		if d.Links[i].ID == id {
			return &d.Links[i]
		}
	}
	return nil
}

// IsPhy reports whether the link is a physical NIC (phy or ethernet).
func (l *Link) IsPhy() bool { return l.Type == LinkPhy || l.Type == LinkEthernet }

// Miimon is the bond's MII monitoring interval with the default applied.
func (l *Link) Miimon() int {
	if l.BondMiimon == 0 {
		return DefaultMiimon
	}
	return l.BondMiimon
}

// Static reports whether the network carries a static address.
func (n *Network) Static() bool { return n.Type == NetIPv4 || n.Type == NetIPv6 }

// Prefix returns the network's address with its prefix length (for example
// 10.100.0.50/24), from a CIDR ip_address or an address and a netmask.
func (n *Network) Prefix() (netip.Prefix, error) {
	if n.IPAddress == "" {
		return netip.Prefix{}, problem("network %s: no ip_address", n.ID)
	}
	p, err := addrMask(n.IPAddress, n.Netmask)
	if err != nil {
		return netip.Prefix{}, problem("network %s: ip_address %q: %v", n.ID, n.IPAddress, err)
	}
	return p, nil
}

// Nameservers are the DNS servers of the document: the dns services first,
// then each network's, without duplicates, in document order.
func (d *Data) Nameservers() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			s = a.String()
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range d.Services {
		if s.Type == ServiceDNS {
			add(s.Address)
		}
	}
	for _, n := range d.Networks {
		for _, s := range n.DNSNameservers {
			add(s)
		}
		for _, s := range n.Services {
			if s.Type == ServiceDNS {
				add(s.Address)
			}
		}
	}
	return out
}

// Parse returns the route's destination (masked) and gateway.
func (r *Route) Parse() (dst netip.Prefix, gw netip.Addr, err error) {
	p, err := addrMask(r.Network, r.Netmask)
	if err != nil {
		return dst, gw, fmt.Errorf("network %q: %w", r.Network, err)
	}
	if p.Masked() != p {
		return dst, gw, fmt.Errorf("network %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	gw, err = netip.ParseAddr(r.Gateway)
	if err != nil {
		return dst, gw, fmt.Errorf("gateway %q is not an IP address", r.Gateway)
	}
	if gw.Is4() != p.Addr().Is4() {
		return dst, gw, fmt.Errorf("gateway %s and network %s are of different families", gw, p)
	}
	return p, gw, nil
}

// IsDefault reports whether the route is a default route.
func (r *Route) IsDefault() bool {
	dst, _, err := r.Parse()
	return err == nil && dst.Bits() == 0
}

// addrMask parses "a.b.c.d/len" or an address with a netmask (dotted, IPv6
// mask form or a prefix length).
func addrMask(addr, mask string) (netip.Prefix, error) {
	if strings.Contains(addr, "/") {
		if mask != "" {
			return netip.Prefix{}, fmt.Errorf("has a prefix length and a netmask %q", mask)
		}
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an address in CIDR form")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP address")
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zones are not supported")
	}
	if mask == "" {
		return netip.Prefix{}, fmt.Errorf("no netmask (give a netmask or the address in CIDR form)")
	}
	bits, err := maskBits(mask, a.Is4())
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, bits), nil
}

func maskBits(mask string, v4 bool) (int, error) {
	max := 128
	if v4 {
		max = 32
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(mask, "/")); err == nil {
		if n < 0 || n > max {
			return 0, fmt.Errorf("netmask %q: prefix length must be 0..%d", mask, max)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || m.Is4() != v4 {
		return 0, fmt.Errorf("netmask %q is not a netmask of the address's family", mask)
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return 0, fmt.Errorf("netmask %q is not contiguous", mask)
	}
	return ones, nil
}

// NormalMAC lowercases a MAC address; it returns "" for an invalid one.
func NormalMAC(s string) string {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return ""
	}
	return hw.String()
}

// invalid is one problem; it matches ErrInvalid.
type invalid struct{ msg string }

func (e *invalid) Error() string        { return e.msg }
func (e *invalid) Is(target error) bool { return target == ErrInvalid }

func problem(format string, args ...any) error {
	return &invalid{msg: fmt.Sprintf(format, args...)}
}
