package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const tableNodes = "nodes"

func nodesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableNodes,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
		},
	}
}

// Node returns a management node by ID.
func (s *Store) Node(id string) (*underlayv1.NodeInfo, error) {
	raw, err := s.read().First(tableNodes, "id", id)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("node %s: %w", id, ErrNotFound)
	}
	return clone(raw.(*underlayv1.NodeInfo)), nil
}

// Nodes returns every management node, sorted by ID.
func (s *Store) Nodes() []*underlayv1.NodeInfo {
	return clones(getAll[*underlayv1.NodeInfo](s.read(), tableNodes, "id"))
}

// Node returns a management node by ID.
func (tx *Tx) Node(id string) (*underlayv1.NodeInfo, error) {
	raw, err := tx.first(tableNodes, id)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("node %s: %w", id, ErrNotFound)
	}
	return clone(raw.(*underlayv1.NodeInfo)), nil
}

// PutNode creates or replaces a node. create_index is kept from the
// existing node, or set to the write's index.
func (tx *Tx) PutNode(n *underlayv1.NodeInfo) error {
	if n.GetId() == "" {
		return fmt.Errorf("put node: id required: %w", ErrInvalid)
	}
	n = clone(n)
	n.CreateIndex = tx.idx
	if old, err := tx.Node(n.GetId()); err == nil {
		n.CreateIndex = old.GetCreateIndex()
	}
	if err := tx.txn.Insert(tableNodes, n); err != nil {
		return fmt.Errorf("put node %s: %w", n.GetId(), err)
	}
	return nil
}

// DeleteNode removes a node.
func (tx *Tx) DeleteNode(id string) error {
	n, err := tx.Node(id)
	if err != nil {
		return err
	}
	if err := tx.txn.Delete(tableNodes, n); err != nil {
		return fmt.Errorf("delete node %s: %w", id, err)
	}
	return nil
}
