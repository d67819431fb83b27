package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

func defTask(t *underlayv1.Task) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: t}}
}

func defRole(r *underlayv1.Role) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: r}}
}

func defProfile(p *underlayv1.Profile) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Profile{Profile: p}}
}

func defRule(r *underlayv1.Rule) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Rule{Rule: r}}
}

func testTasks() []*underlayv1.Definition {
	return []*underlayv1.Definition{
		defTask(&underlayv1.Task{
			Name:           "install-os",
			Inputs:         []*underlayv1.ParamSpec{{Name: "image", Type: "string", Required: true}, {Name: "disk", Type: "string"}},
			Outputs:        []*underlayv1.OutputSpec{{Name: "root_uuid"}},
			Script:         "dd if={{.params.image}} of={{.params.disk}}\n",
			TimeoutSeconds: 1800, Retries: 2,
			Meta: &underlayv1.DefinitionMeta{Version: 3, Source: "tasks.yaml:1", Updated: ts(-time.Hour)},
		}),
		defTask(&underlayv1.Task{
			Name: "wipe", Action: &underlayv1.Action{Name: "wipe"}, TimeoutSeconds: 90,
			Meta: &underlayv1.DefinitionMeta{Version: 1, Source: "tasks.yaml:20"},
		}),
	}
}

func testRoles() []*underlayv1.Definition {
	return []*underlayv1.Definition{
		defRole(&underlayv1.Role{
			Name:     "worker",
			Hardware: &underlayv1.HardwareProfile{RaidJson: `{"logical_disks":[]}`, NetworkJson: `{"links":[]}`},
			Tasks:    []string{"wipe", "install-os"},
			Requires: []*underlayv1.Link{{Role: "control-plane", Output: "join_token"}},
			Profiles: []string{"fast-disks"},
			Meta:     &underlayv1.DefinitionMeta{Version: 2},
		}),
		defRole(&underlayv1.Role{Name: "bare", Meta: &underlayv1.DefinitionMeta{Version: 1}}),
	}
}

func TestDefinitionCommands(t *testing.T) {
	f := newFakeCluster(t)
	tasks := &underlayv1.ListDefinitionsResponse{Definitions: testTasks()}
	roles := &underlayv1.ListDefinitionsResponse{Definitions: testRoles()}
	profiles := &underlayv1.ListDefinitionsResponse{Definitions: []*underlayv1.Definition{
		defProfile(&underlayv1.Profile{Name: "fast-disks", Params: map[string]*underlayv1.ParamValue{
			"scheduler": {Value: "none"}, "bmc_password": {Secret: true, Sealed: []byte{1}}},
			Meta: &underlayv1.DefinitionMeta{Version: 4}}),
	}}
	rules := &underlayv1.ListDefinitionsResponse{Definitions: []*underlayv1.Definition{
		defRule(&underlayv1.Rule{Name: "zz-default", Priority: 100, Match: "true", Role: "bare"}),
		defRule(&underlayv1.Rule{Name: "big-disks", Priority: 10, Match: "disks >= 2 && memory_gib >= 8",
			Role: "worker", Profiles: []string{"fast-disks"}, Labels: map[string]string{"tier": "storage", "rack": "r1"}}),
		defRule(&underlayv1.Rule{Name: "a-gpu", Priority: 100, Match: "gpus > 0"}),
	}}
	install := testTasks()[0]
	global := &underlayv1.Definition{Def: &underlayv1.Definition_Global{Global: &underlayv1.GlobalParams{
		Params: map[string]*underlayv1.ParamValue{"ntp_server": {Value: "10.0.0.1"}}}}}
	yamlOf := func(d *underlayv1.Definition) string {
		b, err := catalog.Marshal([]*underlayv1.Definition{d})
		if err != nil {
			t.Fatalf("catalog.Marshal: %v", err)
		}
		return string(b)
	}
	list := func(kind string) []fakeCall {
		return []fakeCall{call("ListDefinitions", &underlayv1.ListDefinitionsRequest{Read: readOpts(), Kind: kind})}
	}
	get := func(kind, name string, version uint64) []fakeCall {
		return []fakeCall{call("GetDefinition", &underlayv1.GetDefinitionRequest{Read: readOpts(), Kind: kind, Name: name, Version: version})}
	}
	runCases(t, f, []cliCase{
		{
			name: "task ls", args: []string{"task", "ls"},
			replies:   map[string][]fakeReply{"ListDefinitions": replyOK(tasks)},
			wantCalls: list("task"),
			wantStdout: `NAME        VERSION  KIND         INPUTS      OUTPUTS    TIMEOUT  RETRIES  SOURCE
install-os  3        script       image,disk  root_uuid  30m      2        tasks.yaml:1
wipe        1        action wipe  -           -          1m30s    0        tasks.yaml:20
`,
		},
		{
			name: "role ls", args: []string{"role", "ls"},
			replies:   map[string][]fakeReply{"ListDefinitions": replyOK(roles)},
			wantCalls: list("role"),
			wantStdout: `NAME    VERSION  TASKS            REQUIRES                  PROFILES    HARDWARE
worker  2        wipe,install-os  control-plane/join_token  fast-disks  raid,network
bare    1        -                -                         -           -
`,
		},
		{
			name: "profile ls", args: []string{"profiles", "list"},
			replies:   map[string][]fakeReply{"ListDefinitions": replyOK(profiles)},
			wantCalls: list("profile"),
			wantStdout: `NAME        VERSION  PARAMS
fast-disks  4        bmc_password,scheduler
`,
		},
		{
			name: "rule ls in evaluation order", args: []string{"rule", "ls"},
			replies:   map[string][]fakeReply{"ListDefinitions": replyOK(rules)},
			wantCalls: list("rule"),
			wantStdout: `NAME        PRIORITY  MATCH                          ROLE    PROFILES    LABELS
big-disks   10        disks >= 2 && memory_gib >= 8  worker  fast-disks  rack=r1,tier=storage
a-gpu       100       gpus > 0                       -       -           -
zz-default  100       true                           bare    -           -
`,
		},
		{
			name: "task ls json", args: []string{"task", "ls", "-o", "json"},
			replies:    map[string][]fakeReply{"ListDefinitions": replyOK(&underlayv1.ListDefinitionsResponse{Definitions: testTasks()[1:]})},
			wantCalls:  list("task"),
			wantStdout: "{\n  \"definitions\": [\n    {\n      \"task\": {\n        \"name\": \"wipe\",\n        \"action\": {\n          \"name\": \"wipe\"\n        },\n        \"timeout_seconds\": \"90\",\n        \"meta\": {\n          \"source\": \"tasks.yaml:20\",\n          \"version\": \"1\"\n        }\n      }\n    }\n  ]\n}\n",
		},
		{
			name: "task show prints re-appliable yaml", args: []string{"task", "show", "install-os", "--version", "3"},
			replies:    map[string][]fakeReply{"GetDefinition": replyOK(install)},
			wantCalls:  get("task", "install-os", 3),
			wantStdout: yamlOf(install),
		},
		{
			name: "task show -o yaml is the same yaml", args: []string{"task", "show", "install-os", "-o", "yaml"},
			replies:    map[string][]fakeReply{"GetDefinition": replyOK(install)},
			wantCalls:  get("task", "install-os", 0),
			wantStdout: yamlOf(install),
		},
		{
			name: "role show -o json is the api's json", args: []string{"role", "show", "bare", "-o", "json"},
			replies:    map[string][]fakeReply{"GetDefinition": replyOK(testRoles()[1])},
			wantCalls:  get("role", "bare", 0),
			wantStdout: "{\n  \"role\": {\n    \"name\": \"bare\",\n    \"meta\": {\n      \"version\": \"1\"\n    }\n  }\n}\n",
		},
		{
			name: "global show", args: []string{"global", "show"},
			replies:    map[string][]fakeReply{"GetDefinition": replyOK(global)},
			wantCalls:  get("global", "global", 0),
			wantStdout: yamlOf(global),
		},
		{
			name: "unknown task", args: []string{"task", "show", "nope"},
			replies:    map[string][]fakeReply{"GetDefinition": replyErr(codes.NotFound, `task "nope" not found`)},
			wantCalls:  get("task", "nope", 0),
			wantCode:   exitError,
			wantStderr: `error: not found: task "nope" not found`,
		},
		{
			name: "delete", args: []string{"role", "delete", "worker"},
			replies:    map[string][]fakeReply{"DeleteDefinition": replyOK(&underlayv1.DeleteDefinitionResponse{})},
			wantCalls:  []fakeCall{call("DeleteDefinition", &underlayv1.DeleteDefinitionRequest{Kind: "role", Name: "worker"})},
			wantStdout: "Deleted role worker.\n",
		},
		{
			name: "delete refused", args: []string{"task", "rm", "wipe"},
			replies:    map[string][]fakeReply{"DeleteDefinition": replyErr(codes.FailedPrecondition, `task "wipe" is used by role "worker"`)},
			wantCalls:  []fakeCall{call("DeleteDefinition", &underlayv1.DeleteDefinitionRequest{Kind: "task", Name: "wipe"})},
			wantCode:   exitError,
			wantStderr: `error: failed precondition: task "wipe" is used by role "worker"`,
		},
		{
			name: "show needs a name", args: []string{"task", "show"},
			wantCode: exitUsage, wantStderr: `"underlay task show" needs 1 argument(s) (NAME), got 0`,
		},
		{
			name: "global show takes no name", args: []string{"global", "show", "x"},
			wantCode: exitUsage, wantStderr: `"underlay global show" takes no arguments, got 1 argument(s)`,
		},
		{
			name: "bad version", args: []string{"task", "show", "wipe", "--version", "new"},
			wantCode: exitUsage, wantStderr: `invalid argument "new" for "--version"`,
		},
		{
			name: "role status", args: []string{"role", "status"},
			replies: map[string][]fakeReply{"ListRoleStatus": replyOK(&underlayv1.ListRoleStatusResponse{Roles: []*underlayv1.RoleStatus{
				{Role: "worker", Failures: 3, Paused: true, Reason: "3 machines failed (breaker at 3)", FailedMachines: []string{"m-1", "m-2", "m-3"}},
				{Role: "bare"},
			}})},
			wantCalls: []fakeCall{call("ListRoleStatus", &underlayv1.ListRoleStatusRequest{Read: readOpts()})},
			wantStdout: `ROLE    FAILURES  PAUSED  REASON                            FAILED MACHINES
worker  3         yes     3 machines failed (breaker at 3)  m-1,m-2,m-3
bare    0         no      -                                 -
`,
		},
		{
			name: "role resume", args: []string{"role", "resume", "worker"},
			replies:   map[string][]fakeReply{"ResumeRole": replyOK(&underlayv1.RoleStatus{Role: "worker"})},
			wantCalls: []fakeCall{call("ResumeRole", &underlayv1.ResumeRoleRequest{Role: "worker"})},
			wantStdout: `Role worker resumed.

ROLE    FAILURES  PAUSED  REASON  FAILED MACHINES
worker  0         no      -       -
`,
		},
		{
			name: "role resume unknown", args: []string{"role", "resume", "nope"},
			replies:    map[string][]fakeReply{"ResumeRole": replyErr(codes.NotFound, `role "nope" not found`)},
			wantCalls:  []fakeCall{call("ResumeRole", &underlayv1.ResumeRoleRequest{Role: "nope"})},
			wantCode:   exitError,
			wantStderr: `error: not found: role "nope" not found`,
		},
	})
}

// writeCatalog writes defs as YAML into dir/name and returns the path.
func writeCatalog(t testing.TB, dir, name string, defs ...*underlayv1.Definition) string {
	t.Helper()
	b, err := catalog.Marshal(defs)
	if err != nil {
		t.Fatalf("catalog.Marshal: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestApply(t *testing.T) {
	f := newFakeCluster(t)
	dir := t.TempDir()
	// Definitions as an operator writes them: no cluster-set meta.
	task := defTask(&underlayv1.Task{Name: "wipe", Action: &underlayv1.Action{Name: "wipe"}})
	role := defRole(&underlayv1.Role{Name: "bare", Tasks: []string{"wipe"}})
	tasksFile := writeCatalog(t, dir, "tasks.yaml", task)
	rolesDir := filepath.Join(dir, "roles")
	if err := os.Mkdir(rolesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeCatalog(t, rolesDir, "bare.yaml", role)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("task:\n  name: x\n  script: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	result := &underlayv1.ApplyDefinitionsResponse{Index: 42, Results: []*underlayv1.DefinitionChange{
		{Kind: "task", Name: "wipe", Version: 2, Change: "updated", Source: tasksFile + ":1"},
		{Kind: "role", Name: "bare", Version: 1, Change: "created", Source: "roles/bare.yaml:1"},
	}}

	t.Run("sends what the files say, with their sources", func(t *testing.T) {
		f.reset(map[string][]fakeReply{"Apply": replyOK(result)}, nil)
		code, stdout, stderr := f.run(t, "apply", "-f", tasksFile, "--filename", rolesDir)
		if code != exitOK {
			t.Fatalf("exit code %d; stderr: %s", code, stderr)
		}
		calls := f.recorded()
		if len(calls) != 1 || calls[0].Method != "Apply" {
			t.Fatalf("calls = %v, want one Apply", calls)
		}
		req := proto.Clone(calls[0].Req).(*underlayv1.ApplyDefinitionsRequest)
		for i, path := range []string{tasksFile, filepath.Join(rolesDir, "bare.yaml")} {
			m := catalog.Meta(req.GetDefinitions()[i])
			if !regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+$`).MatchString(m.GetSource()) {
				t.Errorf("definition %d source = %q, want %s:LINE", i, m.GetSource(), path)
			}
			m.Source = ""
		}
		want := &underlayv1.ApplyDefinitionsRequest{Definitions: []*underlayv1.Definition{task, role}}
		if diff := cmp.Diff(want, req, protocmp.Transform(), protocmp.IgnoreEmptyMessages()); diff != "" {
			t.Errorf("apply request (-want +got):\n%s", diff)
		}
		wantOut := "KIND  NAME  VERSION  CHANGE   SOURCE\n" +
			"task  wipe  2        updated  " + tasksFile + ":1\n" +
			"role  bare  1        created  roles/bare.yaml:1\n" +
			"\nApplied at index 42: 1 created, 1 updated, 0 unchanged.\n"
		if diff := cmp.Diff(wantOut, stdout); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
	})

	runCases(t, f, []cliCase{
		{
			name: "dry run", args: []string{"apply", "-f", tasksFile, "--dry-run"},
			replies: map[string][]fakeReply{"Apply": replyOK(&underlayv1.ApplyDefinitionsResponse{Results: []*underlayv1.DefinitionChange{
				{Kind: "task", Name: "wipe", Version: 1, Change: "unchanged", Source: "tasks.yaml:1"}}})},
			wantCalls: []fakeCall{call("Apply", &underlayv1.ApplyDefinitionsRequest{DryRun: true, Definitions: readDefs(t, tasksFile)})},
			wantStdout: `KIND  NAME  VERSION  CHANGE     SOURCE
task  wipe  1        unchanged  tasks.yaml:1

Dry run, nothing was applied: 0 created, 0 updated, 1 unchanged.
`,
		},
		{
			name: "json", args: []string{"apply", "-f", tasksFile, "-o", "json"},
			replies: map[string][]fakeReply{"Apply": replyOK(&underlayv1.ApplyDefinitionsResponse{Index: 7, Results: []*underlayv1.DefinitionChange{
				{Kind: "task", Name: "wipe", Version: 1, Change: "created"}}})},
			wantCalls:  []fakeCall{call("Apply", &underlayv1.ApplyDefinitionsRequest{Definitions: readDefs(t, tasksFile)})},
			wantStdout: "{\n  \"results\": [\n    {\n      \"kind\": \"task\",\n      \"name\": \"wipe\",\n      \"version\": \"1\",\n      \"change\": \"created\"\n    }\n  ],\n  \"index\": \"7\"\n}\n",
		},
		{
			name: "refused by the cluster", args: []string{"apply", "-f", rolesDir},
			replies:    map[string][]fakeReply{"Apply": replyErr(codes.InvalidArgument, `roles/bare.yaml:1: role "bare": task "wipe" does not exist`)},
			wantCalls:  []fakeCall{call("Apply", &underlayv1.ApplyDefinitionsRequest{Definitions: readDefs(t, rolesDir)})},
			wantCode:   exitError,
			wantStderr: `error: invalid argument: roles/bare.yaml:1: role "bare": task "wipe" does not exist`,
		},
		{
			name: "parse error names file:line and sends nothing", args: []string{"apply", "-f", tasksFile, "-f", bad},
			wantCode: exitError, wantStderr: "error: " + bad + ":",
		},
		{
			name: "nothing to apply", args: []string{"apply", "-f", empty},
			wantCode: exitError, wantStderr: "error: no definitions found in " + empty,
		},
		{
			name: "directory without yaml", args: []string{"apply", "-f", emptyDir},
			wantCode: exitError, wantStderr: emptyDir + ": no .yaml or .yml files",
		},
		{
			name: "missing file", args: []string{"apply", "-f", filepath.Join(dir, "nope.yaml")},
			wantCode: exitError, wantStderr: filepath.Join(dir, "nope.yaml"),
		},
		{
			name: "no -f", args: []string{"apply"},
			wantCode: exitUsage, wantStderr: "error: -f is required",
		},
		{
			name: "stray argument", args: []string{"apply", tasksFile},
			wantCode: exitUsage, wantStderr: `"underlay apply" takes no arguments, got 1 argument(s)`,
		},
	})

	t.Run("parse error carries a line number", func(t *testing.T) {
		f.reset(nil, nil)
		_, _, stderr := f.run(t, "apply", "-f", bad)
		if !regexp.MustCompile(regexp.QuoteMeta(bad) + `:\d+`).MatchString(stderr) {
			t.Errorf("stderr = %q, want %s:LINE", stderr, bad)
		}
		if calls := f.recorded(); len(calls) != 0 {
			t.Errorf("calls = %v, want none", calls)
		}
	})
}

// readDefs parses paths as apply does.
func readDefs(t testing.TB, paths ...string) []*underlayv1.Definition {
	t.Helper()
	defs, err := catalog.ReadPaths(paths)
	if err != nil {
		t.Fatalf("catalog.ReadPaths: %v", err)
	}
	return defs
}

func TestGridNotes(t *testing.T) {
	var g grid
	g.add("STEP", "NAME", "STATE")
	g.add("0", "raid", "succeeded")
	g.note("md0 raid1 of vdb, vdc")
	g.add("10", "install-os-long", "-")
	var b strings.Builder
	g.write(&b)
	want := `STEP  NAME             STATE
0     raid             succeeded
      md0 raid1 of vdb, vdc
10    install-os-long  -
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("grid (-want +got):\n%s", diff)
	}
}
