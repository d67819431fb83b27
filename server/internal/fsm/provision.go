package fsm

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
	"underlay.dev/server/internal/store"
)

// Event kinds of definitions and params.
const (
	EventDefinitionChanged = "definition.changed"
	EventDefinitionDeleted = "definition.deleted"
	EventParamsChanged     = "params.changed"
)

// txLookup adapts a transaction to catalog.Lookup.
type txLookup struct{ tx *store.Tx }

func (l txLookup) Task(n string) (*underlayv1.Task, bool)       { return l.tx.Task(n) }
func (l txLookup) Role(n string) (*underlayv1.Role, bool)       { return l.tx.Role(n) }
func (l txLookup) Profile(n string) (*underlayv1.Profile, bool) { return l.tx.Profile(n) }
func (l txLookup) Rule(n string) (*underlayv1.Rule, bool)       { return l.tx.Rule(n) }
func (l txLookup) Global() *underlayv1.GlobalParams             { return l.tx.Global() }

// Names lists the stored definitions of a kind (catalog.Lister): it lets
// validation re-check stored roles a change affects and name candidates.
func (l txLookup) Names(kind string) []string {
	var out []string
	for _, d := range l.tx.Definitions(kind) {
		out = append(out, catalog.Name(d))
	}
	return out
}

// applyDefinitions validates the whole set against the stored definitions
// and applies all of it or nothing.
func applyDefinitions(tx *store.Tx, c *underlayv1.ApplyDefinitions) (string, error) {
	defs := c.GetDefinitions()
	if len(defs) == 0 {
		return "", invalid("apply: no definitions")
	}
	seen := map[string]string{}
	for _, d := range defs {
		kind, name := catalog.Kind(d), catalog.Name(d)
		if kind == "" {
			return "", invalid("apply: empty definition")
		}
		key := kind + "/" + name
		if src, dup := seen[key]; dup {
			return "", invalid("apply: %s %s is defined twice (%s and %s)", kind, name, src, catalog.Meta(d).GetSource())
		}
		seen[key] = catalog.Meta(d).GetSource()
	}
	// Secrets keep their stored value when re-applied without one (an
	// exported definition carries no secret values).
	resolved := make([]*underlayv1.Definition, 0, len(defs))
	for _, d := range defs {
		d = clone(d)
		old, _ := tx.Definition(catalog.Kind(d), catalog.Name(d))
		if err := keepSecrets(d, old); err != nil {
			return "", fmt.Errorf("%s%s %s: %w", sourcePrefix(d), catalog.Kind(d), catalog.Name(d), err)
		}
		resolved = append(resolved, d)
	}
	if err := catalog.Validate(resolved, txLookup{tx}, catalogOptions()); err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	var changed []string
	for _, d := range resolved {
		kind, name := catalog.Kind(d), catalog.Name(d)
		old, exists := tx.Definition(kind, name)
		if exists && catalog.SameContent(d, old) {
			continue
		}
		meta := &underlayv1.DefinitionMeta{
			Source:      catalog.Meta(d).GetSource(),
			Version:     1,
			Updated:     tx.Now(),
			UpdatedBy:   tx.Actor(),
			CreateIndex: tx.Index(),
			ModifyIndex: tx.Index(),
		}
		if exists {
			meta.Version = catalog.Meta(old).GetVersion() + 1
			meta.CreateIndex = catalog.Meta(old).GetCreateIndex()
		}
		catalog.SetMeta(d, meta)
		if err := tx.PutDefinition(d); err != nil {
			return "", err
		}
		changed = append(changed, fmt.Sprintf("%s %s v%d", kind, name, meta.Version))
	}
	if len(changed) == 0 {
		return "", nil
	}
	return strings.Join(changed, ", "), tx.Event(EventDefinitionChanged, "", "applied "+strings.Join(changed, ", "))
}

func sourcePrefix(d *underlayv1.Definition) string {
	if s := catalog.Meta(d).GetSource(); s != "" {
		return s + ": "
	}
	return ""
}

// keepSecrets fills secrets given without a value from old, and refuses a
// secret that arrived unsealed: plaintext secrets never enter the log.
func keepSecrets(d, old *underlayv1.Definition) error {
	params := catalog.Params(d)
	oldParams := catalog.Params(old)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if err := checkSecret(name, params[name], oldParams[name]); err != nil {
			return err
		}
	}
	return nil
}

func checkSecret(name string, pv, old *underlayv1.ParamValue) error {
	if !pv.GetSecret() {
		return nil
	}
	if pv.GetValue() != "" {
		return invalid("secret param %s arrived unsealed; secrets are sealed by the API before they are stored", name)
	}
	if len(pv.GetSealed()) == 0 {
		if !old.GetSecret() || len(old.GetSealed()) == 0 {
			return invalid("secret param %s has no value (and none is stored to keep)", name)
		}
		pv.Sealed = old.GetSealed()
	}
	return nil
}

// deleteDefinition removes a definition nothing refers to.
func deleteDefinition(tx *store.Tx, c *underlayv1.DeleteDefinition) (string, error) {
	kind, name := c.GetKind(), c.GetName()
	if _, ok := tx.Definition(kind, name); !ok {
		return "", fmt.Errorf("%s %s: %w", kind, name, store.ErrNotFound)
	}
	if users := referrers(tx, kind, name); len(users) > 0 {
		return "", fmt.Errorf("%s %s is used by %s; change those first: %w", kind, name, strings.Join(users, ", "), store.ErrPrecondition)
	}
	if err := tx.DeleteDefinition(kind, name); err != nil {
		return "", err
	}
	if kind == store.KindRole {
		if err := tx.DeleteRoleStatus(name); err != nil {
			return "", err
		}
	}
	return name, tx.Event(EventDefinitionDeleted, "", fmt.Sprintf("%s %s deleted", kind, name))
}

// referrers lists what refers to the definition kind/name.
func referrers(tx *store.Tx, kind, name string) []string {
	var out []string
	for _, d := range tx.Definitions(store.KindRole) {
		r := d.GetRole()
		switch kind {
		case store.KindTask:
			if slices.Contains(r.GetTasks(), name) {
				out = append(out, "role "+r.GetName())
			}
		case store.KindProfile:
			if slices.Contains(r.GetProfiles(), name) {
				out = append(out, "role "+r.GetName())
			}
		case store.KindRole:
			for _, l := range r.GetRequires() {
				if l.GetRole() == name && r.GetName() != name {
					out = append(out, "role "+r.GetName())
					break
				}
			}
		}
	}
	for _, d := range tx.Definitions(store.KindRule) {
		r := d.GetRule()
		if (kind == store.KindRole && r.GetRole() == name) || (kind == store.KindProfile && slices.Contains(r.GetProfiles(), name)) {
			out = append(out, "rule "+r.GetName())
		}
	}
	if kind == store.KindRole || kind == store.KindProfile {
		for _, m := range tx.Machines() {
			if (kind == store.KindRole && m.GetRole() == name) || (kind == store.KindProfile && slices.Contains(m.GetProfiles(), name)) {
				out = append(out, "machine "+m.GetId())
			}
		}
	}
	return out
}

// setParams changes global or machine params and a machine's profiles.
func setParams(tx *store.Tx, c *underlayv1.SetParams) (string, error) {
	for k := range c.GetSet() {
		if !validParamName(k) {
			return "", invalid("param name %q: want lowercase letters, digits and _ (starting with a letter or _)", k)
		}
		if slices.Contains(c.GetRemove(), k) {
			return "", invalid("param %s is both set and removed", k)
		}
	}
	if c.GetMachineId() == "" {
		if len(c.GetAddProfiles()) > 0 || len(c.GetRemoveProfiles()) > 0 {
			return "", invalid("profiles are attached to machines, not to the global params")
		}
		old, _ := tx.Definition(store.KindGlobal, store.KindGlobal)
		g := &underlayv1.GlobalParams{Params: map[string]*underlayv1.ParamValue{}}
		meta := &underlayv1.DefinitionMeta{Version: 1, CreateIndex: tx.Index()}
		if old != nil {
			g = clone(old.GetGlobal())
			meta.Version = old.GetGlobal().GetMeta().GetVersion() + 1
			meta.CreateIndex = old.GetGlobal().GetMeta().GetCreateIndex()
			if g.Params == nil {
				g.Params = map[string]*underlayv1.ParamValue{}
			}
		}
		if err := changeParams(g.Params, c); err != nil {
			return "", err
		}
		meta.Updated, meta.UpdatedBy, meta.ModifyIndex, meta.Source = tx.Now(), tx.Actor(), tx.Index(), "underlay param set"
		g.Meta = meta
		if err := tx.PutDefinition(&underlayv1.Definition{Def: &underlayv1.Definition_Global{Global: g}}); err != nil {
			return "", err
		}
		return "global", tx.Event(EventParamsChanged, "", "global params: "+paramChanges(c))
	}
	m, err := tx.Machine(c.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("set params: %w", err)
	}
	if m.Params == nil {
		m.Params = map[string]*underlayv1.ParamValue{}
	}
	if err := changeParams(m.Params, c); err != nil {
		return "", err
	}
	for _, p := range c.GetAddProfiles() {
		if _, ok := tx.Profile(p); !ok {
			return "", fmt.Errorf("profile %s: %w", p, store.ErrNotFound)
		}
		if !slices.Contains(m.Profiles, p) {
			m.Profiles = append(m.Profiles, p)
		}
	}
	m.Profiles = slices.DeleteFunc(m.Profiles, func(p string) bool { return slices.Contains(c.GetRemoveProfiles(), p) })
	m.Updated = tx.Now()
	if err := tx.PutMachine(m); err != nil {
		return "", err
	}
	return m.GetId(), tx.Event(EventParamsChanged, m.GetId(), "machine params: "+paramChanges(c))
}

func changeParams(dst map[string]*underlayv1.ParamValue, c *underlayv1.SetParams) error {
	for _, k := range slices.Sorted(maps.Keys(c.GetSet())) {
		pv := clone(c.GetSet()[k])
		if err := checkSecret(k, pv, dst[k]); err != nil {
			return err
		}
		dst[k] = pv
	}
	for _, k := range c.GetRemove() {
		delete(dst, k)
	}
	return nil
}

func paramChanges(c *underlayv1.SetParams) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.GetSet())) {
		if c.GetSet()[k].GetSecret() {
			parts = append(parts, k+"=<secret>")
		} else {
			parts = append(parts, k+"="+c.GetSet()[k].GetValue())
		}
	}
	for _, k := range c.GetRemove() {
		parts = append(parts, "-"+k)
	}
	for _, p := range c.GetAddProfiles() {
		parts = append(parts, "+profile "+p)
	}
	for _, p := range c.GetRemoveProfiles() {
		parts = append(parts, "-profile "+p)
	}
	return strings.Join(parts, ", ")
}

func validParamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z'):
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
