package wipe

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"underlay.dev/agent/runner"
)

func TestParseMountInfo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []mount
		wantErr string
	}{
		{"lines", `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 252:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,errors=remount-ro
45 26 7:0 / /mnt/my\040disk rw,relatime shared:5 master:1 - ext4 /dev/loop0 rw
50 26 0:45 /@home /home rw - btrfs /dev/sdb1 rw,space_cache
`, []mount{
			{dev: "0:20", point: "/proc", source: "proc"},
			{dev: "252:2", point: "/", source: "/dev/vda2"},
			{dev: "7:0", point: "/mnt/my disk", source: "/dev/loop0"},
			{dev: "0:45", point: "/home", source: "/dev/sdb1"},
		}, ""},
		{"empty", "", nil, ""},
		{"leading zeros", "1 1 08:01 / /x rw - ext4 /dev/sda1 rw\n", []mount{{dev: "8:1", point: "/x", source: "/dev/sda1"}}, ""},
		{"no separator", "21 26 0:20 / /proc rw,relatime proc proc rw\n", nil, "mountinfo line 1: "},
		{"short", "1 2 3\n", nil, "mountinfo line 1: "},
		{"bad device", "ok\n1 1 8-1 / /x rw - ext4 /dev/sda1 rw\n", nil, "mountinfo line 1: "},
		{"bad device on line 2", "1 1 8:1 / /x rw - ext4 /dev/sda1 rw\n1 1 8-1 / /x rw - ext4 /dev/sda1 rw\n", nil, `mountinfo line 2: device "8-1" is not major:minor: malformed mountinfo`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountInfo([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.Is(err, ErrMountInfo) {
					t.Fatalf("err = %v, want one starting with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseMountInfo: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(mount{})); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSwaps(t *testing.T) {
	in := `Filename				Type		Size		Used		Priority
/dev/sda3                               partition	2097148		0		-2
/swap\040file                           file		1048572		0		-3
`
	if diff := cmp.Diff([]string{"/dev/sda3"}, parseSwaps([]byte(in))); diff != "" {
		t.Errorf("swaps (-want +got):\n%s", diff)
	}
}

// fakeDisk describes a disk of a fake /sys/block tree.
type fakeDisk struct {
	name, dev     string
	sectors       uint64
	removable, ro bool
	parts         []fakePart
	holders       []string // holders of the whole disk
	notAPartition []string // subdirectories that are not partitions
}

type fakePart struct {
	name, dev      string
	start, sectors uint64
	holders        []string
}

// fakeSys writes a /sys/block tree under a temporary directory.
func fakeSys(t testing.TB, disks ...fakeDisk) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	holders := func(dir string, names []string) {
		if err := os.MkdirAll(filepath.Join(dir, "holders"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, h := range names {
			if err := os.Symlink(filepath.Join(root, h), filepath.Join(dir, "holders", h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range disks {
		dir := filepath.Join(root, d.name)
		write(filepath.Join(dir, "dev"), d.dev)
		write(filepath.Join(dir, "size"), itoa(d.sectors))
		write(filepath.Join(dir, "removable"), flag(d.removable))
		write(filepath.Join(dir, "ro"), flag(d.ro))
		holders(dir, d.holders)
		for _, sub := range d.notAPartition {
			write(filepath.Join(dir, sub, "uevent"), "")
		}
		for _, p := range d.parts {
			pdir := filepath.Join(dir, p.name)
			write(filepath.Join(pdir, "dev"), p.dev)
			write(filepath.Join(pdir, "partition"), "1")
			write(filepath.Join(pdir, "start"), itoa(p.start))
			write(filepath.Join(pdir, "size"), itoa(p.sectors))
			holders(pdir, p.holders)
		}
	}
	return root
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// machine is a fake machine: a system disk with LVM root, a data disk held
// by an md array, an NVMe disk, a USB stick, an empty card reader, a
// read-only eMMC boot area and devices that are never disks.
func machine(t testing.TB) string {
	return fakeSys(t,
		fakeDisk{name: "sda", dev: "8:0", sectors: 1 << 21, notAPartition: []string{"queue", "power"}, parts: []fakePart{
			{name: "sda1", dev: "8:1", start: 2048, sectors: 1024000},
			{name: "sda2", dev: "8:2", start: 1026048, sectors: 1000000, holders: []string{"dm-0"}},
		}},
		fakeDisk{name: "sdb", dev: "8:16", sectors: 1 << 22, holders: []string{"md0"}},
		fakeDisk{name: "nvme0n1", dev: "259:0", sectors: 1 << 23, parts: []fakePart{{name: "nvme0n1p1", dev: "259:1", start: 2048, sectors: 4096}}},
		fakeDisk{name: "sdc", dev: "8:32", sectors: 1 << 20, removable: true},
		fakeDisk{name: "sdd", dev: "8:48", sectors: 0},
		fakeDisk{name: "mmcblk0boot0", dev: "179:8", sectors: 8192, ro: true},
		fakeDisk{name: "dm-0", dev: "253:0", sectors: 1000000},
		fakeDisk{name: "md0", dev: "9:0", sectors: 1 << 22, parts: []fakePart{{name: "md0p1", dev: "259:7", start: 2048, sectors: 4096}}},
		fakeDisk{name: "loop0", dev: "7:0", sectors: 1 << 10},
		fakeDisk{name: "ram0", dev: "1:0", sectors: 1 << 10},
		fakeDisk{name: "zram0", dev: "252:0", sectors: 1 << 10},
		fakeDisk{name: "sr0", dev: "11:0", sectors: 1 << 10},
		fakeDisk{name: "fd0", dev: "2:0", sectors: 1 << 10},
		fakeDisk{name: "nbd0", dev: "43:0", sectors: 0},
	)
}

func TestSurvey(t *testing.T) {
	sys := machine(t)
	devDir := t.TempDir()
	// /dev/mapper/vg-root -> ../dm-0, as udev makes it.
	if err := os.MkdirAll(filepath.Join(devDir, "mapper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(devDir, "dm-0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../dm-0", filepath.Join(devDir, "mapper", "vg-root")); err != nil {
		t.Fatal(err)
	}
	type got struct{ Name, Skip string }
	all := []got{
		{"mmcblk0boot0", "read-only device"},
		{"nvme0n1", ""},
		{"sda", ""},
		{"sdb", ""},
		{"sdc", "removable device"},
		{"sdd", "no medium (size 0)"},
	}
	with := func(changes map[string]string) []got {
		out := append([]got(nil), all...)
		for i := range out {
			if s, ok := changes[out[i].Name]; ok {
				out[i].Skip = s
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		mounts string
		swaps  string
		want   []got
	}{
		{"nothing mounted", "21 26 0:20 / /proc rw - proc proc rw\n", "", all},
		{"root on LVM on a partition, boot on a partition", `1 0 253:0 / / rw - ext4 /dev/mapper/vg-root rw
2 1 8:1 / /boot rw - ext4 /dev/sda1 rw
3 1 8:1 / /boot rw - ext4 /dev/sda1 rw
`, "", with(map[string]string{"sda": "holds mounted filesystems / (dm-0), /boot (sda1)"})},
		{"partition of an md array", "1 0 259:7 / /srv rw - xfs /dev/md0p1 rw\n", "", with(map[string]string{"sdb": "holds mounted filesystem /srv (md0p1)"})},
		{"whole disk", "1 0 259:0 / /data rw - ext4 /dev/nvme0n1 rw\n", "", with(map[string]string{"nvme0n1": "holds mounted filesystem /data (nvme0n1)"})},
		{"btrfs by source", "1 0 0:45 / /data rw - btrfs /dev/nvme0n1p1 rw\n", "", with(map[string]string{"nvme0n1": "holds mounted filesystem /data (nvme0n1p1)"})},
		{"swap", "", "Filename Type Size Used Priority\n/dev/sda1 partition 100 0 -2\n", with(map[string]string{"sda": "holds active swap /dev/sda1 (sda1)"})},
		{"removable and mounted", "1 0 8:32 / /media/usb rw - vfat /dev/sdc rw\n", "", with(map[string]string{"sdc": "holds mounted filesystem /media/usb (sdc)"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mi := filepath.Join(dir, "mountinfo")
			sw := filepath.Join(dir, "swaps")
			os.WriteFile(mi, []byte(tc.mounts), 0o644)
			if tc.swaps != "" {
				os.WriteFile(sw, []byte(tc.swaps), 0o644)
			}
			cfg := Config{SysBlock: sys, DevDir: devDir, MountInfo: mi, Swaps: sw}
			cfg.defaults()
			targets, err := cfg.survey()
			if err != nil {
				t.Fatalf("survey: %v", err)
			}
			var res []got
			for _, tg := range targets {
				if tg.disk.path != filepath.Join(devDir, tg.disk.name) {
					t.Errorf("disk %s has path %s", tg.disk.name, tg.disk.path)
				}
				res = append(res, got{tg.disk.name, tg.skip})
			}
			if diff := cmp.Diff(tc.want, res); diff != "" {
				t.Errorf("survey (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSurveyDisk(t *testing.T) {
	cfg := Config{SysBlock: machine(t)}
	d, err := sysfs{root: cfg.SysBlock}.disk("sda", "/dev/sda")
	if err != nil {
		t.Fatal(err)
	}
	want := &disk{name: "sda", path: "/dev/sda", dev: "8:0", size: 1 << 30,
		parts: []partition{
			{name: "sda1", dev: "8:1", start: 2048 * 512, size: 1024000 * 512},
			{name: "sda2", dev: "8:2", start: 1026048 * 512, size: 1000000 * 512},
		},
		holders: map[string]string{"dm-0": "253:0"},
	}
	if diff := cmp.Diff(want, d, cmp.AllowUnexported(disk{}, partition{})); diff != "" {
		t.Errorf("disk (-want +got):\n%s", diff)
	}
	d, err = sysfs{root: cfg.SysBlock}.disk("sdb", "/dev/sdb")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"md0": "9:0", "md0p1": "259:7"}, d.holders); diff != "" {
		t.Errorf("holders of sdb (-want +got):\n%s", diff)
	}
}

func TestSurveyErrors(t *testing.T) {
	dir := t.TempDir()
	mi := filepath.Join(dir, "mountinfo")
	os.WriteFile(mi, nil, 0o644)
	regular := filepath.Join(dir, "disk.img")
	os.WriteFile(regular, nil, 0o644)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
		is   error
	}{
		{"no sysfs", Config{SysBlock: filepath.Join(dir, "nope"), MountInfo: mi}, "list disks: open " + dir + "/nope: no such file or directory", os.ErrNotExist},
		{"no mountinfo", Config{SysBlock: machine(t), MountInfo: filepath.Join(dir, "nope")}, "read mounts: open " + dir + "/nope: no such file or directory", os.ErrNotExist},
		{"device is a file", Config{SysBlock: machine(t), MountInfo: mi, Devices: []string{regular}}, "device " + regular + ": not a block device", ErrNotBlockDevice},
		{"device missing", Config{SysBlock: machine(t), MountInfo: mi, Devices: []string{dir + "/sdz"}}, "device " + dir + "/sdz: lstat " + dir + "/sdz: no such file or directory", os.ErrNotExist},
		{"bad size", Config{SysBlock: fakeSys(t, fakeDisk{name: "sda", dev: "8:0"}), MountInfo: mi}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "bad size" {
				os.WriteFile(filepath.Join(tc.cfg.SysBlock, "sda", "size"), []byte("lots\n"), 0o644)
				tc.want = `disk sda: ` + tc.cfg.SysBlock + `/sda/size: "lots" is not a number`
			}
			tc.cfg.defaults()
			_, err := tc.cfg.survey()
			if err == nil || err.Error() != tc.want || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("survey: err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRegions(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		disk disk
		size uint64
		want []string
	}{
		{"bare disk", disk{name: "vdb"}, 64 * mib, []string{
			"first 1 MiB of vdb (offset 0)",
			"last 1 MiB of vdb (offset 66060288)",
		}},
		{"partitions", disk{name: "vdb", parts: []partition{{name: "vdb1", start: mib, size: 32 * mib}, {name: "vdb2", start: 33 * mib, size: 30 * mib}}}, 64 * mib, []string{
			"first 1 MiB of vdb (offset 0)",
			"last 1 MiB of vdb (offset 66060288)",
			"first 1 MiB of vdb1 (offset 1048576)",
			"last 64 KiB of vdb1 (offset 34537472)",
			"first 1 MiB of vdb2 (offset 34603008)",
			"last 64 KiB of vdb2 (offset 65994752)",
		}},
		{"small disk and partitions", disk{name: "x", parts: []partition{{name: "x1", start: 1024, size: 3000}, {name: "x2", start: 512 * 1024, size: 4 * mib}}}, 768 * 1024, []string{
			"first 768 KiB of x (offset 0)",
			"last 768 KiB of x (offset 0)",
			"first 3000 bytes of x1 (offset 1024)",
			"last 3000 bytes of x1 (offset 1024)",
			"first 256 KiB of x2 (offset 524288)",
		}},
		{"unaligned partition end covers the md 0.90 block", disk{name: "x", parts: []partition{{name: "x1", start: mib, size: 2*mib + 40*1024}}}, 8 * mib, []string{
			"first 1 MiB of x (offset 0)",
			"last 1 MiB of x (offset 7340032)",
			"first 1 MiB of x1 (offset 1048576)",
			"last 104 KiB of x1 (offset 3080192)",
		}},
		{"partition past the end", disk{name: "x", parts: []partition{{name: "x1", start: 8 * mib, size: mib}}}, 4 * mib, []string{
			"first 1 MiB of x (offset 0)",
			"last 1 MiB of x (offset 3145728)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range regions(&tc.disk, tc.size) {
				got = append(got, r.String())
				if r.offset+r.length > tc.size {
					t.Errorf("region %s ends past the disk", r)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("regions (-want +got):\n%s", diff)
			}
		})
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var cmpIgnoreLogBytes = cmpopts.IgnoreFields(runner.Result{}, "LogBytes")
