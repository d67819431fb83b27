package discoveryimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The lab network lives only inside the test's own namespace.
const (
	labBridgeAddr = "10.213.0.1"
	labServer     = labBridgeAddr + ":7443"
	labMAC        = "52:54:00:21:30:01"
	bootBudget    = 3 * time.Minute
)

// bootMarker is one thing the serial console must show.
type bootMarker struct {
	name string
	re   *regexp.Regexp
}

var bootMarkers = []bootMarker{
	{"uinit started", regexp.MustCompile(`discovery image boot: preparing environment`)},
	{"guest clock is off", regexp.MustCompile(`time=2019-03-01T\S+ level=INFO msg="discovery image boot`)},
	{"modules loaded", regexp.MustCompile(`msg="modules loaded" .*loaded=[1-9][0-9]* `)},
	{"virtio link up", regexp.MustCompile(`msg="link up" .*link=eth0 type=device mac=` + labMAC)},
	{"dhcp lease on eth0", regexp.MustCompile(`msg="dhcp lease" .*interface=eth0 address=10\.213\.0\.(1[0-4][0-9]|150)/24 server=` + regexp.QuoteMeta(labBridgeAddr))},
	{"agent started", regexp.MustCompile(`msg="agent starting" .*servers=\[` + regexp.QuoteMeta(labServer) + `\]`)},
	{"agent found the cluster", regexp.MustCompile(`msg="cluster found" server=` + regexp.QuoteMeta(labServer))},
	{"machine enrolled", regexp.MustCompile(`msg="machine enrolled" machine_id=\S+ server=` + regexp.QuoteMeta(labServer))},
}

// TestBootDiscoveryImage boots the discovery image under QEMU (TCG) on a
// tap in a private network namespace with dnsmasq as the DHCP server and a
// real single-node underlay server, and checks from the serial console that
// the agent loads its modules, brings the link up, takes a lease on it and
// enrolls with a discovery token, all with a hardware clock years off.
func TestBootDiscoveryImage(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and taps")
	}
	ensureDebs(t, map[string]string{"qemu-system-x86_64": "qemu-system-x86", "dnsmasq": "dnsmasq"})
	img := buildImage(t)
	ns := newLabNet(t)
	dir := t.TempDir()

	dnsLog := filepath.Join(dir, "dnsmasq.log")
	startDaemon(t, "dnsmasq", dnsLog, "ip", "netns", "exec", ns, "dnsmasq", "--no-daemon",
		"--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=10.213.0.100,10.213.0.150,255.255.255.0,1h",
		"--dhcp-option=3,"+labBridgeAddr, "--dhcp-option=6,"+labBridgeAddr,
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file=", "--log-dhcp", "--log-facility=-")

	fp, token := startServer(t, ns, dir)

	serial := filepath.Join(dir, "serial.log")
	cmdline := strings.Join([]string{"console=ttyS0", "underlay.servers=" + labServer,
		"underlay.fp=" + fp, "underlay.token=" + token}, " ")
	start := time.Now()
	startDaemon(t, "qemu", filepath.Join(dir, "qemu.log"), "ip", "netns", "exec", ns,
		"qemu-system-x86_64", "-accel", "tcg", "-m", "1536", "-smp", "2",
		"-display", "none", "-monitor", "none", "-no-reboot",
		// A hardware clock years off: enrollment must not depend on it.
		"-rtc", "base=2019-03-01T00:00:00",
		"-serial", "file:"+serial,
		"-kernel", img.kernel, "-initrd", img.initrd, "-append", cmdline,
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+labMAC,
		"-device", "virtio-rng-pci")

	seen := waitMarkers(t, serial, start, bootMarkers)
	for _, m := range bootMarkers {
		t.Run(m.name, func(t *testing.T) {
			if _, ok := seen[m.name]; !ok {
				t.Errorf("serial console never showed %s (%s)", m.name, m.re)
			}
		})
	}
	t.Run("dhcp vendor class", func(t *testing.T) {
		b, _ := os.ReadFile(dnsLog)
		if !bytes.Contains(b, []byte("vendor class: underlay-agent")) {
			t.Errorf("dnsmasq did not see vendor class underlay-agent; its log:\n%s", tail(b, 40))
		}
	})
	if t.Failed() {
		b, _ := os.ReadFile(serial)
		t.Logf("serial console (tail):\n%s", tail(b, 80))
	}
}

// waitMarkers polls the serial log until every marker has shown up or the
// boot budget is spent, and logs when each first appeared.
func waitMarkers(t testing.TB, serial string, start time.Time, markers []bootMarker) map[string]time.Duration {
	t.Helper()
	seen := map[string]time.Duration{}
	deadline := start.Add(bootBudget)
	for len(seen) < len(markers) && time.Now().Before(deadline) {
		b, _ := os.ReadFile(serial)
		for _, m := range markers {
			if _, ok := seen[m.name]; !ok && m.re.Match(b) {
				seen[m.name] = time.Since(start).Round(100 * time.Millisecond)
				t.Logf("%-24s after %v", m.name, seen[m.name])
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return seen
}

var (
	fingerprintRE = regexp.MustCompile(`CA fingerprint: ([0-9a-f]{64})`)
	secretRE      = regexp.MustCompile(`"secret":\s*"([^"]+)"`)
)

// startServer builds and starts a single-node underlay server on the
// bridge address inside ns and creates a discovery token with the admin
// credentials it bootstraps. It returns the CA fingerprint and the token.
func startServer(t testing.TB, ns, dir string) (fingerprint, token string) {
	t.Helper()
	bin := filepath.Join(dir, "underlay")
	build := exec.Command("go", "build", "-o", bin, "./server/cmd/underlay")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build underlay: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "server.log")
	startDaemon(t, "underlay server", logPath, "ip", "netns", "exec", ns, bin, "server",
		"--data-dir", data, "--node-id", "n1", "--listen", labServer,
		"--raft-listen", labBridgeAddr+":7444", "--metrics-listen", "off", "--https-listen", "off")
	deadline := time.Now().Add(time.Minute)
	for fingerprint == "" && time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		if m := fingerprintRE.FindSubmatch(b); m != nil {
			fingerprint = string(m[1])
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fingerprint == "" {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("server did not come up within a minute:\n%s", tail(b, 30))
	}
	out, err := exec.Command("ip", "netns", "exec", ns, bin, "--creds", filepath.Join(data, "admin"),
		"--server", labServer, "token", "create", "--kind", "discovery", "--uses", "0", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	m := secretRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no secret in token create output:\n%s", out)
	}
	return fingerprint, string(m[1])
}

type image struct{ kernel, initrd string }

// buildImage runs build.sh, which returns at once when the image in out/
// is current.
func buildImage(t testing.TB) image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "build.sh")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, tail(out.Bytes(), 40))
	}
	t.Logf("build.sh:\n%s", tail(out.Bytes(), 4))
	img := image{kernel: filepath.Join("out", "vmlinuz"), initrd: filepath.Join("out", "initramfs.cpio.zst")}
	for _, p := range []string{img.kernel, img.initrd} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("build output: %v", err)
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	return image{kernel: abs(img.kernel), initrd: abs(img.initrd)}
}

// ensureDebs installs the Debian packages whose commands are missing.
func ensureDebs(t testing.TB, cmdToPkg map[string]string) {
	t.Helper()
	var pkgs []string
	for c, p := range cmdToPkg {
		if _, err := exec.LookPath(c); err != nil {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return
	}
	t.Logf("installing %v", pkgs)
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		t.Skipf("apt-get update: %v\n%s", err, out)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot install %v: %v\n%s", pkgs, err, out)
	}
}

// newLabNet creates a namespace with bridge br0 (10.213.0.1/24) and tap0
// enslaved to it, removed when the test ends.
func newLabNet(t testing.TB) string {
	t.Helper()
	ns := fmt.Sprintf("ulimg%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	in := func(args ...string) { t.Helper(); run(t, append([]string{"ip", "netns", "exec", ns}, args...)...) }
	in("ip", "link", "set", "lo", "up")
	in("ip", "link", "add", "br0", "type", "bridge")
	in("ip", "tuntap", "add", "tap0", "mode", "tap")
	in("ip", "link", "set", "tap0", "master", "br0")
	in("ip", "addr", "add", labBridgeAddr+"/24", "dev", "br0")
	in("ip", "link", "set", "br0", "up")
	in("ip", "link", "set", "tap0", "up")
	return ns
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// startDaemon starts a process with its output in logPath and kills it
// when the test ends.
func startDaemon(t testing.TB, name, logPath string, args ...string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s output (tail):\n%s", name, tail(b, 30))
		}
	})
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
