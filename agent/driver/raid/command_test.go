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

// fakeController writes a controller file for testdata/fakeraid into a
// fresh directory and returns the directory and the tool's state file.
func fakeController(t *testing.T, extra string) (dir, state string) {
	t.Helper()
	tool, err := filepath.Abs(filepath.Join("testdata", "fakeraid"))
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	state = filepath.Join(t.TempDir(), "state")
	yaml := `# a fake vendor tool, wired like docs/raid.md wires storcli
layout: [` + tool + `, ` + state + `, show]
create: [` + tool + `, ` + state + `, add, "name={{.Name}}", "level=r{{.LevelDigits}}", "{{if .SizeBytes}}size={{.SizeBytes}}{{end}}", "drives={{.MembersComma}}"]
delete: [` + tool + `, ` + state + `, del, "id={{.ID}}"]
verify: [` + tool + `, ` + state + `, check, "id={{.ID}}"]
` + extra
	if err := os.WriteFile(filepath.Join(dir, "fake.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, state
}

func loadOne(t *testing.T, dir string, exec raid.Exec) *raid.Command {
	t.Helper()
	cmds, err := raid.LoadCommands(dir, exec)
	if err != nil {
		t.Fatalf("LoadCommands: %v", err)
	}
	if len(cmds) != 1 || cmds[0].Name() != "fake" {
		t.Fatalf("LoadCommands = %v, want the controller fake", cmds)
	}
	return cmds[0]
}

func hwVolume(name, level string, sizeBytes uint64, drives ...string) raidconf.Volume {
	v := raidconf.Volume{Name: name, Level: level, Controller: "fake", SizeBytes: sizeBytes}
	for _, d := range drives {
		v.Members = append(v.Members, raidconf.Member{Name: d})
	}
	return v
}

func TestCommandController(t *testing.T) {
	ctx := context.Background()
	dir, state := fakeController(t, "")
	rec := &drivertest.Exec{}
	rec.Respond = func(argv []string) ([]byte, error) { return raid.RunCommand(ctx, argv) }
	fake := loadOne(t, dir, rec.Run)
	ctrls := map[string]raid.Controller{"fake": fake}
	want := &raidconf.Resolved{Volumes: []raidconf.Volume{
		hwVolume("vd0", "1", 0, "252:0", "252:1"),
		hwVolume("vd1", "1+0", 100<<30, "252:2", "252:3", "252:4", "252:5"),
	}}

	rep, err := raid.Apply(ctx, ctrls, want, nil, nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if d := cmp.Diff([]string{"vd0", "vd1"}, rep.Created); d != "" {
		t.Errorf("created (-want +got):\n%s", d)
	}
	var creates []string
	for _, c := range rec.Calls() {
		if strings.Contains(c, " add ") {
			creates = append(creates, c[strings.Index(c, " add "):])
		}
	}
	wantCreates := []string{" add name=vd0 level=r1 drives=252:0,252:1", " add name=vd1 level=r10 size=107374182400 drives=252:2,252:3,252:4,252:5"}
	if d := cmp.Diff(wantCreates, creates); d != "" {
		t.Errorf("create commands (-want +got):\n%s", d)
	}
	got, err := fake.Layout(ctx)
	if err != nil {
		t.Fatalf("Layout: %v", err)
	}
	wantLayout := []raid.Volume{
		{Name: "vd0", Level: "1", Controller: "fake", UUID: "0", State: "optimal", Members: []string{"252:0", "252:1"}, Device: "/dev/sda"},
		{Name: "vd1", Level: "1+0", Controller: "fake", UUID: "1", State: "optimal", Members: []string{"252:2", "252:3", "252:4", "252:5"},
			SizeBytes: 100 << 30, Device: "/dev/sdb"},
	}
	if d := cmp.Diff(wantLayout, got); d != "" {
		t.Errorf("Layout (-want +got):\n%s", d)
	}

	// Again: nothing to do.
	rep, err = raid.Apply(ctx, ctrls, want, nil, nil)
	if err != nil {
		t.Fatalf("Apply again: %v", err)
	}
	if d := cmp.Diff([]string{"vd0", "vd1"}, rep.Unchanged); d != "" || len(rep.Created)+len(rep.Deleted) != 0 {
		t.Errorf("second Apply: %+v", rep)
	}

	// A different layout on the same drives: the old volumes go first; the
	// new one comes up degraded, fails verification and is rolled back.
	if err := os.WriteFile(state+".degrade", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other := &raidconf.Resolved{Volumes: []raidconf.Volume{hwVolume("big", "5", 0, "252:0", "252:1", "252:2")}}
	rep, err = raid.Apply(ctx, ctrls, other, nil, nil)
	if !errors.Is(err, raid.ErrVerify) || !strings.Contains(err.Error(), "verify big (rolled back big)") {
		t.Errorf("Apply degraded: %v, want a rolled back verification failure", err)
	}
	if d := cmp.Diff([]string{"vd0", "vd1"}, rep.Deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	if got, _ := fake.Layout(ctx); len(got) != 0 {
		t.Errorf("volumes left after rollback: %+v", got)
	}

	// The tool fails: its stderr is in the error.
	os.Remove(state + ".degrade")
	if err := os.WriteFile(state+".fail-add", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = raid.Apply(ctx, ctrls, other, nil, nil)
	if !errors.Is(err, raid.ErrCommand) || !strings.Contains(err.Error(), "exit status 3: fakeraid: controller busy") {
		t.Errorf("Apply with a failing tool: %v", err)
	}
}

func TestCommandConfigErrors(t *testing.T) {
	ok := func(c raid.CommandConfig) raid.CommandConfig {
		if c.Name == "" {
			c.Name = "perc"
		}
		if c.Layout == nil {
			c.Layout = []string{"tool", "show"}
		}
		if c.Create == nil {
			c.Create = []string{"tool", "add", "{{.Name}}"}
		}
		if c.Delete == nil {
			c.Delete = []string{"tool", "del", "{{.ID}}"}
		}
		return c
	}
	for _, tc := range []struct {
		name string
		c    raid.CommandConfig
		want string
	}{
		{"reserved name", ok(raid.CommandConfig{Name: "software"}), `raid controller name "software" is reserved`},
		{"bad name", ok(raid.CommandConfig{Name: "My RAID"}), `raid controller name "My RAID"`},
		{"no delete", ok(raid.CommandConfig{Delete: []string{}}), "raid controller perc: delete command is required"},
		{"bad template", ok(raid.CommandConfig{Create: []string{"tool", "{{.Name"}}), `raid controller perc: create command: argument 1 "{{.Name"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := raid.NewCommand(tc.c)
			if !errors.Is(err, raid.ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewCommand error = %v, want %q", err, tc.want)
			}
		})
	}

	t.Run("unknown field in the file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "perc.yaml"), []byte("layout: [a]\ncreate: [b]\ndelete: [c]\nverfy: [d]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := raid.LoadCommands(dir, nil)
		if !errors.Is(err, raid.ErrBadConfig) || !strings.Contains(err.Error(), `unknown field "verfy"`) {
			t.Errorf("LoadCommands error = %v", err)
		}
	})
	t.Run("missing directory holds no controllers", func(t *testing.T) {
		cmds, err := raid.LoadCommands(filepath.Join(t.TempDir(), "none"), nil)
		if err != nil || len(cmds) != 0 {
			t.Errorf("LoadCommands = %v, %v", cmds, err)
		}
	})
	t.Run("two files, one name", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"a.yaml", "b.json"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(`{"name": "perc", "layout": ["a"], "create": ["b"], "delete": ["c"]}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := raid.LoadCommands(dir, nil)
		if !errors.Is(err, raid.ErrBadConfig) || !strings.Contains(err.Error(), `raid controller "perc" is defined by`) {
			t.Errorf("LoadCommands error = %v", err)
		}
	})
}

func TestCommandLayoutOutput(t *testing.T) {
	for _, tc := range []struct {
		name, out, want string
	}{
		{"not json", "Controller 0: OK", "layout output"},
		{"unknown field", `{"volumes": [{"id": "0", "level": "1", "colour": "red"}]}`, `unknown field "colour"`},
		{"bad level", `{"volumes": [{"id": "0", "level": "raid7"}]}`, `layout volume 0 (0): level "raid7"`},
		{"no id", `{"volumes": [{"level": "1"}]}`, "layout volume 0 has no id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec := &drivertest.Exec{Respond: func([]string) ([]byte, error) { return []byte(tc.out), nil }}
			c, err := raid.NewCommand(raid.CommandConfig{Name: "perc", Layout: []string{"tool"}, Create: []string{"x"}, Delete: []string{"y"}, Exec: exec.Run})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Layout(context.Background())
			if !errors.Is(err, raid.ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Layout error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCommandMembersArgument(t *testing.T) {
	exec := &drivertest.Exec{Respond: func(argv []string) ([]byte, error) {
		if argv[1] == "show" {
			return []byte(`{"volumes": [{"id": "7", "level": "RAID1", "members": ["1", "0"], "state": "Optimal"}]}`), nil
		}
		return nil, nil
	}}
	c, err := raid.NewCommand(raid.CommandConfig{Name: "perc", Exec: exec.Run,
		Layout: []string{"tool", "show"},
		Create: []string{"tool", "add", "{{.MDLevel}}", "{{.Members}}", "{{if .Root}}--boot{{end}}"},
		Delete: []string{"tool", "del", "{{.ID}}"}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Create(context.Background(), raidconf.Volume{Name: "vd0", Level: "1", Root: true}, []string{"0", "1"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if v.UUID != "7" || v.Level != "1" {
		t.Errorf("Create = %+v", v)
	}
	if d := cmp.Diff([]string{"tool add raid1 0 1 --boot", "tool show"}, exec.Calls()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
}
