package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestTemplateRefs(t *testing.T) {
	tests := []struct {
		name          string
		text          string
		params, facts []string
		err           string
	}{
		{name: "plain text", text: "echo hi"},
		{name: "fields", text: "{{ .params.b }}{{ .params.a }}{{ .machine.ip }}{{ .params.a }}", params: []string{"a", "b"}, facts: []string{"ip"}},
		{name: "root variable", text: "{{ $.params.x }}{{ range .machine.macs }}{{ $.machine.id }}{{ . }}{{ end }}", params: []string{"x"}, facts: []string{"id", "macs"}},
		{name: "index", text: `{{ index .params "a-b" }}{{ index .machine "uuid" }}{{ index . "params" }}`, params: []string{"a-b"}, facts: []string{"uuid"}},
		{name: "deeper keys are not facts", text: `{{ .machine.labels.rack }}{{ index .machine.labels "x" }}`, facts: []string{"labels"}},
		{name: "with changes dot", text: "{{ with .params }}{{ .x }}{{ else }}{{ .machine.id }}{{ end }}{{ with .machine }}{{ .vendor }}{{ end }}", params: []string{"x"}, facts: []string{"id", "vendor"}},
		{name: "range elements are unknown", text: "{{ range .params }}{{ .anything }}{{ end }}{{ range $k, $v := .machine.labels }}{{ $v.x }}{{ end }}", facts: []string{"labels"}},
		{name: "variables", text: "{{ $p := .params }}{{ $m := .machine }}{{ $p.a }}{{ if $m.arch }}{{ $p.b }}{{ end }}{{ $x := 1 }}{{ $x }}", params: []string{"a", "b"}, facts: []string{"arch"}},
		{name: "chains and pipelines", text: "{{ (.params).c }}{{ .params.d | upper | shquote }}{{ default .params.e .machine.serial }}", params: []string{"c", "d", "e"}, facts: []string{"serial"}},
		{name: "define and template", text: `{{ define "x" }}{{ .whatever }}{{ end }}{{ template "x" .params.f }}`, params: []string{"f"}},
		{name: "whole maps", text: "{{ json .params }}{{ json .machine }}"},
		{name: "unknown data field", text: "{{ .param.x }}", err: "template:1:9: .param is not template data (there are .params and .machine): invalid definition"},
		{name: "parse error", text: "{{ .params.x", err: "template:1: unclosed action: invalid definition"},
		{name: "unknown function", text: "{{ nope .params.x }}", err: `template:1: function "nope" not defined: invalid definition`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, facts, err := TemplateRefs(tt.text)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, ErrInvalid) {
					t.Fatalf("TemplateRefs error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.params, params); diff != "" {
				t.Errorf("params mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.facts, facts); diff != "" {
				t.Errorf("facts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRender(t *testing.T) {
	params := map[string]string{
		"name":  "it's",
		"dns":   `["10.0.0.53","10.0.0.54"]`,
		"empty": "",
		"csv":   "a,b",
		"pad":   "  x  ",
	}
	machine := map[string]any{
		"hostname": "node-1",
		"macs":     []string{"52:54:00:00:00:01", "52:54:00:00:00:02"},
		"labels":   map[string]string{"rack": "r1"},
	}
	tests := []struct {
		name, text, want, err string
	}{
		{name: "shquote", text: "echo {{ .params.name | shquote }}", want: `echo 'it'\''s'`},
		{name: "join a list param", text: `{{ .params.dns | join " " }}`, want: "10.0.0.53 10.0.0.54"},
		{name: "join a list fact", text: `{{ join "," .machine.macs }}`, want: "52:54:00:00:00:01,52:54:00:00:00:02"},
		{name: "range over a list param", text: `{{ range list .params.dns }}[{{ . }}]{{ end }}`, want: "[10.0.0.53][10.0.0.54]"},
		{name: "default", text: `{{ .params.empty | default "none" }} {{ .params.name | default "none" }}`, want: "none it's"},
		{name: "json", text: `{{ json .machine.labels }} {{ json "<b>" }}`, want: `{"rack":"r1"} "<b>"`},
		{name: "split", text: `{{ range split "," .params.csv }}<{{ . }}>{{ end }}`, want: "<a><b>"},
		{name: "case and trim", text: `{{ upper .machine.hostname }} {{ lower "ABC" }} [{{ trim .params.pad }}]`, want: "NODE-1 abc [x]"},
		{name: "labels", text: `{{ .machine.labels.rack }} {{ index .machine.labels "rack" }}`, want: "r1 r1"},
		{name: "missing param", text: "{{ .params.nope }}", err: `render script: template: script:1:10: executing "script" at <.params.nope>: map has no entry for key "nope"`},
		{name: "missing fact", text: "{{ .machine.ip }}", err: `render script: template: script:1:11: executing "script" at <.machine.ip>: map has no entry for key "ip"`},
		{name: "bad list", text: "{{ list .params.csv }}", err: `render script: template: script:1:3: executing "script" at <list .params.csv>: error calling list: want a list (a JSON array), got "a,b"`},
		{name: "parse error", text: "{{ if }}", err: "parse script: template: script:1: missing value for if"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render("script", tt.text, params, machine)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Render error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("nil data", func(t *testing.T) {
		if got, err := Render("x", "ok", nil, nil); err != nil || got != "ok" {
			t.Errorf("Render = %q, %v", got, err)
		}
	})
}

func TestTaskParams(t *testing.T) {
	tk := &underlayv1.Task{Name: "t", Inputs: []*underlayv1.ParamSpec{
		{Name: "req", Required: true},
		{Name: "size", Type: "int", Default: "32", HasDefault: true},
		{Name: "opt", Type: "list"},
		{Name: "flag", Type: "bool"},
	}}
	tests := []struct {
		name  string
		given map[string]string
		want  map[string]string
		err   string
	}{
		{
			name:  "defaults, empty optional inputs, undeclared params left out",
			given: map[string]string{"req": "r", "other": "x"},
			want:  map[string]string{"req": "r", "size": "32", "opt": "", "flag": ""},
		},
		{
			name:  "given values win",
			given: map[string]string{"req": "r", "size": "64", "opt": `["a"]`, "flag": "true"},
			want:  map[string]string{"req": "r", "size": "64", "opt": `["a"]`, "flag": "true"},
		},
		{
			name:  "missing required, wrong types",
			given: map[string]string{"size": "big", "flag": "yes"},
			err:   `task t: param req is required; param size: want an integer, got "big"; param flag: want true or false, got "yes": invalid definition`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TaskParams(tk, tt.given)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, ErrInvalid) {
					t.Fatalf("TaskParams error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TaskParams mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMachineFacts(t *testing.T) {
	want := "id hostname role arch boot_mode ip macs labels vendor product serial uuid"
	if got := strings.Join(MachineFacts(), " "); got != want {
		t.Errorf("MachineFacts = %q, want %q", got, want)
	}
	MachineFacts()[0] = "changed"
	if MachineFacts()[0] != "id" {
		t.Error("MachineFacts returns its own slice")
	}
}
