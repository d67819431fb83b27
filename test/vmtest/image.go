package vmtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// image is the discovery image's kernel and initramfs.
type image struct{ kernel, initrd string }

// Lock files that serialise, across test processes, apt-get runs (the same
// file test/lab uses) and discovery image builds.
const (
	aptLock   = "/run/underlay-lab-apt.lock"
	imageLock = "/run/underlay-vmtest-image.lock"
)

// ensureQEMU installs qemu-system-x86 when qemu-system-x86_64 is missing.
func ensureQEMU(tb testing.TB) error {
	if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		return nil
	}
	tb.Logf("vmtest: installing qemu-system-x86")
	return withLock(aptLock, func() error {
		if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
			return nil
		}
		run := func(args ...string) error {
			var last error
			for attempt := 0; attempt < 3; attempt++ {
				cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=120"}, args...)...)
				cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
				out, err := cmd.CombinedOutput()
				if err == nil {
					return nil
				}
				last = fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(out, 10))
				time.Sleep(time.Duration(attempt+1) * 3 * time.Second)
			}
			return last
		}
		if err := run("update", "-qq"); err != nil {
			return err
		}
		return run("install", "-y", "-qq", "--no-install-recommends", "qemu-system-x86")
	})
}

// ensureImage returns the discovery image in root/discovery-image/out,
// building it with build.sh when it is not there.
func ensureImage(tb testing.TB, root string) (image, error) {
	out := filepath.Join(root, "discovery-image", "out")
	img := image{kernel: filepath.Join(out, "vmlinuz"), initrd: filepath.Join(out, "initramfs.cpio.zst")}
	present := func() bool {
		for _, p := range []string{img.kernel, img.initrd} {
			if _, err := os.Stat(p); err != nil {
				return false
			}
		}
		return true
	}
	if present() {
		return img, nil
	}
	err := withLock(imageLock, func() error {
		if present() {
			return nil
		}
		tb.Logf("vmtest: no discovery image in %s, building it (bash discovery-image/build.sh)", out)
		cmd := exec.Command("bash", "discovery-image/build.sh")
		cmd.Dir = root
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("discovery-image/build.sh: %w\n%s", err, tail(b.Bytes(), 30))
		}
		if !present() {
			return fmt.Errorf("discovery-image/build.sh made no %s or %s", img.kernel, img.initrd)
		}
		return nil
	})
	return img, err
}

// withLock runs fn holding an exclusive flock on path.
func withLock(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	return fn()
}

// Paths inside the VM.
const (
	guestBinary = "bin/vmtest-guest"
	// u-root's init runs /bin/uinit with the arguments in /etc/uinit.flags
	// (one Go-quoted argument a line).
	guestUinit = "bin/uinit"
	guestFlags = "etc/uinit.flags"
)

// writeInitramfs writes base (the discovery image's zstd cpio) followed by
// a plain newc cpio that installs bin as the uinit with args. The kernel
// unpacks concatenated archives in order, later entries replacing earlier
// ones; an uncompressed archive after a compressed one must start on a
// 4-byte boundary, so the gap is zero-filled.
func writeInitramfs(base, bin string, args []string, out string) error {
	src, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	n, err := io.Copy(dst, src)
	if err != nil {
		dst.Close()
		return fmt.Errorf("initramfs: copy %s: %w", base, err)
	}
	if pad := (512 - n%512) % 512; pad > 0 {
		if _, err := dst.Write(make([]byte, pad)); err != nil {
			dst.Close()
			return fmt.Errorf("initramfs: %w", err)
		}
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		dst.Close()
		return fmt.Errorf("initramfs: %w", err)
	}
	var flags strings.Builder
	for _, a := range args {
		fmt.Fprintf(&flags, "%q\n", a)
	}
	entries := []cpioEntry{
		{Name: "bin", Mode: cpioDir | 0o755},
		{Name: "etc", Mode: cpioDir | 0o755},
		{Name: guestBinary, Mode: cpioRegular | 0o755, Data: code},
		// A symlink entry replaces the image's /bin/uinit link; a regular
		// file would be written through it into the agent binary.
		{Name: guestUinit, Mode: cpioSymlink | 0o777, Data: []byte(filepath.Base(guestBinary))},
		{Name: guestFlags, Mode: cpioRegular | 0o644, Data: []byte(flags.String())},
	}
	if err := writeCPIO(dst, entries); err != nil {
		dst.Close()
		return fmt.Errorf("initramfs: %w", err)
	}
	return dst.Close()
}
