package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// view is the definitions being applied laid over the stored ones.
type view struct {
	stored    Lookup
	tasks     map[string]*underlayv1.Task
	roles     map[string]*underlayv1.Role
	profiles  map[string]*underlayv1.Profile
	rules     map[string]*underlayv1.Rule
	global    *underlayv1.GlobalParams
	hasGlobal bool
}

func newView(defs []*underlayv1.Definition, stored Lookup) *view {
	v := &view{
		stored:   stored,
		tasks:    map[string]*underlayv1.Task{},
		roles:    map[string]*underlayv1.Role{},
		profiles: map[string]*underlayv1.Profile{},
		rules:    map[string]*underlayv1.Rule{},
	}
	for _, d := range defs {
		switch x := d.GetDef().(type) {
		case *underlayv1.Definition_Task:
			v.tasks[x.Task.GetName()] = x.Task
		case *underlayv1.Definition_Role:
			v.roles[x.Role.GetName()] = x.Role
		case *underlayv1.Definition_Profile:
			v.profiles[x.Profile.GetName()] = x.Profile
		case *underlayv1.Definition_Rule:
			v.rules[x.Rule.GetName()] = x.Rule
		case *underlayv1.Definition_Global:
			v.global, v.hasGlobal = x.Global, true
		}
	}
	return v
}

func (v *view) task(name string) (*underlayv1.Task, bool) {
	if t, ok := v.tasks[name]; ok {
		return t, true
	}
	if v.stored == nil {
		return nil, false
	}
	t, ok := v.stored.Task(name)
	return t, ok && t != nil
}

func (v *view) role(name string) (*underlayv1.Role, bool) {
	if r, ok := v.roles[name]; ok {
		return r, true
	}
	if v.stored == nil {
		return nil, false
	}
	r, ok := v.stored.Role(name)
	return r, ok && r != nil
}

func (v *view) profile(name string) (*underlayv1.Profile, bool) {
	if p, ok := v.profiles[name]; ok {
		return p, true
	}
	if v.stored == nil {
		return nil, false
	}
	p, ok := v.stored.Profile(name)
	return p, ok && p != nil
}

func (v *view) globalParams() *underlayv1.GlobalParams {
	if v.hasGlobal || v.stored == nil {
		return v.global
	}
	return v.stored.Global()
}

// names lists the known names of a kind, sorted.
func (v *view) names(kind string) []string {
	set := map[string]bool{}
	switch kind {
	case "task":
		for n := range v.tasks {
			set[n] = true
		}
	case "role":
		for n := range v.roles {
			set[n] = true
		}
	case "profile":
		for n := range v.profiles {
			set[n] = true
		}
	case "rule":
		for n := range v.rules {
			set[n] = true
		}
	}
	if l, ok := v.stored.(Lister); ok {
		for _, n := range l.Names(kind) {
			set[n] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// candidates names the existing definitions of a kind for a "does not
// exist" message: all of them when there are few, else the closest.
func (v *view) candidates(kind, plural, name string) string {
	names := v.names(kind)
	switch {
	case len(names) == 0:
		return fmt.Sprintf("(there are no %s)", plural)
	case len(names) <= 10:
		return fmt.Sprintf("(%s: %s)", plural, strings.Join(names, ", "))
	}
	if c := closest(name, names); c != "" {
		return fmt.Sprintf("(did you mean %q?)", c)
	}
	return ""
}

// outputs are the outputs the tasks of a role declare, sorted.
func (v *view) outputs(r *underlayv1.Role) []string {
	set := map[string]bool{}
	for _, tn := range r.GetTasks() {
		if t, ok := v.task(tn); ok {
			for _, o := range t.GetOutputs() {
				set[o.GetName()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// provided are the params a role's tasks get before any task runs, without
// the machine's own: global, the role's profiles, the role's params and
// its links.
func (v *view) provided(r *underlayv1.Role) map[string]bool {
	avail := map[string]bool{}
	for k := range v.globalParams().GetParams() {
		avail[k] = true
	}
	for _, pn := range r.GetProfiles() {
		if p, ok := v.profile(pn); ok {
			for k := range p.GetParams() {
				avail[k] = true
			}
		}
	}
	for k := range r.GetParams() {
		avail[k] = true
	}
	for _, l := range r.GetRequires() {
		avail[LinkParam(l)] = true
	}
	return avail
}

// uses reports whether a stored role depends on something being applied.
func (v *view) uses(r *underlayv1.Role) bool {
	if v.hasGlobal {
		return true
	}
	for _, t := range r.GetTasks() {
		if _, ok := v.tasks[t]; ok {
			return true
		}
	}
	for _, p := range r.GetProfiles() {
		if _, ok := v.profiles[p]; ok {
			return true
		}
	}
	for _, l := range r.GetRequires() {
		if _, ok := v.roles[l.GetRole()]; ok {
			return true
		}
	}
	return false
}
