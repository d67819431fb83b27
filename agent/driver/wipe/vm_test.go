//go:build vmtest

package wipe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/test/vmtest/guest"
)

// The tests of this file run inside a test/vmtest VM with the Debian
// kernel (which reads GPTs and has md), with four empty 64 MiB virtio
// disks vda..vdd. The host side is
//
//	vmtest.Run(t, "underlay.dev/agent/driver/wipe", vmtest.Config{
//		Disks:    []int64{64 << 20, 64 << 20, 64 << 20, 64 << 20},
//		TestArgs: []string{"-test.run", "TestVM"},
//	})

func TestMain(m *testing.M) { guest.Main(m) }

const mdadm = "/sbin/mdadm"

func requireVM(t *testing.T) {
	t.Helper()
	if !guest.InVM() {
		t.Skip("runs inside a test/vmtest VM with four scratch virtio disks")
	}
}

func vmCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	t.Logf("$ %s (err %v)\n%s", strings.Join(args, " "), err, out)
	return string(out), err
}

// stopArrays is a Config.Stop: it stops the md arrays that have one of
// devices, or a partition of one, as a member.
func stopArrays(t *testing.T) func(context.Context, []string) error {
	return func(ctx context.Context, devices []string) error {
		mds, _ := filepath.Glob("/sys/block/md*")
		for _, md := range mds {
			slaves, _ := os.ReadDir(filepath.Join(md, "slaves"))
			for _, s := range slaves {
				for _, d := range devices {
					if strings.HasPrefix(s.Name(), filepath.Base(d)) {
						if _, err := vmCommand(t, mdadm, "--stop", "/dev/"+filepath.Base(md)); err != nil {
							return err
						}
						goto next
					}
				}
			}
		next:
		}
		return nil
	}
}

// restoreGPT writes layout to dev again and has the kernel re-read it.
func restoreGPT(t *testing.T, dev string, size int64, layout []gptPart) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeGPT(t, f, size, layout)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := rereadPartitions(f); err != nil {
		t.Fatalf("BLKRRPART %s: %v", dev, err)
	}
}

// ext4Magic is where an ext4 superblock's magic sits in a filesystem.
const ext4Magic = 1024 + 56

func readAt(t *testing.T, dev string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, dev string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestVMWipe builds what a deployed machine has: GPTs on vda and vdb, an md
// RAID1 with 1.0 superblocks (at the partitions' ends) over vda1 and vdb1,
// an ext4 signature in vda2, and an md RAID1 with 1.2 superblocks over the
// whole of vdc and vdd; then wipes every disk of the machine (no Devices),
// with Stop stopping the arrays, and checks that nothing is left: no
// partitions, no superblocks, nothing when the same partition table is
// written back.
func TestVMWipe(t *testing.T) {
	requireVM(t)
	const size = 64 << 20
	for _, dev := range []string{"/dev/vda", "/dev/vdb"} {
		restoreGPT(t, dev, size, twoParts)
	}
	for _, p := range []string{"/sys/block/vda/vda1", "/sys/block/vda/vda2", "/sys/block/vdb/vdb1"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the kernel did not read the GPT: %v", err)
		}
	}
	writeAt(t, "/dev/vda2", ext4Magic, []byte{0x53, 0xef})
	if _, err := vmCommand(t, mdadm, "--create", "/dev/md/boot", "--run", "--metadata=1.0", "--level=1",
		"--raid-devices=2", "--assume-clean", "/dev/vda1", "/dev/vdb1"); err != nil {
		t.Fatal("mdadm --create over partitions failed")
	}
	if _, err := vmCommand(t, mdadm, "--create", "/dev/md/data", "--run", "--metadata=1.2", "--level=1",
		"--raid-devices=2", "--assume-clean", "/dev/vdc", "/dev/vdd"); err != nil {
		t.Fatal("mdadm --create over whole disks failed")
	}

	t.Run("busy without Stop", func(t *testing.T) {
		reports, err := Wipe(t.Context(), Config{Devices: []string{"/dev/vdc"}}, nil)
		want := "/dev/vdc: open: device is in use (held by a filesystem, md array or device mapper)"
		if err == nil || err.Error() != want {
			t.Fatalf("Wipe: err = %v, want %q", err, want)
		}
		if diff := cmp.Diff([]DiskReport{{Device: "/dev/vdc", Error: want}}, reports); diff != "" {
			t.Errorf("reports (-want +got):\n%s", diff)
		}
	})

	var log strings.Builder
	reports, err := Wipe(t.Context(), Config{Stop: stopArrays(t)}, &log)
	t.Logf("wipe log:\n%s", log.String())
	if err != nil {
		t.Fatalf("Wipe: %v", err)
	}
	disk := func(name string, parts ...string) DiskReport {
		r := DiskReport{Device: "/dev/" + name, Wiped: true, Zeroed: []string{
			"first 1 MiB of " + name + " (offset 0)",
			"last 1 MiB of " + name + " (offset 66060288)",
		}}
		if len(parts) > 0 {
			r.Zeroed = append(r.Zeroed,
				"first 1 MiB of "+name+"1 (offset 1048576)",
				"last 64 KiB of "+name+"1 (offset 34537472)",
				"first 1 MiB of "+name+"2 (offset 34603008)",
				"last 64 KiB of "+name+"2 (offset 65994752)")
		}
		return r
	}
	want := []DiskReport{disk("vda", "parts"), disk("vdb", "parts"), disk("vdc"), disk("vdd")}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if _, err := os.Stat("/sys/block/vda/vda1"); err == nil {
		t.Error("vda1 is still there after the wipe re-read the partition table")
	}
	for _, dev := range []string{"/dev/vdc", "/dev/vdd"} {
		if out, err := vmCommand(t, mdadm, "--examine", dev); err == nil {
			t.Errorf("mdadm --examine %s still finds a superblock:\n%s", dev, out)
		}
	}
	for _, dev := range []string{"/dev/vda", "/dev/vdb"} {
		restoreGPT(t, dev, size, twoParts)
	}
	for _, dev := range []string{"/dev/vda1", "/dev/vdb1"} {
		if out, err := vmCommand(t, mdadm, "--examine", dev); err == nil {
			t.Errorf("mdadm --examine %s finds the 1.0 superblock at the partition's end:\n%s", dev, out)
		}
	}
	if b := readAt(t, "/dev/vda2", ext4Magic, 2); b[0] != 0 || b[1] != 0 {
		t.Errorf("the ext4 magic in vda2 survived: % x", b)
	}
	if out, _ := vmCommand(t, mdadm, "--assemble", "--scan"); strings.Contains(out, "has been started") {
		t.Errorf("mdadm --assemble --scan still assembles an array")
	}
}
