package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Lookup reads the stored definitions.
type Lookup interface {
	Task(name string) (*underlayv1.Task, bool)
	Role(name string) (*underlayv1.Role, bool)
	Profile(name string) (*underlayv1.Profile, bool)
	Rule(name string) (*underlayv1.Rule, bool)
	// Global may be nil.
	Global() *underlayv1.GlobalParams
}

// Lister is a Lookup that can also list the stored names of a kind (task,
// role, profile, rule). When the stored Lookup is one, Validate names the
// candidates in "does not exist" errors and also checks the stored roles
// that use a definition being applied.
type Lister interface {
	Names(kind string) []string
}

// Options are the checks of formats that live in other packages; a nil
// hook skips its check.
type Options struct {
	ValidateRAID    func(json []byte) error
	ValidateNetwork func(json []byte) error
	ValidateMatch   func(expr string) error
}

// actionSpec describes a built-in action.
type actionSpec struct {
	hardware string   // the hardware profile field it applies (raid, bios, network)
	args     []string // the args it takes
	required []string // the args it needs
}

var actions = map[string]actionSpec{
	"wipe":       {args: []string{"devices"}},
	"reboot":     {},
	"raid":       {hardware: "raid"},
	"bios":       {hardware: "bios"},
	"network":    {hardware: "network"},
	"write-file": {args: []string{"path", "content", "mode"}, required: []string{"path"}},
}

// LinkParam is the param a link's value becomes: its param, or else the
// output's name.
func LinkParam(l *underlayv1.Link) string {
	if l.GetParam() != "" {
		return l.GetParam()
	}
	return l.GetOutput()
}

// Validate checks defs, which are applied together (all or nothing),
// against each other and against the stored definitions; a definition in
// defs replaces the stored one of the same kind and name. stored may be
// nil. The error joins every problem, each a *Problem prefixed with the
// definition's source and kind/name:
//
//	examples/worker.yaml:3: role worker: requires role "control-plan", which does not exist (roles: control-plane, worker)
func Validate(defs []*underlayv1.Definition, stored Lookup, o Options) error {
	c := &checker{v: newView(defs, stored), o: o}
	c.errs = append(c.errs, duplicates(defs)...)
	for _, d := range defs {
		report := func(format string, args ...any) {
			c.errs = append(c.errs, &Problem{Pos: Meta(d).GetSource(), Def: label(d), Msg: fmt.Sprintf(format, args...)})
		}
		switch x := d.GetDef().(type) {
		case *underlayv1.Definition_Task:
			c.task(x.Task, report)
		case *underlayv1.Definition_Role:
			c.roleSelf(x.Role, report)
			c.roleDeps(x.Role, report)
		case *underlayv1.Definition_Profile:
			if msg := checkName(x.Profile.GetName()); msg != "" {
				report("%s", msg)
			}
			c.params(x.Profile.GetParams(), report)
		case *underlayv1.Definition_Rule:
			c.rule(x.Rule, report)
		case *underlayv1.Definition_Global:
			c.params(x.Global.GetParams(), report)
		default:
			report("empty definition")
		}
	}
	c.cycles(defs)
	c.storedRoles(defs)
	return errors.Join(c.errs...)
}

type reporter func(format string, args ...any)

type checker struct {
	v    *view
	o    Options
	errs []error
}

func (c *checker) task(t *underlayv1.Task, report reporter) {
	if msg := checkName(t.GetName()); msg != "" {
		report("%s", msg)
	}
	script, action := t.GetScript() != "", t.GetAction() != nil
	switch {
	case script && action:
		report("has both a script and an action; a task has exactly one")
	case !script && !action:
		report("has neither a script nor an action; a task has exactly one")
	}
	var inputs []string
	for i, in := range t.GetInputs() {
		what := fmt.Sprintf("inputs[%d]", i)
		if msg := checkIdent(what, in.GetName()); msg != "" {
			report("%s", msg)
			continue
		}
		what = "input " + in.GetName()
		if contains(inputs, in.GetName()) {
			report("%s: declared twice", what)
			continue
		}
		inputs = append(inputs, in.GetName())
		if !contains(types, in.GetType()) && in.GetType() != "" {
			report("%s: unknown type %q (want %s)", what, in.GetType(), strings.Join(types, ", "))
		} else if in.GetHasDefault() {
			if msg := valueProblem(in.GetType(), in.GetDefault()); msg != "" {
				report("%s: default: %s", what, msg)
			}
		}
		if in.GetRequired() && in.GetHasDefault() {
			report("%s: is required and has a default; a default makes an input optional, drop one of them", what)
		}
	}
	var outputs []string
	for i, out := range t.GetOutputs() {
		if msg := checkIdent(fmt.Sprintf("outputs[%d]", i), out.GetName()); msg != "" {
			report("%s", msg)
			continue
		}
		if contains(outputs, out.GetName()) {
			report("output %s: declared twice", out.GetName())
			continue
		}
		outputs = append(outputs, out.GetName())
	}
	if t.GetTimeoutSeconds() < 0 {
		report("timeout: want 0 (the default, 1h) or more, got %ds", t.GetTimeoutSeconds())
	}
	if r := t.GetRetries(); r < 0 || r > 10 {
		report("retries: want 0 to 10, got %d", r)
	}
	for i, a := range t.GetInterpreter() {
		if a == "" {
			report("interpreter[%d]: empty", i)
		}
	}
	if action && len(t.GetInterpreter()) > 0 {
		report("interpreter: only a script has an interpreter")
	}
	if script {
		c.template("script", t.GetScript(), inputs, report)
	}
	if action {
		c.action(t.GetAction(), inputs, report)
	}
}

func (c *checker) action(a *underlayv1.Action, inputs []string, report reporter) {
	spec, ok := actions[a.GetName()]
	if !ok {
		if a.GetName() == "" {
			report("action: missing name %s", suggest("", slices.Sorted(maps.Keys(actions)), "actions"))
		} else {
			report("unknown action %q %s", a.GetName(), suggest(a.GetName(), slices.Sorted(maps.Keys(actions)), "actions"))
		}
		return
	}
	args := a.GetArgs()
	for _, k := range slices.Sorted(maps.Keys(args)) {
		if !contains(spec.args, k) {
			switch {
			case spec.hardware != "":
				report("action %s takes no args (it applies the role's hardware.%s): got args.%s", a.GetName(), spec.hardware, k)
			case len(spec.args) == 0:
				report("action %s takes no args: got args.%s", a.GetName(), k)
			default:
				report("action %s: unknown arg %q %s", a.GetName(), k, suggest(k, spec.args, "args"))
			}
			continue
		}
		c.template("args."+k, args[k], inputs, report)
	}
	for _, k := range spec.required {
		if _, ok := args[k]; !ok {
			report("action %s needs args.%s", a.GetName(), k)
		}
	}
	if a.GetName() == "write-file" {
		if p, ok := args["path"]; ok && !strings.HasPrefix(p, "{{") && !path.IsAbs(p) {
			report("action write-file: args.path: want an absolute path, got %q", p)
		}
		if m, ok := args["mode"]; ok && !strings.Contains(m, "{{") && !octalMode(m) {
			report("action write-file: args.mode: want an octal file mode like 0644, got %q", m)
		}
	}
}

func octalMode(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '7' {
			return false
		}
	}
	return len(strings.TrimLeft(s, "0")) <= 4
}

// template checks that a template parses and references only declared
// inputs and known machine facts.
func (c *checker) template(field, text string, inputs []string, report reporter) {
	refs, err := templateRefs(field, text)
	if err != nil {
		report("%v", err)
		return
	}
	seen := map[ref]bool{}
	for _, r := range refs {
		key := ref{kind: r.kind, name: r.name}
		if seen[key] {
			continue
		}
		seen[key] = true
		switch r.kind {
		case refParam:
			if !contains(inputs, r.name) {
				report("%s: .params.%s is not an input of the task %s", r.loc, r.name, suggest(r.name, inputs, "inputs"))
			}
		case refFact:
			if !contains(machineFacts, r.name) {
				report("%s: .machine.%s is not a machine fact %s", r.loc, r.name, suggest(r.name, machineFacts, "facts"))
			}
		case refData:
			report("%s: .%s is not template data (there are .params and .machine)", r.loc, r.name)
		}
	}
}

// roleSelf checks what a role says on its own.
func (c *checker) roleSelf(r *underlayv1.Role, report reporter) {
	if msg := checkName(r.GetName()); msg != "" {
		report("%s", msg)
	}
	c.params(r.GetParams(), report)
	var profiles []string
	for _, p := range r.GetProfiles() {
		if contains(profiles, p) {
			report("profile %s listed twice", p)
		}
		profiles = append(profiles, p)
	}
	if h := r.GetHardware(); h != nil {
		for k := range h.GetBios() {
			if strings.TrimSpace(k) == "" {
				report("hardware.bios: empty attribute name")
			}
		}
		c.document("hardware.raid", h.GetRaidJson(), c.o.ValidateRAID, report)
		c.document("hardware.network", h.GetNetworkJson(), c.o.ValidateNetwork, report)
	}
	params := map[string]int{}
	for i, l := range r.GetRequires() {
		what := fmt.Sprintf("requires[%d]", i)
		if l.GetRole() == "" {
			report("%s: missing role", what)
		}
		if l.GetOutput() == "" {
			report("%s: missing output", what)
			continue
		}
		p := LinkParam(l)
		if msg := checkIdent(what+": param", p); msg != "" {
			report("%s", msg)
			continue
		}
		if j, dup := params[p]; dup {
			report("%s: param %s is already set by requires[%d]; give one of them another param", what, p, j)
		}
		params[p] = i
	}
	if b := r.GetBreaker(); b != nil && b.GetMaxFailures() < 1 {
		report("breaker.max_failures: want 1 or more, got %d", b.GetMaxFailures())
	}
}

// document checks a hardware JSON document with its hook.
func (c *checker) document(field, text string, hook func([]byte) error, report reporter) {
	if text == "" {
		return
	}
	if !json.Valid([]byte(text)) {
		report("%s: invalid JSON", field)
		return
	}
	if hook != nil {
		if err := hook([]byte(text)); err != nil {
			report("%s: %v", field, err)
		}
	}
}

// roleDeps checks what a role needs from other definitions.
func (c *checker) roleDeps(r *underlayv1.Role, report reporter) {
	for _, tn := range r.GetTasks() {
		if _, ok := c.v.task(tn); !ok {
			report("task %q does not exist %s", tn, c.v.candidates("task", "tasks", tn))
		}
	}
	for _, pn := range r.GetProfiles() {
		if _, ok := c.v.profile(pn); !ok {
			report("profile %q does not exist %s", pn, c.v.candidates("profile", "profiles", pn))
		}
	}
	for _, l := range r.GetRequires() {
		if l.GetRole() == "" || l.GetOutput() == "" {
			continue
		}
		if l.GetRole() == r.GetName() {
			report("requires itself (output %s); a role cannot wait on its own outputs", l.GetOutput())
			continue
		}
		lr, ok := c.v.role(l.GetRole())
		if !ok {
			report("requires role %q, which does not exist %s", l.GetRole(), c.v.candidates("role", "roles", l.GetRole()))
			continue
		}
		outputs := c.v.outputs(lr)
		if !contains(outputs, l.GetOutput()) {
			hint := "(its tasks declare no outputs)"
			if len(outputs) > 0 {
				hint = suggest(l.GetOutput(), outputs, "outputs")
			}
			report("requires output %q of role %s, which no task of that role declares %s", l.GetOutput(), l.GetRole(), hint)
		}
	}
	avail := c.v.provided(r)
	for _, tn := range r.GetTasks() {
		t, ok := c.v.task(tn)
		if !ok {
			continue
		}
		if a := t.GetAction(); a != nil && !hasHardware(r.GetHardware(), actions[a.GetName()].hardware) {
			report("task %s runs action %s, but the role has no hardware.%s", tn, a.GetName(), a.GetName())
		}
		for _, in := range t.GetInputs() {
			if in.GetRequired() && !in.GetHasDefault() && !avail[in.GetName()] {
				report("task %s needs param %s, which nothing provides (set it in the role's params, a profile, the global params, or a link)", tn, in.GetName())
			}
		}
		for _, out := range t.GetOutputs() {
			avail[out.GetName()] = true
		}
	}
}

func hasHardware(h *underlayv1.HardwareProfile, field string) bool {
	switch field {
	case "raid":
		return h.GetRaidJson() != ""
	case "bios":
		return len(h.GetBios()) > 0
	case "network":
		return h.GetNetworkJson() != ""
	}
	return true
}

func (c *checker) rule(r *underlayv1.Rule, report reporter) {
	if msg := checkName(r.GetName()); msg != "" {
		report("%s", msg)
	}
	if strings.TrimSpace(r.GetMatch()) == "" {
		report("match: missing; write an expression like 'disks >= 2 && memory_gib >= 8'")
	} else if c.o.ValidateMatch != nil {
		if err := c.o.ValidateMatch(r.GetMatch()); err != nil {
			report("match: %v", err)
		}
	}
	for _, pn := range r.GetProfiles() {
		if _, ok := c.v.profile(pn); !ok {
			report("profile %q does not exist %s", pn, c.v.candidates("profile", "profiles", pn))
		}
	}
	if rn := r.GetRole(); rn != "" {
		if _, ok := c.v.role(rn); !ok {
			report("role %q does not exist %s", rn, c.v.candidates("role", "roles", rn))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.GetLabels())) {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			report("labels: key %q: want a non-empty key without spaces or =", k)
		}
	}
	if len(r.GetLabels()) == 0 && len(r.GetProfiles()) == 0 && r.GetRole() == "" {
		report("does nothing: set labels, profiles or role")
	}
}

func (c *checker) params(params map[string]*underlayv1.ParamValue, report reporter) {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if msg := checkIdent("param", k); msg != "" {
			report("params: %s", msg)
			continue
		}
		v := params[k]
		if v == nil {
			report("param %s: no value", k)
		} else if len(v.GetSealed()) > 0 && !v.GetSecret() {
			report("param %s: sealed but not secret", k)
		}
	}
}

// cycles reports each cycle of requires that runs through a role of defs.
func (c *checker) cycles(defs []*underlayv1.Definition) {
	order := map[string]int{} // role name -> index in defs
	for i, d := range defs {
		if r, ok := d.GetDef().(*underlayv1.Definition_Role); ok {
			if _, seen := order[r.Role.GetName()]; !seen {
				order[r.Role.GetName()] = i
			}
		}
	}
	state := map[string]int{} // 1 on the stack, 2 done
	var stack []string
	reported := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		state[name] = 1
		stack = append(stack, name)
		if r, ok := c.v.role(name); ok {
			for _, l := range r.GetRequires() {
				next := l.GetRole()
				if next == name || next == "" {
					continue
				}
				switch state[next] {
				case 0:
					if _, ok := c.v.role(next); ok {
						visit(next)
					}
				case 1:
					for i := len(stack) - 1; i >= 0; i-- {
						if stack[i] == next {
							c.cycle(append([]string(nil), stack[i:]...), defs, order, reported)
							break
						}
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = 2
	}
	names := slices.Sorted(maps.Keys(order))
	sort.SliceStable(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	for _, n := range names {
		if state[n] == 0 {
			visit(n)
		}
	}
}

// cycle reports one cycle once, on its first role in defs.
func (c *checker) cycle(cyc []string, defs []*underlayv1.Definition, order map[string]int, reported map[string]bool) {
	first := 0
	for i, n := range cyc {
		if oi, ok := order[n]; ok {
			if of, okf := order[cyc[first]]; !okf || oi < of {
				first = i
			}
		}
	}
	cyc = append(cyc[first:], cyc[:first]...)
	min := 0
	for i, n := range cyc {
		if n < cyc[min] {
			min = i
		}
	}
	key := strings.Join(append(append([]string(nil), cyc[min:]...), cyc[:min]...), " ")
	if reported[key] {
		return
	}
	reported[key] = true
	var d *underlayv1.Definition
	if i, ok := order[cyc[0]]; ok {
		d = defs[i]
	}
	c.errs = append(c.errs, &Problem{
		Pos: Meta(d).GetSource(),
		Def: "role " + cyc[0],
		Msg: "requires form a cycle: " + strings.Join(append(cyc, cyc[0]), " -> "),
	})
}

// storedRoles checks again the stored roles (not replaced by defs) that
// use a task, profile or role of defs, or the global params when defs
// change them: a change can take away an output they wait on or a param
// their tasks need. It needs a stored Lookup that is a Lister.
func (c *checker) storedRoles(defs []*underlayv1.Definition) {
	lister, ok := c.v.stored.(Lister)
	if !ok {
		return
	}
	for _, name := range lister.Names("role") {
		if _, replaced := c.v.roles[name]; replaced {
			continue
		}
		r, ok := c.v.stored.Role(name)
		if !ok || r == nil || !c.v.uses(r) {
			continue
		}
		pos := r.GetMeta().GetSource()
		c.roleDeps(r, func(format string, args ...any) {
			c.errs = append(c.errs, &Problem{Pos: pos, Def: "stored role " + name, Msg: fmt.Sprintf(format, args...)})
		})
	}
}
