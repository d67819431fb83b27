package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const tableOperators = "operators"

func operatorsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableOperators,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		},
	}
}

// Operator returns an operator by name.
func (s *Store) Operator(name string) (*underlayv1.Operator, error) {
	raw, err := s.read().First(tableOperators, "id", name)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("operator %s: %w", name, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Operator)), nil
}

// Operators returns every operator, sorted by name.
func (s *Store) Operators() []*underlayv1.Operator {
	return clones(getAll[*underlayv1.Operator](s.read(), tableOperators, "id"))
}

// CreateOperator adds an operator; ErrExists if the name is taken.
func (tx *Tx) CreateOperator(o *underlayv1.Operator) error {
	if o.GetName() == "" {
		return fmt.Errorf("create operator: name required: %w", ErrInvalid)
	}
	raw, err := tx.first(tableOperators, o.GetName())
	if err != nil {
		return err
	}
	if raw != nil {
		return fmt.Errorf("operator %s: %w", o.GetName(), ErrExists)
	}
	o = clone(o)
	o.CreateIndex = tx.idx
	if err := tx.txn.Insert(tableOperators, o); err != nil {
		return fmt.Errorf("create operator %s: %w", o.GetName(), err)
	}
	return nil
}
