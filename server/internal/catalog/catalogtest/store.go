// Package catalogtest has an in-memory store of definitions that
// satisfies catalog.Lookup and catalog.Lister, for tests.
package catalogtest

import (
	"sort"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Store holds definitions by kind and name. The zero value is empty and
// ready to use.
type Store struct {
	tasks    map[string]*underlayv1.Task
	roles    map[string]*underlayv1.Role
	profiles map[string]*underlayv1.Profile
	rules    map[string]*underlayv1.Rule
	global   *underlayv1.GlobalParams
}

// New returns a Store holding defs.
func New(defs ...*underlayv1.Definition) *Store {
	s := &Store{}
	s.Put(defs...)
	return s
}

// Put stores defs, replacing those of the same kind and name.
func (s *Store) Put(defs ...*underlayv1.Definition) {
	if s.tasks == nil {
		s.tasks = map[string]*underlayv1.Task{}
		s.roles = map[string]*underlayv1.Role{}
		s.profiles = map[string]*underlayv1.Profile{}
		s.rules = map[string]*underlayv1.Rule{}
	}
	for _, d := range defs {
		switch x := d.GetDef().(type) {
		case *underlayv1.Definition_Task:
			s.tasks[x.Task.GetName()] = x.Task
		case *underlayv1.Definition_Role:
			s.roles[x.Role.GetName()] = x.Role
		case *underlayv1.Definition_Profile:
			s.profiles[x.Profile.GetName()] = x.Profile
		case *underlayv1.Definition_Rule:
			s.rules[x.Rule.GetName()] = x.Rule
		case *underlayv1.Definition_Global:
			s.global = x.Global
		}
	}
}

func (s *Store) Task(name string) (*underlayv1.Task, bool) {
	t, ok := s.tasks[name]
	return t, ok
}

func (s *Store) Role(name string) (*underlayv1.Role, bool) {
	r, ok := s.roles[name]
	return r, ok
}

func (s *Store) Profile(name string) (*underlayv1.Profile, bool) {
	p, ok := s.profiles[name]
	return p, ok
}

func (s *Store) Rule(name string) (*underlayv1.Rule, bool) {
	r, ok := s.rules[name]
	return r, ok
}

// Global returns the global params, nil when none are stored.
func (s *Store) Global() *underlayv1.GlobalParams { return s.global }

// Names lists the stored names of a kind (task, role, profile, rule),
// sorted.
func (s *Store) Names(kind string) []string {
	var out []string
	add := func(name string) { out = append(out, name) }
	switch kind {
	case "task":
		for n := range s.tasks {
			add(n)
		}
	case "role":
		for n := range s.roles {
			add(n)
		}
	case "profile":
		for n := range s.profiles {
			add(n)
		}
	case "rule":
		for n := range s.rules {
			add(n)
		}
	}
	sort.Strings(out)
	return out
}
