package raid_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jaypipes/ghw/pkg/snapshot"

	"underlay.dev/agent/driver/inventory"
	"underlay.dev/agent/driver/raid"
	"underlay.dev/pkg/raidconf"
)

// fakeRoot makes <root>/sys/block/<disk>/{size,serial,wwid} and
// <root>/dev/disk/by-path links.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(p, s string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct{ name, serial, wwid, sectors string }{
		{"vda", "vmtest-d0", "", "131072"},
		{"vdb", "vmtest-d1", "", "131072"},
		{"vdc", "vmtest-d2", "", "131072"},
		{"sda", "", "naa.5000c500a1b2c3d4", "2097152"},
		{"sdb", "", "", "2097152"},
		{"sdc", "DUP", "", "2097152"},
		{"sdd", "DUP", "", "2097152"},
		{"md127", "", "", "131072"},
		{"loop0", "", "", "8"},
	} {
		write("sys/block/"+d.name+"/size", d.sectors)
		if d.serial != "" {
			write("sys/block/"+d.name+"/serial", d.serial)
		}
		if d.wwid != "" {
			write("sys/block/"+d.name+"/device/wwid", d.wwid)
		}
	}
	byPath := filepath.Join(root, "dev", "disk", "by-path")
	if err := os.MkdirAll(byPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../sdb", filepath.Join(byPath, "pci-0000:00:1f.2-ata-2")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestDevices(t *testing.T) {
	devs := raid.NewDevices(fakeRoot(t))
	const mib64 = 64 << 20
	for _, tc := range []struct {
		name string
		m    raidconf.Member
		want string
		err  string
	}{
		{name: "serial and name agree", m: raidconf.Member{Name: "vdb", Serial: "vmtest-d1", SizeBytes: mib64}, want: "/dev/vdb"},
		{name: "serial wins over a renamed disk", m: raidconf.Member{Name: "vdb", Serial: "vmtest-d2"}, want: "/dev/vdc"},
		{name: "wwn from udev matches the sysfs wwid", m: raidconf.Member{Name: "sdx", WWN: "0x5000C500A1B2C3D4"}, want: "/dev/sda"},
		{name: "by-path link", m: raidconf.Member{Name: "sdq", ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-2"}, want: "/dev/sdb"},
		{name: "no identifier known: the name decides", m: raidconf.Member{Name: "sdb", Serial: "NOT-IN-SYSFS"}, want: "/dev/sdb"},
		{name: "duplicate serials: the name breaks the tie", m: raidconf.Member{Name: "sdd", Serial: "DUP"}, want: "/dev/sdd"},
		{name: "serial nobody has", m: raidconf.Member{Name: "vdb", Serial: "vmtest-d9"}, err: `no disk named vdb (serial vmtest-d9)`},
		{name: "duplicate serials, other name", m: raidconf.Member{Name: "sde", Serial: "DUP"}, err: "no disk named sde (serial DUP)"},
		{name: "size differs", m: raidconf.Member{Name: "vdb", Serial: "vmtest-d1", SizeBytes: 1 << 30}, err: "disk vdb (inventory vdb) holds 67108864 bytes, the inventory says 1073741824"},
		{name: "md and loop devices are not disks", m: raidconf.Member{Name: "md127"}, err: "no disk named md127"},
		{name: "missing", m: raidconf.Member{Name: "vdz"}, err: "no disk named vdz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := devs.Device(tc.m)
			switch {
			case tc.err != "":
				if !errors.Is(err, raid.ErrNoDevice) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Device = %q, %v; want error %q", got, err, tc.err)
				}
			case err != nil || got != tc.want:
				t.Errorf("Device = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDevicesDisk(t *testing.T) {
	root := t.TempDir()
	sys := fakeSys(t, []string{"vdb", "nvme0n1"}, map[string]string{"vdb1": "vdb", "nvme0n1p2": "nvme0n1"})
	if err := os.Symlink(sys, filepath.Join(root, "sys")); err != nil {
		t.Fatal(err)
	}
	devs := raid.NewDevices(root)
	for in, want := range map[string]string{"/dev/vdb1": "/dev/vdb", "/dev/nvme0n1p2": "/dev/nvme0n1", "/dev/vdb": "/dev/vdb", "/dev/vdz": "/dev/vdz"} {
		if got := devs.Disk(in); got != want {
			t.Errorf("Disk(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestResolveSnapshot resolves configs against the inventory of the real
// QEMU q35 capture (two virtio 16 GiB, two SATA 1 TB, one NVMe 480 GB).
func TestResolveSnapshot(t *testing.T) {
	inv, err := inventory.Collect(context.Background(), inventory.Options{Root: unpackSnapshot(t, "../inventory/testdata/qemu-q35-5disk.tar.gz")})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	for _, tc := range []struct {
		name, config string
		summary      []string
		err          string
	}{
		{
			name:    "mirror the virtio disks, the SATA ones for data",
			config:  `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "is_root_volume": true, "interface_type": "virtio"}, {"size_gb": 900, "raid_level": "1", "volume_name": "data", "interface_type": "sata"}]}`,
			summary: []string{"md0: raid1 of vda, vdb (2 x 16.0 GiB, root)", "data: raid1 of sda, sdb (2 x 931.5 GiB, 900.0 GiB)"},
		},
		{
			name:    "hints by serial and model",
			config:  `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": [{"serial": "VBLK-0002"}, {"model": "<in> nvme"}]}]}`,
			summary: []string{"md0: raid1 of nvme0n1, vdb (447.1 GiB + 16.0 GiB)"},
		},
		{
			name:   "raid5 over the SATA disks needs a third",
			config: `{"logical_disks": [{"size_gb": "MAX", "raid_level": "5", "interface_type": "sata"}]}`,
			err:    `logical disk 0: raid_level "5" needs at least 3 disks, 2 match (sda, sdb)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := raidconf.Parse([]byte(tc.config))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			r, err := raidconf.Resolve(c, inv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Resolve error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if d := cmp.Diff(tc.summary, r.Summary()); d != "" {
				t.Errorf("Summary (-want +got):\n%s", d)
			}
		})
	}
}

func unpackSnapshot(t *testing.T, path string) string {
	t.Helper()
	root := t.TempDir()
	if err := snapshot.UnpackInto(path, root); err != nil {
		t.Fatalf("unpack %s: %v", path, err)
	}
	return root
}
