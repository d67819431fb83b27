package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const tableInventories = "inventories"

// MaxInventoryVersions is how many inventory versions are kept per
// machine; older versions are dropped.
const MaxInventoryVersions = 32

// inventoryRow is one version of one machine's inventory.
type inventoryRow struct {
	MachineID string
	Version   uint64
	Inventory *underlayv1.Inventory
}

func inventoriesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableInventories,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: seqIndex{
				str: func(raw any) string { return raw.(*inventoryRow).MachineID },
				seq: func(raw any) uint64 { return raw.(*inventoryRow).Version },
			}},
		},
	}
}

// Inventory returns the latest inventory of a machine and its version.
func (s *Store) Inventory(machineID string) (*underlayv1.Inventory, uint64, error) {
	return latestInventory(s.read(), machineID)
}

// InventoryVersion returns one version of a machine's inventory.
func (s *Store) InventoryVersion(machineID string, version uint64) (*underlayv1.Inventory, error) {
	raw, err := s.read().First(tableInventories, "id", machineID, version)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("inventory %s version %d: %w", machineID, version, ErrNotFound)
	}
	return clone(raw.(*inventoryRow).Inventory), nil
}

func latestInventory(txn *memdb.Txn, machineID string) (*underlayv1.Inventory, uint64, error) {
	raw, err := txn.First(tableMachines, "id", machineID)
	if err != nil || raw == nil {
		return nil, 0, fmt.Errorf("inventory of machine %s: %w", machineID, ErrNotFound)
	}
	version := raw.(*underlayv1.Machine).GetInventoryVersion()
	row, err := txn.First(tableInventories, "id", machineID, version)
	if err != nil || row == nil {
		return nil, 0, fmt.Errorf("inventory of machine %s: %w", machineID, ErrNotFound)
	}
	return clone(row.(*inventoryRow).Inventory), version, nil
}

// SameInventory reports whether two inventories hold the same facts,
// ignoring when they were collected.
func SameInventory(a, b *underlayv1.Inventory) bool {
	if a == nil || b == nil {
		return a == b
	}
	a, b = clone(a), clone(b)
	a.Collected, b.Collected = nil, nil
	return proto.Equal(a, b)
}

// PutInventory stores inv as the machine's next inventory version unless
// it has the same facts as the latest one (SameInventory). It sets the
// machine's inventory_version and modify_index, and drops versions beyond
// MaxInventoryVersions. It returns the machine's inventory version after
// the call and whether it changed. The machine must exist.
func (tx *Tx) PutInventory(machineID string, inv *underlayv1.Inventory) (uint64, bool, error) {
	if inv == nil {
		return 0, false, fmt.Errorf("put inventory of %s: inventory required: %w", machineID, ErrInvalid)
	}
	m, err := tx.Machine(machineID)
	if err != nil {
		return 0, false, err
	}
	if latest, version, err := latestInventory(tx.txn, machineID); err == nil && SameInventory(latest, inv) {
		return version, false, nil
	}
	version := m.GetInventoryVersion() + 1
	if err := tx.txn.Insert(tableInventories, &inventoryRow{MachineID: machineID, Version: version, Inventory: clone(inv)}); err != nil {
		return 0, false, fmt.Errorf("put inventory of %s: %w", machineID, err)
	}
	m.InventoryVersion, m.ModifyIndex = version, tx.idx
	if err := tx.txn.Insert(tableMachines, m); err != nil {
		return 0, false, fmt.Errorf("put inventory of %s: %w", machineID, err)
	}
	rows := getAll[*inventoryRow](tx.txn, tableInventories, "id_prefix", machineID)
	for i := 0; i < len(rows)-tx.s.maxInventories; i++ {
		if err := tx.txn.Delete(tableInventories, rows[i]); err != nil {
			return 0, false, fmt.Errorf("trim inventories of %s: %w", machineID, err)
		}
	}
	return version, true, nil
}
