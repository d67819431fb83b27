package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog/catalogtest"
)

// hooks fail for any document or expression that mentions "bad".
var hooks = Options{
	ValidateRAID:    badHook("raid says no"),
	ValidateNetwork: badHook("network says no"),
	ValidateMatch:   func(s string) error { return badHook("match says no")([]byte(s)) },
}

func badHook(msg string) func([]byte) error {
	return func(b []byte) error {
		if strings.Contains(string(b), "bad") {
			return errors.New(msg)
		}
		return nil
	}
}

// validateFiles parses files under testdata/validate.
func validateFiles(t testing.TB, names ...string) []*underlayv1.Definition {
	t.Helper()
	var defs []*underlayv1.Definition
	for _, n := range names {
		defs = append(defs, parseTestdata(t, "validate/"+n)...)
	}
	return defs
}

// problems splits a joined error into lines, nil for nil.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// lookupOnly hides the Lister of a store.
type lookupOnly struct{ Lookup }

const nothingProvides = "which nothing provides (set it in the role's params, a profile, the global params, or a link)"

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		defs   []string // files applied together
		stored []string // files already stored
		plain  bool     // the stored Lookup is not a Lister
		want   []string // problems, without the "testdata/validate/" prefix
	}{{
		name: "a valid set",
		defs: []string{"ok.yaml"},
	}, {
		name:   "a valid set over itself",
		defs:   []string{"ok.yaml"},
		stored: []string{"ok.yaml"},
	}, {
		name: "templates: undeclared param, unknown fact, unknown data, parse error",
		defs: []string{"templates.yaml"},
		want: []string{
			"templates.yaml:1: task templated: has both a script and an action; a task has exactly one",
			`templates.yaml:1: task templated: script:1:15: .params.tokn is not an input of the task (did you mean "token"?)`,
			`templates.yaml:1: task templated: script:2:16: .machine.hostnam is not a machine fact (did you mean "hostname"?)`,
			"templates.yaml:1: task templated: script:2:52: .foo is not template data (there are .params and .machine)",
			"templates.yaml:1: task templated: script:3:40: .machine.colour is not a machine fact (facts: arch, boot_mode, hostname, id, ip, labels, macs, product, role, serial, uuid, vendor)",
			"templates.yaml:1: task templated: script:5:17: .params.nope is not an input of the task (inputs: path, token)",
			"templates.yaml:1: task templated: args.content:1:10: .params.content is not an input of the task (inputs: path, token)",
			"templates.yaml:1: task templated: args.mode:1: unclosed action",
		},
	}, {
		name: "a cycle of three roles and a role that requires itself",
		defs: []string{"cycle.yaml"},
		want: []string{
			"cycle.yaml:21: role d: requires itself (output d); a role cannot wait on its own outputs",
			"cycle.yaml:6: role a: requires form a cycle: a -> b -> c -> a",
		},
	}, {
		name:   "a cycle through a stored role",
		defs:   []string{"cycle-close.yaml"},
		stored: []string{"cycle-open.yaml"},
		want:   []string{"cycle-close.yaml:1: role c: requires form a cycle: c -> a -> b -> c"},
	}, {
		name: "links: missing role, undeclared output, clashing and bad params",
		defs: []string{"links.yaml"},
		want: []string{
			"links.yaml:10: role worker: requires[2]: param join_token is already set by requires[0]; give one of them another param",
			`links.yaml:10: role worker: requires[3]: param "Bad-Param": want lowercase letters, digits and underscores, starting with a letter or underscore`,
			"links.yaml:10: role worker: requires[4]: missing role",
			"links.yaml:10: role worker: requires[4]: missing output",
			`links.yaml:10: role worker: requires role "control-plan", which does not exist (roles: control-plane, worker)`,
			`links.yaml:10: role worker: requires output "join_tokn" of role control-plane, which no task of that role declares (did you mean "join_token"?)`,
		},
	}, {
		name:   "required param nothing provides",
		defs:   []string{"params-missing.yaml"},
		stored: []string{"params-tasks.yaml"},
		want:   []string{"params-missing.yaml:1: role worker: task join-cluster needs param admin_password, " + nothingProvides},
	}, {
		name:   "required param is an output of a later task",
		defs:   []string{"params-later-output.yaml"},
		stored: []string{"params-tasks.yaml"},
		want:   []string{"params-later-output.yaml:1: role worker: task join-cluster needs param admin_password, " + nothingProvides},
	}, {
		name:   "required param is an output of an earlier task",
		defs:   []string{"params-output.yaml"},
		stored: []string{"params-tasks.yaml"},
	}, {
		name:   "required param set by the role",
		defs:   []string{"params-role.yaml"},
		stored: []string{"params-tasks.yaml"},
	}, {
		name:   "required param set by a profile",
		defs:   []string{"params-profile.yaml"},
		stored: []string{"params-tasks.yaml"},
	}, {
		name:   "required param set by the global params",
		defs:   []string{"params-global.yaml"},
		stored: []string{"params-tasks.yaml"},
	}, {
		name:   "required param set by stored global params",
		defs:   []string{"params-missing.yaml"},
		stored: []string{"params-tasks.yaml", "params-global.yaml"},
	}, {
		name:   "required param set by a link",
		defs:   []string{"params-link.yaml"},
		stored: []string{"params-tasks.yaml"},
	}, {
		name: "tasks: script and action, unknown action, inputs, outputs, args",
		defs: []string{"tasks.yaml"},
		want: []string{
			"tasks.yaml:1: task both: has both a script and an action; a task has exactly one",
			"tasks.yaml:6: task neither: has neither a script nor an action; a task has exactly one",
			`tasks.yaml:9: task unknown-action: unknown action "wipefs" (actions: bios, network, raid, reboot, wipe, write-file)`,
			`tasks.yaml:13: task Bad_Name: name "Bad_Name": want lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters`,
			`tasks.yaml:13: task Bad_Name: input a: default: want an integer, got "abc"`,
			"tasks.yaml:13: task Bad_Name: input a: declared twice",
			`tasks.yaml:13: task Bad_Name: inputs[2] "Bad": want lowercase letters, digits and underscores, starting with a letter or underscore`,
			`tasks.yaml:13: task Bad_Name: input b: unknown type "float" (want string, int, bool, list)`,
			"tasks.yaml:13: task Bad_Name: input c: is required and has a default; a default makes an input optional, drop one of them",
			`tasks.yaml:13: task Bad_Name: input d: default: want true or false, got "yes"`,
			`tasks.yaml:13: task Bad_Name: input e: default: want a list (a JSON array), got "x"`,
			"tasks.yaml:13: task Bad_Name: output o: declared twice",
			`tasks.yaml:13: task Bad_Name: outputs[2] "9o": want lowercase letters, digits and underscores, starting with a letter or underscore`,
			"tasks.yaml:13: task Bad_Name: retries: want 0 to 10, got 11",
			"tasks.yaml:27: task files: interpreter: only a script has an interpreter",
			`tasks.yaml:27: task files: action write-file: unknown arg "contnt" (did you mean "content"?)`,
			`tasks.yaml:27: task files: action write-file: unknown arg "owner" (args: content, mode, path)`,
			`tasks.yaml:27: task files: action write-file: args.path: want an absolute path, got "etc/motd"`,
			`tasks.yaml:27: task files: action write-file: args.mode: want an octal file mode like 0644, got "999"`,
			"tasks.yaml:33: task no-path: action write-file needs args.path",
			"tasks.yaml:37: task raid-args: action raid takes no args (it applies the role's hardware.raid): got args.level",
			"tasks.yaml:41: task reboot-args: action reboot takes no args: got args.now",
			"tasks.yaml:45: task empty-interpreter: interpreter[0]: empty",
			`tasks.yaml:55: task wipe-bad: action wipe: unknown arg "disks" (args: devices)`,
		},
	}, {
		name: "roles, profiles and rules",
		defs: []string{"roles.yaml"},
		want: []string{
			`roles.yaml:5: role worker: params: param "Bad": want lowercase letters, digits and underscores, starting with a letter or underscore`,
			"roles.yaml:5: role worker: profile site listed twice",
			"roles.yaml:5: role worker: hardware.bios: empty attribute name",
			"roles.yaml:5: role worker: hardware.network: network says no",
			"roles.yaml:5: role worker: breaker.max_failures: want 1 or more, got 0",
			`roles.yaml:5: role worker: task "instal-agent" does not exist (tasks: raid)`,
			`roles.yaml:5: role worker: profile "nope" does not exist (profiles: site)`,
			"roles.yaml:5: role worker: task raid runs action raid, but the role has no hardware.raid",
			"roles.yaml:15: role raidbad: hardware.raid: raid says no",
			`roles.yaml:19: profile site: params: param "9lives": want lowercase letters, digits and underscores, starting with a letter or underscore`,
			"roles.yaml:23: rule nothing: match: missing; write an expression like 'disks >= 2 && memory_gib >= 8'",
			"roles.yaml:23: rule nothing: does nothing: set labels, profiles or role",
			"roles.yaml:27: rule refs: match: match says no",
			`roles.yaml:27: rule refs: profile "nope" does not exist (profiles: site)`,
			`roles.yaml:27: rule refs: role "nope" does not exist (roles: raidbad, worker)`,
			`roles.yaml:27: rule refs: labels: key "a=b": want a non-empty key without spaces or =`,
		},
	}, {
		name: "duplicates among the definitions applied together",
		defs: []string{"dup.yaml"},
		want: []string{
			"dup.yaml:5: task install: defined twice (also at testdata/validate/dup.yaml:1)",
			"dup.yaml:12: global: defined twice (also at testdata/validate/dup.yaml:9)",
		},
	}, {
		name:   "a change breaks stored roles that use it",
		defs:   []string{"change.yaml"},
		stored: []string{"stored.yaml"},
		want: []string{
			"change.yaml:8: role control-plane: task join-cluster needs param password, " + nothingProvides,
			`change.yaml:13: role edge: requires role "workr", which does not exist (roles: control-plane, edge, other, worker)`,
			"change.yaml:13: role edge: task join-cluster needs param join_token, " + nothingProvides,
			"change.yaml:13: role edge: task join-cluster needs param password, " + nothingProvides,
			`stored.yaml:16: stored role worker: requires output "join_token" of role control-plane, which no task of that role declares (its tasks declare no outputs)`,
			"stored.yaml:16: stored role worker: task join-cluster needs param password, " + nothingProvides,
		},
	}, {
		name:   "a stored Lookup that cannot list: no candidates from it, stored roles not checked again",
		defs:   []string{"change.yaml"},
		stored: []string{"stored.yaml"},
		plain:  true,
		want: []string{
			"change.yaml:8: role control-plane: task join-cluster needs param password, " + nothingProvides,
			`change.yaml:13: role edge: requires role "workr", which does not exist (roles: control-plane, edge)`,
			"change.yaml:13: role edge: task join-cluster needs param join_token, " + nothingProvides,
			"change.yaml:13: role edge: task join-cluster needs param password, " + nothingProvides,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stored Lookup
			if tt.stored != nil {
				s := catalogtest.New(validateFiles(t, tt.stored...)...)
				stored = s
				if tt.plain {
					stored = lookupOnly{s}
				}
			}
			err := Validate(validateFiles(t, tt.defs...), stored, hooks)
			var want []string
			for _, w := range tt.want {
				want = append(want, "testdata/validate/"+w)
			}
			if diff := cmp.Diff(want, problems(err)); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error is not ErrInvalid: %v", err)
			}
		})
	}
}

// TestValidateProgrammatic covers what YAML cannot express.
func TestValidateProgrammatic(t *testing.T) {
	tests := []struct {
		name string
		defs []*underlayv1.Definition
		want []string
	}{{
		name: "empty definition",
		defs: []*underlayv1.Definition{{}},
		want: []string{"empty definition"},
	}, {
		name: "negative timeout and retries",
		defs: []*underlayv1.Definition{task(&underlayv1.Task{Name: "t", Script: "x", TimeoutSeconds: -1, Retries: -1})},
		want: []string{
			"task t: timeout: want 0 (the default, 1h) or more, got -1s",
			"task t: retries: want 0 to 10, got -1",
		},
	}, {
		name: "params: no value, sealed but not secret, missing name",
		defs: []*underlayv1.Definition{global(map[string]*underlayv1.ParamValue{
			"a": nil, "b": {Sealed: []byte{1}}, "": {Value: "x"},
		})},
		want: []string{
			"global: params: param: missing name",
			"global: param a: no value",
			"global: param b: sealed but not secret",
		},
	}, {
		name: "missing name; without hooks anything goes",
		defs: []*underlayv1.Definition{role(&underlayv1.Role{Hardware: &underlayv1.HardwareProfile{RaidJson: `"bad"`, NetworkJson: "{"}})},
		want: []string{
			"role: missing name",
			"role: hardware.network: invalid JSON",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.defs, nil, Options{})
			if diff := cmp.Diff(tt.want, problems(err)); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
