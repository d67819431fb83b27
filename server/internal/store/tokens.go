package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const tableTokens = "tokens"

func tokensTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableTokens,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
		},
	}
}

// Token returns an enrollment token by ID.
func (s *Store) Token(id string) (*underlayv1.Token, error) {
	raw, err := s.read().First(tableTokens, "id", id)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Token)), nil
}

// Tokens returns every token, sorted by ID.
func (s *Store) Tokens() []*underlayv1.Token {
	return clones(getAll[*underlayv1.Token](s.read(), tableTokens, "id"))
}

// Token returns an enrollment token by ID.
func (tx *Tx) Token(id string) (*underlayv1.Token, error) {
	raw, err := tx.first(tableTokens, id)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Token)), nil
}

// CreateToken adds a token; ErrExists if the ID is taken.
func (tx *Tx) CreateToken(t *underlayv1.Token) error {
	if t.GetId() == "" {
		return fmt.Errorf("create token: id required: %w", ErrInvalid)
	}
	if _, err := tx.Token(t.GetId()); err == nil {
		return fmt.Errorf("token %s: %w", t.GetId(), ErrExists)
	}
	t = clone(t)
	t.CreateIndex, t.ModifyIndex = tx.idx, tx.idx
	if err := tx.txn.Insert(tableTokens, t); err != nil {
		return fmt.Errorf("create token %s: %w", t.GetId(), err)
	}
	return nil
}

// UpdateToken replaces an existing token; ErrNotFound if there is none.
// create_index is kept and modify_index set to the write's index.
func (tx *Tx) UpdateToken(t *underlayv1.Token) error {
	old, err := tx.Token(t.GetId())
	if err != nil {
		return err
	}
	t = clone(t)
	t.CreateIndex, t.ModifyIndex = old.GetCreateIndex(), tx.idx
	if err := tx.txn.Insert(tableTokens, t); err != nil {
		return fmt.Errorf("update token %s: %w", t.GetId(), err)
	}
	return nil
}
