// Package dhcp answers DHCPv4 for network boot, in one of three modes per
// interface: proxy (beside a site's existing DHCP server, answering PXE
// clients with boot information only), authoritative (handing out addresses
// through a replicated Backend) or off.
//
// The protocol logic lives in Handler, a pure function of the request and the
// Backend, so it can be unit-tested and fuzzed without sockets. Server binds
// a UDP socket to one interface and feeds packets to a Handler.
//
// Boot file choice: option 93 (client architecture) selects the file from
// Config.BootFiles (undionly.kpxe for legacy BIOS, ipxe.efi for x86-64 UEFI
// by default); an unknown architecture is refused with ErrUnsupportedArch and
// gets no reply. A client that is already iPXE (option 77 user class "iPXE")
// is given the HTTP script URL Config.HTTPBase + "/boot.ipxe?mac=<chaddr>"
// instead, with the client's MAC written literally so that no iPXE setting
// expansion is involved. Every reply to a PXE client carries option 60
// "PXEClient", so iPXE does not wait for a separate proxy offer.
package dhcp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Mode selects how a Handler answers on its interface.
type Mode int

// Modes.
const (
	// Off answers nothing.
	Off Mode = iota
	// Proxy answers only PXE clients, with boot information and no address.
	Proxy
	// Authoritative hands out addresses from Config.Subnet through the Backend.
	Authoritative
)

// String returns the mode's configuration name.
func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case Proxy:
		return "proxy"
	case Authoritative:
		return "authoritative"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode parses "off", "proxy" or "authoritative".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "":
		return Off, nil
	case "proxy":
		return Proxy, nil
	case "authoritative":
		return Authoritative, nil
	}
	return Off, fmt.Errorf("parse mode %q: %w", s, ErrConfig)
}

// Arch is a client system architecture from DHCP option 93 (RFC 4578, IANA
// "Processor Architecture Types").
type Arch uint16

// Architectures with a default boot file.
const (
	ArchBIOS    Arch = 0 // x86 legacy BIOS PXE
	ArchEFIx64  Arch = 7 // x86-64 UEFI (IANA "EFI x86-64")
	ArchEFIBC   Arch = 9 // x86-64 UEFI as sent by many firmwares ("EFI BC")
	ArchEFIA64  Arch = 11
	archUnknown Arch = 0xffff
)

// DefaultBootFiles maps architectures to the iPXE binaries shipped by
// Debian's ipxe package.
func DefaultBootFiles() map[Arch]string {
	return map[Arch]string{
		ArchBIOS:   "undionly.kpxe",
		ArchEFIx64: "ipxe.efi",
		ArchEFIBC:  "ipxe.efi",
	}
}

// DefaultLeaseTime is used when Config.LeaseTime is zero.
const DefaultLeaseTime = 12 * time.Hour

// Config configures one Handler (one interface or subnet).
type Config struct {
	Mode      Mode
	Interface string
	// ServerIP is this node's address on the interface; it is the server
	// identifier (option 54) in every reply.
	ServerIP net.IP
	// Subnet, Router, DNS and LeaseTime are used in authoritative mode.
	Subnet    *net.IPNet
	Router    net.IP
	DNS       []net.IP
	LeaseTime time.Duration
	// HTTPBase is the base URL of the iPXE HTTP endpoint, e.g.
	// "http://10.0.0.1:7446"; iPXE clients get HTTPBase + "/boot.ipxe?mac=...".
	HTTPBase string
	// TFTPServer serves the iPXE binaries (siaddr and option 66); defaults to ServerIP.
	TFTPServer net.IP
	// BootFiles maps option 93 architectures to TFTP file names; nil means
	// DefaultBootFiles. Architectures not in the map are refused.
	BootFiles map[Arch]string
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Mode == Off {
		return c, nil
	}
	if c.Mode != Proxy && c.Mode != Authoritative {
		return c, fmt.Errorf("mode %d: %w", int(c.Mode), ErrConfig)
	}
	if c.ServerIP.To4() == nil {
		return c, fmt.Errorf("server ip %v is not ipv4: %w", c.ServerIP, ErrConfig)
	}
	c.ServerIP = c.ServerIP.To4()
	if c.TFTPServer == nil {
		c.TFTPServer = c.ServerIP
	}
	if c.TFTPServer.To4() == nil {
		return c, fmt.Errorf("tftp server %v is not ipv4: %w", c.TFTPServer, ErrConfig)
	}
	c.TFTPServer = c.TFTPServer.To4()
	if c.HTTPBase == "" {
		return c, fmt.Errorf("http base url is empty: %w", ErrConfig)
	}
	c.HTTPBase = strings.TrimRight(c.HTTPBase, "/")
	if len(c.HTTPBase)+len("/boot.ipxe?mac=00:00:00:00:00:00") > 127 {
		return c, fmt.Errorf("http base url %q too long for the file field: %w", c.HTTPBase, ErrConfig)
	}
	if c.BootFiles == nil {
		c.BootFiles = DefaultBootFiles()
	}
	for a, f := range c.BootFiles {
		if f == "" || len(f) > 127 {
			return c, fmt.Errorf("boot file for arch %d: %w", a, ErrConfig)
		}
	}
	if c.Mode == Authoritative {
		if c.Subnet == nil || c.Subnet.IP.To4() == nil {
			return c, fmt.Errorf("authoritative mode needs an ipv4 subnet: %w", ErrConfig)
		}
		if !c.Subnet.Contains(c.ServerIP) {
			return c, fmt.Errorf("server ip %v outside subnet %v: %w", c.ServerIP, c.Subnet, ErrConfig)
		}
		if c.LeaseTime <= 0 {
			c.LeaseTime = DefaultLeaseTime
		}
	}
	return c, nil
}

// Sentinel errors.
var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("invalid dhcp config")
	// ErrUnsupportedArch is returned (and the client gets no reply) when a
	// PXE client's architecture has no boot file.
	ErrUnsupportedArch = errors.New("unsupported client architecture")
	// ErrMalformed reports a request that is not a usable DHCP request.
	ErrMalformed = errors.New("malformed dhcp request")
	// ErrNoAddress is returned by a Backend whose pool is exhausted.
	ErrNoAddress = errors.New("no address available")
	// ErrAddressTaken is returned by a Backend when the requested address
	// belongs to another machine; the handler answers NAK.
	ErrAddressTaken = errors.New("address taken")
)
