package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// parseTestdata parses a file under testdata.
func parseTestdata(t testing.TB, name string) []*underlayv1.Definition {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := ParseFile(path, data)
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", path, err)
	}
	return defs
}

func meta(source string) *underlayv1.DefinitionMeta {
	return &underlayv1.DefinitionMeta{Source: source}
}

func TestParseFile(t *testing.T) {
	got := parseTestdata(t, "good.yaml")
	want := []*underlayv1.Definition{
		{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{
			Name:        "publish-token",
			Description: "Generate a join token and publish it",
			Inputs: []*underlayv1.ParamSpec{
				{Name: "cluster_name", Type: "string", Default: "demo", HasDefault: true},
				{Name: "token_length", Type: "int", Default: "32", HasDefault: true},
				{Name: "admin_password", Type: "string", Secret: true, Required: true},
				{Name: "features", Type: "list", Default: `["a","b"]`, HasDefault: true},
				{Name: "verbose", Type: "bool", Default: "false", HasDefault: true, Description: "Log more"},
			},
			Outputs: []*underlayv1.OutputSpec{{Name: "join_token", Secret: true}, {Name: "api_url"}},
			Script: "token=$(head -c {{ .params.token_length }} /dev/urandom | sha256sum | cut -c1-32)\n" +
				"echo \"join_token=$token\" >> \"$UNDERLAY_OUTPUTS\"\n" +
				"echo \"api_url=http://{{ .machine.ip }}:8080\" >> \"$UNDERLAY_OUTPUTS\"\n",
			Interpreter:    []string{"/bin/sh", "-e"},
			TimeoutSeconds: 300,
			Retries:        2,
			Meta:           meta("testdata/good.yaml:2"),
		}}},
		{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{
			Name: "motd",
			Action: &underlayv1.Action{Name: "write-file", Args: map[string]string{
				"path": "/etc/motd", "content": "role {{ .machine.role }}\n", "mode": "0644",
			}},
			Meta: meta("testdata/good.yaml:23"),
		}}},
		{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{
			Name:           "make-raid",
			Action:         &underlayv1.Action{Name: "raid"},
			TimeoutSeconds: 5400,
			Reboot:         true,
			Meta:           meta("testdata/good.yaml:28"),
		}}},
		{Def: &underlayv1.Definition_Role{Role: &underlayv1.Role{
			Name:        "worker",
			Description: "A worker",
			Hardware: &underlayv1.HardwareProfile{
				Bios:        map[string]string{"ProcTurboMode": "Enabled"},
				RaidJson:    `{"logical_disks":[{"raid_level":"1","size_gb":"MAX","is_root_volume":true}]}`,
				NetworkJson: `{"links":[{"id":"eth0","type":"phy","ethernet_mac_address":"52:54:00:12:34:56","mtu":1500}],"networks":[]}`,
			},
			Profiles: []string{"site-defaults"},
			Params:   map[string]*underlayv1.ParamValue{"cluster_name": {Value: "prod"}},
			Tasks:    []string{"publish-token", "motd", "make-raid"},
			Requires: []*underlayv1.Link{
				{Role: "control-plane", Output: "join_token"},
				{Role: "control-plane", Output: "api_url", Param: "server_url"},
			},
			Breaker: &underlayv1.Breaker{MaxFailures: 2},
			Meta:    meta("testdata/good.yaml:34"),
		}}},
		{Def: &underlayv1.Definition_Profile{Profile: &underlayv1.Profile{
			Name: "site-defaults",
			Params: map[string]*underlayv1.ParamValue{
				"ntp_server":   {Value: "10.0.0.1"},
				"dns":          {Value: `["10.0.0.53","10.0.0.54"]`},
				"bmc_password": {Value: "hunter2", Secret: true},
				"port":         {Value: "8080"},
				"debug":        {Value: "true"},
			},
			Meta: meta("testdata/good.yaml:49"),
		}}},
		{Def: &underlayv1.Definition_Rule{Rule: &underlayv1.Rule{
			Name:     "big",
			Match:    "disks >= 2 && memory_gib >= 8",
			Priority: 10,
			Labels:   map[string]string{"tier": "big"},
			Profiles: []string{"site-defaults"},
			Role:     "worker",
			Meta:     meta("testdata/good.yaml:58"),
		}}},
		{Def: &underlayv1.Definition_Global{Global: &underlayv1.GlobalParams{
			Params: map[string]*underlayv1.ParamValue{"domain": {Value: "lab.example"}},
			Meta:   meta("testdata/good.yaml:66"),
		}}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ParseFile(good.yaml) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseFileShapes(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       *underlayv1.Definition
	}{{
		name: "lowercase kind, aliases, shorthand inputs and outputs, action map with args",
		yaml: "kind: task\nname: t\ninputs: [a]\noutputs: [b]\naction: {name: write-file, args: {path: &p /x, content: *p}}\n",
		want: &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{
			Name:    "t",
			Inputs:  []*underlayv1.ParamSpec{{Name: "a"}},
			Outputs: []*underlayv1.OutputSpec{{Name: "b"}},
			Action:  &underlayv1.Action{Name: "write-file", Args: map[string]string{"path": "/x", "content": "/x"}},
			Meta:    meta("f.yaml:1"),
		}}},
	}, {
		name: "defaults are canonical for their type, kept as written otherwise",
		yaml: "kind: Task\nname: t\nscript: x\ninputs:\n" +
			"  - {name: a, type: int, default: 0x10}\n" +
			"  - {name: b, type: bool, default: True}\n" +
			"  - {name: c, default: 0644}\n" +
			"  - {name: d, default: \"\"}\n" +
			"  - {name: e, type: list, default: []}\n" +
			"  - {name: f, default: ~}\n",
		want: &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{
			Name:   "t",
			Script: "x",
			Inputs: []*underlayv1.ParamSpec{
				{Name: "a", Type: "int", Default: "16", HasDefault: true},
				{Name: "b", Type: "bool", Default: "true", HasDefault: true},
				{Name: "c", Default: "0644", HasDefault: true},
				{Name: "d", Default: "", HasDefault: true},
				{Name: "e", Type: "list", Default: "[]", HasDefault: true},
				{Name: "f"},
			},
			Meta: meta("f.yaml:1"),
		}}},
	}, {
		name: "secret params, with and without a value; list values",
		yaml: "# a comment first\n\nkind: Global\nname: global\nparams:\n  a: {secret: true}\n  b: {value: [x, 'y z']}\n  c: {secret: false, value: 1}\n",
		want: &underlayv1.Definition{Def: &underlayv1.Definition_Global{Global: &underlayv1.GlobalParams{
			Params: map[string]*underlayv1.ParamValue{
				"a": {Secret: true},
				"b": {Value: `["x","y z"]`},
				"c": {Value: "1"},
			},
			Meta: meta("f.yaml:3"),
		}}},
	}, {
		name: "empty hardware documents and null fields are left out",
		yaml: "kind: Role\nname: r\ndescription:\nhardware: {raid: ~, network: {}}\ntasks: []\n",
		want: &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: &underlayv1.Role{
			Name:     "r",
			Hardware: &underlayv1.HardwareProfile{NetworkJson: "{}"},
			Meta:     meta("f.yaml:1"),
		}}},
	}, {
		name: "hardware documents keep key order, numbers, bools, nulls and strings",
		yaml: "kind: Role\nname: r\nhardware:\n  network: {z: 1, a: [1.5, true, null, '2', <b>]}\n",
		want: &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: &underlayv1.Role{
			Name:     "r",
			Hardware: &underlayv1.HardwareProfile{NetworkJson: `{"z":1,"a":[1.5,true,null,"2","<b>"]}`},
			Meta:     meta("f.yaml:1"),
		}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFile("f.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]*underlayv1.Definition{tt.want}, got, protocmp.Transform()); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "---\n---\n", "~\n"} {
		got, err := ParseFile("f.yaml", []byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("ParseFile(%q) = %v, %v; want nothing", in, got, err)
		}
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-kind.yaml", []string{`1:7: unknown kind "Tsk" (did you mean "Task"?)`}},
		{"no-kind.yaml", []string{`1:1: missing kind (want Task, Role, Profile, Rule, Global)`}},
		{"not-a-map.yaml", []string{`1:1: want a definition (a map with kind and name), got a list`}},
		{"unknown-field.yaml", []string{`3:1: task x: unknown field "scrpt" (did you mean "script"?)`}},
		{"bad-duration.yaml", []string{`4:10: task x: timeout: want a duration like 5m, got "five"`}},
		{"durations.yaml", []string{
			`4:10: task t: timeout: want a duration of 0 or more, got "-5s"`,
			`9:10: task u: timeout: want whole seconds, got "1500ms"`,
			`14:10: task v: timeout: want a duration like 5m, got "300"`,
		}},
		{"missing-name.yaml", []string{`1:1: role: missing name`}},
		{"syntax.yaml", []string{`3: yaml: did not find expected ',' or ']'`}},
		{"syntax-scanner.yaml", []string{
			`3:1: task ok: unknown field "scrip" (did you mean "script"?)`,
			`6: yaml: mapping values are not allowed in this context`,
		}},
		{"twice.yaml", []string{`4:1: task x: field "name" given twice (first at line 2)`}},
		{"args.yaml", []string{
			`4:7: task t: args: given twice, here and in action`,
			`9:7: task u: args: only an action takes args; add action: NAME`,
		}},
		{"defaults.yaml", []string{
			`5:24: task t: inputs[0].default: a list default needs type: list`,
			`6:37: task t: inputs[1].default[0]: want a string, got a list`,
			`7:5: task t: inputs[2]: missing name`,
		}},
		{"many.yaml", []string{
			`4:10: task a: retries: want an integer, got "two"`,
			`5:9: task a: reboot: want true or false, got "maybe"`,
			`7:38: task a: inputs[0]: unknown field "requird" (did you mean "required"?)`,
			`9:5: task a: inputs[2]: want a map, got a list`,
			`13:1: role r: unknown field "taks" (did you mean "tasks"?)`,
			`15:15: role r: requires[0]: unknown field "outpt" (did you mean "output"?)`,
			`16:11: role r: breaker: unknown field "maxFailures" (did you mean "max_failures"?)`,
			`17:22: role r: hardware.bios.X: want a string, got a list`,
			`17:28: role r: hardware: unknown field "raidd" (did you mean "raid"?)`,
			`19:5: role r: params.p: want a value, got nothing (write "" for an empty string)`,
			`21:14: role r: params.s.value: want a string, a number, true/false or a list, got a map`,
			`25:9: profile p: params: want a map of name: value, got a list`,
			`28:7: global: name: the global params are named global, got "other"`,
			`30:1: global: unknown field "description" (fields: kind, name, params)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tt.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defs, err := ParseFile(path, data)
			if err == nil {
				t.Fatalf("ParseFile(%s) = %d definitions, want an error", path, len(defs))
			}
			if defs != nil {
				t.Errorf("ParseFile(%s) returned definitions with an error", path)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, path+":"+w)
			}
			if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadPaths(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("defs/b.yaml", "kind: Profile\nname: b\n")
	write("defs/a.yml", "kind: Profile\nname: a\n---\nkind: Profile\nname: c\n")
	write("defs/sub/d.yaml", "kind: Profile\nname: d\n")
	write("defs/notes.txt", "not yaml")
	write("defs/.hidden/e.yaml", "kind: Profile\nname: e\n")
	single := write("single.conf", "kind: Profile\nname: f\n")

	defs, err := ReadPaths([]string{filepath.Join(dir, "defs"), single})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		got = append(got, Name(d)+"@"+strings.TrimPrefix(Meta(d).GetSource(), dir+"/"))
	}
	want := []string{"a@defs/a.yml:1", "c@defs/a.yml:4", "b@defs/b.yaml:1", "d@defs/sub/d.yaml:1", "f@single.conf:1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadPaths mismatch (-want +got):\n%s", diff)
	}

	t.Run("duplicates across files", func(t *testing.T) {
		_, err := ReadPaths([]string{"testdata/dup"})
		want := []string{
			`testdata/dup/b.yaml:5: task install: defined twice (also at testdata/dup/a.yaml:1)`,
			`testdata/dup/b.yaml:9: global: defined twice (also at testdata/dup/a.yaml:5)`,
		}
		if err == nil {
			t.Fatal("no error")
		}
		if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
			t.Errorf("errors mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("errors of every file", func(t *testing.T) {
		write("bad/x.yaml", "kind: Nope\n")
		write("bad/y.yaml", "kind: Task\n")
		_, err := ReadPaths([]string{filepath.Join(dir, "bad"), filepath.Join(dir, "missing")})
		if err == nil {
			t.Fatal("no error")
		}
		got := strings.ReplaceAll(err.Error(), dir+"/", "")
		want := "read definitions: stat missing: no such file or directory\n" +
			"bad/x.yaml:1:7: unknown kind \"Nope\" (kinds: Global, Profile, Role, Rule, Task)\n" +
			"bad/y.yaml:1:1: task: missing name"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("errors mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("directory without definitions", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPaths([]string{empty}); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadPaths(empty dir) = %v, want ErrInvalid", err)
		}
	})
}
