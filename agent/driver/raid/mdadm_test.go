package raid_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent/driver/raid"
	"underlay.dev/agent/driver/raid/drivertest"
	"underlay.dev/pkg/raidconf"
)

// fakeMD is a software controller over a scripted mdadm: mdstat is a file
// the test rewrites, details maps a device to its --detail --export text.
type fakeMD struct {
	sw      *raid.Software
	exec    *drivertest.Exec
	mdstat  string
	details map[string]string
	// onCreate, when set, runs for --create (e.g. to rewrite mdstat).
	onCreate func()
	fail     map[string]error // by argv prefix after the binary
}

func newFakeMD(t testing.TB, mdstat string, sys string) *fakeMD {
	t.Helper()
	f := &fakeMD{mdstat: filepath.Join(t.TempDir(), "mdstat"), details: map[string]string{}, fail: map[string]error{}}
	f.setMDStat(t, mdstat)
	f.exec = &drivertest.Exec{Respond: func(argv []string) ([]byte, error) {
		args := strings.Join(argv[1:], " ")
		for prefix, err := range f.fail {
			if strings.HasPrefix(args, prefix) {
				return nil, err
			}
		}
		switch {
		case strings.HasPrefix(args, "--detail --export "):
			if d, ok := f.details[argv[len(argv)-1]]; ok {
				return []byte(d), nil
			}
			return nil, &raid.CommandError{Argv: argv, Code: 1, Stderr: "mdadm: cannot open " + argv[len(argv)-1], Err: errors.New("exit status 1")}
		case strings.HasPrefix(args, "--create") && f.onCreate != nil:
			f.onCreate()
		}
		return nil, nil
	}}
	f.sw = raid.NewSoftware(raid.SoftwareConfig{Mdadm: "/sbin/mdadm", MDStat: f.mdstat, Sys: sys, Exec: f.exec.Run})
	return f
}

func (f *fakeMD) setMDStat(t testing.TB, content string) {
	t.Helper()
	if err := os.WriteFile(f.mdstat, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSoftwareLayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mdstat  string
		details map[string]string
		want    []raid.Volume
		calls   []string
	}{
		{
			name:   "captured raid0 and resyncing raid1",
			mdstat: readTestdata(t, "mdstat-two"),
			details: map[string]string{
				"/dev/md126": readTestdata(t, "detail-raid0.export"),
				"/dev/md127": readTestdata(t, "detail-raid1.export"),
			},
			want: []raid.Volume{
				{Name: "data", Level: "0", Controller: "software", UUID: "5c6bc4ba:bbeba1e4:96573e6d:c83f5f41",
					State: "active", Members: []string{"/dev/vdc", "/dev/vdd"}, SizeBytes: 126976 * 1024, Device: "/dev/md126"},
				{Name: "root", Level: "1", Controller: "software", UUID: "3b9db9bd:9bef12bf:acf35d38:0fd06d6e",
					State: "active,resync", Members: []string{"/dev/vda", "/dev/vdb"}, SizeBytes: 64512 * 1024, Device: "/dev/md127"},
			},
			calls: []string{"/sbin/mdadm --detail --export /dev/md126", "/sbin/mdadm --detail --export /dev/md127"},
		},
		{
			name:   "homehost any",
			mdstat: readTestdata(t, "mdstat-two"),
			details: map[string]string{
				"/dev/md126": readTestdata(t, "detail-raid0.export"),
				"/dev/md127": readTestdata(t, "detail-raid1-homehost-any.export"),
			},
			want: []raid.Volume{
				{Name: "data", Level: "0", Controller: "software", UUID: "5c6bc4ba:bbeba1e4:96573e6d:c83f5f41",
					State: "active", Members: []string{"/dev/vdc", "/dev/vdd"}, SizeBytes: 126976 * 1024, Device: "/dev/md126"},
				{Name: "root", Level: "1", Controller: "software", UUID: "d3a72d61:f23646b4:297076b3:bebe4691",
					State: "active,resync", Members: []string{"/dev/vda", "/dev/vdb"}, SizeBytes: 64512 * 1024, Device: "/dev/md127"},
			},
			calls: []string{"/sbin/mdadm --detail --export /dev/md126", "/sbin/mdadm --detail --export /dev/md127"},
		},
		{
			name:   "empty",
			mdstat: readTestdata(t, "mdstat-empty"),
		},
		{
			name:   "inventory samples: degraded, auto-read-only, recovery, inactive (no detail)",
			mdstat: readFile(t, "../inventory/testdata/mdstat/mixed"),
			details: map[string]string{
				"/dev/md2": "MD_LEVEL=raid1\nMD_UUID=u2\nMD_NAME=any:boot\nMD_DEVICE_dev_sda3_ROLE=0\nMD_DEVICE_dev_sda3_DEV=/dev/sda3\nMD_DEVICE_dev_sdb3_ROLE=1\nMD_DEVICE_dev_sdb3_DEV=/dev/sdb3\n",
				"/dev/md3": "MD_LEVEL=raid5\nMD_UUID=u3\nMD_NAME=data\nMD_DEVICE_dev_sdf_ROLE=spare\nMD_DEVICE_dev_sdf_DEV=/dev/sdf\nMD_DEVICE_dev_sdd_ROLE=0\nMD_DEVICE_dev_sdd_DEV=/dev/sdd\nMD_DEVICE_dev_sde_ROLE=1\nMD_DEVICE_dev_sde_DEV=/dev/sde\n",
			},
			want: []raid.Volume{
				{Name: "boot", Level: "1", Controller: "software", UUID: "u2", State: "active,auto-read-only",
					Members: []string{"/dev/sda3", "/dev/sdb3"}, SizeBytes: 1046528 * 1024, Device: "/dev/md2"},
				{Name: "data", Level: "5", Controller: "software", UUID: "u3", State: "active,degraded,recovery",
					Members: []string{"/dev/sdd", "/dev/sde", "/dev/sdf"}, SizeBytes: 2093056 * 1024, Device: "/dev/md3"},
				{Name: "md127", Controller: "software", State: "inactive",
					Members: []string{"/dev/sdg"}, SizeBytes: 1046528 * 1024, Device: "/dev/md127"},
			},
			calls: []string{"/sbin/mdadm --detail --export /dev/md2", "/sbin/mdadm --detail --export /dev/md3", "/sbin/mdadm --detail --export /dev/md127"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMD(t, tc.mdstat, t.TempDir())
			f.details = tc.details
			got, err := f.sw.Layout(context.Background())
			if err != nil {
				t.Fatalf("Layout: %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Layout (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.calls, f.exec.Calls()); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
		})
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSoftwareLayoutErrors(t *testing.T) {
	t.Run("active array mdadm cannot detail", func(t *testing.T) {
		f := newFakeMD(t, readTestdata(t, "mdstat-two"), t.TempDir())
		_, err := f.sw.Layout(context.Background())
		if err == nil || !strings.Contains(err.Error(), "detail of /dev/md126: /sbin/mdadm --detail --export /dev/md126: exit status 1: mdadm: cannot open /dev/md126") {
			t.Errorf("Layout error = %v", err)
		}
	})
	t.Run("malformed mdstat", func(t *testing.T) {
		f := newFakeMD(t, readFile(t, "../inventory/testdata/mdstat/malformed"), t.TempDir())
		_, err := f.sw.Layout(context.Background())
		if !errors.Is(err, raid.ErrBadConfig) || !strings.Contains(err.Error(), `mdstat member "sda1{0}" of md0`) {
			t.Errorf("Layout error = %v", err)
		}
	})
	t.Run("no mdstat: no md driver, no arrays", func(t *testing.T) {
		sw := raid.NewSoftware(raid.SoftwareConfig{MDStat: filepath.Join(t.TempDir(), "none"), Exec: (&drivertest.Exec{}).Run})
		got, err := sw.Layout(context.Background())
		if err != nil || len(got) != 0 {
			t.Errorf("Layout = %v, %v; want nothing", got, err)
		}
	})
}

const raid1Created = `Personalities : [raid1]
md127 : active raid1 vdc[1] vdb[0]
      8383488 blocks super 1.2 [2/2] [UU]
      [>....................]  resync =  0.7% (960/8383488) finish=1.0min speed=960K/sec

unused devices: <none>
`

func TestSoftwareCreate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		vol         raidconf.Volume
		devices     []string
		assumeClean bool
		create      string
	}{
		{
			name:    "raid1 all of it",
			vol:     raidconf.Volume{Name: "root", Level: "1"},
			devices: []string{"/dev/vdb", "/dev/vdc"},
			create:  "/sbin/mdadm --create /dev/md/root --run --metadata=1.2 --homehost=any --level=raid1 --raid-devices=2 --name=root /dev/vdb /dev/vdc",
		},
		{
			name:        "raid1 of a size, assume clean",
			vol:         raidconf.Volume{Name: "md0", Level: "1", SizeBytes: 4 << 30},
			devices:     []string{"/dev/vdb", "/dev/vdc"},
			assumeClean: true,
			create:      "/sbin/mdadm --create /dev/md/md0 --run --metadata=1.2 --homehost=any --level=raid1 --raid-devices=2 --name=md0 --size=4096M --assume-clean /dev/vdb /dev/vdc",
		},
		{
			name:    "raid5 size is per device",
			vol:     raidconf.Volume{Name: "data", Level: "5", SizeBytes: 100 << 30},
			devices: []string{"/dev/vdb", "/dev/vdc", "/dev/vdd"},
			create:  "/sbin/mdadm --create /dev/md/data --run --metadata=1.2 --homehost=any --level=raid5 --raid-devices=3 --name=data --size=51200M /dev/vdb /dev/vdc /dev/vdd",
		},
		{
			name:    "raid 1+0 rounds up",
			vol:     raidconf.Volume{Name: "data", Level: "1+0", SizeBytes: 3<<20 + 1},
			devices: []string{"/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"},
			create:  "/sbin/mdadm --create /dev/md/data --run --metadata=1.2 --homehost=any --level=raid10 --raid-devices=4 --name=data --size=2M /dev/vdb /dev/vdc /dev/vdd /dev/vde",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMD(t, readTestdata(t, "mdstat-empty"), t.TempDir())
			f.sw = raid.NewSoftware(raid.SoftwareConfig{MDStat: f.mdstat, Exec: f.exec.Run, AssumeClean: tc.assumeClean})
			var mdstat strings.Builder
			mdstat.WriteString("Personalities : [raid1]\nmd127 : active " + raidconf.MDLevel(tc.vol.Level))
			for i, d := range tc.devices {
				mdstat.WriteString(" " + strings.TrimPrefix(d, "/dev/") + "[" + string(rune('0'+i)) + "]")
			}
			mdstat.WriteString("\n      8383488 blocks super 1.2\n\nunused devices: <none>\n")
			f.onCreate = func() { f.setMDStat(t, mdstat.String()) }
			var detail strings.Builder
			detail.WriteString("MD_LEVEL=" + raidconf.MDLevel(tc.vol.Level) + "\nMD_UUID=u\nMD_NAME=any:" + tc.vol.Name + "\n")
			for i, d := range tc.devices {
				id := "MD_DEVICE_dev_" + strings.TrimPrefix(d, "/dev/")
				detail.WriteString(id + "_ROLE=" + string(rune('0'+i)) + "\n" + id + "_DEV=" + d + "\n")
			}
			f.details["/dev/md127"] = detail.String()

			got, err := f.sw.Create(context.Background(), tc.vol, tc.devices)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			var want []string
			for _, d := range tc.devices {
				want = append(want, "/sbin/mdadm --zero-superblock --force "+d)
			}
			want = append(want, tc.create, "/sbin/mdadm --detail --export /dev/md127")
			if d := cmp.Diff(want, f.exec.Calls()); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
			wantVol := raid.Volume{Name: tc.vol.Name, Level: tc.vol.Level, Controller: "software", UUID: "u",
				State: "active", Members: tc.devices, SizeBytes: 8383488 * 1024, Device: "/dev/md127"}
			if d := cmp.Diff(wantVol, got); d != "" {
				t.Errorf("Create (-want +got):\n%s", d)
			}
		})
	}
}

func TestSoftwareCreateErrors(t *testing.T) {
	unrecognised := &raid.CommandError{Argv: []string{"mdadm"}, Code: 1, Stderr: "mdadm: Unrecognised md component device - /dev/vdb", Err: errors.New("exit status 1")}
	t.Run("no superblock to zero is fine, a failing create is not", func(t *testing.T) {
		f := newFakeMD(t, readTestdata(t, "mdstat-empty"), t.TempDir())
		f.fail["--zero-superblock"] = unrecognised
		f.fail["--create"] = &raid.CommandError{Argv: []string{"/sbin/mdadm", "--create"}, Code: 1, Stderr: "mdadm: cannot open /dev/vdz: No such file or directory", Err: errors.New("exit status 1")}
		_, err := f.sw.Create(context.Background(), raidconf.Volume{Name: "md0", Level: "1"}, []string{"/dev/vdb", "/dev/vdz"})
		if !errors.Is(err, raid.ErrCommand) || !strings.Contains(err.Error(), "create md0: /sbin/mdadm --create: exit status 1: mdadm: cannot open /dev/vdz") {
			t.Errorf("Create error = %v", err)
		}
	})
	t.Run("zeroing fails", func(t *testing.T) {
		f := newFakeMD(t, readTestdata(t, "mdstat-empty"), t.TempDir())
		f.fail["--zero-superblock"] = &raid.CommandError{Argv: []string{"mdadm"}, Code: 1, Stderr: "mdadm: Couldn't open /dev/vdb for write - not zeroing", Err: errors.New("exit status 1")}
		_, err := f.sw.Create(context.Background(), raidconf.Volume{Name: "md0", Level: "1"}, []string{"/dev/vdb", "/dev/vdc"})
		if err == nil || !strings.Contains(err.Error(), "zero superblock of /dev/vdb") {
			t.Errorf("Create error = %v", err)
		}
		if n := len(f.exec.Calls()); n != 1 {
			t.Errorf("ran %d commands after zeroing failed, want 1: %v", n, f.exec.Calls())
		}
	})
	t.Run("bad level and name are refused before mdadm runs", func(t *testing.T) {
		f := newFakeMD(t, readTestdata(t, "mdstat-empty"), t.TempDir())
		for _, v := range []raidconf.Volume{{Name: "md0", Level: "7"}, {Name: "a/b", Level: "1"}, {Level: "1"}, {Name: "md0", Level: "0", SizeBytes: 1 << 30}} {
			if _, err := f.sw.Create(context.Background(), v, []string{"/dev/vdb", "/dev/vdc"}); !errors.Is(err, raid.ErrBadConfig) {
				t.Errorf("Create(%+v) error = %v, want ErrBadConfig", v, err)
			}
		}
		if calls := f.exec.Calls(); len(calls) != 0 {
			t.Errorf("mdadm ran: %v", calls)
		}
	})
}

func TestSoftwareDelete(t *testing.T) {
	f := newFakeMD(t, readTestdata(t, "mdstat-empty"), t.TempDir())
	err := f.sw.Delete(context.Background(), raid.Volume{Name: "root", Device: "/dev/md127", Members: []string{"/dev/vda", "/dev/vdb"}})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want := []string{"/sbin/mdadm --stop /dev/md127", "/sbin/mdadm --zero-superblock --force /dev/vda", "/sbin/mdadm --zero-superblock --force /dev/vdb"}
	if d := cmp.Diff(want, f.exec.Calls()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
}

func TestSoftwareVerify(t *testing.T) {
	devices := []string{"/dev/vdb", "/dev/vdc"}
	detail := "MD_LEVEL=raid1\nMD_UUID=u\nMD_NAME=any:md0\nMD_DEVICE_dev_vdb_ROLE=0\nMD_DEVICE_dev_vdb_DEV=/dev/vdb\nMD_DEVICE_dev_vdc_ROLE=1\nMD_DEVICE_dev_vdc_DEV=/dev/vdc\n"
	degraded := strings.Replace(raid1Created, "[2/2] [UU]", "[2/1] [U_]", 1)
	for _, tc := range []struct {
		name   string
		mdstat string
		vol    raidconf.Volume
		devs   []string
		err    string
	}{
		{name: "resyncing is fine", mdstat: raid1Created, vol: raidconf.Volume{Name: "md0", Level: "1"}, devs: devices},
		{name: "size fits", mdstat: raid1Created, vol: raidconf.Volume{Name: "md0", Level: "1", SizeBytes: 8383488 << 10}, devs: devices},
		{name: "too small", mdstat: raid1Created, vol: raidconf.Volume{Name: "md0", Level: "1", SizeBytes: 8 << 30}, devs: devices,
			err: "verify md0: raid1 /dev/md127 (md0) over /dev/vdb, /dev/vdc holds 8584691712 bytes (8.0 GiB), want 8589934592"},
		{name: "degraded", mdstat: degraded, vol: raidconf.Volume{Name: "md0", Level: "1"}, devs: devices,
			err: "verify md0: raid1 /dev/md127 (md0) over /dev/vdb, /dev/vdc is active,degraded,resync"},
		{name: "wrong level", mdstat: raid1Created, vol: raidconf.Volume{Name: "md0", Level: "0"}, devs: devices,
			err: `verify md0: /dev/md127 is raid level "1", want "0"`},
		{name: "other members", mdstat: raid1Created, vol: raidconf.Volume{Name: "md0", Level: "1"}, devs: []string{"/dev/vdb", "/dev/vdd"},
			err: "verify md0: no array over /dev/vdb, /dev/vdd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMD(t, tc.mdstat, t.TempDir())
			f.details["/dev/md127"] = detail
			err := f.sw.Verify(context.Background(), tc.vol, tc.devs)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Verify: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("Verify error = %v, want %q", err, tc.err)
			case tc.err != "" && !errors.Is(err, raid.ErrVerify):
				t.Errorf("Verify error %v does not wrap ErrVerify", err)
			}
		})
	}
}

// fakeSys makes a sysfs tree in which each of parts is a partition of the
// disk named by its letters ("vdb1" of "vdb").
func fakeSys(t testing.TB, disks []string, parts map[string]string) string {
	t.Helper()
	sys := t.TempDir()
	devices := filepath.Join(sys, "devices", "pci0000:00", "virtio")
	mk := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(sys, "class", "block"))
	mk(filepath.Join(sys, "block"))
	for _, d := range disks {
		mk(filepath.Join(devices, "block", d))
		if err := os.Symlink(filepath.Join("..", "..", "devices", "pci0000:00", "virtio", "block", d), filepath.Join(sys, "class", "block", d)); err != nil {
			t.Fatal(err)
		}
	}
	for p, d := range parts {
		dir := filepath.Join(devices, "block", d, p)
		mk(dir)
		if err := os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "devices", "pci0000:00", "virtio", "block", d, p), filepath.Join(sys, "class", "block", p)); err != nil {
			t.Fatal(err)
		}
	}
	return sys
}

func TestStopArrays(t *testing.T) {
	sys := fakeSys(t, []string{"vdb", "vdc", "vdd", "vde"}, map[string]string{"vdb1": "vdb", "vdc1": "vdc"})
	mdstat := `Personalities : [raid1] [raid0]
md127 : active raid1 vdc1[1] vdb1[0]
      1046528 blocks super 1.2 [2/2] [UU]

md126 : active raid0 vde[1] vdd[0]
      1046528 blocks super 1.2 512k chunks

unused devices: <none>
`
	f := newFakeMD(t, mdstat, sys)
	f.details["/dev/md127"] = "MD_LEVEL=raid1\nMD_UUID=a\nMD_DEVICE_dev_vdb1_ROLE=0\nMD_DEVICE_dev_vdb1_DEV=/dev/vdb1\nMD_DEVICE_dev_vdc1_ROLE=1\nMD_DEVICE_dev_vdc1_DEV=/dev/vdc1\n"
	f.details["/dev/md126"] = "MD_LEVEL=raid0\nMD_UUID=b\nMD_DEVICE_dev_vdd_ROLE=0\nMD_DEVICE_dev_vdd_DEV=/dev/vdd\nMD_DEVICE_dev_vde_ROLE=1\nMD_DEVICE_dev_vde_DEV=/dev/vde\n"
	if err := f.sw.StopArrays(context.Background(), []string{"/dev/vdb"}); err != nil {
		t.Fatalf("StopArrays: %v", err)
	}
	want := []string{
		"/sbin/mdadm --detail --export /dev/md127",
		"/sbin/mdadm --detail --export /dev/md126",
		"/sbin/mdadm --stop /dev/md127",
		"/sbin/mdadm --zero-superblock --force /dev/vdb1",
		"/sbin/mdadm --zero-superblock --force /dev/vdc1",
		"/sbin/mdadm --zero-superblock --force /dev/vdb",
	}
	if d := cmp.Diff(want, f.exec.Calls()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
}
