package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	tableRevocations = "revocations"
	tableIssued      = "issued"
)

func revocationsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableRevocations,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Serial"}},
		},
	}
}

func issuedTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableIssued,
		Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Serial"}},
			"subject": {Name: "subject", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Subject"}},
		},
	}
}

// Revoked reports whether a certificate serial is revoked. It is one
// radix-tree lookup on an immutable snapshot, cheap enough for every RPC.
func (s *Store) Revoked(serial string) bool {
	if serial == "" {
		return false
	}
	raw, err := s.read().First(tableRevocations, "id", serial)
	return err == nil && raw != nil
}

// Revocations returns every revocation, sorted by serial.
func (s *Store) Revocations() []*underlayv1.Revocation {
	return clones(getAll[*underlayv1.Revocation](s.read(), tableRevocations, "id"))
}

// IssuedTo returns the certificates issued to a subject (a SPIFFE URI),
// sorted by serial.
func (s *Store) IssuedTo(subject string) []*underlayv1.Issued {
	return clones(getAll[*underlayv1.Issued](s.read(), tableIssued, "subject", subject))
}

// Revoke records a revocation. It is idempotent: revoking a revoked serial
// changes nothing and reports false.
func (tx *Tx) Revoke(r *underlayv1.Revocation) (bool, error) {
	if r.GetSerial() == "" {
		return false, fmt.Errorf("revoke: serial required: %w", ErrInvalid)
	}
	raw, err := tx.first(tableRevocations, r.GetSerial())
	if err != nil {
		return false, err
	}
	if raw != nil {
		return false, nil
	}
	r = clone(r)
	r.CreateIndex = tx.idx
	if err := tx.txn.Insert(tableRevocations, r); err != nil {
		return false, fmt.Errorf("revoke %s: %w", r.GetSerial(), err)
	}
	return true, nil
}

// PutIssued records an issued certificate, replacing a record with the
// same serial (keeping its create_index).
func (tx *Tx) PutIssued(i *underlayv1.Issued) error {
	if i.GetSerial() == "" {
		return fmt.Errorf("record issued: serial required: %w", ErrInvalid)
	}
	raw, err := tx.first(tableIssued, i.GetSerial())
	if err != nil {
		return err
	}
	i = clone(i)
	i.CreateIndex = tx.idx
	if raw != nil {
		i.CreateIndex = raw.(*underlayv1.Issued).GetCreateIndex()
	}
	if err := tx.txn.Insert(tableIssued, i); err != nil {
		return fmt.Errorf("record issued %s: %w", i.GetSerial(), err)
	}
	return nil
}

// IssuedTo returns the certificates issued to a subject, sorted by serial.
func (tx *Tx) IssuedTo(subject string) []*underlayv1.Issued {
	return clones(getAll[*underlayv1.Issued](tx.txn, tableIssued, "subject", subject))
}

// Issued returns the record of an issued certificate by serial.
func (s *Store) Issued(serial string) (*underlayv1.Issued, error) {
	raw, err := s.read().First(tableIssued, "id", serial)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("issued certificate %s: %w", serial, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Issued)), nil
}
