package classify

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Decision is what the rules that match a machine decide together.
type Decision struct {
	// Rules are the names of the matching rules, in application order.
	Rules []string
	// Labels are the rules' labels merged; a later rule overrides an
	// earlier one's value for the same key. Never nil.
	Labels map[string]string
	// Profiles are the rules' profiles appended in order, each once (at
	// its first position).
	Profiles []string
	// Role comes from the first matching rule that names a role; empty if
	// none does.
	Role string
}

// Decide evaluates rules against a machine, in order of priority (lower
// first) and then name, and merges the matching ones into a Decision. All
// rules see the same facts: labels a rule sets are not visible to the
// matches of the other rules. A nil rule is ignored. A rule whose match
// does not parse is skipped and reported in the error (one errors.Join
// entry per rule, in application order, each wrapping ErrSyntax); the other
// rules still apply, so the Decision is meaningful even with an error.
//
// Decide does not look at the machine's own role, labels or profiles
// beyond evaluating matches: the caller decides what to apply (see
// docs/classify.md).
func Decide(rules []*underlayv1.Rule, m *underlayv1.Machine, inv *underlayv1.Inventory) (Decision, error) {
	ordered := slices.DeleteFunc(slices.Clone(rules), func(r *underlayv1.Rule) bool { return r == nil })
	slices.SortStableFunc(ordered, func(a, b *underlayv1.Rule) int {
		return cmp.Or(cmp.Compare(a.GetPriority(), b.GetPriority()), cmp.Compare(a.GetName(), b.GetName()))
	})
	facts := FactsOf(m, inv)
	d := Decision{Labels: map[string]string{}}
	var errs []error
	for _, r := range ordered {
		e, err := Parse(r.GetMatch())
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q: match: %w", r.GetName(), err))
			continue
		}
		if !e.Eval(facts) {
			continue
		}
		d.Rules = append(d.Rules, r.GetName())
		maps.Copy(d.Labels, r.GetLabels())
		for _, p := range r.GetProfiles() {
			if p != "" && !slices.Contains(d.Profiles, p) {
				d.Profiles = append(d.Profiles, p)
			}
		}
		if d.Role == "" {
			d.Role = r.GetRole()
		}
	}
	return d, errors.Join(errs...)
}
