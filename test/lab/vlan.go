package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VLAN terminates one 802.1Q VLAN of the lab network in userspace, because
// the host kernel has neither 8021q nor VLAN filtering on bridges: a veth
// port of br0 (the trunk) carries the tagged frames, a goroutine strips the
// tag of frames with the VLAN's ID and hands them to a tap on bridge
// br<ID>, and tags what comes back. br<ID> holds the VLAN's gateway
// address; the bridge namespace routes between the VLAN and br0, where it
// has the address Router, and the node namespaces route the VLAN's prefix
// through Router.
type VLAN struct {
	// ID is the VLAN ID.
	ID int
	// Bridge is the bridge in the network's namespace that carries the
	// VLAN untagged.
	Bridge string
	// Gateway is the bridge's address; VLAN hosts use it as their gateway.
	Gateway netip.Prefix
	// Router is the bridge namespace's address on br0.
	Router netip.Addr

	n      *Network
	trunk  *packetConn
	tap    *os.File
	wg     sync.WaitGroup
	closed atomic.Bool

	fromTrunk, toTrunk, ignored atomic.Uint64
}

// VLANStats counts the terminator's frames.
type VLANStats struct {
	// FromTrunk were tagged with the VLAN's ID and went to the bridge.
	FromTrunk uint64
	// ToTrunk came from the bridge and were sent tagged.
	ToTrunk uint64
	// Ignored came from the trunk untagged or with another VLAN ID.
	Ignored uint64
}

// RouterHost is the host part of VLAN.Router: 10.213.N.254.
const RouterHost = 254

// AddVLAN terminates VLAN id on the network with gatewayCIDR (such as
// 10.100.0.1/24) as the gateway address, enables IPv4 forwarding in the
// bridge namespace and routes the VLAN's prefix from every node namespace
// that exists (named ulab<N>-...; see VLAN.Route for later ones).
// Everything is removed at cleanup.
func (n *Network) AddVLAN(tb TB, id int, gatewayCIDR string) *VLAN {
	tb.Helper()
	gw, err := parseVLAN(id, gatewayCIDR)
	if err != nil {
		tb.Fatalf("lab: AddVLAN: %v", err)
	}
	v := &VLAN{ID: id, Bridge: fmt.Sprintf("br%d", id), Gateway: gw, Router: n.Addr(RouterHost), n: n}
	port, trunk, tapName := fmt.Sprintf("vt%d", id), fmt.Sprintf("vl%d", id), fmt.Sprintf("vtap%d", id)
	n.In("ip", "link", "add", port, "type", "veth", "peer", "name", trunk)
	n.In("ip", "link", "set", port, "master", "br0", "up")
	n.In("ip", "link", "set", trunk, "up")
	// Frames from VMs arrive as offloaded super-frames with partial
	// checksums; without these offloads on the port the kernel segments
	// and checksums them before they reach the trunk socket.
	if err := inNetns(n.NS, func() error { return disableOffloads(port) }); err != nil {
		tb.Fatalf("lab: AddVLAN: %v", err)
	}
	n.In("ip", "link", "add", v.Bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
	n.In("ip", "addr", "add", gw.String(), "dev", v.Bridge)
	n.In("ip", "link", "set", v.Bridge, "up")
	n.In("ip", "addr", "replace", v.Router.String()+"/24", "dev", "br0")
	n.In("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")

	if err := inNetns(n.NS, func() error {
		var err error
		if v.tap, err = openTap(tapName); err != nil {
			return err
		}
		v.trunk, err = listenPacket(trunk)
		return err
	}); err != nil {
		if v.tap != nil {
			v.tap.Close()
		}
		tb.Fatalf("lab: AddVLAN %d: %v", id, err)
	}
	n.In("ip", "link", "set", tapName, "master", v.Bridge, "up")
	v.wg.Add(2)
	go v.fromTrunkLoop()
	go v.toTrunkLoop()
	tb.Cleanup(v.close)

	out, _ := exec.Command("ip", "netns", "list").Output()
	prefix := fmt.Sprintf("ulab%d-", n.N)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == n.NS || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		if err := v.route(f[0]); err != nil {
			tb.Logf("lab: VLAN %d: no route from %s: %v", id, f[0], err)
		}
	}
	return v
}

// parseVLAN checks AddVLAN's arguments.
func parseVLAN(id int, gatewayCIDR string) (netip.Prefix, error) {
	if id < 1 || id > 4094 {
		return netip.Prefix{}, fmt.Errorf("vlan id %d is outside 1..4094", id)
	}
	gw, err := netip.ParsePrefix(gatewayCIDR)
	if err != nil || !gw.Addr().Is4() || gw.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("gateway %q is not an IPv4 address with a prefix of at most /30 (such as 10.100.0.1/24)", gatewayCIDR)
	}
	if gw.Addr() == gw.Masked().Addr() {
		return netip.Prefix{}, fmt.Errorf("gateway %s is the network address; give the gateway's own address", gw)
	}
	return gw, nil
}

// Route routes the VLAN's prefix from namespace ns (one with a veth on br0)
// through Router.
func (v *VLAN) Route(tb TB, ns string) {
	tb.Helper()
	if err := v.route(ns); err != nil {
		tb.Fatalf("lab: VLAN %d: route from %s: %v", v.ID, ns, err)
	}
}

func (v *VLAN) route(ns string) error {
	args := []string{"ip", "-n", ns, "route", "replace", v.Gateway.Masked().String(), "via", v.Router.String()}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Stats returns the frame counters.
func (v *VLAN) Stats() VLANStats {
	return VLANStats{FromTrunk: v.fromTrunk.Load(), ToTrunk: v.toTrunk.Load(), Ignored: v.ignored.Load()}
}

func (v *VLAN) close() {
	v.closed.Store(true)
	v.trunk.Close()
	v.tap.Close()
	v.wg.Wait()
}

func (v *VLAN) fromTrunkLoop() {
	defer v.wg.Done()
	buf := make([]byte, 65536)
	for {
		frame, aux, err := v.trunk.read(buf)
		if v.closed.Load() {
			return
		}
		if err != nil {
			v.n.tb.Logf("lab: VLAN %d: trunk: %v", v.ID, err)
			return
		}
		untagged, ok := untag(frame, aux, v.ID)
		if !ok {
			v.ignored.Add(1)
			continue
		}
		if _, err := v.tap.Write(untagged); err != nil {
			continue // a frame the tap refuses (too big)
		}
		v.fromTrunk.Add(1)
	}
}

func (v *VLAN) toTrunkLoop() {
	defer v.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := v.tap.Read(buf)
		if v.closed.Load() {
			return
		}
		if err != nil {
			v.n.tb.Logf("lab: VLAN %d: tap: %v", v.ID, err)
			return
		}
		if n < 14 {
			continue
		}
		if err := v.trunk.write(tag(buf[:n], v.ID)); err != nil {
			continue
		}
		v.toTrunk.Add(1)
	}
}

// etherVLAN is the 802.1Q tag protocol.
const etherVLAN = 0x8100

// packetAux is what PACKET_AUXDATA says about a received frame.
type packetAux struct {
	// VLANValid is set when the kernel took the tag off into VLANTCI.
	VLANValid bool
	VLANTCI   uint16
	VLANTPID  uint16 // 0 when the kernel did not say
	Outgoing  bool
}

// untag returns frame without its 802.1Q tag when the tag (in aux, or
// inline) carries VLAN id; ok is false for untagged frames, other IDs and
// other tag protocols.
func untag(frame []byte, aux packetAux, id int) ([]byte, bool) {
	if aux.Outgoing || len(frame) < 14 {
		return nil, false
	}
	if aux.VLANValid {
		if (aux.VLANTPID != 0 && aux.VLANTPID != etherVLAN) || int(aux.VLANTCI&0xfff) != id {
			return nil, false
		}
		return frame, true
	}
	if len(frame) < 18 || binary.BigEndian.Uint16(frame[12:]) != etherVLAN || int(binary.BigEndian.Uint16(frame[14:])&0xfff) != id {
		return nil, false
	}
	out := make([]byte, 0, len(frame)-4)
	out = append(out, frame[:12]...)
	return append(out, frame[16:]...), true
}

// tag inserts an 802.1Q tag with VLAN id (priority 0) after the MACs.
func tag(frame []byte, id int) []byte {
	out := make([]byte, 0, len(frame)+4)
	out = append(out, frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, etherVLAN)
	out = binary.BigEndian.AppendUint16(out, uint16(id&0xfff))
	return append(out, frame[12:]...)
}

// packetConn is an AF_PACKET socket bound to one interface, receiving every
// protocol with PACKET_AUXDATA, in the Go poller (Close ends a read).
type packetConn struct {
	f *os.File
}

// listenPacket opens a packet socket on ifname in the current namespace.
func listenPacket(ifname string) (*packetConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	for _, opt := range []int{unix.PACKET_AUXDATA, unix.PACKET_IGNORE_OUTGOING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, opt, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("packet socket option %d: %w", opt, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind packet socket to %s: %w", ifname, err)
	}
	return &packetConn{f: os.NewFile(uintptr(fd), "packet:"+ifname)}, nil
}

func (c *packetConn) Close() error { return c.f.Close() }

// SetReadDeadline bounds the next reads.
func (c *packetConn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// read returns the next frame (a slice of buf) and its auxiliary data.
func (c *packetConn) read(buf []byte) ([]byte, packetAux, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, packetAux{}, err
	}
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, packetAux{}, err
	}
	if rerr != nil {
		return nil, packetAux{}, rerr
	}
	var aux packetAux
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
		aux.Outgoing = true
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, packetAux{}, fmt.Errorf("control message: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		ad := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		aux.VLANValid = ad.Status&unix.TP_STATUS_VLAN_VALID != 0
		aux.VLANTCI = ad.Vlan_tci
		if ad.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			aux.VLANTPID = ad.Vlan_tpid
		}
	}
	return buf[:n], aux, nil
}

// write sends one frame as it is.
func (c *packetConn) write(frame []byte) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return werr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openTap creates tap device name in the current namespace; it goes away
// when the file is closed. The file is opened non-blocking and handed to
// the Go poller only once it is attached, so that Close ends a Read.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: TUNSETIFF: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}

// ethtoolValue mirrors struct ethtool_value.
type ethtoolValue struct {
	cmd, data uint32
}

// ifreqData mirrors struct ifreq with ifr_data set.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

// disableOffloads turns off scatter-gather, checksum offload, TSO and GSO
// on ifname (ethtool -K ifname sg off tx off tso off gso off).
func disableOffloads(ifname string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("offloads of %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	for _, cmd := range []uint32{unix.ETHTOOL_STSO, unix.ETHTOOL_SGSO, unix.ETHTOOL_SSG, unix.ETHTOOL_STXCSUM} {
		v := &ethtoolValue{cmd: cmd}
		var ifr ifreqData
		copy(ifr.name[:], ifname)
		ifr.data = unsafe.Pointer(v)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(v)
		if errno != 0 {
			return fmt.Errorf("offloads of %s: ethtool command %#x: %w", ifname, cmd, errno)
		}
	}
	return nil
}

// inNetns runs fn on a fresh OS thread in namespace ns (/run/netns/ns);
// sockets, taps and files it opens stay in ns. The thread is never handed
// back to other goroutines: it exits with its goroutine.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked on purpose
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
