package raid_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent/driver/raid"
	"underlay.dev/agent/driver/raid/drivertest"
	"underlay.dev/pkg/raidconf"
)

var devs = drivertest.Devices{"vdb": "/dev/vdb", "vdc": "/dev/vdc", "vdd": "/dev/vdd", "vde": "/dev/vde"}

func vol(name, level string, members ...string) raidconf.Volume {
	v := raidconf.Volume{Name: name, Level: level, Controller: raidconf.Software}
	for _, m := range members {
		v.Members = append(v.Members, raidconf.Member{Name: m})
	}
	return v
}

func want(vols ...raidconf.Volume) *raidconf.Resolved { return &raidconf.Resolved{Volumes: vols} }

// live is an existing md array.
func live(dev, name, level string, members ...string) raid.Volume {
	return raid.Volume{Name: name, Level: level, Device: dev, UUID: "uuid-" + name, State: "active", Members: members}
}

func TestApply(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		existing []raid.Volume
		fail     map[string]error
		want     *raidconf.Resolved
		report   raid.Report // Lines are checked separately
		calls    []string
		after    []string // devices of the volumes left, in order
		err      string
		sentinel error
	}{
		{
			name:   "create on blank disks",
			want:   want(vol("md0", "1", "vdb", "vdc"), vol("data", "0", "vdd", "vde")),
			report: raid.Report{Created: []string{"md0", "data"}},
			calls: []string{"layout", "create md0 /dev/vdb,/dev/vdc", "verify md0",
				"create data /dev/vdd,/dev/vde", "verify data"},
			after: []string{"/dev/md127", "/dev/md126"},
		},
		{
			name:     "layout in place is a no-op",
			existing: []raid.Volume{live("/dev/md127", "md0", "1", "/dev/vdc", "/dev/vdb")},
			want:     want(vol("md0", "1", "vdb", "vdc")),
			report:   raid.Report{Unchanged: []string{"md0"}},
			calls:    []string{"layout", "verify md0"},
			after:    []string{"/dev/md127"},
		},
		{
			name:     "in place under another name is still in place",
			existing: []raid.Volume{live("/dev/md127", "old", "1", "/dev/vdb", "/dev/vdc")},
			want:     want(vol("md0", "1", "vdb", "vdc")),
			report:   raid.Report{Unchanged: []string{"md0"}},
			calls:    []string{"layout", "verify md0"},
			after:    []string{"/dev/md127"},
		},
		{
			name: "conflicting arrays on the wanted disks are deleted first",
			existing: []raid.Volume{
				live("/dev/md127", "md0", "0", "/dev/vdb", "/dev/vdc"),  // wrong level
				live("/dev/md126", "x", "1", "/dev/vdd1", "/dev/vde1"),  // partitions of wanted disks
				live("/dev/md125", "keep", "1", "/dev/vdf", "/dev/vdg"), // not ours
			},
			want:   want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vde")),
			report: raid.Report{Created: []string{"md0", "data"}, Deleted: []string{"md0", "x"}},
			calls: []string{"layout", "delete /dev/md127", "delete /dev/md126",
				"create md0 /dev/vdb,/dev/vdc", "verify md0", "create data /dev/vdd,/dev/vde", "verify data"},
			after: []string{"/dev/md125", "/dev/md127", "/dev/md126"},
		},
		{
			name:     "member set differs: delete and recreate",
			existing: []raid.Volume{live("/dev/md127", "md0", "1", "/dev/vdb", "/dev/vdc", "/dev/vdd")},
			want:     want(vol("md0", "1", "vdb", "vdc")),
			report:   raid.Report{Created: []string{"md0"}, Deleted: []string{"md0"}},
			calls:    []string{"layout", "delete /dev/md127", "create md0 /dev/vdb,/dev/vdc", "verify md0"},
			after:    []string{"/dev/md127"},
		},
		{
			name:   "create fails part-way: the first array is rolled back",
			fail:   map[string]error{"create data": errBoom},
			want:   want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vde")),
			report: raid.Report{},
			calls: []string{"layout", "create md0 /dev/vdb,/dev/vdc", "verify md0",
				"create data /dev/vdd,/dev/vde", "delete /dev/md127"},
			err: "create data (rolled back md0): boom",
		},
		{
			name:   "verify fails: the volume itself is rolled back too",
			fail:   map[string]error{"verify data": raid.ErrVerify},
			want:   want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vde")),
			report: raid.Report{},
			calls: []string{"layout", "create md0 /dev/vdb,/dev/vdc", "verify md0",
				"create data /dev/vdd,/dev/vde", "verify data", "delete /dev/md126", "delete /dev/md127"},
			err:      "verify data (rolled back data, md0)",
			sentinel: raid.ErrVerify,
		},
		{
			name: "rollback that fails says so",
			fail: map[string]error{"create data": errBoom, "delete /dev/md127": errors.New("busy")},
			want: want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vde")),
			calls: []string{"layout", "create md0 /dev/vdb,/dev/vdc", "verify md0",
				"create data /dev/vdd,/dev/vde", "delete /dev/md127"},
			after: []string{"/dev/md127"},
			err:   "create data (rolled back none; rollback FAILED for md0 (busy)): boom",
		},
		{
			name:     "unknown disk fails before anything is touched",
			want:     want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vdz")),
			err:      "volume data: member vdz: fake devices: no disk vdz",
			sentinel: raid.ErrNoDevice,
		},
		{
			name:     "too few members for the level fails before anything is touched",
			want:     want(vol("md0", "1", "vdb", "vdc"), vol("data", "5", "vdd", "vde")),
			err:      `volume data: raid_level "5" needs at least 3 disks, it has 2`,
			sentinel: raidconf.ErrUnsatisfiable,
		},
		{
			name:     "disk wanted twice",
			want:     want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdc", "vdd")),
			err:      "volume data: /dev/vdc is also a member of md0",
			sentinel: raid.ErrConflict,
		},
		{
			name:     "unknown controller",
			want:     want(raidconf.Volume{Name: "vd0", Level: "1", Controller: "perc", Members: []raidconf.Member{{Name: "252:0"}, {Name: "252:1"}}}),
			err:      `volume vd0: controller "perc" is not configured here (have software)`,
			sentinel: raid.ErrNoController,
		},
		{
			name:     "foreign array with a wanted name",
			existing: []raid.Volume{live("/dev/md127", "md0", "1", "/dev/vdf", "/dev/vdg")},
			want:     want(vol("md0", "1", "vdb", "vdc")),
			calls:    []string{"layout"},
			after:    []string{"/dev/md127"},
			err:      "volume md0: an array named md0 already exists over /dev/vdf, /dev/vdg, outside this layout",
			sentinel: raid.ErrConflict,
		},
		{
			name: "degraded array in place fails before anything is touched",
			existing: []raid.Volume{
				{Name: "md0", Level: "1", Device: "/dev/md127", State: "active,degraded", Members: []string{"/dev/vdb", "/dev/vdc"}},
				live("/dev/md126", "x", "0", "/dev/vdd", "/dev/vde"),
			},
			want:     want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vde")),
			calls:    []string{"layout", "verify md0"},
			after:    []string{"/dev/md127", "/dev/md126"},
			err:      "volume md0 is in place as raid1 /dev/md127 (md0) over /dev/vdb, /dev/vdc but: fake software: /dev/md127 is active,degraded",
			sentinel: raid.ErrVerify,
		},
		{
			name:     "delete fails",
			existing: []raid.Volume{live("/dev/md127", "x", "0", "/dev/vdb", "/dev/vdc")},
			fail:     map[string]error{"delete /dev/md127": errBoom},
			want:     want(vol("md0", "1", "vdb", "vdc")),
			calls:    []string{"layout", "delete /dev/md127"},
			after:    []string{"/dev/md127"},
			err:      "delete raid0 /dev/md127 (x) over /dev/vdb, /dev/vdc (in the way of md0; deleted before it: none): boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := drivertest.New(raidconf.Software, tc.existing...)
			for call, err := range tc.fail {
				sw.Fail(call, err)
			}
			var log bytes.Buffer
			rep, err := raid.Apply(context.Background(), map[string]raid.Controller{raidconf.Software: sw}, tc.want, devs, &log)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Apply: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("Apply: no error, want %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Errorf("Apply error\n  %q\ndoes not contain\n  %q", err, tc.err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("Apply error %q does not wrap %v", err, tc.sentinel)
			}
			if d := cmp.Diff(tc.calls, sw.Calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			var after []string
			for _, v := range sw.Volumes() {
				after = append(after, v.Device)
			}
			if d := cmp.Diff(tc.after, after); d != "" {
				t.Errorf("volumes left (-want +got):\n%s", d)
			}
			got := rep
			got.Lines = nil
			if d := cmp.Diff(tc.report, got); d != "" {
				t.Errorf("report (-want +got):\n%s", d)
			}
			if d := cmp.Diff(strings.Join(rep.Lines, "\n"), strings.TrimSuffix(log.String(), "\n")); d != "" {
				t.Errorf("report lines and log differ (-lines +log):\n%s", d)
			}
		})
	}
}

func TestApplyLines(t *testing.T) {
	sw := drivertest.New(raidconf.Software,
		live("/dev/md127", "md0", "1", "/dev/vdb", "/dev/vdc"),
		live("/dev/md126", "old", "0", "/dev/vdd", "/dev/vde"))
	rep, err := raid.Apply(context.Background(), map[string]raid.Controller{raidconf.Software: sw},
		want(vol("md0", "1", "vdb", "vdc"), vol("data", "1", "vdd", "vde")), devs, nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantLines := []string{
		"md0: in place as raid1 /dev/md127 (md0) over /dev/vdb, /dev/vdc",
		"deleted raid0 /dev/md126 (old) over /dev/vdd, /dev/vde: in the way of data",
		"data: created raid1 /dev/md126 (data) over /dev/vdd, /dev/vde",
		"data: verified",
	}
	if d := cmp.Diff(wantLines, rep.Lines); d != "" {
		t.Errorf("lines (-want +got):\n%s", d)
	}
}

func TestApplyHardwareMembersVerbatim(t *testing.T) {
	perc := drivertest.New("perc")
	sw := drivertest.New(raidconf.Software)
	w := want(
		raidconf.Volume{Name: "vd0", Level: "1", Controller: "perc", Members: []raidconf.Member{{Name: "252:0"}, {Name: "252:1"}}},
		vol("md1", "1", "vdb", "vdc"),
	)
	rep, err := raid.Apply(context.Background(), map[string]raid.Controller{"perc": perc, raidconf.Software: sw}, w, devs, nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if d := cmp.Diff([]string{"vd0", "md1"}, rep.Created); d != "" {
		t.Errorf("created (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"layout", "create vd0 252:0,252:1", "verify vd0"}, perc.Calls()); d != "" {
		t.Errorf("perc calls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"layout", "create md1 /dev/vdb,/dev/vdc", "verify md1"}, sw.Calls()); d != "" {
		t.Errorf("software calls (-want +got):\n%s", d)
	}
}
