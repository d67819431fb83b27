package catalog

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/export.yaml")

// exported is what a definition looks like after Marshal and ParseFile:
// no meta, and secrets without their values.
func exported(d *underlayv1.Definition) *underlayv1.Definition {
	d = proto.CloneOf(d)
	SetMeta(d, nil)
	for _, v := range Params(d) {
		if v.GetSecret() {
			v.Value, v.Sealed = "", nil
		}
	}
	return d
}

// roundTrip marshals defs and parses them back.
func roundTrip(t testing.TB, defs []*underlayv1.Definition) ([]byte, []*underlayv1.Definition) {
	t.Helper()
	out, err := Marshal(defs)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := ParseFile("export.yaml", out)
	if err != nil {
		t.Fatalf("ParseFile(Marshal(...)): %v\n%s", err, out)
	}
	return out, back
}

func task(t *underlayv1.Task) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: t}}
}

func role(r *underlayv1.Role) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: r}}
}

func profile(name string, params map[string]*underlayv1.ParamValue) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Profile{Profile: &underlayv1.Profile{Name: name, Params: params}}}
}

func global(params map[string]*underlayv1.ParamValue) *underlayv1.Definition {
	return &underlayv1.Definition{Def: &underlayv1.Definition_Global{Global: &underlayv1.GlobalParams{Params: params}}}
}

func vals(kv ...string) map[string]*underlayv1.ParamValue {
	m := map[string]*underlayv1.ParamValue{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = &underlayv1.ParamValue{Value: kv[i+1]}
	}
	return m
}

func TestMarshalRoundTrip(t *testing.T) {
	tricky := []string{"", "null", "~", "true", "False", "yes", "1.5", "0x10", "0644", "-0", "+1", "1e3",
		" lead", "trail ", "a: b", "- x", "#x", "x #y", "[not json", `["a"]`, `["a",1]`, "[]", "{x}",
		"*a", "&a", "!t", "%x", "@x", "`x", "'q'", `"q"`, "tab\there", "line\nbreak", "crlf\r\n",
		"ünïcödé ✓", "---", "...", "<b>&amp;", `back\slash`, "2001-12-14", "52:54:00:12:34:56"}
	var cases []*underlayv1.Definition
	cases = append(cases, parseTestdata(t, "good.yaml")...)
	cases = append(cases,
		task(&underlayv1.Task{
			Name:        "scripts",
			Description: "two\nlines\n",
			Script:      "  indented first line\n\ttabbed\ntrailing space \n---\n# comment\n{{ .params.x }}",
			Inputs: []*underlayv1.ParamSpec{
				{Name: "a", Type: "int", Default: "007", HasDefault: true},
				{Name: "b", Type: "bool", Default: "yes", HasDefault: true},
				{Name: "c", Type: "list", Default: "[1, 2]", HasDefault: true},
				{Name: "d", Type: "list", Default: `["x"]`, HasDefault: true},
				{Name: "e", Default: `["x"]`, HasDefault: true},
				{Name: "f", Default: "", HasDefault: true},
				{Name: "g", Type: "weird", Description: "multi\nline"},
			},
			TimeoutSeconds: 3661,
			Retries:        11,
		}),
		task(&underlayv1.Task{Name: "123", Action: &underlayv1.Action{Name: "reboot"}, TimeoutSeconds: 1}),
		task(&underlayv1.Task{Name: "true", Action: &underlayv1.Action{Name: "write-file", Args: map[string]string{
			"path": "/etc/{{ .params.f }}", "content": "#!/bin/sh\nexit 0\n", "mode": "0755",
		}}, TimeoutSeconds: 400 * 86400}),
		role(&underlayv1.Role{Name: "empty-hardware", Hardware: &underlayv1.HardwareProfile{}, Breaker: &underlayv1.Breaker{}}),
		role(&underlayv1.Role{Name: "json", Hardware: &underlayv1.HardwareProfile{
			Bios:        map[string]string{"A": "1", "B": "true", "C": "", "D": "x y"},
			RaidJson:    `{"logical_disks":[{"size_gb":100,"x":1.5,"y":-2,"z":1e+21,"n":null,"s":"1","e":{},"l":[]}]}`,
			NetworkJson: `[1,"two",[3]]`,
		}, Requires: []*underlayv1.Link{{Role: "a", Output: "b", Param: "b"}}}),
		&underlayv1.Definition{Def: &underlayv1.Definition_Rule{Rule: &underlayv1.Rule{
			Name: "neg", Match: "true", Priority: -5, Labels: map[string]string{"a b": "c: d", "": "x"},
		}}},
		global(nil),
		global(map[string]*underlayv1.ParamValue{
			"s1": {Secret: true},
			"s2": {Secret: true, Value: "plain"},
			"s3": {Secret: true, Sealed: []byte{1, 2}},
		}),
	)
	p := map[string]*underlayv1.ParamValue{}
	for i, v := range tricky {
		p[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = &underlayv1.ParamValue{Value: v}
	}
	cases = append(cases, profile("tricky", p))
	for i, v := range tricky {
		cases = append(cases, task(&underlayv1.Task{Name: v, Description: v, Script: v, Interpreter: []string{v},
			Inputs:  []*underlayv1.ParamSpec{{Name: v, Type: v, Default: v, HasDefault: true, Description: v}},
			Outputs: []*underlayv1.OutputSpec{{Name: v, Description: v}},
		}))
		cases = append(cases, role(&underlayv1.Role{Name: v, Tasks: []string{v, v}, Profiles: []string{v},
			Requires: []*underlayv1.Link{{Role: v, Output: v, Param: v}},
			Hardware: &underlayv1.HardwareProfile{Bios: map[string]string{v + "k": v}},
		}))
		_ = i
	}
	for _, d := range cases {
		t.Run(label(d), func(t *testing.T) {
			out, back := roundTrip(t, []*underlayv1.Definition{d})
			if len(back) != 1 {
				t.Fatalf("got %d definitions back from\n%s", len(back), out)
			}
			if diff := cmp.Diff(exported(d), exported(back[0]), protocmp.Transform()); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s\nYAML:\n%s", diff, out)
			}
			again, err := Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, again) {
				t.Errorf("Marshal is not stable:\n%s\nthen\n%s", out, again)
			}
		})
	}
}

// TestMarshalExport checks the exact shape of an export against
// testdata/export.yaml (go test -update rewrites it).
func TestMarshalExport(t *testing.T) {
	defs := parseTestdata(t, "good.yaml")
	Meta(defs[0]).Version = 3
	out, err := Marshal(defs)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/export.yaml", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/export.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(out)); diff != "" {
		t.Errorf("export mismatch (-want +got):\n%s", diff)
	}
	if bytes.Contains(out, []byte("hunter2")) {
		t.Errorf("export contains a secret value:\n%s", out)
	}
	if !bytes.HasPrefix(out, []byte("# version 3\nkind: Task\n")) {
		t.Errorf("export does not start with the version comment:\n%s", out)
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		def  *underlayv1.Definition
		want string
	}{
		{"empty", &underlayv1.Definition{}, "marshal definition 0 (): empty definition: invalid definition"},
		{"bad raid", role(&underlayv1.Role{Name: "r", Hardware: &underlayv1.HardwareProfile{RaidJson: "{"}}),
			"marshal definition 0 (role r): hardware.raid: invalid JSON: unexpected EOF: invalid definition"},
		{"trailing JSON", role(&underlayv1.Role{Name: "r", Hardware: &underlayv1.HardwareProfile{NetworkJson: "{} {}"}}),
			"marshal definition 0 (role r): hardware.network: invalid JSON: text after the JSON value: invalid definition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Marshal([]*underlayv1.Definition{tt.def})
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrInvalid) {
				t.Errorf("Marshal = %v, want %q (ErrInvalid)", err, tt.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for sec, want := range map[int64]string{1: "1s", 59: "59s", 60: "1m", 90: "1m30s", 3600: "1h", 5400: "1h30m", 3601: "1h0m1s", 86400: "24h"} {
		if got := formatDuration(sec); got != want {
			t.Errorf("formatDuration(%d) = %q, want %q", sec, got, want)
		}
	}
}
