// Command invsnap captures the hardware snapshot that the inventory package's
// tests read: everything ghw's snapshot cloner takes, plus the files the
// inventory collector reads beyond ghw (DMI, all of /sys/class/net including
// MAC addresses, /proc/mdstat, /proc/net/vlan, EFI presence, hostname, kernel
// release, os-release, the hypervisor type, the clocksource and the udev
// database and /dev/disk links of block devices).
//
//	invsnap -o testdata/vm-example.tar.gz
//
// With -init it runs as PID 1 of a throwaway QEMU guest: it mounts /proc,
// /sys and /dev, loads the kernel modules listed in /modules.list, captures
// the snapshot, writes it base64-encoded between marker lines to the console
// and powers the guest off.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jaypipes/ghw/pkg/snapshot"
	"golang.org/x/sys/unix"
)

// Markers frame the base64 snapshot on the guest console.
const (
	beginMarker = "----- BEGIN INVSNAP -----"
	endMarker   = "----- END INVSNAP -----"
)

// netFiles are the per-interface files the collector reads, relative to the
// interface's sysfs directory. Links are kept as links.
var netFiles = []string{
	"address", "addr_assign_type", "operstate", "carrier", "speed", "mtu",
	"type", "uevent", "flags", "ifindex", "iflink", "tun_flags", "master",
	"device", "bonding/slaves", "bonding/mode", "brif/*", "bridge/bridge_id",
}

func main() {
	out := flag.String("o", "", "write the snapshot (tar.gz) to this file")
	asInit := flag.Bool("init", false, "run as PID 1 of a capture VM and print the snapshot to the console")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()
	if *asInit || os.Getpid() == 1 {
		runInit(ctx, log)
		return
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: invsnap -o FILE.tar.gz")
		os.Exit(2)
	}
	if err := capture(ctx, log, *out); err != nil {
		log.Error("capture failed", "error", err)
		os.Exit(1)
	}
}

// capture clones the tree into a scratch directory and packs it into out.
func capture(ctx context.Context, log *slog.Logger, out string) error {
	scratch, err := os.MkdirTemp("", "invsnap-")
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	if err := snapshot.CloneTreeInto(ctx, scratch); err != nil {
		return fmt.Errorf("ghw clone: %w", err)
	}
	cloneExtras(log, scratch)
	if err := snapshot.PackFrom(ctx, out, scratch); err != nil {
		return fmt.Errorf("pack %s: %w", out, err)
	}
	return nil
}

// cloneExtras copies what the inventory collector reads beyond ghw. A file
// that does not exist on this machine is skipped.
func cloneExtras(log *slog.Logger, dst string) {
	var paths []string
	for _, g := range []string{
		"/sys/class/dmi/id/*",
		"/proc/sys/kernel/hostname",
		"/proc/sys/kernel/osrelease",
		"/etc/os-release",
		"/proc/mdstat",
		"/proc/net/vlan/*",
		"/sys/hypervisor/type",
		"/sys/devices/system/clocksource/clocksource0/current_clocksource",
		"/dev/disk/by-path/*",
		"/dev/disk/by-id/*",
		"/run/udev/data/b*",
		"/sys/block/*/dev",
		"/sys/block/*/serial",
		"/sys/block/*/wwid",
		"/sys/block/*/device/serial",
		"/sys/block/*/device/model",
		"/sys/block/*/device/wwid",
		"/sys/block/*/*/dev",
	} {
		m, _ := filepath.Glob(g)
		paths = append(paths, m...)
	}
	for _, p := range paths {
		if err := copyEntry(p, filepath.Join(dst, p)); err != nil {
			log.Warn("skip", "path", p, "error", err)
		}
	}
	if fi, err := os.Stat("/sys/firmware/efi"); err == nil && fi.IsDir() {
		_ = os.MkdirAll(filepath.Join(dst, "sys/firmware/efi"), 0o755)
	}
	cloneNet(log, dst)
}

// cloneNet copies every interface (ghw skips virtual ones and all MACs)
// into its real sysfs directory, and the /sys/class/net link to it.
func cloneNet(log *slog.Logger, dst string) {
	classDir := "/sys/class/net"
	entries, err := os.ReadDir(classDir)
	if err != nil {
		log.Warn("list interfaces", "error", err)
		return
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(classDir, e.Name()))
		if err != nil {
			continue
		}
		real := filepath.Join(classDir, link)
		for _, f := range netFiles {
			m, _ := filepath.Glob(filepath.Join(real, f))
			for _, p := range m {
				if err := copyEntry(p, filepath.Join(dst, p)); err != nil {
					log.Debug("skip", "path", p, "error", err)
				}
			}
		}
		// The driver link lives in the device directory.
		if devLink, err := os.Readlink(filepath.Join(real, "device")); err == nil {
			drv := filepath.Join(real, devLink, "driver")
			if err := copyEntry(drv, filepath.Join(dst, drv)); err != nil {
				log.Debug("skip", "path", drv, "error", err)
			}
		}
		if err := copyEntry(filepath.Join(classDir, e.Name()), filepath.Join(dst, classDir, e.Name())); err != nil {
			log.Warn("link interface", "nic", e.Name(), "error", err)
		}
	}
}

// copyEntry copies a symlink as a symlink and a (pseudo)file by content.
func copyEntry(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 && !strings.HasPrefix(src, "/etc/") {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	}
	if fi.IsDir() {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// runInit is the PID 1 of a capture VM.
func runInit(ctx context.Context, log *slog.Logger) {
	defer func() {
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}()
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			log.Warn("mount", "target", m.dst, "error", err)
		}
	}
	if _, err := os.Stat("/sys/firmware/efi/efivars"); err == nil {
		_ = unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", 0, "")
	}
	if b, err := os.ReadFile("/hostname"); err == nil {
		_ = unix.Sethostname([]byte(strings.TrimSpace(string(b))))
	}
	loadModules(log, "/modules.list")
	// Give the drivers time to probe their devices.
	time.Sleep(3 * time.Second)
	out := "/tmp/snapshot.tar.gz"
	if err := capture(ctx, log, out); err != nil {
		log.Error("capture failed", "error", err)
		return
	}
	f, err := os.Open(out)
	if err != nil {
		log.Error("open snapshot", "error", err)
		return
	}
	defer f.Close()
	if err := emit(os.Stdout, f); err != nil {
		log.Error("emit snapshot", "error", err)
	}
}

// loadModules loads each module file listed in order, one path a line.
func loadModules(log *slog.Logger, list string) {
	f, err := os.Open(list)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		mf, err := os.Open(p)
		if err != nil {
			log.Warn("open module", "module", p, "error", err)
			continue
		}
		if err := unix.FinitModule(int(mf.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
			log.Warn("load module", "module", p, "error", err)
		}
		mf.Close()
	}
}

// emit writes r base64-encoded in 76-column lines between the markers.
func emit(w io.Writer, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(b)
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, beginMarker)
	for len(enc) > 76 {
		fmt.Fprintln(bw, enc[:76])
		enc = enc[76:]
	}
	fmt.Fprintln(bw, enc)
	fmt.Fprintln(bw, endMarker)
	return bw.Flush()
}
