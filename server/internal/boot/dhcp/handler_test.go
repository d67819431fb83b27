package dhcp_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
	"underlay.dev/server/internal/boot/dhcp"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"underlay.dev/server/internal/boot/dhcp/dhcptest"
)

// summary is the part of a reply the tests compare.
type summary struct {
	Type      string
	YIAddr    string
	CIAddr    string
	SIAddr    string
	File      string
	Class     string // option 60
	TFTP      string // option 66
	BootOpt   string // option 67
	ServerID  string // option 54
	Lease     time.Duration
	Mask      string
	Router    string
	GUID      bool // option 97 echoed
	Message   string
	Broadcast bool
}

func summarize(tb testing.TB, req, p *dhcpv4.DHCPv4) *summary {
	tb.Helper()
	if p == nil {
		return nil
	}
	if p.TransactionID != req.TransactionID || p.ClientHWAddr.String() != req.ClientHWAddr.String() || p.OpCode != dhcpv4.OpcodeBootReply {
		tb.Errorf("reply header mismatch: xid %v chaddr %v op %v", p.TransactionID, p.ClientHWAddr, p.OpCode)
	}
	s := &summary{
		Type:      p.MessageType().String(),
		YIAddr:    p.YourIPAddr.String(),
		CIAddr:    p.ClientIPAddr.String(),
		SIAddr:    p.ServerIPAddr.String(),
		File:      p.BootFileName,
		Class:     p.ClassIdentifier(),
		TFTP:      p.TFTPServerName(),
		BootOpt:   p.BootFileNameOption(),
		Lease:     p.IPAddressLeaseTime(0),
		GUID:      string(p.GetOneOption(dhcpv4.OptionClientMachineIdentifier)) == string(guid),
		Message:   p.Message(),
		Broadcast: p.IsBroadcast(),
	}
	if id := p.ServerIdentifier(); id != nil {
		s.ServerID = id.String()
	}
	if m := p.SubnetMask(); m != nil {
		s.Mask = net.IP(m).String()
	}
	if r := p.Router(); len(r) > 0 {
		s.Router = r[0].String()
	}
	return s
}

func testConfig(mode dhcp.Mode) dhcp.Config {
	_, subnet, _ := net.ParseCIDR("10.0.0.0/24")
	return dhcp.Config{
		Mode:      mode,
		ServerIP:  net.ParseIP("10.0.0.1"),
		Subnet:    subnet,
		Router:    net.ParseIP("10.0.0.254"),
		DNS:       []net.IP{net.ParseIP("10.0.0.53")},
		LeaseTime: time.Hour,
		HTTPBase:  "http://10.0.0.1:7446/",
	}
}

func newTestHandler(tb testing.TB, mode dhcp.Mode, b *dhcptest.Backend) *dhcp.Handler {
	tb.Helper()
	var backend dhcp.Backend
	if b != nil {
		backend = b
	}
	h, err := dhcp.NewHandler(testConfig(mode), backend)
	if err != nil {
		tb.Fatalf("NewHandler: %v", err)
	}
	return h
}

func newPool() *dhcptest.Backend {
	return dhcptest.New(net.ParseIP("10.0.0.100"), net.ParseIP("10.0.0.102"))
}

func TestHandle(t *testing.T) {
	const ipxeURL = "http://10.0.0.1:7446/boot.ipxe?mac=52:54:00:12:34:03"
	disc, req := dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest
	pxeOffer := func(yi, file string) *summary {
		return &summary{Type: "OFFER", YIAddr: yi, CIAddr: "0.0.0.0", SIAddr: "10.0.0.1", File: file, Class: "PXEClient",
			TFTP: "10.0.0.1", BootOpt: file, ServerID: "10.0.0.1", GUID: true, Broadcast: true}
	}
	withLease := func(s *summary, typ string) *summary {
		s.Type, s.Lease, s.Mask, s.Router = typ, time.Hour, "255.255.255.0", "10.0.0.254"
		return s
	}
	tests := []struct {
		name      string
		mode      dhcp.Mode
		packet    func(testing.TB) *dhcpv4.DHCPv4
		setup     func(*dhcptest.Backend)
		want      *summary
		wantErr   error
		wantCalls []dhcptest.Call
	}{
		{
			name:   "off answers nothing",
			mode:   dhcp.Off,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return biosPXE(tb, disc) },
		},
		{
			name:   "proxy bios pxe discover gets undionly.kpxe and no address",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return biosPXE(tb, disc) },
			want:   pxeOffer("0.0.0.0", "undionly.kpxe"),
		},
		{
			name:   "proxy uefi pxe discover gets ipxe.efi",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return uefiPXE(tb, disc) },
			want:   pxeOffer("0.0.0.0", "ipxe.efi"),
		},
		{
			name: "proxy arch 9 (efi bc) gets ipxe.efi",
			mode: dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return packet(tb, macUEFI, disc, append(pxeMods("PXEClient:Arch:00009:UNDI:003016", iana.EFI_BC), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid))...)
			},
			want: pxeOffer("0.0.0.0", "ipxe.efi"),
		},
		{
			name:   "proxy ipxe discover gets the http script url",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return ipxeClient(tb, disc) },
			want:   pxeOffer("0.0.0.0", ipxeURL),
		},
		{
			name:   "proxy ignores non-pxe clients",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return dhclient(tb, disc) },
		},
		{
			name:   "proxy leaves requests on port 67 to the site server",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return biosPXE(tb, req, requested("192.168.1.50")) },
		},
		{
			name: "unsupported arch is refused",
			mode: dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return packet(tb, macBIOS, disc, pxeMods("PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64)...)
			},
			wantErr: dhcp.ErrUnsupportedArch,
		},
		{
			name: "arch taken from vendor class when option 93 is missing",
			mode: dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return packet(tb, macUEFI, disc, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")))
			},
			want: func() *summary { s := pxeOffer("0.0.0.0", "ipxe.efi"); s.GUID = false; return s }(),
		},
		{
			name: "truncated option 93 is refused",
			mode: dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return packet(tb, macBIOS, disc, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7}))
			},
			wantErr: dhcp.ErrUnsupportedArch,
		},
		{
			name:      "authoritative bios discover gets address and boot file",
			mode:      dhcp.Authoritative,
			packet:    func(tb testing.TB) *dhcpv4.DHCPv4 { return biosPXE(tb, disc) },
			want:      withLease(pxeOffer("10.0.0.100", "undionly.kpxe"), "OFFER"),
			wantCalls: []dhcptest.Call{{Method: "lease", MAC: macBIOS.String(), Offer: true, Duration: time.Hour, Result: "10.0.0.100"}},
		},
		{
			name: "authoritative ipxe request acked with script url",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return ipxeClient(tb, req, requested("10.0.0.101"), serverID("10.0.0.1"))
			},
			want: withLease(pxeOffer("10.0.0.101", ipxeURL), "ACK"),
			wantCalls: []dhcptest.Call{{Method: "lease", MAC: macIPXE.String(), IP: "10.0.0.101", Duration: time.Hour,
				Result: "10.0.0.101"}},
		},
		{
			name:   "authoritative plain client gets address without boot info",
			mode:   dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return dhclient(tb, disc) },
			want: &summary{Type: "OFFER", YIAddr: "10.0.0.100", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", ServerID: "10.0.0.1",
				Lease: time.Hour, Mask: "255.255.255.0", Router: "10.0.0.254", Broadcast: true},
			wantCalls: []dhcptest.Call{{Method: "lease", MAC: macOS.String(), Offer: true, Hostname: "web-1", Duration: time.Hour, Result: "10.0.0.100"}},
		},
		{
			name: "authoritative request for another server's offer is ignored",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return dhclient(tb, req, requested("10.0.0.100"), serverID("10.0.0.2"))
			},
		},
		{
			name:  "authoritative request for an address held by another machine is naked",
			mode:  dhcp.Authoritative,
			setup: func(b *dhcptest.Backend) { b.Reserve(macBIOS.String(), "10.0.0.100") },
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return dhclient(tb, req, requested("10.0.0.100"), serverID("10.0.0.1"))
			},
			want: &summary{Type: "NAK", YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", ServerID: "10.0.0.1",
				Message: "address not available", Broadcast: true},
			wantCalls: []dhcptest.Call{{Method: "lease", MAC: macOS.String(), IP: "10.0.0.100", Hostname: "web-1", Duration: time.Hour,
				ResultErr: "10.0.0.100 held by 52:54:00:12:34:01: address taken"}},
		},
		{
			name:   "authoritative init-reboot from a foreign network is naked without a backend call",
			mode:   dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return dhclient(tb, req, requested("192.168.7.7")) },
			want: &summary{Type: "NAK", YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", ServerID: "10.0.0.1",
				Message: "address not on this network", Broadcast: true},
		},
		{
			name:  "authoritative renew by ciaddr is acked",
			mode:  dhcp.Authoritative,
			setup: func(b *dhcptest.Backend) { b.Reserve(macOS.String(), "10.0.0.102") },
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return dhclient(tb, req, dhcpv4.WithClientIP(net.ParseIP("10.0.0.102")))
			},
			want: &summary{Type: "ACK", YIAddr: "10.0.0.102", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", ServerID: "10.0.0.1",
				Lease: time.Hour, Mask: "255.255.255.0", Router: "10.0.0.254", Broadcast: true},
			wantCalls: []dhcptest.Call{{Method: "lease", MAC: macOS.String(), IP: "10.0.0.102", Hostname: "web-1", Duration: time.Hour, Result: "10.0.0.102"}},
		},
		{
			name:    "authoritative request without any address is malformed",
			mode:    dhcp.Authoritative,
			packet:  func(tb testing.TB) *dhcpv4.DHCPv4 { return dhclient(tb, req) },
			wantErr: dhcp.ErrMalformed,
		},
		{
			name: "authoritative pool exhausted: no offer, error",
			mode: dhcp.Authoritative,
			setup: func(b *dhcptest.Backend) {
				b.Reserve("aa:00:00:00:00:01", "10.0.0.100")
				b.Reserve("aa:00:00:00:00:02", "10.0.0.101")
				b.Reserve("aa:00:00:00:00:03", "10.0.0.102")
			},
			packet:    func(tb testing.TB) *dhcpv4.DHCPv4 { return dhclient(tb, disc) },
			wantErr:   dhcp.ErrNoAddress,
			wantCalls: []dhcptest.Call{{Method: "lease", MAC: macOS.String(), Offer: true, Hostname: "web-1", Duration: time.Hour, ResultErr: "no address available"}},
		},
		{
			name: "authoritative release",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return dhclient(tb, dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.ParseIP("10.0.0.101")))
			},
			wantCalls: []dhcptest.Call{{Method: "release", MAC: macOS.String(), IP: "10.0.0.101"}},
		},
		{
			name: "authoritative decline",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return dhclient(tb, dhcpv4.MessageTypeDecline, requested("10.0.0.101"))
			},
			wantCalls: []dhcptest.Call{{Method: "decline", MAC: macOS.String(), IP: "10.0.0.101"}},
		},
		{
			name: "authoritative inform from a pxe client gets config and boot info, no lease",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return uefiPXE(tb, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.0.0.9")))
			},
			want: func() *summary {
				s := pxeOffer("0.0.0.0", "ipxe.efi")
				s.Type, s.CIAddr, s.Mask, s.Router = "ACK", "10.0.0.9", "255.255.255.0", "10.0.0.254"
				return s
			}(),
		},
		{
			name: "boot reply opcode is malformed",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				p := dhclient(tb, disc)
				p.OpCode = dhcpv4.OpcodeBootReply
				return p
			},
			wantErr: dhcp.ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newPool()
			if tt.setup != nil {
				tt.setup(b)
			}
			h := newTestHandler(t, tt.mode, b)
			p := tt.packet(t)
			resp, err := h.Handle(context.Background(), p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Handle error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, summarize(t, p, resp)); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, b.Calls()); diff != "" {
				t.Errorf("backend calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlePXE(t *testing.T) {
	tests := []struct {
		name   string
		mode   dhcp.Mode
		packet func(testing.TB) *dhcpv4.DHCPv4
		want   *summary
	}{
		{
			name: "proxy ipxe request on 4011 gets an ack with the script url",
			mode: dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return ipxeClient(tb, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.ParseIP("192.168.1.50")))
			},
			want: &summary{Type: "ACK", YIAddr: "0.0.0.0", CIAddr: "192.168.1.50", SIAddr: "10.0.0.1",
				File: "http://10.0.0.1:7446/boot.ipxe?mac=52:54:00:12:34:03", Class: "PXEClient", TFTP: "10.0.0.1",
				BootOpt: "http://10.0.0.1:7446/boot.ipxe?mac=52:54:00:12:34:03", ServerID: "10.0.0.1", GUID: true, Broadcast: true},
		},
		{
			name: "authoritative bios request on 4011 gets undionly.kpxe",
			mode: dhcp.Authoritative,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 {
				return biosPXE(tb, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.ParseIP("10.0.0.100")))
			},
			want: &summary{Type: "ACK", YIAddr: "0.0.0.0", CIAddr: "10.0.0.100", SIAddr: "10.0.0.1", File: "undionly.kpxe",
				Class: "PXEClient", TFTP: "10.0.0.1", BootOpt: "undionly.kpxe", ServerID: "10.0.0.1", GUID: true, Broadcast: true},
		},
		{
			name:   "discover on 4011 is ignored",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return biosPXE(tb, dhcpv4.MessageTypeDiscover) },
		},
		{
			name:   "non-pxe on 4011 is ignored",
			mode:   dhcp.Proxy,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return dhclient(tb, dhcpv4.MessageTypeRequest) },
		},
		{
			name:   "off ignores 4011",
			mode:   dhcp.Off,
			packet: func(tb testing.TB) *dhcpv4.DHCPv4 { return biosPXE(tb, dhcpv4.MessageTypeRequest) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newPool()
			h := newTestHandler(t, tt.mode, b)
			p := tt.packet(t)
			resp, err := h.HandlePXE(context.Background(), p)
			if err != nil {
				t.Fatalf("HandlePXE: %v", err)
			}
			if diff := cmp.Diff(tt.want, summarize(t, p, resp)); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if calls := b.Calls(); len(calls) != 0 {
				t.Errorf("port 4011 must not touch leases, got %v", calls)
			}
		})
	}
}

func TestNewHandlerConfig(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*dhcp.Config)
		backend bool
		wantErr error
	}{
		{name: "valid authoritative", backend: true},
		{name: "authoritative without backend", wantErr: dhcp.ErrConfig},
		{name: "ipv6 server ip", backend: true, mutate: func(c *dhcp.Config) { c.ServerIP = net.ParseIP("fd00::1") }, wantErr: dhcp.ErrConfig},
		{name: "server ip outside subnet", backend: true, mutate: func(c *dhcp.Config) { c.ServerIP = net.ParseIP("10.9.0.1") }, wantErr: dhcp.ErrConfig},
		{name: "no http base", backend: true, mutate: func(c *dhcp.Config) { c.HTTPBase = "" }, wantErr: dhcp.ErrConfig},
		{name: "proxy needs no subnet or backend", mutate: func(c *dhcp.Config) { c.Mode, c.Subnet = dhcp.Proxy, nil }},
		{name: "off needs nothing", mutate: func(c *dhcp.Config) { *c = dhcp.Config{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(dhcp.Authoritative)
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			var b dhcp.Backend
			if tt.backend {
				b = newPool()
			}
			_, err := dhcp.NewHandler(cfg, b)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("dhcp.NewHandler error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []dhcp.Mode{dhcp.Off, dhcp.Proxy, dhcp.Authoritative} {
		t.Run(m.String(), func(t *testing.T) {
			got, err := dhcp.ParseMode(m.String())
			if err != nil || got != m {
				t.Errorf("dhcp.ParseMode(%q) = %v, %v", m.String(), got, err)
			}
		})
	}
	if _, err := dhcp.ParseMode("sometimes"); !errors.Is(err, dhcp.ErrConfig) {
		t.Errorf("dhcp.ParseMode(sometimes) error = %v, want dhcp.ErrConfig", err)
	}
}
