package dhcp_test

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Packet builders with the option sets real clients send: a legacy BIOS
// PXE ROM (Intel UNDI 2.1), a UEFI x86-64 PXE firmware (OVMF/EDK2), iPXE
// chain-loaded from either, and dhclient.

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzHandle seeds")

var (
	macBIOS = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x01}
	macUEFI = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x02}
	macIPXE = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x03}
	macOS   = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x04}
	guid    = append([]byte{0}, []byte("0123456789abcdef")...)
)

var xid = dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}

func packet(tb testing.TB, mac net.HardwareAddr, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	tb.Helper()
	all := append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithBroadcast(true),
	}, mods...)
	p, err := dhcpv4.New(all...)
	if err != nil {
		tb.Fatalf("build packet: %v", err)
	}
	return p
}

func withArch(a iana.Arch) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientArch(a))
}

func pxeMods(vendorClass string, arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorClass)),
		withArch(arch),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1260)),
		dhcpv4.WithRequestedOptions(codes(1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135)...),
	}
}

func biosPXE(tb testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	tb.Helper()
	return packet(tb, macBIOS, mt, append(pxeMods("PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC), mods...)...)
}

func uefiPXE(tb testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	tb.Helper()
	return packet(tb, macUEFI, mt, append(pxeMods("PXEClient:Arch:00007:UNDI:003016", iana.EFI_X86_64), mods...)...)
}

func ipxeClient(tb testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	tb.Helper()
	base := append(pxeMods("PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")),
		dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e, 0x10, 0x01, 0x01}),
	)
	return packet(tb, macIPXE, mt, append(base, mods...)...)
}

func dhclient(tb testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	tb.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptHostName("web-1")),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, macOS...))),
		dhcpv4.WithRequestedOptions(codes(1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42)...),
	}
	return packet(tb, macOS, mt, append(base, mods...)...)
}

func requested(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))
}

func serverID(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(ip)))
}

// seedPackets are the FuzzHandle seeds, by file name.
func seedPackets(tb testing.TB) map[string][]byte {
	tb.Helper()
	disc := dhcpv4.MessageTypeDiscover
	req := dhcpv4.MessageTypeRequest
	seeds := map[string][]byte{
		"bios_pxe_discover":  biosPXE(tb, disc).ToBytes(),
		"bios_pxe_request":   biosPXE(tb, req, requested("10.0.0.100"), serverID("10.0.0.1")).ToBytes(),
		"uefi_pxe_discover":  uefiPXE(tb, disc).ToBytes(),
		"uefi_pxe_request":   uefiPXE(tb, req, requested("10.0.0.101"), serverID("10.0.0.1")).ToBytes(),
		"ipxe_discover":      ipxeClient(tb, disc).ToBytes(),
		"ipxe_request":       ipxeClient(tb, req, requested("10.0.0.102"), serverID("10.0.0.1")).ToBytes(),
		"ipxe_proxy_request": ipxeClient(tb, req, dhcpv4.WithClientIP(net.ParseIP("192.168.1.50"))).ToBytes(),
		"dhclient_discover":  dhclient(tb, disc).ToBytes(),
		"dhclient_request":   dhclient(tb, req, requested("10.0.0.103"), serverID("10.0.0.1")).ToBytes(),
		"dhclient_renew":     dhclient(tb, req, dhcpv4.WithClientIP(net.ParseIP("10.0.0.103"))).ToBytes(),
		"dhclient_release":   dhclient(tb, dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.ParseIP("10.0.0.103"))).ToBytes(),
		"dhclient_decline":   dhclient(tb, dhcpv4.MessageTypeDecline, requested("10.0.0.103")).ToBytes(),
		"dhclient_inform":    dhclient(tb, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.0.0.9"))).ToBytes(),
		"arm64_pxe_discover": packet(tb, macBIOS, disc, pxeMods("PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64)...).ToBytes(),
		"short_arch_option":  packet(tb, macBIOS, disc, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7})).ToBytes(),
		"garbage":            []byte("\x01\x01\x06\x00not a dhcp packet at all"),
		"empty":              {},
		"bootreply_opcode":   func() []byte { b := biosPXE(tb, disc).ToBytes(); b[0] = 2; return b }(),
		"huge_hlen":          func() []byte { b := biosPXE(tb, disc).ToBytes(); b[2] = 255; return b }(),
		"option_overrun":     func() []byte { b := dhclient(tb, disc).ToBytes(); b[243] = 250; return b }(),
		"no_magic_cookie":    func() []byte { b := dhclient(tb, disc).ToBytes(); b[236] = 0; return b }(),
		"no_message_type": func() []byte {
			p := dhclient(tb, disc)
			p.Options.Del(dhcpv4.OptionDHCPMessageType)
			return p.ToBytes()
		}(),
	}
	full := biosPXE(tb, disc).ToBytes()
	seeds["truncated_header"] = full[:100]
	seeds["truncated_options"] = full[:len(full)-40]
	return seeds
}

// TestWriteSeeds regenerates the seed corpus with -update-seeds.
func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz/FuzzHandle")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandle")
	for name, b := range seedPackets(t) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(false)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func codes(n ...uint8) []dhcpv4.OptionCode {
	out := make([]dhcpv4.OptionCode, len(n))
	for i, c := range n {
		out[i] = dhcpv4.GenericOptionCode(c)
	}
	return out
}
