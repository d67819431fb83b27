package bootenv

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

func newACK(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 213, 0, 120)),
		dhcpv4.WithServerIP(net.IPv4(10, 213, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 213, 0, 1))),
	}
	m, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	cmpPfx  = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
)

func TestFromLease(t *testing.T) {
	mask := dhcpv4.WithNetmask(net.CIDRMask(24, 32))
	for _, tc := range []struct {
		name string
		mods []dhcpv4.Modifier
		want NetConfig
	}{
		{
			name: "full lease",
			mods: []dhcpv4.Modifier{
				mask,
				dhcpv4.WithRouter(net.IPv4(10, 213, 0, 1), net.IPv4(10, 213, 0, 2)),
				dhcpv4.WithDNS(net.IPv4(10, 213, 0, 53), net.IPv4(9, 9, 9, 9)),
				dhcpv4.WithOption(dhcpv4.OptDomainName("lab.example")),
				dhcpv4.WithOption(dhcpv4.OptHostName("rack1-u07")),
				dhcpv4.WithLeaseTime(3600),
				dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(20 * time.Minute)),
				dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(9000)}),
			},
			want: NetConfig{
				Interface: "eth0",
				Address:   netip.MustParsePrefix("10.213.0.120/24"),
				Server:    netip.MustParseAddr("10.213.0.1"),
				Routes:    []Route{{Gateway: netip.MustParseAddr("10.213.0.1")}},
				DNS:       []netip.Addr{netip.MustParseAddr("10.213.0.53"), netip.MustParseAddr("9.9.9.9")},
				Search:    []string{"lab.example"},
				Hostname:  "rack1-u07",
				MTU:       9000,
				Lease:     time.Hour,
				Renew:     20 * time.Minute,
			},
		},
		{
			name: "classless routes replace the router option",
			mods: []dhcpv4.Modifier{
				dhcpv4.WithNetmask(net.CIDRMask(26, 32)),
				dhcpv4.WithRouter(net.IPv4(10, 213, 0, 1)),
				dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
					&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(172, 16, 0, 0), Mask: net.CIDRMask(12, 32)}, Router: net.IPv4(10, 213, 0, 65)},
					&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(10, 213, 0, 128), Mask: net.CIDRMask(25, 32)}, Router: net.IPv4zero},
					&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 213, 0, 66)},
				)),
				dhcpv4.WithLeaseTime(600),
				dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"a.example", "b.example"}})),
				dhcpv4.WithOption(dhcpv4.OptDomainName("ignored.example")),
			},
			want: NetConfig{
				Interface: "eth0",
				Address:   netip.MustParsePrefix("10.213.0.120/26"),
				Server:    netip.MustParseAddr("10.213.0.1"),
				Routes: []Route{
					{Dst: netip.MustParsePrefix("172.16.0.0/12"), Gateway: netip.MustParseAddr("10.213.0.65")},
					{Dst: netip.MustParsePrefix("10.213.0.128/25")},
					{Gateway: netip.MustParseAddr("10.213.0.66")},
				},
				Search: []string{"a.example", "b.example"},
				Lease:  10 * time.Minute,
				Renew:  5 * time.Minute,
			},
		},
		{
			name: "no mask: classful, no lease time",
			want: NetConfig{
				Interface: "eth0",
				Address:   netip.MustParsePrefix("10.213.0.120/8"),
				Server:    netip.MustParseAddr("10.213.0.1"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fromLease("eth0", newACK(t, tc.mods...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpAddr, cmpPfx); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("no address is an error", func(t *testing.T) {
		ack := newACK(t, dhcpv4.WithYourIP(net.IPv4zero))
		if _, err := fromLease("eth0", ack); err == nil {
			t.Error("fromLease succeeded without an address")
		}
	})
}

func TestResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name string
		nc   NetConfig
		want string
	}{
		{"no servers, no file", NetConfig{Interface: "eth0", Search: []string{"x"}}, ""},
		{
			"servers and search",
			NetConfig{Interface: "eth1", Search: []string{"lab.example", "example"},
				DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53"), netip.MustParseAddr("10.0.0.54")}},
			"# written by underlay-agent from the dhcp lease on eth1\nsearch lab.example example\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n",
		},
		{
			"servers only",
			NetConfig{Interface: "eth0", DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53")}},
			"# written by underlay-agent from the dhcp lease on eth0\nnameserver 10.0.0.53\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, resolvConf(tc.nc)); diff != "" {
				t.Errorf("resolv.conf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDHCPModifiersSetVendorClass(t *testing.T) {
	m, err := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}, dhcpModifiers(DefaultVendorClass)...)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ClassIdentifier(); got != "underlay-agent" {
		t.Errorf("vendor class = %q, want underlay-agent", got)
	}
	for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionClasslessStaticRoute} {
		if !m.IsOptionRequested(o) {
			t.Errorf("option %v not requested", o)
		}
	}
}
