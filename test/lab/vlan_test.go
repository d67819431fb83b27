package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	testMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x50}
	testIP  = netip.MustParseAddr("10.100.0.50")
	bcast   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func TestTagUntag(t *testing.T) {
	frame := append(append(append([]byte{}, bcast...), testMAC...), 0x08, 0x06, 'x', 'y')
	tagged := tag(frame, 100)
	if want := append(append(append(append([]byte{}, bcast...), testMAC...), 0x81, 0x00, 0x00, 0x64), 0x08, 0x06, 'x', 'y'); !bytes.Equal(tagged, want) {
		t.Fatalf("tag = % x, want % x", tagged, want)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		aux   packetAux
		want  []byte // nil: ignored
	}{
		{name: "tag in auxdata", frame: frame, aux: packetAux{VLANValid: true, VLANTCI: 100, VLANTPID: 0x8100}, want: frame},
		{name: "tag in auxdata with priority bits", frame: frame, aux: packetAux{VLANValid: true, VLANTCI: 0xa064}, want: frame},
		{name: "inline tag", frame: tagged, want: frame},
		{name: "other VLAN in auxdata", frame: frame, aux: packetAux{VLANValid: true, VLANTCI: 200}},
		{name: "other VLAN inline", frame: tag(frame, 200)},
		{name: "802.1ad outer tag", frame: frame, aux: packetAux{VLANValid: true, VLANTCI: 100, VLANTPID: 0x88a8}},
		{name: "untagged", frame: frame},
		{name: "our own outgoing frame", frame: tagged, aux: packetAux{Outgoing: true}},
		{name: "runt", frame: tagged[:15]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := untag(tc.frame, tc.aux, 100)
			if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
				t.Errorf("untag = % x, %v; want % x", got, ok, tc.want)
			}
		})
	}
}

func TestParseVLAN(t *testing.T) {
	for _, tc := range []struct {
		id   int
		cidr string
		want string
	}{
		{100, "10.100.0.1/24", "10.100.0.1/24"},
		{0, "10.100.0.1/24", "vlan id 0 is outside 1..4094"},
		{4095, "10.100.0.1/24", "vlan id 4095 is outside 1..4094"},
		{100, "10.100.0.1", `gateway "10.100.0.1" is not an IPv4 address with a prefix of at most /30 (such as 10.100.0.1/24)`},
		{100, "2001:db8::1/64", `gateway "2001:db8::1/64" is not an IPv4 address with a prefix of at most /30 (such as 10.100.0.1/24)`},
		{100, "10.100.0.0/24", "gateway 10.100.0.0/24 is the network address; give the gateway's own address"},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.id, tc.cidr), func(t *testing.T) {
			p, err := parseVLAN(tc.id, tc.cidr)
			got := p.String()
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseVLAN (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVLAN sends tagged frames from a veth port of br0, as a VM's bond.100
// would, and checks the terminator: ARP and ping of the gateway, a ping of a
// node namespace on br0 routed through the bridge namespace, and that
// untagged and other-VLAN frames do not reach br100.
func TestVLAN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root for network namespaces, taps and packet sockets")
	}
	lab := NewNetwork(t)
	node := fmt.Sprintf("ulab%d-n1", lab.N)
	lab.AddNamespace(node, lab.Addr(11))
	v := lab.AddVLAN(t, 100, "10.100.0.1/24")
	if v.Router != lab.Addr(RouterHost) || v.Bridge != "br100" {
		t.Errorf("VLAN = router %s bridge %s", v.Router, v.Bridge)
	}
	port := newTestPort(t, lab)
	gw := netip.MustParseAddr("10.100.0.1")

	var gwMAC net.HardwareAddr
	t.Run("ARP for the gateway is answered tagged", func(t *testing.T) {
		port.send(t, tag(arp(1, testMAC, testIP, bcast, gw), 100))
		f := port.await(t, "ARP reply from 10.100.0.1", func(f []byte) bool {
			return ethType(f) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 2 && netip.AddrFrom4([4]byte(f[28:32])) == gw
		})
		gwMAC = net.HardwareAddr(f[22:28])
	})
	if gwMAC == nil {
		out, _ := exec.Command("ip", "netns", "exec", lab.NS, "ip", "-s", "link").CombinedOutput()
		out2, _ := exec.Command("ip", "netns", "exec", lab.NS, "ip", "neigh").CombinedOutput()
		t.Fatalf("no gateway MAC; stats %+v\n%s\n%s", v.Stats(), out, out2)
	}
	for _, dst := range []netip.Addr{gw, lab.Addr(11)} {
		t.Run("ping "+dst.String(), func(t *testing.T) {
			port.send(t, tag(echo(testMAC, gwMAC, testIP, dst, 7), 100))
			port.await(t, "echo reply from "+dst.String(), func(f []byte) bool {
				return ethType(f) == 0x0800 && f[23] == 1 && netip.AddrFrom4([4]byte(f[26:30])) == dst && f[34] == 0 && binary.BigEndian.Uint16(f[40:]) == 7
			})
		})
	}

	t.Run("only VLAN 100 reaches br100", func(t *testing.T) {
		sniff := listenIn(t, lab.NS, v.Bridge)
		before := v.Stats()
		marker := func(s string) []byte {
			f := append(append([]byte{}, bcast...), testMAC...)
			return append(append(f, 0x88, 0xb5), []byte("vlan-test-"+s)...)
		}
		port.send(t, marker("untagged"))
		port.send(t, tag(marker("vid200"), 200))
		port.send(t, tag(marker("tagged"), 100))
		buf := make([]byte, 2048)
		deadline := time.Now().Add(5 * time.Second)
		var seen []string
		for !strings.Contains(strings.Join(seen, " "), "tagged") {
			_ = sniff.SetReadDeadline(deadline)
			f, _, err := sniff.read(buf)
			if err != nil {
				t.Fatalf("sniffing br100: %v (seen %q)", err, seen)
			}
			if i := bytes.Index(f, []byte("vlan-test-")); i >= 0 {
				seen = append(seen, string(f[i+len("vlan-test-"):]))
			}
		}
		if diff := cmp.Diff([]string{"tagged"}, seen); diff != "" {
			t.Errorf("markers on br100 (-want +got):\n%s", diff)
		}
		if got := v.Stats().Ignored - before.Ignored; got < 2 {
			t.Errorf("ignored %d frames, want at least the untagged and the VLAN 200 one", got)
		}
	})
	if st := v.Stats(); st.FromTrunk == 0 || st.ToTrunk == 0 {
		t.Errorf("stats = %+v", st)
	}
}

// testPort is a veth port of br0 whose other end, eth0 in a namespace of
// its own without addresses, has a packet socket; it answers ARP for
// testIP on VLAN 100 while it waits.
type testPort struct {
	c *packetConn
}

func newTestPort(t *testing.T, lab *Network) *testPort {
	t.Helper()
	ns := fmt.Sprintf("ulab%d-vtest", lab.N)
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	lab.In("ip", "link", "add", "vtest", "type", "veth", "peer", "name", "eth0", "netns", ns)
	lab.In("ip", "link", "set", "vtest", "master", "br0", "up")
	mustRun(t, "ip", "-n", ns, "link", "set", "eth0", "address", testMAC.String(), "up")
	return &testPort{c: listenIn(t, ns, "eth0")}
}

func listenIn(t *testing.T, ns, ifname string) *packetConn {
	t.Helper()
	var c *packetConn
	if err := inNetns(ns, func() error {
		var err error
		c, err = listenPacket(ifname)
		return err
	}); err != nil {
		t.Fatalf("packet socket on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (p *testPort) send(t *testing.T, frame []byte) {
	t.Helper()
	if err := p.c.write(frame); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// await reads VLAN 100 frames (untagged) until match accepts one.
func (p *testPort) await(t *testing.T, what string, match func([]byte) bool) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = p.c.SetReadDeadline(deadline)
		raw, aux, err := p.c.read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no %s tagged with VLAN 100 within 5s", what)
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		f, ok := untag(raw, aux, 100)
		if !ok || len(f) < 42 {
			continue
		}
		if ethType(f) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 1 && netip.AddrFrom4([4]byte(f[38:42])) == testIP {
			// Who has testIP: answer, tagged.
			p.send(t, tag(arp(2, testMAC, testIP, net.HardwareAddr(f[22:28]), netip.AddrFrom4([4]byte(f[28:32]))), 100))
			continue
		}
		if match(f) {
			return append([]byte(nil), f...)
		}
	}
}

func ethType(f []byte) uint16 { return binary.BigEndian.Uint16(f[12:]) }

// arp builds an ARP request (op 1, to broadcast) or reply (op 2).
func arp(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	f := append(append([]byte{}, tha...), sha...)
	f = binary.BigEndian.AppendUint16(f, 0x0806)
	f = append(f, 0, 1, 8, 0, 6, 4)
	f = binary.BigEndian.AppendUint16(f, op)
	f = append(append(f, sha...), spa.AsSlice()...)
	if op == 1 {
		tha = make(net.HardwareAddr, 6)
	}
	return append(append(f, tha...), tpa.AsSlice()...)
}

// echo builds an ICMP echo request with id 7 and sequence seq.
func echo(src, dst net.HardwareAddr, from, to netip.Addr, seq uint16) []byte {
	icmp := []byte{8, 0, 0, 0, 0, 7, 0, 0}
	binary.BigEndian.PutUint16(icmp[6:], seq)
	icmp = append(icmp, []byte("underlay-vlan-test")...)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	ip = append(append(ip, from.AsSlice()...), to.AsSlice()...)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	f := append(append([]byte{}, dst...), src...)
	f = binary.BigEndian.AppendUint16(f, 0x0800)
	return append(append(f, ip...), icmp...)
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
