package ipxe_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/server/internal/boot/ipxe"
)

const fp = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

var (
	mac    = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	params = ipxe.Params{Servers: []string{"10.0.0.1:7443", "10.0.0.2:7443"}, Fingerprint: fp, Token: "disc-Tok_en.1", Extra: "console=ttyS0,115200  quiet"}
)

const discoveryScript = `#!ipxe
echo underlay: 52:54:00:12:34:56 boots the discovery image
kernel http://10.0.0.1:7446/images/vmlinuz initrd=initramfs underlay.servers=10.0.0.1:7443,10.0.0.2:7443 underlay.fp=` + fp + ` underlay.token=disc-Tok_en.1 underlay.mac=52:54:00:12:34:56 console=ttyS0,115200 quiet
initrd --name initramfs http://10.0.0.1:7446/images/initramfs
boot
`

const localDiskScript = `#!ipxe
echo underlay: 52:54:00:12:34:56 boots from local disk
iseq ${platform} efi && exit ||
sanboot --no-describe --drive 0x80
`

func TestRender(t *testing.T) {
	with := func(f func(*ipxe.Params)) ipxe.Params {
		p := params
		p.Servers = append([]string(nil), params.Servers...)
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		base    string
		plan    ipxe.Plan
		params  ipxe.Params
		want    string
		wantErr error
	}{
		{name: "discovery", base: "http://10.0.0.1:7446/", params: params, want: discoveryScript},
		{name: "local disk needs no params", base: "http://10.0.0.1:7446", plan: ipxe.Plan{Mode: ipxe.LocalDisk}, want: localDiskScript},
		{name: "token with setting expansion", params: with(func(p *ipxe.Params) { p.Token = "${net0/mac}" }), wantErr: ipxe.ErrUnsafe},
		{name: "token with newline command", params: with(func(p *ipxe.Params) { p.Token = "t\nshell" }), wantErr: ipxe.ErrUnsafe},
		{name: "token with space", params: with(func(p *ipxe.Params) { p.Token = "t x" }), wantErr: ipxe.ErrUnsafe},
		{name: "fingerprint with chain", params: with(func(p *ipxe.Params) { p.Fingerprint = "aa||chain" }), wantErr: ipxe.ErrUnsafe},
		{name: "server with semicolon", params: with(func(p *ipxe.Params) { p.Servers[0] = "a;shell" }), wantErr: ipxe.ErrUnsafe},
		{name: "server with comma", params: with(func(p *ipxe.Params) { p.Servers[0] = "a,b" }), wantErr: ipxe.ErrUnsafe},
		{name: "extra with newline is split, extra with $ refused", params: with(func(p *ipxe.Params) { p.Extra = "quiet\n${x}" }), wantErr: ipxe.ErrUnsafe},
		{name: "extra with comment", params: with(func(p *ipxe.Params) { p.Extra = "a #b" }), wantErr: ipxe.ErrUnsafe},
		{name: "empty token", params: with(func(p *ipxe.Params) { p.Token = "" }), wantErr: ipxe.ErrUnsafe},
		{name: "no servers", params: with(func(p *ipxe.Params) { p.Servers = nil }), wantErr: ipxe.ErrUnsafe},
		{name: "base with query", base: "http://x/?a=${b}", params: params, wantErr: ipxe.ErrUnsafe},
		{name: "base not http", base: "tftp://10.0.0.1", params: params, wantErr: ipxe.ErrUnsafe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == "" {
				base = "http://10.0.0.1:7446"
			}
			var buf bytes.Buffer
			err := ipxe.Render(&buf, base, mac, tt.plan, tt.params)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Render error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && buf.Len() != 0 {
				t.Errorf("Render wrote %q despite an error", buf.String())
			}
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("script (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "52:54:00:12:34:56", want: "52:54:00:12:34:56"},
		{in: "52-54-00-AB-CD-EF", want: "52:54:00:ab:cd:ef"},
		{in: "", wantErr: true},
		{in: "5254.0012.3456", wantErr: true},
		{in: "52:54:00:12:34:5g", wantErr: true},
		{in: "52:54:00:12:34:56:78:9a", wantErr: true},
		{in: "${net0/mac}xxxxxx", wantErr: true},
		{in: "52:54:00:12:34\n56", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ipxe.ParseMAC(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ipxe.ErrBadMAC) {
					t.Fatalf("ParseMAC(%q) = %v, %v; want ErrBadMAC", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("ParseMAC (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzRender checks that no token, fingerprint, server list or extra
// parameter can add a line, a command or a setting expansion to the script.
func FuzzRender(f *testing.F) {
	f.Add("10.0.0.1:7443,10.0.0.2:7443", fp, "disc-token", "console=ttyS0", false)
	f.Add("a:1", "aa", "${net0/mac}", "", false)
	f.Add("a:1", "aa\nshell", "t", "quiet", false)
	f.Add("a:1", "aa", "t", "x || shell", false)
	f.Add("", "", "", "", true)
	f.Add("a:1;reboot", "aa", "t", "#", false)
	f.Fuzz(func(t *testing.T, servers, fingerprint, token, extra string, local bool) {
		plan := ipxe.Plan{}
		if local {
			plan.Mode = ipxe.LocalDisk
		}
		p := ipxe.Params{Servers: strings.Split(servers, ","), Fingerprint: fingerprint, Token: token, Extra: extra}
		var buf bytes.Buffer
		if err := ipxe.Render(&buf, "http://10.0.0.1:7446", mac, plan, p); err != nil {
			if !errors.Is(err, ipxe.ErrUnsafe) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		want := []string{"#!ipxe", "echo ", "kernel ", "initrd ", "boot"}
		if local {
			want = []string{"#!ipxe", "echo ", "iseq ${platform} efi && exit ||", "sanboot "}
		}
		if len(lines) != len(want) {
			t.Fatalf("script has %d lines, want %d:\n%s", len(lines), len(want), buf.String())
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, want[i]) {
				t.Fatalf("line %d = %q, want prefix %q", i, l, want[i])
			}
			if i > 0 && want[i] != "iseq ${platform} efi && exit ||" && strings.ContainsAny(l, "${}\"'\\#|&;\r\t") {
				t.Fatalf("line %d carries iPXE syntax: %q", i, l)
			}
		}
		if !local {
			for _, part := range []string{"underlay.token=" + token + " ", "underlay.fp=" + fingerprint + " ", "underlay.servers=" + servers + " "} {
				if !strings.Contains(lines[2], part) {
					t.Fatalf("kernel line %q lacks %q", lines[2], part)
				}
			}
		}
	})
}
