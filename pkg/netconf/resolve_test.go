package netconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeIPAM hands out .50, .51, ... of 10.<subnet index>.0.0/24 per key and
// records the calls.
type fakeIPAM struct {
	calls []string
	addrs map[string]string
	fail  error
}

func (f *fakeIPAM) alloc(subnet, key string) (string, string, []string, error) {
	f.calls = append(f.calls, subnet+" "+key)
	if f.fail != nil {
		return "", "", nil, f.fail
	}
	if f.addrs == nil {
		f.addrs = map[string]string{}
	}
	k := subnet + " " + key
	if _, ok := f.addrs[k]; !ok {
		f.addrs[k] = fmt.Sprintf("10.100.0.%d/24", 50+len(f.addrs))
	}
	return f.addrs[k], "10.100.0.1", []string{"10.100.0.3"}, nil
}

func TestResolveExample(t *testing.T) {
	d := readExample(t)
	before := fmt.Sprint(*d)
	ipam := &fakeIPAM{}
	got, err := Resolve(d, machineNICs(), ipam.alloc)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := readExample(t)
	want.Links[0].Name = "eth0"
	want.Links[1].Name = "eth1"
	want.Networks[0].IPAddress = "10.100.0.50/24"
	want.Networks[0].Routes = append(want.Networks[0].Routes, Route{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "10.100.0.1"})
	want.Networks[0].DNSNameservers = []string{"10.100.0.3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	// The VLAN on the bond is keyed by the bond's first slave.
	if diff := cmp.Diff([]string{"prod-100 52:54:00:76:00:01"}, ipam.calls); diff != "" {
		t.Errorf("allocator calls (-want +got):\n%s", diff)
	}
	if fmt.Sprint(*d) != before {
		t.Error("Resolve modified its input")
	}
	again, err := Resolve(d, machineNICs(), ipam.alloc)
	if err != nil {
		t.Fatalf("Resolve again: %v", err)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("Resolve is not deterministic (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff([]string{
		"bond0: active-backup of eth0 (52:54:00:76:00:01), eth1 (52:54:00:76:00:02), mtu 9000",
		"bond0.100: vlan 100 on bond0, 10.100.0.50/24 gw 10.100.0.1, route 10.200.0.0/16 via 10.100.0.254",
		"dns: 10.100.0.2, 10.100.0.3",
	}, got.Summary()); diff != "" {
		t.Errorf("Summary (-want +got):\n%s", diff)
	}
}

func TestResolve(t *testing.T) {
	links := []Link{
		{ID: "a", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:02", Name: "lan0"},
		{ID: "b", Type: LinkEthernet, EthernetMACAddress: "52:54:00:76:00:01"},
		{ID: "a.5", Type: LinkVLAN, VLANLink: "a", VLANID: 5, VLANMACAddress: "02:00:00:00:00:05"},
		{ID: "a.6", Type: LinkVLAN, VLANLink: "a", VLANID: 6},
	}
	for _, tc := range []struct {
		name      string
		networks  []Network
		fail      error
		want      []Network
		wantCalls []string
		wantErr   string
	}{
		{name: "netmask becomes CIDR, existing default route kept",
			networks: []Network{{ID: "n", Type: NetIPv4, Link: "b", IPAddress: "192.168.1.5", Netmask: "255.255.255.0",
				Routes: []Route{{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "192.168.1.1"}}},
				{ID: "m", Type: NetIPv4, Link: "a.5", Subnet: "s1", DNSNameservers: []string{"10.0.0.9"}},
				{ID: "v6", Type: NetIPv6, Link: "a", IPAddress: "2001:db8::5", Netmask: "64"},
				{ID: "d", Type: NetIPv4DHCP, Link: "a.6"}},
			want: []Network{{ID: "n", Type: NetIPv4, Link: "b", IPAddress: "192.168.1.5/24",
				Routes: []Route{{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "192.168.1.1"}}},
				{ID: "m", Type: NetIPv4, Link: "a.5", Subnet: "s1", IPAddress: "10.100.0.50/24", DNSNameservers: []string{"10.0.0.9"}},
				{ID: "v6", Type: NetIPv6, Link: "a", IPAddress: "2001:db8::5/64"},
				{ID: "d", Type: NetIPv4DHCP, Link: "a.6"}},
			wantCalls: []string{"s1 02:00:00:00:00:05"}},
		{name: "keys: phy by permanent MAC, vlan by its parent",
			networks: []Network{{ID: "x", Type: NetIPv4, Link: "a", Subnet: "s1"}, {ID: "y", Type: NetIPv4, Link: "a.6", Subnet: "s2"}},
			want: []Network{{ID: "x", Type: NetIPv4, Link: "a", Subnet: "s1", IPAddress: "10.100.0.50/24", DNSNameservers: []string{"10.100.0.3"},
				Routes: []Route{{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "10.100.0.1"}}},
				{ID: "y", Type: NetIPv4, Link: "a.6", Subnet: "s2", IPAddress: "10.100.0.51/24", DNSNameservers: []string{"10.100.0.3"}}},
			wantCalls: []string{"s1 52:54:00:76:00:02", "s2 52:54:00:76:00:02"}},
		{name: "same subnet twice for one MAC",
			networks: []Network{{ID: "x", Type: NetIPv4, Link: "a", Subnet: "s1"}, {ID: "y", Type: NetIPv4, Link: "a.6", Subnet: "s1"}},
			wantErr:  "network y: network x already allocates from subnet s1 for 52:54:00:76:00:02; give one of them an ip_address"},
		{name: "allocator fails", fail: errors.New("subnet s1 is full"),
			networks: []Network{{ID: "x", Type: NetIPv4, Link: "a", Subnet: "s1"}},
			wantErr:  "network x: allocate from subnet s1 for 52:54:00:76:00:02: address allocation failed: subnet s1 is full"},
		{name: "invalid document", networks: []Network{{ID: "x", Type: NetIPv4, Link: "zz", IPAddress: "10.0.0.1/24"}},
			wantErr: `network x: link "zz" does not exist`},
		{name: "gateway outside the allocated network",
			networks: []Network{{ID: "x", Type: NetIPv4, Link: "a", Subnet: "s1", Routes: []Route{{Network: "10.9.0.0/16", Gateway: "10.50.0.1"}}}},
			wantErr:  "network x: route 10.9.0.0/16: gateway 10.50.0.1 is not inside a network of link a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipam := &fakeIPAM{fail: tc.fail}
			d := &Data{Links: links, Networks: tc.networks}
			got, err := Resolve(d, machineNICs(), ipam.alloc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if diff := cmp.Diff([]string{"lan0", "eth0"}, []string{got.Links[0].Name, got.Links[1].Name}); diff != "" {
				t.Errorf("phy names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got.Networks); diff != "" {
				t.Errorf("networks (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantCalls, ipam.calls); diff != "" {
				t.Errorf("allocator calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	d := &Data{
		Links: []Link{
			{ID: "nic0", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:01", Name: "eth0", MTU: 1400},
			{ID: "nic1", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:02"},
			{ID: "nic2", Type: LinkPhy, EthernetMACAddress: "52:54:00:76:00:03"},
			{ID: "bond1", Type: LinkBond, BondLinks: []string{"nic1", "nic2"}, BondMode: Bond8023AD, BondHashPolicy: "layer3+4"},
			{ID: "v7", Name: "bond1.7", Type: LinkVLAN, VLANLink: "bond1", VLANID: 7},
		},
		Networks: []Network{
			{ID: "a", Type: NetIPv4DHCP, Link: "nic0"},
			{ID: "b", Type: NetIPv4, Link: "v7", Subnet: "s"},
			{ID: "c", Type: NetIPv6, Link: "v7", IPAddress: "2001:db8::7", Netmask: "ffff:ffff:ffff:ffff::",
				Routes: []Route{{Network: "::", Netmask: "::", Gateway: "2001:db8::1"}}},
		},
	}
	want := []string{
		"eth0: NIC 52:54:00:76:00:01, mtu 1400, dhcp",
		"bond1: 802.3ad (layer3+4) of nic1 (52:54:00:76:00:02), nic2 (52:54:00:76:00:03)",
		"bond1.7: vlan 7 on bond1, address from subnet s, 2001:db8::7/64 gw 2001:db8::1",
	}
	if diff := cmp.Diff(want, d.Summary()); diff != "" {
		t.Errorf("Summary (-want +got):\n%s", diff)
	}
}
