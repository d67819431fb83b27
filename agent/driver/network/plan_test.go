package network

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPlan checks what Apply would change on machine() for small configs:
// the plan is computed from the snapshot alone.
func TestPlan(t *testing.T) {
	const eth0 = `{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:01"`
	const eth1 = `{"id":"b","type":"phy","ethernet_mac_address":"52:54:00:76:00:02"`
	withVLAN := func(st *State) {
		st.Links = append(st.Links, Link{Index: 7, Name: "v7", Kind: "vlan", MAC: "52:54:00:76:00:01", MTU: 1500, Up: true, VLAN: &VLAN{Parent: "eth0", ID: 7}})
	}
	for _, tc := range []struct {
		name  string
		st    func(*State)
		doc   string
		want  []string
		check func(t *testing.T, g *goal)
	}{
		{name: "same address, mtu and a default route of another metric",
			doc: `{"links":[` + eth0 + `,"mtu":9000}],"networks":[{"id":"n","type":"ipv4","link":"a","ip_address":"10.0.2.15/24",
				"routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.0.2.2"}]}]}`,
			want: []string{"delete route default via 10.0.2.2 dev eth0 metric 1024", "set mtu of eth0 to 9000",
				"add route default via 10.0.2.2 dev eth0"}},
		{name: "new address on a managed link drops the old one and its routes",
			doc:  `{"links":[` + eth0 + `}],"networks":[{"id":"n","type":"ipv4","link":"a","ip_address":"10.0.2.99","netmask":"255.255.255.0"}]}`,
			want: []string{"delete route default via 10.0.2.2 dev eth0 metric 1024", "delete address 10.0.2.15/24 from eth0", "add address 10.0.2.99/24 to eth0"}},
		{name: "a default route replaces the one on an unmanaged link",
			doc: `{"links":[` + eth1 + `}],"networks":[{"id":"n","type":"ipv4","link":"b","ip_address":"10.9.0.5/24",
				"routes":[{"network":"0.0.0.0/0","gateway":"10.9.0.1"}]}]}`,
			want: []string{"delete route default via 10.0.2.2 dev eth0 metric 1024", "set eth1 up", "add address 10.9.0.5/24 to eth1",
				"add route default via 10.9.0.1 dev eth1"}},
		{name: "dhcp keeps the IPv4 address", doc: `{"links":[` + eth0 + `}],"networks":[{"id":"n","type":"ipv4_dhcp","link":"a"}]}`,
			want: nil, check: func(t *testing.T, g *goal) {
				if diff := cmp.Diff([]string{"eth0"}, g.dhcp); diff != "" {
					t.Errorf("dhcp (-want +got):\n%s", diff)
				}
			}},
		{name: "rename", doc: `{"links":[` + eth1 + `,"name":"lan1"}]}`,
			want: []string{"set eth1 down", "rename eth1 to lan1", "set lan1 up"}},
		{name: "swap names", doc: `{"links":[` + eth0 + `,"name":"eth1"},` + eth1 + `,"name":"eth0"}]}`,
			want: []string{"delete route default via 10.0.2.2 dev eth0 metric 1024", "delete address 10.0.2.15/24 from eth0",
				"set eth0 down", "rename eth0 to ultmp0", "set eth1 down", "rename eth1 to ultmp1",
				"rename ultmp0 to eth1", "rename ultmp1 to eth0", "set eth1 up", "set eth0 up"}},
		{name: "vlan with its own MAC and MTU on a NIC",
			doc:  `{"links":[` + eth1 + `},{"id":"eth1.7","type":"vlan","vlan_link":"b","vlan_id":7,"vlan_mac_address":"02:00:00:00:07:07","mtu":1400}]}`,
			want: []string{"create vlan eth1.7 (id 7 on eth1, mtu 1400, mac 02:00:00:00:07:07)", "set eth1 up", "set eth1.7 up"}},
		{name: "existing vlan on another parent is recreated", st: withVLAN,
			doc:  `{"links":[` + eth1 + `},{"id":"v7","type":"vlan","vlan_link":"b","vlan_id":7}]}`,
			want: []string{"delete link v7", "create vlan v7 (id 7 on eth1)", "set eth1 up", "set v7 up"}},
		{name: "existing vlan in place", st: withVLAN, doc: `{"links":[` + eth0 + `},{"id":"v7","type":"vlan","vlan_link":"a","vlan_id":7}]}`,
			want: []string{"delete route default via 10.0.2.2 dev eth0 metric 1024", "delete address 10.0.2.15/24 from eth0"}},
		{name: "802.3ad bond with a MAC",
			doc: `{"links":[` + eth0 + `},` + eth1 + `},{"id":"bond1","type":"bond","bond_links":["a","b"],"bond_mode":"802.3ad",
				"bond_xmit_hash_policy":"layer3+4","bond_miimon":200,"ethernet_mac_address":"02:00:00:00:0b:01"}]}`,
			want: []string{"delete route default via 10.0.2.2 dev eth0 metric 1024", "delete address 10.0.2.15/24 from eth0",
				"create bond bond1 (802.3ad, miimon 200, xmit_hash_policy layer3+4, mac 02:00:00:00:0b:01)",
				"enslave eth0 to bond1", "enslave eth1 to bond1", "set eth0 up", "set eth1 up", "set bond1 up"}},
		{name: "balance-xor bond defaults to layer2",
			doc: `{"links":[` + eth1 + `},{"id":"bond2","type":"bond","bond_links":["b"],"bond_mode":"balance-xor"}]}`,
			want: []string{"create bond bond2 (balance-xor, miimon 100, xmit_hash_policy layer2)", "enslave eth1 to bond2",
				"set eth1 up", "set bond2 up"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := machine()
			if tc.st != nil {
				tc.st(st)
			}
			g, err := forwardGoal(parse(t, tc.doc), st)
			if err != nil {
				t.Fatalf("forwardGoal: %v", err)
			}
			ops, err := plan(st, g)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			var got []string
			for _, o := range ops {
				got = append(got, o.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, g)
			}
			// What the plan leads to is in place: planning again on the
			// simulated result finds nothing to do.
			k := newFakeKernel(st)
			for _, o := range ops {
				if err := k.exec(o); err != nil {
					t.Fatalf("%s: %v", o, err)
				}
			}
			after, _ := k.snapshot()
			g2, err := forwardGoal(parse(t, tc.doc), after)
			if err != nil {
				t.Fatalf("forwardGoal after: %v", err)
			}
			again, err := plan(after, g2)
			if err != nil {
				t.Fatalf("plan after: %v", err)
			}
			if len(again) != 0 {
				t.Errorf("after the plan, still to do: %v", again)
			}
		})
	}
}

func TestRenderResolv(t *testing.T) {
	got := string(renderResolv([]string{"10.0.0.2", "2001:db8:0::1"}, &File{Data: []byte("nameserver 1.1.1.1\nsearch a b\noptions  ndots:2\n")}))
	want := "# Written by underlay-agent from the machine's network config.\nnameserver 10.0.0.2\nnameserver 2001:db8::1\nsearch a b\noptions ndots:2\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("renderResolv (-want +got):\n%s", diff)
	}
}

func TestBroadcast(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.100.0.50/24", "10.100.0.255"}, {"10.1.2.3/20", "10.1.15.255"}, {"10.0.0.1/8", "10.255.255.255"},
		{"10.0.0.1/31", "invalid IP"}, {"2001:db8::1/64", "invalid IP"},
	} {
		if got := broadcast(netip.MustParsePrefix(tc.in)).String(); got != tc.want {
			t.Errorf("broadcast(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
