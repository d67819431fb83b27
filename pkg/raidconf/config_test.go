package raidconf_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/raidconf"
)

func boolp(b bool) *bool { return &b }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want *raidconf.Config
	}{
		{
			name: "ironic example",
			in: `{"logical_disks": [
				{"size_gb": "MAX", "raid_level": "1", "is_root_volume": true},
				{"size_gb": 100, "raid_level": "5", "volume_name": "data", "disk_type": "hdd",
				 "interface_type": "sata", "number_of_physical_disks": 3, "share_physical_disks": false}]}`,
			want: &raidconf.Config{LogicalDisks: []raidconf.LogicalDisk{
				{SizeGB: raidconf.SizeGB{Max: true}, RAIDLevel: "1", IsRootVolume: true},
				{SizeGB: raidconf.SizeGB{GiB: 100}, RAIDLevel: "5", VolumeName: "data", DiskType: "hdd",
					InterfaceType: "sata", NumberOfPhysicalDisks: 3},
			}},
		},
		{
			name: "names and hints",
			in: `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1+0", "physical_disks": [
				"vdb", "/dev/vdc", {"size": ">= 100", "rotational": false}, {"model": "<in> Samsung", "serial": "S1", "size": 200}]}]}`,
			want: &raidconf.Config{LogicalDisks: []raidconf.LogicalDisk{{
				SizeGB: raidconf.SizeGB{Max: true}, RAIDLevel: "1+0",
				PhysicalDisks: []raidconf.DiskRef{
					{Name: "vdb"}, {Name: "/dev/vdc"},
					{Hints: &raidconf.Hints{Size: ">= 100", Rotational: boolp(false)}},
					{Hints: &raidconf.Hints{Model: "<in> Samsung", Serial: "S1", Size: "200"}},
				},
			}}},
		},
		{
			name: "hardware controller",
			in:   `{"logical_disks": [{"size_gb": 50, "raid_level": "0", "controller": "perc", "physical_disks": ["252:0"]}]}`,
			want: &raidconf.Config{LogicalDisks: []raidconf.LogicalDisk{{
				SizeGB: raidconf.SizeGB{GiB: 50}, RAIDLevel: "0", Controller: "perc",
				PhysicalDisks: []raidconf.DiskRef{{Name: "252:0"}},
			}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := raidconf.Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Parse (-want +got):\n%s", d)
			}
			// What Parse read writes back and reads again the same.
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again, err := raidconf.Parse(b)
			if err != nil {
				t.Fatalf("Parse(Marshal) %s: %v", b, err)
			}
			if d := cmp.Diff(got, again); d != "" {
				t.Errorf("round trip (-first +second):\n%s", d)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ld := func(fields string) string {
		return `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}, {` + fields + `}]}`
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not json", `{`, "parse"},
		{"unknown top-level field", `{"logical_disks": [], "extra": 1}`, `unknown field "extra"`},
		{"no logical disks", `{}`, "logical_disks is required"},
		{"empty logical disks", `{"logical_disks": []}`, "logical_disks is empty"},
		{"unknown field names index", ld(`"size_gb": 1, "raid_level": "1", "raid_levle": "1"`), `logical disk 1: unknown field "raid_levle"`},
		{"missing size", ld(`"raid_level": "1"`), "logical disk 1: size_gb is required"},
		{"missing level", ld(`"size_gb": 1`), "logical disk 1: raid_level is required"},
		{"bad level", ld(`"size_gb": 1, "raid_level": "7"`), `logical disk 1: raid_level "7" is not a RAID level`},
		{"level alias hint", ld(`"size_gb": 1, "raid_level": "10"`), `raid_level "10" is not a RAID level: want "0", "1", "5", "6" or "1+0" (write "1+0")`},
		{"level as number", ld(`"size_gb": 1, "raid_level": 1`), "logical disk 1: raid_level: want a string, got 1"},
		{"unsupported level", ld(`"size_gb": 1, "raid_level": "5+0"`), `logical disk 1: raid_level "5+0" is not supported`},
		{"size string", ld(`"size_gb": "big", "raid_level": "1"`), `logical disk 1: size_gb "big": want a positive whole number of GiB or "MAX"`},
		{"size fraction", ld(`"size_gb": 1.5, "raid_level": "1"`), `logical disk 1: size_gb 1.5: want a positive whole number`},
		{"size zero", ld(`"size_gb": 0, "raid_level": "1"`), `logical disk 1: size_gb 0`},
		{"size negative", ld(`"size_gb": -1, "raid_level": "1"`), `logical disk 1: size_gb -1`},
		{"size lowercase max", ld(`"size_gb": "max", "raid_level": "1"`), `size_gb "max"`},
		{"sized software raid0", ld(`"size_gb": 10, "raid_level": "0"`), `logical disk 1: size_gb 10 with software raid_level "0" is not supported`},
		{"share physical disks", ld(`"size_gb": 1, "raid_level": "1", "share_physical_disks": true`), "logical disk 1: share_physical_disks true is not supported"},
		{"bad disk type", ld(`"size_gb": 1, "raid_level": "1", "disk_type": "nvme"`), `logical disk 1: disk_type "nvme"`},
		{"bad interface type", ld(`"size_gb": 1, "raid_level": "1", "interface_type": "usb"`), `logical disk 1: interface_type "usb"`},
		{"bad count", ld(`"size_gb": 1, "raid_level": "1", "number_of_physical_disks": 0`), "logical disk 1: number_of_physical_disks: want a positive whole number, got 0"},
		{"count disagrees", ld(`"size_gb": 1, "raid_level": "1", "number_of_physical_disks": 3, "physical_disks": ["a", "b"]`), "logical disk 1: number_of_physical_disks 3 but physical_disks lists 2"},
		{"bad volume name", ld(`"size_gb": 1, "raid_level": "1", "volume_name": "a/b"`), `logical disk 1: volume_name "a/b"`},
		{"bad controller", ld(`"size_gb": 1, "raid_level": "1", "controller": "My Ctl"`), `logical disk 1: controller "My Ctl"`},
		{"physical disk not a list", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": "vdb"`), "logical disk 1: physical_disks: want a list"},
		{"physical disk number", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": ["vdb", 3]`), "logical disk 1: physical_disks[1]: 3: want a disk name or an object of device hints"},
		{"physical disk empty", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": ["vdb", ""]`), "logical disk 1: physical_disks[1]: empty disk name"},
		{"unknown hint", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": [{"colour": "red"}]`), `logical disk 1: physical_disks[0]: unknown hint "colour"`},
		{"unsupported hint", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": [{"hctl": "0:0:0:0"}]`), `physical_disks[0]: hint "hctl" is not supported`},
		{"empty hints", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": [{}]`), "physical_disks[0]: device hints {} select nothing"},
		{"bad size hint", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": [{"size": "about 100"}]`), `physical_disks[0]: hint size "about 100"`},
		{"bad rotational hint", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": [{"rotational": "maybe"}]`), "physical_disks[0]: hint rotational: want true or false"},
		{"unsupported string operator", ld(`"size_gb": 1, "raid_level": "1", "physical_disks": [{"model": "s>= A"}]`), "operator s>= is not supported"},
		{"hints on hardware", ld(`"size_gb": 1, "raid_level": "1", "controller": "perc", "physical_disks": [{"size": 1}, "252:1"]`), `device hints are not supported for hardware controller "perc"`},
		{"hardware without disks", ld(`"size_gb": 1, "raid_level": "1", "controller": "perc"`), `logical disk 1: controller "perc" needs physical_disks`},
		{"two roots", `{"logical_disks": [{"size_gb": 1, "raid_level": "1", "is_root_volume": true}, {"size_gb": 1, "raid_level": "1", "is_root_volume": true}]}`, "logical disks 0 and 1 both set is_root_volume"},
		{"duplicate names", `{"logical_disks": [{"size_gb": 1, "raid_level": "1", "volume_name": "md1"}, {"size_gb": 1, "raid_level": "1"}]}`, `logical disks 0 and 1 are both named "md1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := raidconf.Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse: no error, got %+v", c)
			}
			if !errors.Is(err, raidconf.ErrInvalid) {
				t.Errorf("Parse error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestNormalizeLevel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"raid1", "1"}, {"RAID10", "1+0"}, {"1+0", "1+0"}, {"10", "1+0"}, {"raid-5", "5"}, {"0", "0"}, {" raid6 ", "6"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := raidconf.NormalizeLevel(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("NormalizeLevel(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "raid7", "linear", "5+0"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if got, err := raidconf.NormalizeLevel(bad); !errors.Is(err, raidconf.ErrInvalid) {
				t.Errorf("NormalizeLevel(%q) = %q, %v; want ErrInvalid", bad, got, err)
			}
		})
	}
	if got := raidconf.MDLevel("1+0"); got != "raid10" {
		t.Errorf(`MDLevel("1+0") = %q, want raid10`, got)
	}
}
