package plan

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Value is one resolved param.
type Value struct {
	Name  string
	Value string // empty for a sealed secret
	// Sealed is the encrypted value of a secret, opened with Purpose.
	Sealed    []byte
	Purpose   string
	Secret    bool
	Source    string
	Overrides []string
}

// ParamPurpose is the seal purpose of a secret param value.
func ParamPurpose(name string) string { return "param:" + name }

// OutputPurpose is the seal purpose of a secret output value.
func OutputPurpose(name string) string { return "output:" + name }

// Missing describes a link whose output is not published yet.
type Missing struct {
	Link   *underlayv1.Link
	Reason string
}

// Params resolves the params machine m sees for task t (nil: for every
// task of its role), in precedence order: task defaults < global <
// profiles (the role's, then the machine's, in order) < role < machine <
// links < outputs of the machine's own earlier steps. It also returns the
// links of the role whose output nobody has published yet.
func Params(st State, m *underlayv1.Machine, p *underlayv1.Plan, t *underlayv1.Task) (map[string]*Value, []Missing) {
	out := map[string]*Value{}
	set := func(name, source string, v *Value) {
		v.Name, v.Source = name, source
		if old, ok := out[name]; ok {
			v.Overrides = append(append([]string{}, old.Overrides...), old.Source)
			v.Secret = v.Secret || old.Secret
		}
		out[name] = v
	}
	fromParams := func(source string, params map[string]*underlayv1.ParamValue) {
		for _, name := range slices.Sorted(maps.Keys(params)) {
			pv := params[name]
			set(name, source, &Value{Value: pv.GetValue(), Sealed: pv.GetSealed(), Purpose: ParamPurpose(name), Secret: pv.GetSecret()})
		}
	}
	roleName := p.GetRole()
	if roleName == "" {
		roleName = m.GetRole()
	}
	role, _ := st.Role(roleName)
	var tasks []*underlayv1.Task
	if t != nil {
		tasks = []*underlayv1.Task{t}
	} else {
		for _, name := range role.GetTasks() {
			if x, ok := st.Task(name); ok {
				tasks = append(tasks, x)
			}
		}
	}
	secretInput := map[string]bool{}
	for _, x := range tasks {
		for _, in := range x.GetInputs() {
			if in.GetSecret() {
				secretInput[in.GetName()] = true
			}
			if in.GetHasDefault() {
				if _, ok := out[in.GetName()]; !ok {
					set(in.GetName(), "task default (task "+x.GetName()+")", &Value{Value: in.GetDefault()})
				}
			}
		}
	}
	if g := st.Global(); g != nil {
		fromParams("global", g.GetParams())
	}
	for _, name := range profilesOf(role, m) {
		if pr, ok := st.Profile(name); ok {
			fromParams("profile "+name, pr.GetParams())
		}
	}
	if role != nil {
		fromParams("role "+role.GetName(), role.GetParams())
	}
	fromParams("machine", m.GetParams())
	var missing []Missing
	for _, l := range role.GetRequires() {
		o, from, reason := linked(st, m.GetId(), l)
		if o == nil {
			missing = append(missing, Missing{Link: l, Reason: reason})
			continue
		}
		set(LinkParam(l), fmt.Sprintf("link %s/%s from %s", l.GetRole(), l.GetOutput(), from),
			&Value{Value: o.GetValue(), Sealed: o.GetSealed(), Purpose: OutputPurpose(o.GetName()), Secret: o.GetSecret()})
	}
	for _, o := range p.GetOutputs() {
		set(o.GetName(), "output of step "+o.GetStep(), &Value{Value: o.GetValue(), Sealed: o.GetSealed(), Purpose: OutputPurpose(o.GetName()), Secret: o.GetSecret()})
	}
	for name := range secretInput {
		if v, ok := out[name]; ok {
			v.Secret = true
		}
	}
	return out, missing
}

// LinkParam is the param a link's value becomes.
func LinkParam(l *underlayv1.Link) string {
	if l.GetParam() != "" {
		return l.GetParam()
	}
	return l.GetOutput()
}

func profilesOf(role *underlayv1.Role, m *underlayv1.Machine) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range append(append([]string{}, role.GetProfiles()...), m.GetProfiles()...) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// linked finds the output a link points at: the output published by the
// oldest plan of the linked role that has it.
func linked(st State, self string, l *underlayv1.Link) (*underlayv1.Output, string, string) {
	plans := st.PlansWithRole(l.GetRole())
	var others []string
	for _, p := range plans {
		if p.GetMachineId() == self {
			continue
		}
		if o, ok := Output(p, l.GetOutput()); ok {
			return o, p.GetMachineId(), ""
		}
		others = append(others, p.GetMachineId()+" (plan "+strings.ToLower(strings.TrimPrefix(p.GetState().String(), "PLAN_STATE_"))+")")
	}
	reason := fmt.Sprintf("waiting for output %s of a machine with role %s", l.GetOutput(), l.GetRole())
	if len(others) == 0 {
		return nil, "", reason + ": no machine has that role yet"
	}
	if len(others) > 3 {
		others = append(others[:3], fmt.Sprintf("and %d more", len(others)-3))
	}
	return nil, "", reason + ": not published yet by " + strings.Join(others, ", ")
}

// CheckType reports whether a param value fits its declared type.
func CheckType(spec *underlayv1.ParamSpec, value string) error {
	switch spec.GetType() {
	case "", "string", "list":
		return nil
	case "int":
		if _, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err != nil {
			return fmt.Errorf("want an integer, got %q", value)
		}
	case "bool":
		if _, err := strconv.ParseBool(strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("want true or false, got %q", value)
		}
	default:
		return fmt.Errorf("unknown type %q", spec.GetType())
	}
	return nil
}

// Show returns the resolved params of a machine for display: secrets have
// no value.
func Show(st State, m *underlayv1.Machine, p *underlayv1.Plan) []*underlayv1.ResolvedParam {
	vals, _ := Params(st, m, p, nil)
	var out []*underlayv1.ResolvedParam
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		v := vals[name]
		rp := &underlayv1.ResolvedParam{Name: name, Secret: v.Secret, Source: v.Source, Overrides: v.Overrides}
		if !v.Secret {
			rp.Value = v.Value
		}
		out = append(out, rp)
	}
	return out
}
