package netconf

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// machineNICs is a machine with two physical NICs, loopback and a leftover
// bond.
func machineNICs() []*underlayv1.NIC {
	return []*underlayv1.NIC{
		{Name: "bond9", Mac: "52:54:00:76:00:09", Kind: "bond", Virtual: true},
		{Name: "eth0", Mac: "52:54:00:76:00:01", PermanentMac: "52:54:00:76:00:01", Kind: "device"},
		// A bond slave: its current MAC is the bond's.
		{Name: "eth1", Mac: "52:54:00:76:00:01", PermanentMac: "52:54:00:76:00:02", Kind: "device"},
		{Name: "lo", Mac: "00:00:00:00:00:00", Kind: "loopback", Virtual: true},
	}
}

func readExample(tb testing.TB) *Data {
	tb.Helper()
	b, err := os.ReadFile("testdata/bond-vlan.json")
	if err != nil {
		tb.Fatal(err)
	}
	d, err := Parse(b)
	if err != nil {
		tb.Fatalf("parse example: %v", err)
	}
	return d
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *Data
		wantErr  string
	}{
		{name: "minimal", in: `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:01"}]}`,
			want: &Data{Links: []Link{{ID: "a", Type: "phy", EthernetMACAddress: "52:54:00:76:00:01"}}}},
		{name: "openstack fields", in: `{"links":[{"id":"tap1","type":"ethernet","vif_id":"x","ethernet_mac_address":"52:54:00:76:00:01","mtu":1450}],
			"networks":[{"id":"n","type":"ipv4","link":"tap1","network_id":"u","ip_address":"10.0.0.5","netmask":"255.255.255.0",
			"routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.0.0.1"}],"services":[{"type":"dns","address":"10.0.0.2"}]}]}`,
			want: &Data{Links: []Link{{ID: "tap1", Type: "ethernet", VIFID: "x", EthernetMACAddress: "52:54:00:76:00:01", MTU: 1450}},
				Networks: []Network{{ID: "n", Type: "ipv4", Link: "tap1", NetworkID: "u", IPAddress: "10.0.0.5", Netmask: "255.255.255.0",
					Routes: []Route{{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "10.0.0.1"}}, Services: []Service{{Type: "dns", Address: "10.0.0.2"}}}}}},
		{name: "unknown fields are all named", in: `{"links":[{"id":"a","type":"bond","bond_slaves":["x"]},{"id":"b","kind":"x"}],
			"networks":[{"id":"n","routes":[{"network":"0.0.0.0","via":"x"}]}],"extra":1}`,
			wantErr: "unknown fields: extra, links[0].bond_slaves, links[1].kind, networks[0].routes[0].via"},
		{name: "wrong type", in: `{"links":[{"id":"a","mtu":"9000"}]}`, wantErr: "cannot unmarshal string"},
		{name: "trailing data", in: `{"links":[]} {}`, wantErr: "trailing data"},
		{name: "not an object", in: `[1]`, wantErr: "must be a JSON object"},
		{name: "malformed", in: `{"links":[`, wantErr: "parse:"},
		{name: "empty", in: " \n", wantErr: "empty document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse error = %v, want one containing %q and matching ErrInvalid", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchNIC(t *testing.T) {
	nics := machineNICs()
	for _, tc := range []struct{ mac, want string }{
		{"52:54:00:76:00:01", "eth0"},
		{"52:54:00:76:00:02", "eth1"}, // by permanent MAC, though its current one is eth0's
		{"52:54:00:76:00:0A", ""},
		{"52:54:00:76:00:09", ""}, // a bond is not a NIC
		{"00:00:00:00:00:00", ""}, // nor is loopback
		{"not-a-mac", ""},
	} {
		t.Run(tc.mac, func(t *testing.T) {
			got := ""
			if n := MatchNIC(strings.ToUpper(tc.mac), nics); n != nil {
				got = n.GetName()
			}
			if got != tc.want {
				t.Errorf("MatchNIC(%s) = %q, want %q", tc.mac, got, tc.want)
			}
		})
	}
}

func TestPrefixAndRoute(t *testing.T) {
	for _, tc := range []struct{ addr, mask, want string }{
		{"10.0.0.5", "255.255.255.0", "10.0.0.5/24"},
		{"10.0.0.5/23", "", "10.0.0.5/23"},
		{"10.0.0.5", "24", "10.0.0.5/24"},
		{"2001:db8::5", "ffff:ffff:ffff:ffff::", "2001:db8::5/64"},
		{"10.0.0.5", "255.0.255.0", "error"},
		{"10.0.0.5", "", "error"},
		{"10.0.0.5/24", "255.255.255.0", "error"},
		{"10.0.0.5", "ffff::", "error"},
	} {
		t.Run(tc.addr+" "+tc.mask, func(t *testing.T) {
			n := Network{ID: "n", IPAddress: tc.addr, Netmask: tc.mask}
			p, err := n.Prefix()
			got := p.String()
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("Prefix = %s (%v), want %s", got, err, tc.want)
			}
		})
	}
	r := Route{Network: "10.0.0.5", Netmask: "255.0.0.0", Gateway: "10.0.0.1"}
	if _, _, err := r.Parse(); err == nil || !strings.Contains(err.Error(), "did you mean 10.0.0.0/8") {
		t.Errorf("route with host bits: err = %v", err)
	}
	if !(&Route{Network: "::", Netmask: "::", Gateway: "fe80::1"}).IsDefault() {
		t.Error(":: / :: is not a default route")
	}
}

func TestNameservers(t *testing.T) {
	d := &Data{Services: []Service{{Type: "dns", Address: "10.0.0.2"}},
		Networks: []Network{{DNSNameservers: []string{"10.0.0.3", "10.0.0.2"}, Services: []Service{{Type: "dns", Address: "2001:db8:0::1"}}}}}
	if diff := cmp.Diff([]string{"10.0.0.2", "10.0.0.3", "2001:db8::1"}, d.Nameservers()); diff != "" {
		t.Errorf("Nameservers (-want +got):\n%s", diff)
	}
}
