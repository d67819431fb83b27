package dhcp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/sys/unix"

	"underlay.dev/server/internal/boot/dhcp"
)

func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// serve runs s.Serve on conn until the test ends.
func serve(tb testing.TB, s *dhcp.Server, conn net.PacketConn) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
}

// TestServerSurvivesBadPackets sends garbage and a packet whose handling
// panics, then checks the server still answers, over loopback.
func TestServerSurvivesBadPackets(t *testing.T) {
	b := newPool()
	b.Panic = true
	h := newTestHandler(t, dhcp.Authoritative, b)
	srvConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s := dhcp.NewServer(h, testLogger(t))
	s.ClientPort = client.LocalAddr().(*net.UDPAddr).Port
	serve(t, s, srvConn)

	inform := dhclient(t, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("127.0.0.1")))
	for _, p := range [][]byte{
		[]byte("garbage"),
		{},
		dhclient(t, dhcpv4.MessageTypeDiscover).ToBytes(), // backend panics
		inform.ToBytes(),
	} {
		if _, err := client.WriteTo(p, srvConn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// The deadline only stops a broken test from hanging.
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := client.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no reply after bad packets: %v", err)
	}
	resp, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	got := summarize(t, inform, resp)
	want := &summary{Type: "ACK", YIAddr: "0.0.0.0", CIAddr: "127.0.0.1", SIAddr: "0.0.0.0", ServerID: "10.0.0.1",
		Mask: "255.255.255.0", Router: "10.0.0.254", Broadcast: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inform reply (-want +got):\n%s", diff)
	}
}

// TestServerRealClient runs the Server on one end of a veth pair between
// two network namespaces and busybox udhcpc on the other; the client must
// end up with the address the backend leased. Needs root and udhcpc.
func TestServerRealClient(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	udhcpc, err := exec.LookPath("udhcpc")
	if err != nil {
		t.Skip("udhcpc not installed (apt-get install udhcpc)")
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	srvNS, cliNS := "ul-dhcps-"+id, "ul-dhcpc-"+id
	srvIf, cliIf := "uls"+id, "ulc"+id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	for _, ns := range []string{srvNS, cliNS} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("ip", "link", "add", srvIf, "netns", srvNS, "type", "veth", "peer", "name", cliIf, "netns", cliNS)
	run("ip", "-n", srvNS, "addr", "add", "10.0.0.1/24", "dev", srvIf)
	run("ip", "-n", srvNS, "link", "set", srvIf, "up")
	run("ip", "-n", cliNS, "link", "set", cliIf, "up")

	b := newPool()
	cfg := testConfig(dhcp.Authoritative)
	cfg.Interface = srvIf
	h, err := dhcp.NewHandler(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	conn := inNetns(t, srvNS, func() (net.PacketConn, error) {
		return server4.NewIPv4UDPConn(srvIf, &net.UDPAddr{IP: net.IPv4zero, Port: dhcp.ServerPort})
	})
	serve(t, dhcp.NewServer(h, testLogger(t)), conn)

	dir := t.TempDir()
	result := filepath.Join(dir, "lease")
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $subnet $router\" > "+result+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", cliNS, udhcpc, "-f", "-q", "-n", "-t", "5", "-T", "2",
		"-i", cliIf, "-s", script).CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	got, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("udhcpc bound no lease: %v\n%s", err, out)
	}
	if diff := cmp.Diff("10.0.0.100 255.255.255.0 10.0.0.254", strings.TrimSpace(string(got))); diff != "" {
		t.Errorf("client lease (-want +got):\n%s", diff)
	}
	mac := ""
	for _, c := range b.Calls() {
		mac = c.MAC
	}
	if b.LeaseOf(mac) != "10.0.0.100" {
		t.Errorf("backend lease of %s = %q, calls %+v", mac, b.LeaseOf(mac), b.Calls())
	}
	var methods []string
	for _, c := range b.Calls() {
		methods = append(methods, fmt.Sprintf("%s offer=%v result=%s", c.Method, c.Offer, c.Result))
	}
	want := []string{"lease offer=true result=10.0.0.100", "lease offer=false result=10.0.0.100"}
	if diff := cmp.Diff(want, methods); diff != "" {
		t.Errorf("backend calls (-want +got):\n%s", diff)
	}
}

// inNetns runs open on an OS thread switched into the named namespace, so
// the socket it creates lives there.
func inNetns(tb testing.TB, ns string, open func() (net.PacketConn, error)) net.PacketConn {
	tb.Helper()
	type result struct {
		conn net.PacketConn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := open()
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		tb.Fatalf("open socket in %s: %v", ns, r.err)
	}
	return r.conn
}
