//go:build vmtest

package raid_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"underlay.dev/agent/driver/inventory"
	"underlay.dev/agent/driver/raid"
	"underlay.dev/pkg/raidconf"
	"underlay.dev/test/vmtest/guest"
)

// The tests of this file run inside a test/vmtest VM (Debian's kernel,
// real md and mdadm) with four empty 64 MiB virtio disks vda..vdd; the
// host side is test/vmtest's TestRAID.

func TestMain(m *testing.M) { guest.Main(m) }

// recorder is an Exec that runs commands for real and remembers them.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) run(ctx context.Context, argv []string) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, strings.Join(argv, " "))
	r.mu.Unlock()
	return raid.RunCommand(ctx, argv)
}

// take returns and forgets the commands run so far.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// changes returns the mdadm --create and --stop commands among calls.
func changes(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.Contains(c, " --create ") || strings.Contains(c, " --stop ") {
			out = append(out, c)
		}
	}
	return out
}

// missing resolves members by the live system, except that vdy and vdz
// are said to be /dev/vdy and /dev/vdz, which do not exist: mdadm fails
// on them after earlier volumes were created.
type missing struct{ *raid.Devices }

func (o missing) Device(m raidconf.Member) (string, error) {
	if m.Name == "vdy" || m.Name == "vdz" {
		return "/dev/" + m.Name, nil
	}
	return o.Devices.Device(m)
}

// layout is a comparable summary of an array.
type layout struct {
	Name, Level string
	Members     []string
}

func layouts(t *testing.T, sw *raid.Software) []layout {
	t.Helper()
	vols, err := sw.Layout(context.Background())
	if err != nil {
		t.Fatalf("Layout: %v", err)
	}
	var out []layout
	for _, v := range vols {
		out = append(out, layout{v.Name, v.Level, v.Members})
	}
	return out
}

func resolve(t *testing.T, config string) *raidconf.Resolved {
	t.Helper()
	c, err := raidconf.Parse([]byte(config))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	inv, err := inventory.Collect(context.Background(), inventory.Options{})
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	r, err := raidconf.Resolve(c, inv)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	t.Logf("plan: %s", strings.Join(r.Summary(), "; "))
	return r
}

func logDetail(t *testing.T, dev string) {
	t.Helper()
	out, err := exec.Command(raid.DefaultMdadm, "--detail", "--export", dev).CombinedOutput()
	t.Logf("mdadm --detail --export %s (err %v):\n%s", dev, err, out)
	b, _ := os.ReadFile("/proc/mdstat")
	t.Logf("/proc/mdstat:\n%s", b)
}

func TestVMSoftwareRAID(t *testing.T) {
	if !guest.InVM() {
		t.Skip("runs inside a test/vmtest VM with four scratch virtio disks")
	}
	ctx := context.Background()
	rec := &recorder{}
	sw := raid.NewSoftware(raid.SoftwareConfig{Exec: rec.run})
	ctrls := map[string]raid.Controller{raidconf.Software: sw}
	devs := raid.NewDevices("")
	root := `{"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "is_root_volume": true, "volume_name": "root"}]}`
	wantRoot := []layout{{"root", "1", []string{"/dev/vda", "/dev/vdb"}}}

	step := func(name string, fn func(t *testing.T)) {
		start := time.Now()
		if !t.Run(name, fn) {
			t.FailNow() // later steps build on this one
		}
		t.Logf("%s: %v", name, time.Since(start).Round(time.Millisecond))
	}

	step("resolve and create raid1 from a raidconf config", func(t *testing.T) {
		want := resolve(t, root)
		if d := cmp.Diff([]string{"root: raid1 of vda, vdb (2 x 64.0 MiB, root)"}, want.Summary()); d != "" {
			t.Errorf("plan (-want +got):\n%s", d)
		}
		rep, err := raid.Apply(ctx, ctrls, want, devs, nil)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		t.Logf("report:\n%s", strings.Join(rep.Lines, "\n"))
		if d := cmp.Diff([]string{"root"}, rep.Created); d != "" {
			t.Errorf("created (-want +got):\n%s", d)
		}
		if d := cmp.Diff(wantRoot, layouts(t, sw)); d != "" {
			t.Errorf("layout (-want +got):\n%s", d)
		}
		logDetail(t, "/dev/md/root")
		rec.take()
	})

	step("apply again is a no-op", func(t *testing.T) {
		rep, err := raid.Apply(ctx, ctrls, resolve(t, root), devs, nil)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if d := cmp.Diff(raid.Report{Unchanged: []string{"root"}}, raid.Report{Created: rep.Created, Deleted: rep.Deleted, Unchanged: rep.Unchanged}); d != "" {
			t.Errorf("report (-want +got):\n%s", d)
		}
		if c := changes(rec.take()); len(c) != 0 {
			t.Errorf("a no-op ran %v", c)
		}
	})

	step("raid5 on two disks fails before touching anything", func(t *testing.T) {
		c, err := raidconf.Parse([]byte(`{"logical_disks": [{"size_gb": "MAX", "raid_level": "5", "physical_disks": ["vdc", "vdd"]}]}`))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		inv, err := inventory.Collect(ctx, inventory.Options{})
		if err != nil {
			t.Fatalf("inventory: %v", err)
		}
		if _, err := raidconf.Resolve(c, inv); !errors.Is(err, raidconf.ErrUnsatisfiable) ||
			!strings.Contains(err.Error(), `logical disk 0: raid_level "5" needs at least 3 disks, 2 match (vdc, vdd)`) {
			t.Errorf("Resolve error = %v", err)
		}
		// A plan made elsewhere is checked again by Apply.
		bad := &raidconf.Resolved{Volumes: []raidconf.Volume{{Name: "data", Level: "5", Controller: raidconf.Software,
			Members: []raidconf.Member{{Name: "vdc"}, {Name: "vdd"}}}}}
		if _, err := raid.Apply(ctx, ctrls, bad, devs, nil); !errors.Is(err, raidconf.ErrUnsatisfiable) {
			t.Errorf("Apply error = %v, want ErrUnsatisfiable", err)
		}
		if c := rec.take(); len(c) != 0 {
			t.Errorf("ran commands: %v", c)
		}
		if d := cmp.Diff(wantRoot, layouts(t, sw)); d != "" {
			t.Errorf("layout changed (-want +got):\n%s", d)
		}
	})

	step("a failure mid-way rolls back what this run created", func(t *testing.T) {
		mirror := func(name string, members ...string) raidconf.Volume {
			v := raidconf.Volume{Name: name, Level: "1", Controller: raidconf.Software}
			for _, m := range members {
				v.Members = append(v.Members, raidconf.Member{Name: m})
			}
			return v
		}
		// vdx resolves to nothing: refused before anything is touched.
		want := &raidconf.Resolved{Volumes: []raidconf.Volume{mirror("root", "vda", "vdb"), mirror("data", "vdc", "vdd"), mirror("scratch", "vdx", "vdy")}}
		if _, err := raid.Apply(ctx, ctrls, want, missing{devs}, nil); !errors.Is(err, raid.ErrNoDevice) {
			t.Errorf("Apply with an unknown disk: %v, want ErrNoDevice", err)
		}
		if c := changes(rec.take()); len(c) != 0 {
			t.Errorf("an unresolvable plan ran %v", c)
		}
		// vdy and vdz resolve but do not exist: data is created, scratch
		// fails in mdadm, data is rolled back and root left alone.
		want.Volumes[2] = mirror("scratch", "vdy", "vdz")
		var log strings.Builder
		rep, err := raid.Apply(ctx, ctrls, want, missing{devs}, &log)
		t.Logf("report:\n%s", log.String())
		if err == nil || !strings.Contains(err.Error(), "create scratch (rolled back data): ") {
			t.Fatalf("Apply error = %v, want a rolled back create", err)
		}
		t.Logf("error: %v", err)
		if d := cmp.Diff([]string{"root"}, rep.Unchanged); d != "" {
			t.Errorf("unchanged (-want +got):\n%s", d)
		}
		if len(rep.Created) != 0 {
			t.Errorf("report says created %v after the rollback", rep.Created)
		}
		if d := cmp.Diff(wantRoot, layouts(t, sw)); d != "" {
			t.Errorf("layout after rollback (-want +got):\n%s", d)
		}
		for _, d := range []string{"/dev/vdc", "/dev/vdd"} {
			if out, err := exec.Command(raid.DefaultMdadm, "--examine", d).CombinedOutput(); err == nil {
				t.Errorf("%s keeps an md superblock after the rollback:\n%s", d, out)
			}
		}
		rec.take()
	})

	step("StopArrays leaves no array and no superblock", func(t *testing.T) {
		disks := []string{"/dev/vda", "/dev/vdb", "/dev/vdc", "/dev/vdd"}
		if err := sw.StopArrays(ctx, disks); err != nil {
			t.Fatalf("StopArrays: %v", err)
		}
		if got := layouts(t, sw); len(got) != 0 {
			t.Errorf("arrays left: %v", got)
		}
		for _, d := range disks {
			if out, err := exec.Command(raid.DefaultMdadm, "--examine", d).CombinedOutput(); err == nil {
				t.Errorf("%s keeps an md superblock:\n%s", d, out)
			}
		}
		if c := changes(rec.take()); len(c) != 1 || !strings.Contains(c[0], "--stop /dev/md") {
			t.Errorf("StopArrays ran %v, want one --stop", c)
		}
	})

	step("re-create, with a sized raid1 beside it", func(t *testing.T) {
		want := resolve(t, root)
		want.Volumes = append(want.Volumes, raidconf.Volume{Name: "data", Level: "1", Controller: raidconf.Software,
			SizeBytes: 32 << 20, Members: []raidconf.Member{{Name: "vdc"}, {Name: "vdd"}}})
		rep, err := raid.Apply(ctx, ctrls, want, devs, nil)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		t.Logf("report:\n%s", strings.Join(rep.Lines, "\n"))
		if d := cmp.Diff([]string{"root", "data"}, rep.Created); d != "" {
			t.Errorf("created (-want +got):\n%s", d)
		}
		got := layouts(t, sw)
		wantLayout := append(wantRoot, layout{"data", "1", []string{"/dev/vdc", "/dev/vdd"}})
		if d := cmp.Diff(wantLayout, got, cmpopts.SortSlices(func(a, b layout) bool { return a.Name < b.Name })); d != "" {
			t.Errorf("layout (-want +got):\n%s", d)
		}
		vols, _ := sw.Layout(ctx)
		for _, v := range vols {
			if v.Name == "data" && v.SizeBytes != 32<<20 {
				t.Errorf("data holds %d bytes, want 32 MiB", v.SizeBytes)
			}
		}
		logDetail(t, "/dev/md/data")
		if err := sw.StopArrays(ctx, []string{"/dev/vda", "/dev/vdb", "/dev/vdc", "/dev/vdd"}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}
