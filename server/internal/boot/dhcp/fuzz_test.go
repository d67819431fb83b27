package dhcp_test

import (
	"context"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"underlay.dev/server/internal/boot/dhcp"
)

// FuzzHandle feeds arbitrary datagrams through parsing and both handlers in
// every mode. The seeds in testdata/fuzz/FuzzHandle (BIOS PXE, UEFI PXE,
// iPXE and dhclient packets, truncated and garbage ones) run with go test.
func FuzzHandle(f *testing.F) {
	for _, b := range seedPackets(f) {
		f.Add(b, true)
	}
	handlers := map[dhcp.Mode]*dhcp.Handler{}
	for _, m := range []dhcp.Mode{dhcp.Off, dhcp.Proxy, dhcp.Authoritative} {
		handlers[m] = newTestHandler(f, m, newPool())
	}
	f.Fuzz(func(t *testing.T, b []byte, pxePort bool) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		for mode, h := range handlers {
			var resp *dhcpv4.DHCPv4
			if pxePort {
				resp, err = h.HandlePXE(context.Background(), req)
			} else {
				resp, err = h.Handle(context.Background(), req)
			}
			if resp == nil {
				continue
			}
			if err != nil {
				t.Fatalf("%v: reply and error together: %v", mode, err)
			}
			if mode == dhcp.Off {
				t.Fatalf("off mode replied: %v", resp.Summary())
			}
			if resp.TransactionID != req.TransactionID || resp.OpCode != dhcpv4.OpcodeBootReply {
				t.Fatalf("%v: reply header does not match request: %v", mode, resp.Summary())
			}
			if mode == dhcp.Proxy && !resp.YourIPAddr.Equal(net.IPv4zero) {
				t.Fatalf("proxy mode handed out %v", resp.YourIPAddr)
			}
			if resp.BootFileName != "" && resp.ClassIdentifier() != "PXEClient" {
				t.Fatalf("%v: boot reply without option 60 PXEClient", mode)
			}
			if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
				t.Fatalf("%v: reply does not parse back: %v", mode, err)
			}
		}
	})
}
