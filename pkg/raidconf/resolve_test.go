package raidconf_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/raidconf"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

const gib = 1 << 30

// disk is a test disk; opts adjust it.
func disk(name string, sizeGiB uint64, opts ...func(*underlayv1.BlockDevice)) *underlayv1.BlockDevice {
	d := &underlayv1.BlockDevice{Name: name, SizeBytes: sizeGiB * gib, Serial: "SN-" + name,
		Model: "Disk", DriveType: "ssd", Controller: "virtio"}
	for _, o := range opts {
		o(d)
	}
	return d
}

func hdd(d *underlayv1.BlockDevice)       { d.DriveType, d.Rotational = "hdd", true }
func removable(d *underlayv1.BlockDevice) { d.Removable = true }
func mounted(mp string) func(*underlayv1.BlockDevice) {
	return func(d *underlayv1.BlockDevice) {
		d.Partitions = append(d.Partitions, &underlayv1.Partition{Name: d.Name + "1", MountPoint: mp})
	}
}
func sata(d *underlayv1.BlockDevice) {
	d.Controller, d.Vendor, d.Model = "scsi", "ATA", "QEMU HARDDISK"
}
func nvme(d *underlayv1.BlockDevice) { d.Controller = "nvme" }
func model(m string) func(*underlayv1.BlockDevice) {
	return func(d *underlayv1.BlockDevice) { d.Model = m }
}

func inv(disks ...*underlayv1.BlockDevice) *underlayv1.Inventory {
	return &underlayv1.Inventory{Disks: disks}
}

func member(name string, sizeGiB uint64) raidconf.Member {
	return raidconf.Member{Name: name, Serial: "SN-" + name, Model: "Disk", SizeBytes: sizeGiB * gib}
}

// server is a machine with an OS disk, two SSDs, four HDDs and a USB stick.
var server = inv(
	disk("sda", 480, mounted("/")),
	disk("sdb", 960, sata, hdd), disk("sdc", 960, sata, hdd), disk("sdd", 960, sata, hdd), disk("sde", 960, sata, hdd),
	disk("nvme0n1", 1000, nvme), disk("nvme1n1", 1000, nvme),
	disk("sdf", 16, removable),
	disk("md127", 100),
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		config  string
		inv     *underlayv1.Inventory
		want    []raidconf.Volume
		summary []string
	}{
		{
			name:   "raid1 of the first two usable disks",
			config: `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "is_root_volume": true}]}`,
			inv:    inv(disk("vdc", 8), disk("vda", 20, mounted("/")), disk("vdb", 8), disk("vdd", 8)),
			want: []raidconf.Volume{{Name: "md0", Level: "1", Controller: "software", Root: true,
				Members: []raidconf.Member{member("vdb", 8), member("vdc", 8)}}},
			summary: []string{"md0: raid1 of vdb, vdc (2 x 8.0 GiB, root)"},
		},
		{
			name: "root mirror on nvme, raid5 data on hdds",
			config: `{"logical_disks": [
				{"size_gb": 100, "raid_level": "1", "is_root_volume": true, "interface_type": "nvme"},
				{"size_gb": "MAX", "raid_level": "5", "volume_name": "data", "disk_type": "hdd", "number_of_physical_disks": 4}]}`,
			inv: server,
			want: []raidconf.Volume{
				{Name: "md0", Level: "1", Controller: "software", SizeBytes: 100 * gib, Root: true, Members: []raidconf.Member{
					member("nvme0n1", 1000), member("nvme1n1", 1000)}},
				{Name: "data", Level: "5", Controller: "software", Members: []raidconf.Member{
					{Name: "sdb", Serial: "SN-sdb", Model: "QEMU HARDDISK", SizeBytes: 960 * gib},
					{Name: "sdc", Serial: "SN-sdc", Model: "QEMU HARDDISK", SizeBytes: 960 * gib},
					{Name: "sdd", Serial: "SN-sdd", Model: "QEMU HARDDISK", SizeBytes: 960 * gib},
					{Name: "sde", Serial: "SN-sde", Model: "QEMU HARDDISK", SizeBytes: 960 * gib}}},
			},
			summary: []string{
				"md0: raid1 of nvme0n1, nvme1n1 (2 x 1000.0 GiB, 100.0 GiB, root)",
				"data: raid5 of sdb, sdc, sdd, sde (4 x 960.0 GiB)",
			},
		},
		{
			name: "named disks and hints, earlier logical disks take theirs first",
			config: `{"logical_disks": [
				{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["/dev/vdd", "vdb"]},
				{"size_gb": "MAX", "raid_level": "1", "physical_disks": [{"size": ">= 10"}, {"model": "<in> samsung"}]}]}`,
			inv: inv(disk("vdb", 8), disk("vdc", 8, model("Samsung 860")), disk("vdd", 8), disk("vde", 20), disk("vdf", 30)),
			want: []raidconf.Volume{
				{Name: "md0", Level: "1", Controller: "software", Members: []raidconf.Member{member("vdb", 8), member("vdd", 8)}},
				{Name: "md1", Level: "1", Controller: "software", Members: []raidconf.Member{
					{Name: "vdc", Serial: "SN-vdc", Model: "Samsung 860", SizeBytes: 8 * gib}, member("vde", 20)}},
			},
			summary: []string{"md0: raid1 of vdb, vdd (2 x 8.0 GiB)", "md1: raid1 of vdc, vde (8.0 GiB + 20.0 GiB)"},
		},
		{
			name:   "a repeated hint picks distinct disks",
			config: `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": [{"rotational": true}, {"rotational": true}]}]}`,
			inv:    inv(disk("vda", 8), disk("vdb", 8, hdd), disk("vdc", 8, hdd)),
			want: []raidconf.Volume{{Name: "md0", Level: "1", Controller: "software",
				Members: []raidconf.Member{member("vdb", 8), member("vdc", 8)}}},
		},
		{
			name:   "size filters candidates",
			config: `{"logical_disks": [{"size_gb": 10, "raid_level": "1"}]}`,
			inv:    inv(disk("vda", 8), disk("vdb", 10), disk("vdc", 11), disk("vdd", 12)),
			want: []raidconf.Volume{{Name: "md0", Level: "1", Controller: "software", SizeBytes: 10 * gib,
				Members: []raidconf.Member{member("vdc", 11), member("vdd", 12)}}},
		},
		{
			name:   "hardware controller takes drive IDs verbatim",
			config: `{"logical_disks": [{"size_gb": "MAX", "raid_level": "0", "controller": "perc", "physical_disks": ["252:1"]}]}`,
			inv:    inv(),
			want: []raidconf.Volume{{Name: "vd0", Level: "0", Controller: "perc",
				Members: []raidconf.Member{{Name: "252:1"}}}},
			summary: []string{"vd0: raid0 of 252:1 (controller perc)"},
		},
		{
			name:   "raid 1+0 of four",
			config: `{"logical_disks": [{"size_gb": 1000, "raid_level": "1+0", "disk_type": "hdd", "interface_type": "sata"}]}`,
			inv:    server,
			want: []raidconf.Volume{{Name: "md0", Level: "1+0", Controller: "software", SizeBytes: 1000 * gib, Members: []raidconf.Member{
				{Name: "sdb", Serial: "SN-sdb", Model: "QEMU HARDDISK", SizeBytes: 960 * gib},
				{Name: "sdc", Serial: "SN-sdc", Model: "QEMU HARDDISK", SizeBytes: 960 * gib},
				{Name: "sdd", Serial: "SN-sdd", Model: "QEMU HARDDISK", SizeBytes: 960 * gib},
				{Name: "sde", Serial: "SN-sde", Model: "QEMU HARDDISK", SizeBytes: 960 * gib}}}},
			summary: []string{"md0: raid10 of sdb, sdc, sdd, sde (4 x 960.0 GiB, 1000.0 GiB)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := raidconf.Parse([]byte(tc.config))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := raidconf.Resolve(c, tc.inv)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if d := cmp.Diff(tc.want, got.Volumes); d != "" {
				t.Errorf("Resolve (-want +got):\n%s", d)
			}
			if tc.summary != nil {
				if d := cmp.Diff(tc.summary, got.Summary()); d != "" {
					t.Errorf("Summary (-want +got):\n%s", d)
				}
			}
			// Deterministic: the same input, in any disk order, gives the same plan.
			rev := &underlayv1.Inventory{}
			for i := len(tc.inv.Disks) - 1; i >= 0; i-- {
				rev.Disks = append(rev.Disks, tc.inv.Disks[i])
			}
			again, err := raidconf.Resolve(c, rev)
			if err != nil {
				t.Fatalf("Resolve (reversed disks): %v", err)
			}
			if d := cmp.Diff(got, again); d != "" {
				t.Errorf("Resolve depends on disk order (-first +reversed):\n%s", d)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	two := inv(disk("vda", 20, mounted("/")), disk("vdb", 8), disk("vdc", 8), disk("vdd", 8, removable))
	for _, tc := range []struct {
		name, config string
		inv          *underlayv1.Inventory
		want         string
		sentinel     error
	}{
		{
			name:     "too few disks for raid5",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "5"}]}`,
			inv:      two,
			want:     `logical disk 0: raid_level "5" needs at least 3 disks, 2 match (vdb, vdc); not usable: vda holds mounted partition vda1 (/), vdd is removable`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "second logical disk finds the disks taken",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}, {"size_gb": "MAX", "raid_level": "1"}]}`,
			inv:      two,
			want:     `logical disk 1: raid_level "1" needs at least 2 disks, 0 match (none); not usable: vda holds mounted partition vda1 (/), vdb is used by logical disk 0, vdc is used by logical disk 0, vdd is removable`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "explicit count",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "number_of_physical_disks": 3}]}`,
			inv:      two,
			want:     `logical disk 0: raid_level "1" needs 3 disks, 2 match (vdb, vdc)`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "odd count for 1+0",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1+0", "number_of_physical_disks": 5}]}`,
			inv:      server,
			want:     `logical disk 0: raid_level "1+0" needs an even number of disks, number_of_physical_disks is 5`,
			sentinel: raidconf.ErrInvalid,
		},
		{
			name:     "named disks too few for the level",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "5", "physical_disks": ["vdb", "vdc"]}]}`,
			inv:      two,
			want:     `logical disk 0: raid_level "5" needs at least 3 disks, 2 match (vdb, vdc)`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "named OS disk",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vda", "vdb"]}]}`,
			inv:      two,
			want:     `logical disk 0: physical_disks[0] "vda": vda holds mounted partition vda1 (/)`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "named removable disk",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vdb", "/dev/vdd"]}]}`,
			inv:      two,
			want:     `logical disk 0: physical_disks[1] "/dev/vdd": vdd is removable`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "named missing disk",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vdb", "vdz"]}]}`,
			inv:      two,
			want:     `logical disk 0: physical_disks[1] "vdz": no such disk`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "named twice",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vdb", "/dev/vdb"]}]}`,
			inv:      two,
			want:     `logical disk 0: physical_disks[1] "/dev/vdb": vdb is listed twice`,
			sentinel: raidconf.ErrInvalid,
		},
		{
			name:     "named disk taken by an earlier logical disk",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}, {"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vdc", "vdb"]}]}`,
			inv:      two,
			want:     `logical disk 1: physical_disks[0] "vdc": vdc is used by logical disk 0`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "hint matches only unusable disks",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vdb", {"size": ">= 16"}]}]}`,
			inv:      two,
			want:     `logical disk 0: physical_disks[1] {"size":">= 16"}: matches no usable disk: vda (holds mounted partition vda1 (/))`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "hint matches nothing",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "physical_disks": ["vdb", {"serial": "nope"}]}]}`,
			inv:      two,
			want:     `logical disk 0: physical_disks[1] {"serial":"nope"}: matches no disk`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "size does not fit named disks",
			config:   `{"logical_disks": [{"size_gb": 8, "raid_level": "1", "physical_disks": ["vdb", "vdc"]}]}`,
			inv:      two,
			want:     `logical disk 0: size_gb 8 does not fit raid_level "1" of vdb, vdc: they hold 7.9 GiB (128.0 MiB per member kept for md metadata)`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "size filters out every disk",
			config:   `{"logical_disks": [{"size_gb": 20, "raid_level": "5"}]}`,
			inv:      two,
			want:     `logical disk 0: raid_level "5" needs at least 3 disks of at least 10.1 GiB, 0 match (none)`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "disk type filter",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "disk_type": "hdd"}]}`,
			inv:      two,
			want:     `0 match (none); not usable: vda holds mounted partition vda1 (/), vdb is not an hdd, vdc is not an hdd, vdd is removable`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "hardware raid1 of one drive",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "controller": "perc", "physical_disks": ["252:0"]}]}`,
			inv:      two,
			want:     `logical disk 0: raid_level "1" needs at least 2 disks, physical_disks lists 1`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "software raid0 of one disk",
			config:   `{"logical_disks": [{"size_gb": "MAX", "raid_level": "0", "physical_disks": ["vdb"]}]}`,
			inv:      two,
			want:     `logical disk 0: raid_level "0" needs at least 2 disks, 1 match (vdb)`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := raidconf.Parse([]byte(tc.config))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := raidconf.Resolve(c, tc.inv)
			if err == nil {
				t.Fatalf("Resolve: no error, got %v", got.Summary())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Resolve error\n  %q\ndoes not contain\n  %q", err, tc.want)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("Resolve error %q does not wrap %v", err, tc.sentinel)
			}
		})
	}
}

func TestHintsMatch(t *testing.T) {
	d := &underlayv1.BlockDevice{Name: "sdb", SizeBytes: 931 * gib, Model: "Samsung SSD 860", Vendor: "ATA",
		Serial: "S3Z9NB0K", Wwn: "0x5002538e40a1b2c3", ByPath: "pci-0000:00:1f.2-ata-2", DriveType: "ssd"}
	yes, no := true, false
	for _, tc := range []struct {
		name string
		h    raidconf.Hints
		want bool
	}{
		{"name", raidconf.Hints{Name: "/dev/sdb"}, true},
		{"name mismatch", raidconf.Hints{Name: "sda"}, false},
		{"name or", raidconf.Hints{Name: "<or> sda <or> sdb"}, true},
		{"size equal", raidconf.Hints{Size: "931"}, true},
		{"size ge", raidconf.Hints{Size: ">= 900"}, true},
		{"size lt", raidconf.Hints{Size: "< 900"}, false},
		{"size ne", raidconf.Hints{Size: "!= 931"}, false},
		{"model case", raidconf.Hints{Model: "samsung ssd 860"}, true},
		{"model in", raidconf.Hints{Model: "<in> SSD"}, true},
		{"model s!=", raidconf.Hints{Model: "s!= Samsung SSD 860"}, false},
		{"vendor", raidconf.Hints{Vendor: "ata"}, true},
		{"serial exact", raidconf.Hints{Serial: "s== S3Z9NB0K"}, true},
		{"serial case matters", raidconf.Hints{Serial: "s3z9nb0k"}, false},
		{"wwn", raidconf.Hints{WWN: "0x5002538E40A1B2C3"}, true},
		{"by path with prefix", raidconf.Hints{ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-2"}, true},
		{"rotational false", raidconf.Hints{Rotational: &no}, true},
		{"rotational true", raidconf.Hints{Rotational: &yes}, false},
		{"all must match", raidconf.Hints{Size: ">= 900", Model: "<in> Intel"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.Match(d); got != tc.want {
				t.Errorf("%+v.Match = %v, want %v", tc.h, got, tc.want)
			}
		})
	}
}

func TestVolumeCheck(t *testing.T) {
	members := func(n int) []raidconf.Member { return make([]raidconf.Member, n) }
	for _, tc := range []struct {
		v    raidconf.Volume
		want string
	}{
		{raidconf.Volume{Name: "md0", Level: "1", Controller: "software", Members: members(2)}, ""},
		{raidconf.Volume{Name: "md0", Level: "5", Controller: "software", Members: members(2)}, `volume md0: raid_level "5" needs at least 3 disks, it has 2`},
		{raidconf.Volume{Name: "md0", Level: "0", Controller: "software", Members: members(1)}, `volume md0: raid_level "0" needs at least 2 disks, it has 1`},
		{raidconf.Volume{Name: "vd0", Level: "0", Controller: "perc", Members: members(1)}, ""},
		{raidconf.Volume{Name: "md0", Level: "1+0", Controller: "software", Members: members(6)}, ""},
		{raidconf.Volume{Name: "md0", Level: "1+0", Controller: "software", Members: members(5)}, "needs an even number of disks"},
		{raidconf.Volume{Name: "md0", Level: "raid1", Controller: "software", Members: members(2)}, `volume md0: raid level "raid1"`},
	} {
		t.Run(tc.v.Name+" "+tc.v.Level, func(t *testing.T) {
			err := tc.v.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check error = %v, want %q", err, tc.want)
			}
		})
	}
}
