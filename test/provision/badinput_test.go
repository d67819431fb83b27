package provision_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestApplyRejectsBadInput applies files that are each wrong in one way;
// every file also holds a good task. Each apply fails with a message that
// names the file and line and the problem, and nothing of that file is
// applied.
func TestApplyRejectsBadInput(t *testing.T) {
	l := newLab(t)
	good := `kind: Task
name: innocent
script: echo fine
---
`
	tests := []struct {
		name string
		yaml string
		want []string // regexps the error must match
	}{
		{
			name: "yaml syntax error",
			yaml: good + "kind: Task\nname: broken\nscript: [unclosed\n",
			want: []string{`defs\.yaml:\d+`},
		},
		{
			name: "unknown field",
			yaml: good + "kind: Task\nname: typo\nscritp: echo\n",
			want: []string{`defs\.yaml:7:1`, `scritp`, `did you mean "script"`},
		},
		{
			name: "undeclared param in a template",
			yaml: good + "kind: Task\nname: sneaky\nscript: echo {{ .params.undeclared }}\n",
			want: []string{`defs\.yaml:\d+`, `task sneaky`, `undeclared`},
		},
		{
			name: "role link cycle",
			yaml: good + `kind: Task
name: pub
outputs: [{name: x}]
script: echo "x=1" >> "$UNDERLAY_OUTPUTS"
---
kind: Role
name: a
tasks: [pub]
requires: [{role: b, output: x, param: from_b}]
---
kind: Role
name: b
tasks: [pub]
requires: [{role: a, output: x, param: from_a}]
`,
			want: []string{`defs\.yaml:\d+`, `cycle`, `a -> b -> a|b -> a -> b`},
		},
		{
			name: "missing required param",
			yaml: good + `kind: Task
name: needs
inputs: [{name: password, required: true}]
script: echo "$UNDERLAY_PARAM_PASSWORD" > /dev/null
---
kind: Role
name: needy
tasks: [needs]
`,
			want: []string{`defs\.yaml:\d+`, `role needy`, `needs param password, which nothing provides`},
		},
		{
			name: "requires a role that does not exist",
			yaml: good + `kind: Role
name: orphan
tasks: [innocent]
requires: [{role: ghost, output: token}]
`,
			want: []string{`defs\.yaml:\d+`, `role orphan`, `ghost`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := l.cl.applyYAML(t, tt.yaml)
			if code == 0 {
				t.Fatalf("apply succeeded, want a failure:\n%s", out)
			}
			for _, re := range tt.want {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("error does not match %q:\n%s", re, out)
				}
			}
			ls := l.cl.mustCLI(t, "task", "ls", "-o", "json")
			if strings.Contains(ls, "innocent") {
				t.Errorf("the good task of the rejected file was applied:\n%s", ls)
			}
			roles := l.cl.mustCLI(t, "role", "ls", "-o", "json")
			for _, r := range []string{`"a"`, `"b"`, "needy", "orphan"} {
				if strings.Contains(roles, r) {
					t.Errorf("role %s of the rejected file was applied:\n%s", r, roles)
				}
			}
		})
	}
	// The same good task alone applies, and a second apply changes nothing.
	if out := l.cl.mustCLI(t, "apply", "-f", writeYAML(t, good)); !strings.Contains(out, "created") {
		t.Errorf("good apply: %s", out)
	}
	if out := l.cl.mustCLI(t, "apply", "-f", writeYAML(t, good)); !strings.Contains(out, "unchanged") {
		t.Errorf("re-apply of the same file: %s", out)
	}
}
