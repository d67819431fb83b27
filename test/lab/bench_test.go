//go:build bench

package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// The network boot benchmarks. Run them with
//
//	go test -tags bench -run 'TestBench(Boot|DHCP)' -count=1 -v -timeout 60m ./test/lab/
//
// BENCH_UEFI_BOOTS and BENCH_BIOS_BOOTS set the number of boots per
// firmware (default 3 each), BENCH_DHCP_RATES the perfdhcp rates
// (default "100,1000") and BENCH_DHCP_SECONDS the length of each perfdhcp
// run (default 20).

// benchEnv returns the integer in environment variable name, or def.
func benchEnv(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// loadavg returns the three load averages of /proc/loadavg.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// phases is one boot split at the serial-console milestones.
type phases struct {
	Name                                            string
	Firmware, DHCP, Download, KernelAgent, Discover time.Duration
	// Split is false when the firmware printed no iPXE output (SeaBIOS):
	// then Firmware holds power-on to kernel start, DHCP and Download are 0.
	Split      bool
	LoadBefore string
	LoadAfter  string
}

// split computes the phases of b: firmware is power-on to the iPXE banner,
// DHCP is the banner to the script's first line (DHCP plus the script's
// HTTP fetch), download is the script to "Linux version" (kernel and
// initramfs over HTTP, plus kernel decompression), kernel+agent is the
// kernel start to the machine's creation as discovered.
func split(name string, b Boot) (phases, error) {
	p := phases{Name: name, Discover: b.Discovered}
	kernel, ok := b.Seen["kernel"]
	if !ok {
		return p, fmt.Errorf("%s: no kernel milestone on the serial console", name)
	}
	p.KernelAgent = b.Discovered - kernel
	banner, ok1 := b.Seen["iPXE"]
	script, ok2 := b.Seen["iPXE script"]
	if !ok1 || !ok2 {
		p.Firmware = kernel
		return p, nil
	}
	p.Split = true
	p.Firmware, p.DHCP, p.Download = banner, script-banner, kernel-script
	return p, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// bootTable renders boots as markdown with medians and each phase's share
// of the summed boot times.
func bootTable(boots []phases) string {
	var sb strings.Builder
	sb.WriteString("| boot | firmware s | DHCP s | download s | kernel+agent s | power-on to discovered s | load before | load after |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---|---|\n")
	var fw, dh, dl, ka, tot []time.Duration
	var sum [5]time.Duration
	for _, p := range boots {
		d, l := secs(p.DHCP), secs(p.Download)
		if !p.Split {
			d, l = "-", "-"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Name, secs(p.Firmware), d, l,
			secs(p.KernelAgent), secs(p.Discover), p.LoadBefore, p.LoadAfter)
		fw, dh, dl = append(fw, p.Firmware), append(dh, p.DHCP), append(dl, p.Download)
		ka, tot = append(ka, p.KernelAgent), append(tot, p.Discover)
		for i, d := range []time.Duration{p.Firmware, p.DHCP, p.Download, p.KernelAgent, p.Discover} {
			sum[i] += d
		}
	}
	fmt.Fprintf(&sb, "| **median** | %s | %s | %s | %s | %s | | |\n", secs(median(fw)), secs(median(dh)),
		secs(median(dl)), secs(median(ka)), secs(median(tot)))
	share := func(d time.Duration) string {
		if sum[4] == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*d.Seconds()/sum[4].Seconds())
	}
	fmt.Fprintf(&sb, "| **share** | %s | %s | %s | %s | 100%% | | |\n", share(sum[0]), share(sum[1]), share(sum[2]), share(sum[3]))
	return sb.String()
}

// TestBenchBoot boots lab VMs one after another against a three-node
// authoritative cluster and reports the time from power-on to discovered,
// split into phases, plus the discovery image's sizes.
func TestBenchBoot(t *testing.T) {
	requireLab(t)
	imageSizes(t)
	lab := NewNetwork(t)
	c := StartCluster(t, lab, ClusterConfig{Size: 3, DHCPMode: Authoritative})
	cl := c.Client()
	for _, fw := range []struct {
		name string
		uefi bool
		n    int
	}{
		{"uefi", true, benchEnv(t, "BENCH_UEFI_BOOTS", 3)},
		{"bios", false, benchEnv(t, "BENCH_BIOS_BOOTS", 3)},
	} {
		if fw.n == 0 {
			continue
		}
		t.Run(fw.name, func(t *testing.T) {
			var boots []phases
			for i := 1; i <= fw.n; i++ {
				name := fmt.Sprintf("%s%d", fw.name, i)
				before := loadavg()
				vm := StartVM(t, lab, labVM(name, fw.uefi))
				b := WaitDiscovered(t, cl, vm)
				// Milestones are polled every 250 ms; let the watcher see
				// the last ones before the VM goes.
				time.Sleep(500 * time.Millisecond)
				b.Seen = vm.Milestones()
				vm.Stop()
				p, err := split(name, b)
				if err != nil {
					t.Fatalf("%v; milestones %v", err, b.Seen)
				}
				p.LoadBefore, p.LoadAfter = before, loadavg()
				if fw.uefi && !p.Split {
					t.Errorf("%s: no iPXE output on the serial console under OVMF; milestones %v", name, b.Seen)
				}
				t.Logf("%s: %+v (milestones %v)", name, p, b.Seen)
				boots = append(boots, p)
			}
			note := ""
			if !fw.uefi {
				note = " (SeaBIOS prints no iPXE output: the firmware column is power-on to kernel start, DHCP and download included)"
			}
			t.Logf("NETWORK BOOT %s, 3-node authoritative cluster%s:\n%s", fw.name, note, bootTable(boots))
		})
	}
}

// imageSizes logs the sizes of the discovery image.
func imageSizes(t *testing.T) {
	t.Helper()
	dir := ImageDir(t)
	var sb strings.Builder
	sb.WriteString("| file | bytes | MiB |\n|---|---:|---:|\n")
	for _, name := range []string{"vmlinuz", "initramfs"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("image: %v", err)
		}
		fmt.Fprintf(&sb, "| %s (compressed) | %d | %.1f |\n", name, fi.Size(), float64(fi.Size())/float64(mib))
	}
	// zstd ignores symbolic links given as arguments, so feed it stdin.
	cmd := exec.Command("zstd", "-dc")
	if f, err := os.Open(filepath.Join(dir, "initramfs")); err == nil {
		defer f.Close()
		cmd.Stdin = f
	}
	if out, err := cmd.Output(); err == nil {
		fmt.Fprintf(&sb, "| initramfs (uncompressed cpio) | %d | %.1f |\n", len(out), float64(len(out))/float64(mib))
	}
	t.Logf("DISCOVERY IMAGE SIZES:\n%s", sb.String())
}

// dhcpPool is the pool every server under test hands out: 10,240
// addresses of 10.213.0.0/16, away from the lab's own 10.213.N.0/24 (so
// Underlay's nodes, whose boot server address is in the lab /24, are inside
// the subnet they serve). The /16 is configured only inside the benchmark's
// namespaces.
type dhcpPool struct {
	CIDR, Server, Client, Start, End string
}

func poolFor(lab *Network) dhcpPool {
	first := 1
	if lab.N <= 45 {
		first = 100
	}
	return dhcpPool{CIDR: "10.213.0.0/16", Server: "10.213.0.1", Client: "10.213.0.3",
		Start: fmt.Sprintf("10.213.%d.0", first), End: fmt.Sprintf("10.213.%d.255", first+39)}
}

// poolClients is the number of simulated clients per perfdhcp run.
const poolClients = 5000

// ensureDHCPPackages installs perfdhcp, kea and dnsmasq when missing.
func ensureDHCPPackages(t *testing.T) {
	t.Helper()
	var missing []string
	for file, pkg := range map[string]string{"/usr/sbin/perfdhcp": "kea-admin",
		"/usr/sbin/kea-dhcp4": "kea-dhcp4-server", "/usr/sbin/dnsmasq": "dnsmasq"} {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	t.Logf("installing Debian packages %v", missing)
	if err := aptInstall(missing); err != nil {
		t.Fatalf("install %v: %v", missing, err)
	}
}

// perfResult is one perfdhcp run.
type perfResult struct {
	Server     string
	Rate       int     // requested exchanges/s
	Reported   float64 // perfdhcp's "Rate:" (4-way exchanges/s)
	Discovers  int
	Offers     int
	Requests   int
	Acks       int
	Drops      int // DISCOVER-OFFER drops + REQUEST-ACK drops
	Elapsed    time.Duration
	LoadBefore string
	LoadAfter  string
}

// LeasesPerSec is the completed 4-way exchanges (ACKs) per second of wall time.
func (r perfResult) LeasesPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acks) / r.Elapsed.Seconds()
}

// parsePerf reads perfdhcp's final report.
func parsePerf(out []byte) (perfResult, error) {
	var r perfResult
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	num := func(line, key string) int {
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, key)))
		return n
	}
	found := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "***Statistics for: "):
			section = strings.Trim(strings.TrimPrefix(line, "***Statistics for: "), "*")
		case strings.HasPrefix(line, "Rate: "):
			f := strings.Fields(line)
			r.Reported, _ = strconv.ParseFloat(f[1], 64)
			found = true
		case strings.HasPrefix(line, "sent packets:"):
			if section == "DISCOVER-OFFER" {
				r.Discovers = num(line, "sent packets:")
			} else if section == "REQUEST-ACK" {
				r.Requests = num(line, "sent packets:")
			}
		case strings.HasPrefix(line, "received packets:"):
			if section == "DISCOVER-OFFER" {
				r.Offers = num(line, "received packets:")
			} else if section == "REQUEST-ACK" {
				r.Acks = num(line, "received packets:")
			}
		case strings.HasPrefix(line, "drops:"):
			r.Drops += num(line, "drops:")
		}
	}
	if !found {
		return r, fmt.Errorf("no rate statistics in perfdhcp output:\n%s", tail(out, 30))
	}
	return r, nil
}

// dhcpLink is a lab network with a namespace for perfdhcp (at .3) and a
// namespace for the server under test (at .2, plus the pool's server address).
type dhcpLink struct {
	lab      *Network
	pool     dhcpPool
	serverNS string
	clientNS string
}

func newDHCPLink(t *testing.T, withServerNS bool) dhcpLink {
	t.Helper()
	lab := NewNetwork(t)
	l := dhcpLink{lab: lab, pool: poolFor(lab), clientNS: fmt.Sprintf("ulab%d-perf", lab.N)}
	lab.AddNamespace(l.clientNS, lab.Addr(3))
	// perfdhcp simulates a relay: giaddr is its interface's address and
	// replies come back to it on port 67, so that address is in the pool's
	// /16, which every server has an address in.
	mustRun(t, "ip", "netns", "exec", l.clientNS, "ip", "addr", "del", lab.Addr(3).String()+"/24", "dev", "eth0")
	mustRun(t, "ip", "netns", "exec", l.clientNS, "ip", "addr", "add", l.pool.Client+"/16", "dev", "eth0")
	if withServerNS {
		l.serverNS = fmt.Sprintf("ulab%d-srv", lab.N)
		lab.AddNamespace(l.serverNS, lab.Addr(2))
		mustRun(t, "ip", "netns", "exec", l.serverNS, "ip", "addr", "add", l.pool.Server+"/16", "dev", "eth0")
	}
	return l
}

// perf runs perfdhcp from the client namespace at rate for seconds with
// clients whose MACs start at base.
func (l dhcpLink) perf(t *testing.T, server string, rate, seconds int, base string) perfResult {
	t.Helper()
	args := []string{"ip", "netns", "exec", l.clientNS, "perfdhcp", "-4", "-l", "eth0",
		"-r", strconv.Itoa(rate), "-R", strconv.Itoa(poolClients), "-p", strconv.Itoa(seconds),
		"-b", "mac=" + base, "-d", "2", "-x", "e"}
	t.Logf("%s: %s", server, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
	defer cancel()
	before := loadavg()
	start := time.Now()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	elapsed := time.Since(start)
	// perfdhcp exits 3 when packets were dropped; its report is still whole.
	if err != nil && ctx.Err() != nil {
		t.Fatalf("perfdhcp: %v\n%s", err, tail(out, 40))
	}
	r, perr := parsePerf(out)
	if perr != nil {
		t.Fatalf("%s: %v (exit %v)", server, perr, err)
	}
	r.Server, r.Rate, r.Elapsed = server, rate, min(elapsed, time.Duration(seconds)*time.Second)
	r.LoadBefore, r.LoadAfter = before, loadavg()
	t.Logf("%s at %d/s: %d ACKs, %.1f leases/s, drops %d, perfdhcp rate %.1f, load %s -> %s\n%s",
		server, rate, r.Acks, r.LeasesPerSec(), r.Drops, r.Reported, before, r.LoadAfter, tail(out, 45))
	if r.Acks == 0 {
		t.Errorf("%s at %d/s: no lease completed", server, rate)
	}
	return r
}

// TestBenchDHCP measures authoritative DHCP throughput with perfdhcp:
// Underlay with one and three nodes, dnsmasq and kea, each alone on its own
// lab bridge, each with the same pool and the same perfdhcp settings.
func TestBenchDHCP(t *testing.T) {
	requireLab(t)
	ensureDHCPPackages(t)
	var rates []int
	for _, s := range strings.Split(envOr("BENCH_DHCP_RATES", "100,1000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("BENCH_DHCP_RATES: %v", err)
		}
		rates = append(rates, n)
	}
	if len(rates)*poolClients > 10240 {
		t.Fatalf("%d rates of %d clients exhaust the pool of 10240", len(rates), poolClients)
	}
	seconds := benchEnv(t, "BENCH_DHCP_SECONDS", 20)
	bin := BuildServer(t)
	var results []perfResult
	run := func(name string, start func(t *testing.T) dhcpLink) {
		t.Run(name, func(t *testing.T) {
			l := start(t)
			for i, rate := range rates {
				results = append(results, l.perf(t, name, rate, seconds, fmt.Sprintf("02:00:%02x:00:00:00", i+1)))
			}
		})
	}
	for _, size := range []int{1, 3} {
		run(fmt.Sprintf("underlay-%dnode", size), func(t *testing.T) dhcpLink {
			l := newDHCPLink(t, false)
			startUnderlayDHCP(t, l, size, bin)
			return l
		})
	}
	run("dnsmasq", func(t *testing.T) dhcpLink {
		l := newDHCPLink(t, true)
		dir := t.TempDir()
		StartProc(t, "dnsmasq", l.serverNS, filepath.Join(dir, "dnsmasq.log"), "dnsmasq", "--no-daemon",
			"--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces", "--dhcp-authoritative", "--no-ping",
			"--dhcp-range="+l.pool.Start+","+l.pool.End+",255.255.0.0,1h", "--dhcp-lease-max=20000",
			"--dhcp-option=3,"+l.pool.Server, "--dhcp-leasefile="+filepath.Join(dir, "leases"),
			"--pid-file=", "--log-facility=-")
		time.Sleep(time.Second)
		return l
	})
	run("kea", func(t *testing.T) dhcpLink {
		l := newDHCPLink(t, true)
		startKea(t, l.serverNS, l.pool)
		return l
	})
	t.Logf("DHCP THROUGHPUT (perfdhcp, %d s per run, %d clients per run, pool of 10240):\n%s", seconds, poolClients, perfTable(results))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// startUnderlayDHCP starts an authoritative cluster of size nodes and
// replaces its lab subnet by the benchmark pool.
func startUnderlayDHCP(t *testing.T, l dhcpLink, size int, bin string) *Cluster {
	t.Helper()
	c := StartCluster(t, l.lab, ClusterConfig{Size: size, DHCPMode: Authoritative, Binary: bin})
	for i, n := range c.Nodes {
		mustRun(t, "ip", "netns", "exec", n.NS, "ip", "addr", "add", fmt.Sprintf("10.213.0.%d/16", 11+i), "dev", "eth0")
	}
	cl := c.Client()
	c.call(func(ctx context.Context) error {
		_, err := cl.IPAM.DeleteSubnet(ctx, &underlayv1.DeleteSubnetRequest{Name: SubnetName})
		return err
	}, "delete lab subnet")
	sn := &underlayv1.Subnet{Name: SubnetName, Cidr: l.pool.CIDR, RangeStart: l.pool.Start, RangeEnd: l.pool.End,
		Gateway: l.pool.Server, LeaseSeconds: 3600}
	c.call(func(ctx context.Context) error {
		_, err := cl.IPAM.CreateSubnet(ctx, &underlayv1.CreateSubnetRequest{Subnet: sn})
		return err
	}, "create benchmark subnet")
	// Every node rebuilds its DHCP handler within a second of the change:
	// wait until each has logged serving twice (lab subnet, then ours).
	for _, n := range c.Nodes {
		eventually(t, NodeDeadline, n.ID+" to serve the benchmark subnet", func() bool {
			return bytes.Count(n.Output(), []byte(`msg="dhcp serving"`)) >= 2
		})
	}
	return c
}

// startKea runs kea-dhcp4 in ns with a memfile lease database.
func startKea(t *testing.T, ns string, pool dhcpPool) {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`{"Dhcp4": {
  "interfaces-config": {"interfaces": ["eth0"], "dhcp-socket-type": "raw"},
  "lease-database": {"type": "memfile", "persist": true, "lfc-interval": 0, "name": %q},
  "valid-lifetime": 3600,
  "authoritative": true,
  "subnet4": [{"id": 1, "subnet": %q, "interface": "eth0",
    "pools": [{"pool": "%s - %s"}],
    "option-data": [{"name": "routers", "data": %q}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "stdout"}]}]
}}`, filepath.Join(dir, "leases4.csv"), pool.CIDR, pool.Start, pool.End, pool.Server)
	path := filepath.Join(dir, "kea-dhcp4.json")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatalf("kea config: %v", err)
	}
	if out, err := exec.Command("kea-dhcp4", "-t", path).CombinedOutput(); err != nil {
		t.Fatalf("kea-dhcp4 -t: %v\n%s", err, out)
	}
	p := StartProc(t, "kea-dhcp4", ns, filepath.Join(dir, "kea.log"), "env", "KEA_PIDFILE_DIR="+dir,
		"KEA_LOCKFILE_DIR="+dir, "kea-dhcp4", "-c", path)
	time.Sleep(2 * time.Second)
	if !p.Running() {
		t.Fatalf("kea-dhcp4 exited:\n%s", tail(p.Output(), 30))
	}
}

// perfTable renders the runs as markdown, with each server's ratio to
// dnsmasq and kea at the same rate.
func perfTable(rs []perfResult) string {
	byKey := map[string]perfResult{}
	for _, r := range rs {
		byKey[fmt.Sprint(r.Server, r.Rate)] = r
	}
	ratio := func(r perfResult, other string) string {
		o, ok := byKey[fmt.Sprint(other, r.Rate)]
		if !ok || o.LeasesPerSec() == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", r.LeasesPerSec()/o.LeasesPerSec())
	}
	var sb strings.Builder
	sb.WriteString("| server | rate /s | DISCOVER sent | OFFER rcvd | REQUEST sent | ACK rcvd | drops | leases/s | perfdhcp rate | : dnsmasq | : kea | load before | load after |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %d | %d | %d | %.1f | %.1f | %s | %s | %s | %s |\n", r.Server, r.Rate,
			r.Discovers, r.Offers, r.Requests, r.Acks, r.Drops, r.LeasesPerSec(), r.Reported,
			ratio(r, "dnsmasq"), ratio(r, "kea"), r.LoadBefore, r.LoadAfter)
	}
	return sb.String()
}
