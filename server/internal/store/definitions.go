package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

const (
	tableDefinitions = "definitions"
	tableDefHistory  = "definition_history"
)

// MaxDefinitionVersions is how many versions of each definition are kept.
const MaxDefinitionVersions = 20

// Definition kinds.
const (
	KindTask    = "task"
	KindRole    = "role"
	KindProfile = "profile"
	KindRule    = "rule"
	KindGlobal  = "global"
)

// defRow is the current version of one definition.
type defRow struct {
	Key  string // kind/name
	Kind string
	Def  *underlayv1.Definition
}

// defVersion is one stored version of a definition.
type defVersion struct {
	Key     string
	Version uint64
	Def     *underlayv1.Definition
}

func definitionsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableDefinitions,
		Indexes: map[string]*memdb.IndexSchema{
			"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			"kind": {Name: "kind", Indexer: &memdb.StringFieldIndex{Field: "Kind"}},
		},
	}
}

func defHistoryTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableDefHistory,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: seqIndex{
				str: func(raw any) string { return raw.(*defVersion).Key },
				seq: func(raw any) uint64 { return raw.(*defVersion).Version },
			}},
		},
	}
}

func defKey(kind, name string) string { return kind + "/" + name }

func getDef(txn *memdb.Txn, kind, name string) (*underlayv1.Definition, bool) {
	raw, err := txn.First(tableDefinitions, "id", defKey(kind, name))
	if err != nil || raw == nil {
		return nil, false
	}
	return clone(raw.(*defRow).Def), true
}

func defsOf(txn *memdb.Txn, kind string) []*underlayv1.Definition {
	var rows []*defRow
	if kind == "" {
		rows = getAll[*defRow](txn, tableDefinitions, "id")
	} else {
		rows = getAll[*defRow](txn, tableDefinitions, "kind", kind)
	}
	out := make([]*underlayv1.Definition, 0, len(rows))
	for _, r := range rows {
		out = append(out, clone(r.Def))
	}
	return out
}

// Definition returns the current version of a definition.
func (s *Store) Definition(kind, name string) (*underlayv1.Definition, error) {
	d, ok := getDef(s.read(), kind, name)
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
	}
	return d, nil
}

// DefinitionVersion returns one kept version of a definition.
func (s *Store) DefinitionVersion(kind, name string, version uint64) (*underlayv1.Definition, error) {
	raw, err := s.read().First(tableDefHistory, "id", defKey(kind, name), version)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("%s %s version %d: %w", kind, name, version, ErrNotFound)
	}
	return clone(raw.(*defVersion).Def), nil
}

// Definitions returns the definitions of a kind ("" for all), sorted by
// kind and name.
func (s *Store) Definitions(kind string) []*underlayv1.Definition { return defsOf(s.read(), kind) }

// Definition returns the current version of a definition.
func (tx *Tx) Definition(kind, name string) (*underlayv1.Definition, bool) {
	return getDef(tx.txn, kind, name)
}

// Definitions returns the definitions of a kind ("" for all).
func (tx *Tx) Definitions(kind string) []*underlayv1.Definition { return defsOf(tx.txn, kind) }

// PutDefinition stores d as the current version of its kind/name and keeps
// it in the history. The caller sets meta (version, indexes).
func (tx *Tx) PutDefinition(d *underlayv1.Definition) error {
	kind, name := catalog.Kind(d), catalog.Name(d)
	if kind == "" || name == "" {
		return fmt.Errorf("put definition: kind and name required: %w", ErrInvalid)
	}
	d = clone(d)
	key := defKey(kind, name)
	if err := tx.txn.Insert(tableDefinitions, &defRow{Key: key, Kind: kind, Def: d}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	v := catalog.Meta(d).GetVersion()
	if err := tx.txn.Insert(tableDefHistory, &defVersion{Key: key, Version: v, Def: d}); err != nil {
		return fmt.Errorf("put %s version %d: %w", key, v, err)
	}
	if v > MaxDefinitionVersions {
		old, err := tx.txn.First(tableDefHistory, "id", key, v-MaxDefinitionVersions)
		if err == nil && old != nil {
			if err := tx.txn.Delete(tableDefHistory, old); err != nil {
				return fmt.Errorf("trim %s history: %w", key, err)
			}
		}
	}
	return nil
}

// DeleteDefinition removes a definition and its history.
func (tx *Tx) DeleteDefinition(kind, name string) error {
	key := defKey(kind, name)
	raw, err := tx.txn.First(tableDefinitions, "id", key)
	if err != nil || raw == nil {
		return fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
	}
	if err := tx.txn.Delete(tableDefinitions, raw); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if _, err := tx.txn.DeleteAll(tableDefHistory, "id_prefix", key); err != nil {
		return fmt.Errorf("delete %s history: %w", key, err)
	}
	return nil
}

// Typed accessors, for readers that want one kind.

// Task returns a task definition.
func (tx *Tx) Task(name string) (*underlayv1.Task, bool) {
	d, ok := tx.Definition(KindTask, name)
	return d.GetTask(), ok
}

// Role returns a role definition.
func (tx *Tx) Role(name string) (*underlayv1.Role, bool) {
	d, ok := tx.Definition(KindRole, name)
	return d.GetRole(), ok
}

// Profile returns a profile definition.
func (tx *Tx) Profile(name string) (*underlayv1.Profile, bool) {
	d, ok := tx.Definition(KindProfile, name)
	return d.GetProfile(), ok
}

// Rule returns a rule definition.
func (tx *Tx) Rule(name string) (*underlayv1.Rule, bool) {
	d, ok := tx.Definition(KindRule, name)
	return d.GetRule(), ok
}

// Global returns the global params, or nil.
func (tx *Tx) Global() *underlayv1.GlobalParams {
	d, _ := tx.Definition(KindGlobal, KindGlobal)
	return d.GetGlobal()
}

// View is a read-only, consistent view of the store (one memdb snapshot).
type View struct{ txn *memdb.Txn }

// View returns a consistent read-only view of the current state.
func (s *Store) View() *View { return &View{txn: s.read()} }

// Task returns a task definition.
func (v *View) Task(name string) (*underlayv1.Task, bool) {
	d, ok := getDef(v.txn, KindTask, name)
	return d.GetTask(), ok
}

// Role returns a role definition.
func (v *View) Role(name string) (*underlayv1.Role, bool) {
	d, ok := getDef(v.txn, KindRole, name)
	return d.GetRole(), ok
}

// Profile returns a profile definition.
func (v *View) Profile(name string) (*underlayv1.Profile, bool) {
	d, ok := getDef(v.txn, KindProfile, name)
	return d.GetProfile(), ok
}

// Rule returns a rule definition.
func (v *View) Rule(name string) (*underlayv1.Rule, bool) {
	d, ok := getDef(v.txn, KindRule, name)
	return d.GetRule(), ok
}

// Global returns the global params, or nil.
func (v *View) Global() *underlayv1.GlobalParams {
	d, _ := getDef(v.txn, KindGlobal, KindGlobal)
	return d.GetGlobal()
}

// Definitions returns the definitions of a kind ("" for all).
func (v *View) Definitions(kind string) []*underlayv1.Definition { return defsOf(v.txn, kind) }

// RulesDigest identifies a set of classification rules: it changes when a
// rule is added, changed or deleted, and not when the same file is applied
// again (which leaves modify indexes alone). defs are rule definitions in
// any order; the empty set has the digest "".
func RulesDigest(defs []*underlayv1.Definition) string {
	if len(defs) == 0 {
		return ""
	}
	keys := make([]string, 0, len(defs))
	for _, d := range defs {
		keys = append(keys, fmt.Sprintf("%s@%d", catalog.Name(d), catalog.Meta(d).GetModifyIndex()))
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
