package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const tableMachines = "machines"

func machinesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMachines,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
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
