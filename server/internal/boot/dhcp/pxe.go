package dhcp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Vendor class (option 60) sent by PXE firmware and echoed in PXE replies.
const pxeClientClass = "PXEClient"

// ipxeUserClass is the user class (option 77) iPXE sends.
const ipxeUserClass = "iPXE"

// PXE vendor options (option 43): sub-option 6 PXE_DISCOVERY_CONTROL with
// bit 3 set tells the ROM to download the boot file named in the offer
// directly instead of running boot server discovery; 255 ends the list.
var pxeVendorOptions = []byte{6, 1, 8, 255}

// client is what a request says about its firmware.
type client struct {
	pxe  bool // vendor class PXEClient
	ipxe bool // user class iPXE: give the HTTP script instead of a binary
	arch Arch
}

// classify reads the vendor class, user class and architecture. A PXE
// client whose architecture has no boot file is refused with
// ErrUnsupportedArch.
func (h *Handler) classify(req *dhcpv4.DHCPv4) (client, error) {
	vc := req.ClassIdentifier()
	c := client{pxe: strings.HasPrefix(vc, pxeClientClass), arch: archUnknown}
	if !c.pxe {
		return c, nil
	}
	for _, uc := range req.UserClass() {
		if uc == ipxeUserClass {
			c.ipxe = true
		}
	}
	c.arch = clientArch(req, vc)
	if _, ok := h.cfg.BootFiles[c.arch]; !ok {
		return c, fmt.Errorf("pxe client %s arch %d (vendor class %q): %w", req.ClientHWAddr, c.arch, vc, ErrUnsupportedArch)
	}
	return c, nil
}

// clientArch takes option 93, else the "Arch:NNNNN" field of a PXE vendor
// class "PXEClient:Arch:00000:UNDI:002001", else assumes legacy BIOS (PXE
// ROMs older than RFC 4578 send neither).
func clientArch(req *dhcpv4.DHCPv4, vendorClass string) Arch {
	if raw := req.GetOneOption(dhcpv4.OptionClientSystemArchitectureType); raw != nil {
		if len(raw) < 2 {
			return archUnknown
		}
		return Arch(uint16(raw[0])<<8 | uint16(raw[1]))
	}
	parts := strings.Split(vendorClass, ":")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "Arch" {
			n, err := strconv.ParseUint(parts[i+1], 10, 16)
			if err != nil {
				return archUnknown
			}
			return Arch(n)
		}
	}
	return ArchBIOS
}

// BootFile returns the file name a PXE client with the given MAC,
// architecture and iPXE flag is told to load; ok is false if the
// architecture is unsupported.
func (h *Handler) BootFile(mac string, arch Arch, ipxe bool) (file string, ok bool) {
	f, ok := h.cfg.BootFiles[arch]
	if !ok {
		return "", false
	}
	if ipxe {
		return h.cfg.HTTPBase + "/boot.ipxe?mac=" + mac, true
	}
	return f, true
}

// addBoot puts boot information for c into resp: option 60 PXEClient,
// siaddr and option 66 (TFTP server), file and option 67, the PXE vendor
// options, and the client's machine identifier (option 97) echoed as the
// PXE specification requires.
func (h *Handler) addBoot(req, resp *dhcpv4.DHCPv4, c client) {
	file, _ := h.BootFile(req.ClientHWAddr.String(), c.arch, c.ipxe)
	resp.UpdateOption(dhcpv4.OptClassIdentifier(pxeClientClass))
	resp.ServerIPAddr = h.cfg.TFTPServer
	resp.UpdateOption(dhcpv4.OptTFTPServerName(h.cfg.TFTPServer.String()))
	resp.BootFileName = file
	resp.UpdateOption(dhcpv4.OptBootFileName(file))
	resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions))
	if guid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
}
