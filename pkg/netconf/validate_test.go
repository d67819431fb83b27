package netconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func problems(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestValidate(t *testing.T) {
	phy := func(id, mac string) Link { return Link{ID: id, Type: LinkPhy, EthernetMACAddress: mac} }
	static := func(id, link, addr string, routes ...Route) Network {
		return Network{ID: id, Type: NetIPv4, Link: link, IPAddress: addr, Routes: routes}
	}
	def := func(gw string) Route { return Route{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: gw} }
	for _, tc := range []struct {
		name string
		d    *Data
		nics []*underlayv1.NIC // nil: machineNICs()
		none bool              // validate without NICs
		want []string
	}{
		{name: "example is valid", d: readExample(t)},
		{name: "phy with upper-case MAC and dhcp", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:0A"), phy("b", "52:54:00:76:00:02")},
			Networks: []Network{{ID: "n", Type: NetIPv4DHCP, Link: "b"}}},
			want: []string{"link a (52:54:00:76:00:0a): no NIC with this MAC; the machine has 52:54:00:76:00:01 (eth0), 52:54:00:76:00:02 (eth1)"}},
		{name: "without NICs only the document is checked", none: true, d: &Data{Links: []Link{phy("a", "52:54:00:76:00:0a")}}},
		{name: "two links for one NIC", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:02"), phy("b", "52:54:00:76:00:02")}},
			want: []string{"link b (52:54:00:76:00:02): NIC eth1 is already link a"}},
		{name: "phy without MAC, bad MAC, no type, bad type, duplicate id", d: &Data{Links: []Link{
			{ID: "a", Type: LinkPhy}, phy("b", "zz"), {ID: "c"}, {ID: "d", Type: "ovs"}, phy("b", "52:54:00:76:00:01"), {Type: "phy"}}},
			want: []string{"link b: duplicate id", "links[5]: no id", "link a: a phy link needs ethernet_mac_address",
				`link b: ethernet_mac_address "zz" is not a MAC address`, "link c: no type (want phy, bond or vlan)",
				`link d: unsupported type "ovs" (want phy, bond or vlan)`}},
		{name: "no links", d: &Data{}, want: []string{"no links"}},
		{name: "bond problems", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:01"), phy("b", "52:54:00:76:00:02"),
			{ID: "v", Type: LinkVLAN, VLANLink: "a", VLANID: 5},
			{ID: "bond0", Type: LinkBond, BondLinks: []string{"a", "a", "x", "v", "bond0"}, BondMode: "balance-rr", BondMiimon: -1},
			{ID: "bond1", Type: LinkBond, BondLinks: []string{"a", "b"}, BondMode: BondActiveBackup, BondHashPolicy: "layer3+4"},
			{ID: "bond2", Type: LinkBond, BondMode: Bond8023AD, BondHashPolicy: "layer9"}}},
			want: []string{"link bond0: bond_links names a twice", `link bond0: bond_links names "x", which is not a link`,
				"link bond0: bond_links names v, a vlan link; only phy links can be bonded", "link bond0: a bond cannot contain itself",
				`link bond0: unsupported bond_mode "balance-rr" (want active-backup, 802.3ad, balance-xor)`, "link bond0: bond_miimon -1 is negative",
				"link bond1: a is already in bond bond0; a phy link can be in one bond only",
				"link bond1: bond_xmit_hash_policy is for 802.3ad and balance-xor bonds, not active-backup",
				"link bond2: a bond needs bond_links",
				`link bond2: unknown bond_xmit_hash_policy "layer9" (want layer2, layer2+3, layer3+4, encap2+3, encap3+4)`,
				"link v: vlan_link a is a slave of bond bond0; put the VLAN on the bond"}},
		{name: "bond fields on a phy, vlan fields on a bond", d: &Data{Links: []Link{
			{ID: "a", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:01", BondMode: BondActiveBackup},
			{ID: "b", Type: LinkBond, BondLinks: []string{"a"}, BondMode: BondActiveBackup, VLANID: 3}}},
			want: []string{"link a: bond_* fields are for bond links, not phy", "link b: vlan_* fields are for vlan links, not bond"}},
		{name: "vlan problems and a cycle", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:01"),
			{ID: "v0", Type: LinkVLAN, VLANLink: "a", VLANID: 0},
			{ID: "v1", Type: LinkVLAN, VLANLink: "v2", VLANID: 10},
			{ID: "v2", Type: LinkVLAN, VLANLink: "v1", VLANID: 11},
			{ID: "v3", Type: LinkVLAN, VLANLink: "v3", VLANID: 12},
			{ID: "v4", Type: LinkVLAN, VLANLink: "nope", VLANID: 4095, VLANMACAddress: "x"},
			{ID: "v5", Type: LinkVLAN, VLANID: 7},
			{ID: "a.7", Type: LinkVLAN, VLANLink: "a", VLANID: 7},
			{ID: "a.7b", Type: LinkVLAN, VLANLink: "a", VLANID: 7, EthernetMACAddress: "52:54:00:76:00:01"}}},
			want: []string{"link v0: vlan_id 0 is outside 1..4094",
				"link v1: vlan_link v2 is a vlan link; VLANs go on a phy or bond link",
				"link v2: vlan_link v1 is a vlan link; VLANs go on a phy or bond link",
				"link v3: vlan_link v3 is a vlan link; VLANs go on a phy or bond link",
				`link v4: vlan_mac_address "x" is not a MAC address`, "link v4: vlan_id 4095 is outside 1..4094",
				`link v4: vlan_link names "nope", which is not a link`,
				"link v5: a vlan needs vlan_link",
				"link a.7b: a vlan link takes vlan_mac_address, not ethernet_mac_address",
				"link a.7b: vlan 7 on a is already link a.7"}},
		{name: "mtu", d: &Data{Links: []Link{{ID: "a", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:01", MTU: 9000},
			{ID: "b", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:02", MTU: 67},
			{ID: "bond0", Type: LinkBond, BondLinks: []string{"a"}, BondMode: Bond8023AD, MTU: 1500},
			{ID: "v", Type: LinkVLAN, VLANLink: "bond0", VLANID: 2, MTU: 9216},
			{ID: "w", Type: LinkVLAN, VLANLink: "b", VLANID: 2, MTU: 9217}}},
			want: []string{"link b: mtu 67 is outside 68..9216",
				"link bond0: slave a has mtu 9000 but the bond 1500 (the bond sets its slaves' mtu)",
				"link v: mtu 9216 is above the mtu 1500 of its vlan_link bond0",
				"link w: mtu 9217 is outside 68..9216", "link w: mtu 9217 is above the mtu 67 of its vlan_link b"}},
		{name: "names", d: &Data{Links: []Link{
			{ID: "a", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:01", Name: "lan"},
			{ID: "b", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:02"},
			{ID: "eth1", Type: LinkVLAN, VLANLink: "a", VLANID: 2},
			{ID: "a-very-long-vlan-id", Type: LinkVLAN, VLANLink: "a", VLANID: 3},
			{ID: "x", Type: LinkVLAN, VLANLink: "a", VLANID: 4, Name: "lan:4"}}},
			want: []string{"link eth1: interface name eth1 is already used by link b",
				"link a-very-long-vlan-id: the id is not usable as an interface name (longer than 15 bytes); set name",
				`link x: name "lan:4": contains '/', ':' or white space`}},
		{name: "networks", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:01"), phy("b", "52:54:00:76:00:02"),
			{ID: "bond0", Type: LinkBond, BondLinks: []string{"b"}, BondMode: BondActiveBackup}},
			Networks: []Network{
				static("n1", "a", "10.0.0.5/24", def("10.0.0.1")),
				static("n1", "nope", "10.0.1.5/24"),
				static("n3", "b", "10.0.2.5/24"),
				{ID: "n4", Type: NetIPv4, Link: "a"},
				{ID: "n5", Type: NetIPv6, Link: "a", Subnet: "s"},
				{ID: "n6", Type: NetIPv4DHCP, Link: "a", IPAddress: "10.0.0.6/24"},
				{ID: "n7", Type: "ipv6_slaac", Link: "a"},
				{ID: "n8", Type: "ipx", Link: "a"},
				{Type: NetIPv4, Link: "a", IPAddress: "10.0.3.0/24"},
				static("n10", "a", "10.0.3.255/24"),
				static("n11", "a", "10.0.0.5/24"),
				static("n12", "a", "2001:db8::1/64"),
				static("n13", "a", "127.0.0.1/8"),
				{ID: "n14", Type: NetIPv4, Link: "a", Netmask: "255.0.0.0"},
				{ID: "n15", Type: NetIPv6, Link: "a"},
				{ID: "n16", Type: NetIPv4, Link: "a", IPAddress: "10.0.4.1", Netmask: "255.255.0.255"},
				{ID: "n17", Type: NetIPv4, Link: "bond0", IPAddress: "10.0.5.5/24", DNSNameservers: []string{"dns"},
					Services: []Service{{Type: "ntp", Address: "10.0.0.1"}}},
			}},
			want: []string{"network n1: duplicate id", `network n1: link "nope" does not exist`,
				"network n3: link b is a slave of bond bond0; configure the bond",
				"network n4: an ipv4 network needs ip_address or subnet",
				"network n5: subnet allocation is for ipv4 networks; give ip_address",
				"network n6: an ipv4_dhcp network takes no ip_address, netmask or subnet",
				"network n7: type ipv6_slaac is not supported (want ipv4, ipv4_dhcp or ipv6)",
				`network n8: unknown type "ipx" (want ipv4, ipv4_dhcp or ipv6)`,
				"networks[8]: no id", "network networks[8]: ip_address 10.0.3.0 is the network address of 10.0.3.0/24",
				"network n10: ip_address 10.0.3.255 is the broadcast address of 10.0.3.0/24",
				"network n11: ip_address 10.0.0.5 is also network n1",
				"network n12: ip_address 2001:db8::1 is not IPv4",
				"network n13: ip_address 127.0.0.1 is not a unicast host address",
				"network n14: netmask without ip_address",
				"network n15: an ipv6 network needs ip_address",
				`network n16: ip_address "10.0.4.1": netmask "255.255.0.255" is not contiguous`,
				`network n17: dns_nameservers: "dns" is not an IP address`,
				`network n17: service: unsupported type "ntp" (want dns)`}},
		{name: "routes", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:01"), phy("b", "52:54:00:76:00:02")},
			Networks: []Network{
				static("n1", "a", "10.0.0.5/24", def("10.0.0.1"), Route{Network: "10.9.0.0/16", Gateway: "10.1.0.1"},
					Route{Network: "10.8.0.1", Netmask: "255.255.0.0", Gateway: "10.0.0.1"},
					Route{Network: "::", Netmask: "::", Gateway: "fe80::1"}, Route{Network: "10.7.0.0/16", Gateway: "fe80::1"}),
				static("n2", "a", "10.0.1.5/24", Route{Network: "10.6.0.0/16", Gateway: "10.0.0.1"}),
				{ID: "n3", Type: NetIPv4DHCP, Link: "b", Routes: []Route{def("192.168.1.1")}},
				{ID: "n5", Type: NetIPv4, Link: "b", IPAddress: "192.168.7.5/24", Routes: []Route{def("192.168.7.1")}},
				{ID: "n4", Type: NetIPv6, Link: "b", IPAddress: "2001:db8::5/64", Routes: []Route{{Network: "::", Netmask: "::", Gateway: "2001:db8::1"}}},
			}},
			want: []string{"network n1: route 10.9.0.0/16: gateway 10.1.0.1 is not inside a network of link a",
				`network n1: route 10.8.0.1: network 10.8.0.1/16 has host bits set (did you mean 10.8.0.0/16?)`,
				"network n1: route ::/0 is not IPv4",
				"network n1: route 10.7.0.0/16: gateway fe80::1 and network 10.7.0.0/16 are of different families",
				"network n3: an ipv4_dhcp network takes no routes (the DHCP server gives them)",
				"more than one IPv4 default route: network n1 via 10.0.0.1, network n5 via 192.168.7.1"}},
		{name: "services", d: &Data{Links: []Link{phy("a", "52:54:00:76:00:01")},
			Services: []Service{{Type: "dns", Address: "10.0.0.300"}, {Type: "ldap", Address: "10.0.0.1"}}},
			want: []string{`service: dns address "10.0.0.300" is not an IP address`, `service: unsupported type "ldap" (want dns)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nics := tc.nics
			if nics == nil && !tc.none {
				nics = machineNICs()
			}
			err := Validate(tc.d, nics)
			if diff := cmp.Diff(tc.want, problems(err)); diff != "" {
				t.Errorf("Validate problems (-want +got):\n%s", diff)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate error %v does not match ErrInvalid", err)
			}
		})
	}
}
