package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Defaults for Config.
const (
	DefaultTimeout   = 3 * time.Minute
	DefaultMemoryMiB = 1024
	// powerOffGrace is how long a VM may run on after printing its result.
	powerOffGrace = 10 * time.Second
)

// Markers guest.Main prints on the serial console around the test output.
const (
	// StartMarker starts the test output.
	StartMarker = "VMTEST-START"
	// ResultMarker ends it: "VMTEST-RESULT exit=<m.Run's code>".
	ResultMarker = "VMTEST-RESULT"
	// CmdlineFlag on the kernel command line tells guest.Main it runs in
	// a vmtest VM.
	CmdlineFlag = "underlay.vmtest=1"
	// guestPrefix starts guest.Main's own lines, shown even before
	// StartMarker.
	guestPrefix = "vmtest guest: "
)

// Config describes the VM.
type Config struct {
	// Disks are the sizes in bytes of extra virtio-blk disks (sparse raw
	// files). The guest sees them as vda, vdb, ... with serials
	// "vmtest-d0", "vmtest-d1", ....
	Disks []int64
	// NICs is the number of virtio-net NICs, NIC i on tap i of a private
	// network namespace, with MAC MAC(i). 0 means none.
	NICs int
	// Timeout bounds the whole VM run, boot included (default 3m). The
	// in-VM tests get -test.timeout of 30 s less unless TestArgs sets one,
	// so a hung test prints its goroutines.
	Timeout time.Duration
	// MemoryMiB is the guest's memory (default 1024).
	MemoryMiB int
	// TestArgs are the test binary's arguments, e.g. "-test.run", "TestX".
	// -test.v is added unless TestArgs sets it.
	TestArgs []string
	// Setup, when set, runs after the NICs' network namespace and taps
	// exist and before the VM boots, e.g. to bridge the taps or start a
	// peer in the namespace. taps[i] is NIC i's tap.
	Setup func(tb testing.TB, netns string, taps []string)
}

// MAC returns the MAC address of NIC i (0-based): 52:54:00:76:00:01 for
// the first.
func MAC(i int) string { return fmt.Sprintf("52:54:00:76:00:%02x", i+1) }

// DiskSerial returns the serial of disk i: "vmtest-d0" for the first.
func DiskSerial(i int) string { return fmt.Sprintf("vmtest-d%d", i) }

var resultRE = regexp.MustCompile(ResultMarker + ` exit=(-?\d+)`)

// Run builds pkg's tests with the vmtest build tag, boots them as the
// init program of a VM and fails tb unless they pass. See the package
// documentation.
func Run(tb testing.TB, pkg string, cfg Config) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("vmtest: needs root (QEMU, network namespaces, installing packages)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = DefaultMemoryMiB
	}
	start := time.Now()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	if err := ensureQEMU(tb); err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	img, err := ensureImage(tb, root)
	if err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	dir := tb.TempDir()
	bin := filepath.Join(dir, "guest.test")
	if err := buildTests(root, pkg, bin); err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := writeInitramfs(img.initrd, bin, testArgs(cfg), initrd); err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	built := time.Since(start)

	args := []string{
		"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2",
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot",
		"-kernel", img.kernel, "-initrd", initrd,
		"-append", "console=ttyS0 " + CmdlineFlag + " panic=-1",
		"-device", "virtio-rng-pci",
	}
	console := filepath.Join(dir, "console.log")
	args = append(args, "-serial", "file:"+console)
	for i, size := range cfg.Disks {
		p := filepath.Join(dir, fmt.Sprintf("disk%d.raw", i))
		if err := sparseFile(p, size); err != nil {
			tb.Fatalf("vmtest: disk %d: %v", i, err)
		}
		id := fmt.Sprintf("d%d", i)
		args = append(args, "-drive", "file="+p+",if=none,format=raw,cache=unsafe,id="+id,
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,serial=%s", id, DiskSerial(i)))
	}
	var prefix []string
	if cfg.NICs > 0 {
		ns, taps := newNetns(tb, cfg.NICs)
		if cfg.Setup != nil {
			cfg.Setup(tb, ns, taps)
		}
		for i, tap := range taps {
			args = append(args, "-netdev", fmt.Sprintf("tap,id=n%d,ifname=%s,script=no,downscript=no", i, tap),
				"-device", fmt.Sprintf("virtio-net-pci,netdev=n%d,mac=%s,romfile=", i, MAC(i)))
		}
		prefix = []string{"ip", "netns", "exec", ns}
	} else if cfg.Setup != nil {
		cfg.Setup(tb, "", nil)
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	argv := append(prefix, "qemu-system-x86_64")
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var qemuOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qemuOut, &qemuOut
	cmd.WaitDelay = 5 * time.Second
	booted := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("vmtest: start qemu: %v", err)
	}
	// Watch the console for the markers: when they appeared says where the
	// time went, and a VM that printed its result but does not power off
	// is stopped after a grace period.
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	var sawStart, sawResult time.Duration
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err = <-waitDone:
			break wait
		case <-tick.C:
			if sawStart != 0 && sawResult != 0 {
				if time.Since(booted)-sawResult > powerOffGrace {
					tb.Logf("vmtest: %s: VM did not power off %v after its result; stopping it", pkg, powerOffGrace)
					_ = cmd.Process.Kill()
				}
				continue
			}
			b, _ := os.ReadFile(console)
			if sawStart == 0 && bytes.Contains(b, []byte(StartMarker)) {
				sawStart = time.Since(booted)
			}
			if sawResult == 0 && resultRE.Match(b) {
				sawResult = time.Since(booted)
			}
		}
	}
	elapsed := time.Since(booted)
	log, _ := os.ReadFile(console)
	out, code, found := parseConsole(log)

	if found {
		tb.Logf("vmtest: %s: in-VM test output:\n%s", pkg, out)
	}
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	tb.Logf("vmtest: %s: build %v; VM %v: power-on to tests %v, tests %v, power-off %v", pkg,
		round(built), round(elapsed), round(sawStart), round(sawResult-sawStart), round(elapsed-sawResult))
	switch {
	case ctx.Err() != nil:
		tb.Fatalf("vmtest: %s: VM still running after %v; console (tail):\n%s", pkg, cfg.Timeout, tail(log, 60))
	case !found:
		tb.Fatalf("vmtest: %s: VM ended without a %s line (qemu: %v %s); console (tail):\n%s",
			pkg, ResultMarker, err, bytes.TrimSpace(qemuOut.Bytes()), tail(log, 60))
	case code != 0:
		tb.Errorf("vmtest: %s: in-VM tests failed (exit %d)", pkg, code)
	default:
		if why := ranNothing(out); why != "" {
			tb.Errorf("vmtest: %s: %s (TestArgs %q)", pkg, why, cfg.TestArgs)
		}
	}
}

// ranNothing says why a passing in-VM run proves nothing, or "": no test
// ran, or a test skipped (inside the VM nothing should need to).
func ranNothing(out string) string {
	var passed, skipped []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "--- PASS: "); ok {
			passed = append(passed, strings.Fields(name)[0])
		}
		if name, ok := strings.CutPrefix(line, "--- SKIP: "); ok {
			skipped = append(skipped, strings.Fields(name)[0])
		}
	}
	switch {
	case len(skipped) > 0:
		return fmt.Sprintf("in-VM tests skipped: %s", strings.Join(skipped, ", "))
	case len(passed) == 0:
		return "no in-VM test ran"
	}
	return ""
}

// testArgs returns the test binary's arguments for cfg.
func testArgs(cfg Config) []string {
	args := append([]string(nil), cfg.TestArgs...)
	has := func(flag string) bool {
		for _, a := range args {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if name == flag {
				return true
			}
		}
		return false
	}
	if !has("test.v") {
		args = append([]string{"-test.v"}, args...)
	}
	if !has("test.timeout") {
		if t := cfg.Timeout - 30*time.Second; t > 0 {
			args = append(args, "-test.timeout="+t.String())
		}
	}
	return args
}

// parseConsole cuts the test output out of the serial console log: the
// lines between StartMarker and ResultMarker (and guest.Main's own lines
// before them), with the exit code the result line carries.
func parseConsole(log []byte) (out string, code int, found bool) {
	var b strings.Builder
	in := false
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if !in && strings.Contains(line, StartMarker) {
			in = true
			continue
		}
		if m := resultRE.FindStringSubmatch(line); m != nil {
			code, _ = strconv.Atoi(m[1])
			found = true
			// The marker may follow output that lacked a newline.
			if pre := line[:strings.Index(line, ResultMarker)]; pre != "" {
				b.WriteString(pre + "\n")
			}
			break
		}
		if in || strings.HasPrefix(line, guestPrefix) {
			b.WriteString(line + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n"), code, found
}

// buildTests compiles pkg's tests with the vmtest tag into a static binary.
func buildTests(root, pkg, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "test", "-c", "-tags", "vmtest", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go test -c -tags vmtest %s: %w\n%s", pkg, err, b)
	}
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("go test -c %s wrote no binary (no test files?): %w", pkg, err)
	}
	return nil
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// sparseFile creates a sparse file of size bytes.
func sparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
