package store

import (
	"fmt"
	"sort"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
)

const tableMachines = "machines"

func machinesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMachines,
		Indexes: map[string]*memdb.IndexSchema{
			"id":    {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
			"facts": {Name: "facts", AllowMissing: true, Indexer: factIndexer{}},
		},
	}
}

// Machine returns a machine by ID.
func (s *Store) Machine(id string) (*underlayv1.Machine, error) {
	raw, err := s.read().First(tableMachines, "id", id)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("machine %s: %w", id, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Machine)), nil
}

// Machines returns every machine, sorted by ID.
func (s *Store) Machines() []*underlayv1.Machine {
	return clones(getAll[*underlayv1.Machine](s.read(), tableMachines, "id"))
}

// Machine returns a machine by ID.
func (tx *Tx) Machine(id string) (*underlayv1.Machine, error) {
	raw, err := tx.first(tableMachines, id)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("machine %s: %w", id, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Machine)), nil
}

// Machines returns every machine, sorted by ID.
func (tx *Tx) Machines() []*underlayv1.Machine {
	return clones(getAll[*underlayv1.Machine](tx.txn, tableMachines, "id"))
}

// PutMachine creates or replaces a machine. create_index is kept from the
// existing machine (or set to the write's index), modify_index is set to
// the write's index, and inventory_version is kept: only PutInventory
// changes it.
func (tx *Tx) PutMachine(m *underlayv1.Machine) error {
	if m.GetId() == "" {
		return fmt.Errorf("put machine: id required: %w", ErrInvalid)
	}
	m = clone(m)
	m.CreateIndex, m.ModifyIndex, m.InventoryVersion = tx.idx, tx.idx, 0
	if old, err := tx.Machine(m.GetId()); err == nil {
		m.CreateIndex, m.InventoryVersion = old.GetCreateIndex(), old.GetInventoryVersion()
	}
	if err := tx.txn.Insert(tableMachines, m); err != nil {
		return fmt.Errorf("put machine %s: %w", m.GetId(), err)
	}
	return nil
}

// DeleteMachine removes a machine and all its inventory versions. Its
// events stay until they age out.
func (tx *Tx) DeleteMachine(id string) error {
	m, err := tx.Machine(id)
	if err != nil {
		return err
	}
	if err := tx.txn.Delete(tableMachines, m); err != nil {
		return fmt.Errorf("delete machine %s: %w", id, err)
	}
	if _, err := tx.txn.DeleteAll(tableInventories, "id_prefix", id); err != nil {
		return fmt.Errorf("delete inventories of %s: %w", id, err)
	}
	return nil
}

// factIndexer indexes a machine under each of its identity facts
// ("uuid:...", "mac:...", "serial:..."), so that enrollment compares a
// machine only with the machines that share a fact with it, not the fleet.
type factIndexer struct{}

// Facts lists the index keys of an identity: its normalised UUID, serials
// and MACs (see machine.FactKeys).
func Facts(id *underlayv1.MachineIdentity) []string { return machine.FactKeys(id) }

func (factIndexer) FromObject(raw any) (bool, [][]byte, error) {
	m, ok := raw.(*underlayv1.Machine)
	if !ok {
		return false, nil, fmt.Errorf("fact index: %T is not a machine", raw)
	}
	facts := Facts(m.GetIdentity())
	if len(facts) == 0 {
		return false, nil, nil
	}
	seen := map[string]bool{}
	var keys [][]byte
	for _, f := range facts {
		if !seen[f] {
			seen[f] = true
			keys = append(keys, []byte(f+"\x00"))
		}
	}
	return true, keys, nil
}

func (factIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("fact index: one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("fact index: argument %T is not a string", args[0])
	}
	return []byte(s + "\x00"), nil
}

func sharing(txn *memdb.Txn, id *underlayv1.MachineIdentity) []*underlayv1.Machine {
	seen := map[string]bool{}
	var out []*underlayv1.Machine
	for _, f := range Facts(id) {
		for _, m := range getAll[*underlayv1.Machine](txn, tableMachines, "facts", f) {
			if !seen[m.GetId()] {
				seen[m.GetId()] = true
				out = append(out, clone(m))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// MachinesSharing returns the machines that share at least one identity
// fact with id, sorted by ID: the only ones that can match it.
func (s *Store) MachinesSharing(id *underlayv1.MachineIdentity) []*underlayv1.Machine {
	return sharing(s.read(), id)
}

// MachinesSharing returns the machines that share at least one identity
// fact with id, sorted by ID.
func (tx *Tx) MachinesSharing(id *underlayv1.MachineIdentity) []*underlayv1.Machine {
	return sharing(tx.txn, id)
}
