package wipe

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const mib = 1 << 20

// twoParts is a 64 MiB disk's layout: 1-33 MiB and 33-63 MiB.
var twoParts = []gptPart{{first: 2048, last: 67583, name: "root"}, {first: 67584, last: 129023, name: "data"}}

// stopRecorder is a Config.Stop that records its calls.
type stopRecorder struct{ calls [][]string }

func (s *stopRecorder) stop(_ context.Context, devices []string) error {
	s.calls = append(s.calls, devices)
	return nil
}

// TestWipeGPTDisk wipes a loop device holding a GPT with ext4 in both
// partitions. The partitions come from a sysfs tree written for the test
// (with the loop device's real entry), as the host kernel may not parse
// partition tables; TestVMWipe (vm_test.go, vmtest tag) runs the partition
// path on the Debian kernel.
func TestWipeGPTDisk(t *testing.T) {
	requireRoot(t)
	requireTools(t, tools)
	const size = 64 * mib
	dev := attach(t, image(t, size, twoParts), true)
	name := filepath.Base(dev)
	before := signatures(t, dev)
	for _, want := range []string{"0x200 gpt", "0x1fe PMBR", "0x3fffe00 gpt"} {
		if !slices.Contains(before, want) {
			t.Fatalf("wipefs before: %v lacks %q; the test setup is broken", before, want)
		}
	}
	for i := range twoParts {
		if got, want := probe(t, dev, &twoParts[i]), "LABEL=p"+itoa(uint64(i+1))+" TYPE=ext4"; got != want {
			t.Fatalf("blkid -p in partition %d before = %q, want %q", i+1, got, want)
		}
	}

	var stop stopRecorder
	var log strings.Builder
	cfg := Config{SysBlock: sysWithParts(t, dev, twoParts), Devices: []string{dev}, Stop: stop.stop}
	reports, err := Wipe(t.Context(), cfg, &log)
	if err != nil {
		t.Fatalf("Wipe: %v\nlog:\n%s", err, log.String())
	}
	want := []DiskReport{{Device: dev, Wiped: true, Zeroed: []string{
		"first 1 MiB of " + name + " (offset 0)",
		"last 1 MiB of " + name + " (offset 66060288)",
		"first 1 MiB of " + name + "p1 (offset 1048576)",
		"last 64 KiB of " + name + "p1 (offset 34537472)",
		"first 1 MiB of " + name + "p2 (offset 34603008)",
		"last 64 KiB of " + name + "p2 (offset 65994752)",
	}}}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{dev}}, stop.calls); diff != "" {
		t.Errorf("Stop calls (-want +got):\n%s", diff)
	}
	for _, line := range []string{
		dev + ": zeroed last 1 MiB of " + name + " (offset 66060288)\n",
		dev + ": zeroed first 1 MiB of " + name + "p2 (offset 34603008)\n",
		dev + ": partition table re-read\n",
	} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, log.String())
		}
	}
	if sigs := signatures(t, dev); len(sigs) != 0 {
		t.Errorf("wipefs after the wipe still sees %v", sigs)
	}
	if got := probe(t, dev, nil); got != "" {
		t.Errorf("blkid -p %s after the wipe = %q, want nothing", dev, got)
	}
	for i := range twoParts {
		if got := probe(t, dev, &twoParts[i]); got != "" {
			t.Errorf("blkid -p in partition %d after the wipe = %q, want nothing", i+1, got)
		}
	}
}

func TestWipeFilesystemOnWholeDevice(t *testing.T) {
	requireRoot(t)
	requireTools(t, tools)
	// Without partscan, BLKRRPART fails with EINVAL, which is not an error.
	dev := attach(t, image(t, 16*mib, nil), false)
	name := filepath.Base(dev)
	mkfs(t, dev, "whole")
	if got := probe(t, dev, nil); got != "LABEL=whole TYPE=ext4" {
		t.Fatalf("blkid -p before = %q, want ext4", got)
	}
	reports, err := Wipe(t.Context(), Config{Devices: []string{dev}}, nil)
	if err != nil {
		t.Fatalf("Wipe: %v", err)
	}
	want := []DiskReport{{Device: dev, Wiped: true, Zeroed: []string{
		"first 1 MiB of " + name + " (offset 0)",
		"last 1 MiB of " + name + " (offset 15728640)",
	}}}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if got := probe(t, dev, nil); got != "" {
		t.Errorf("blkid -p after = %q, want nothing", got)
	}
}

func TestWipeSkipsMounted(t *testing.T) {
	requireRoot(t)
	requireTools(t, tools)
	mounted := attach(t, image(t, 16*mib, nil), false)
	mkfs(t, mounted, "mounted")
	at := mountAt(t, mounted)
	free := attach(t, image(t, 16*mib, nil), false)
	mkfs(t, free, "free")

	var stop stopRecorder
	var log strings.Builder
	reports, err := Wipe(t.Context(), Config{Devices: []string{mounted, free}, Stop: stop.stop}, &log)
	if err != nil {
		t.Fatalf("Wipe: %v", err)
	}
	why := "holds mounted filesystem " + at + " (" + filepath.Base(mounted) + ")"
	want := []DiskReport{
		{Device: mounted, Skipped: why},
		{Device: free, Wiped: true, Zeroed: []string{
			"first 1 MiB of " + filepath.Base(free) + " (offset 0)",
			"last 1 MiB of " + filepath.Base(free) + " (offset 15728640)",
		}},
	}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if !strings.Contains(log.String(), mounted+": skipped: "+why+"\n") {
		t.Errorf("log does not say why %s was skipped:\n%s", mounted, log.String())
	}
	if diff := cmp.Diff([][]string{{free}}, stop.calls); diff != "" {
		t.Errorf("Stop calls (-want +got):\n%s", diff)
	}
	if p := probe(t, mounted, nil); p != "LABEL=mounted TYPE=ext4" {
		t.Errorf("mounted %s was touched: blkid -p = %q", mounted, p)
	}
	if p := probe(t, free, nil); p != "" {
		t.Errorf("blkid -p %s = %q, want nothing", free, p)
	}
}

// TestWipeRefusesBusyDevice checks the O_EXCL guard: a device held by a
// mount that the mountinfo given does not show is not written.
func TestWipeRefusesBusyDevice(t *testing.T) {
	requireRoot(t)
	requireTools(t, tools)
	dev := attach(t, image(t, 16*mib, nil), false)
	mkfs(t, dev, "busy")
	mountAt(t, dev)
	empty := filepath.Join(t.TempDir(), "mountinfo")
	writeFile(t, empty, "")
	reports, err := Wipe(t.Context(), Config{Devices: []string{dev}, MountInfo: empty}, nil)
	wantErr := dev + ": open: device is in use (held by a filesystem, md array or device mapper)"
	if err == nil || err.Error() != wantErr {
		t.Fatalf("Wipe: err = %v, want %q", err, wantErr)
	}
	want := []DiskReport{{Device: dev, Error: wantErr}}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if p := probe(t, dev, nil); p != "LABEL=busy TYPE=ext4" {
		t.Errorf("busy %s was touched: blkid -p = %q", dev, p)
	}
}
