package ipxe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/template"
)

// BootMode says what a machine boots next.
type BootMode int

// Boot modes.
const (
	// Discovery boots the discovery image (unknown machines and machines
	// being discovered again).
	Discovery BootMode = iota
	// LocalDisk boots the installed system from the first disk.
	LocalDisk
)

// Plan is a machine's boot plan.
type Plan struct {
	Mode BootMode
}

// Params go onto the discovery kernel command line as underlay.servers=,
// underlay.fp= and underlay.token= (the names the agent reads), followed
// by Extra.
type Params struct {
	Servers     []string // host:port of the management nodes
	Fingerprint string   // CA fingerprint (hex, optionally "sha256:")
	Token       string   // discovery enrollment token
	Extra       string   // further kernel parameters, space separated
}

// Sentinel errors.
var (
	// ErrBadMAC reports a missing or malformed mac query parameter.
	ErrBadMAC = errors.New("bad mac address")
	// ErrUnsafe reports a value that could change the meaning of the script.
	ErrUnsafe = errors.New("unsafe value for ipxe script")
	// ErrUnknownMachine is returned by a Backend for a MAC it has never seen;
	// such machines get the discovery image.
	ErrUnknownMachine = errors.New("unknown machine")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("invalid ipxe config")
)

// The script. LocalDisk: on EFI, "exit" hands control back to the firmware
// boot manager, which tries the next boot entry (the disk); on BIOS,
// "sanboot --no-describe --drive 0x80" boots the first hard disk directly,
// since "exit" from a BIOS option ROM often just halts. ${platform} is an
// iPXE setting expanded by iPXE itself; nothing from a request or the
// backend reaches the script without passing the checks in this file.
var script = template.Must(template.New("boot.ipxe").Funcs(template.FuncMap{
	"url": safeURL,
	"arg": safeArg,
}).Parse(`#!ipxe
{{- if .LocalDisk}}
echo underlay: {{arg .MAC}} boots from local disk
iseq ${platform} efi && exit ||
sanboot --no-describe --drive 0x80
{{- else}}
echo underlay: {{arg .MAC}} boots the discovery image
kernel {{url .Base "/images/vmlinuz"}} initrd=initramfs underlay.servers={{arg .Servers}} underlay.fp={{arg .Fingerprint}} underlay.token={{arg .Token}} underlay.mac={{arg .MAC}}{{range .Extra}} {{arg .}}{{end}}
initrd --name initramfs {{url .Base "/images/initramfs"}}
boot
{{- end}}
`))

type scriptData struct {
	LocalDisk   bool
	Base        string
	MAC         string
	Servers     string
	Fingerprint string
	Token       string
	Extra       []string
}

// Render writes the iPXE script for mac. base is the HTTP base URL the
// images are fetched from (e.g. "http://10.0.0.1:7446"). Every value is
// checked to be unable to inject iPXE syntax; on ErrUnsafe nothing is
// written.
func Render(w io.Writer, base string, mac net.HardwareAddr, plan Plan, p Params) error {
	if len(mac) != 6 {
		return fmt.Errorf("mac %q: %w", mac, ErrBadMAC)
	}
	d := scriptData{
		LocalDisk:   plan.Mode == LocalDisk,
		Base:        strings.TrimRight(base, "/"),
		MAC:         mac.String(),
		Servers:     strings.Join(p.Servers, ","),
		Fingerprint: p.Fingerprint,
		Token:       p.Token,
		Extra:       strings.Fields(p.Extra),
	}
	if !d.LocalDisk {
		if len(p.Servers) == 0 || p.Fingerprint == "" || p.Token == "" {
			return fmt.Errorf("discovery needs servers, fingerprint and token: %w", ErrUnsafe)
		}
		for _, s := range p.Servers {
			if s == "" || strings.Contains(s, ",") {
				return fmt.Errorf("server %q: %w", s, ErrUnsafe)
			}
		}
	}
	var buf bytes.Buffer
	if err := script.Execute(&buf, d); err != nil {
		return fmt.Errorf("render script for %s: %w", mac, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// safeArg allows only characters that iPXE takes literally inside one
// argument: no whitespace (argument split), no $ { } (setting expansion),
// no quotes, backslash, #, |, &, ; or control characters.
func safeArg(s string) (string, error) {
	if s == "" || len(s) > 1024 {
		return "", fmt.Errorf("value of length %d: %w", len(s), ErrUnsafe)
	}
	for _, r := range s {
		if !safeRune(r) {
			return "", fmt.Errorf("value %q contains %q: %w", s, r, ErrUnsafe)
		}
	}
	return s, nil
}

func safeRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("-._~:/=,+@%[]", r)
}

// safeURL joins base and path and checks the result is a plain http(s)
// URL made of safe characters.
func safeURL(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("base url %q: %w", base, ErrUnsafe)
	}
	return safeArg(base + path)
}

// ParseMAC accepts only the six-octet colon or dash form
// ("52:54:00:12:34:56"), which is what the DHCP server puts in the URL.
func ParseMAC(s string) (net.HardwareAddr, error) {
	if len(s) != 17 {
		return nil, fmt.Errorf("mac %q: %w", s, ErrBadMAC)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' && c != '-' {
				return nil, fmt.Errorf("mac %q: %w", s, ErrBadMAC)
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, fmt.Errorf("mac %q: %w", s, ErrBadMAC)
		}
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("mac %q: %w", s, ErrBadMAC)
	}
	return mac, nil
}
