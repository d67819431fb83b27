package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	tableSubnets      = "subnets"
	tableLeases       = "leases"
	tableReservations = "reservations"
)

func subnetsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSubnets,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		},
	}
}

func pair(a, b string) memdb.Indexer {
	return &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: a}, &memdb.StringFieldIndex{Field: b},
	}}
}

func leasesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableLeases,
		Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: pair("Subnet", "Ip")},
			"mac":    {Name: "mac", Indexer: pair("Subnet", "Mac")},
			"subnet": {Name: "subnet", Indexer: &memdb.StringFieldIndex{Field: "Subnet"}},
		},
	}
}

func reservationsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableReservations,
		Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: pair("Subnet", "Mac")},
			"ip":     {Name: "ip", Unique: true, Indexer: pair("Subnet", "Ip")},
			"subnet": {Name: "subnet", Indexer: &memdb.StringFieldIndex{Field: "Subnet"}},
		},
	}
}

// Subnet returns a subnet by name.
func (s *Store) Subnet(name string) (*underlayv1.Subnet, error) {
	raw, err := s.read().First(tableSubnets, "id", name)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("subnet %s: %w", name, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Subnet)), nil
}

// Subnets returns every subnet, sorted by name.
func (s *Store) Subnets() []*underlayv1.Subnet {
	return clones(getAll[*underlayv1.Subnet](s.read(), tableSubnets, "id"))
}

// Leases returns the leases of a subnet ("" for all), by subnet and address.
func (s *Store) Leases(subnet string) []*underlayv1.Lease {
	if subnet == "" {
		return clones(getAll[*underlayv1.Lease](s.read(), tableLeases, "id"))
	}
	return clones(getAll[*underlayv1.Lease](s.read(), tableLeases, "subnet", subnet))
}

// Reservations returns the reservations of a subnet ("" for all).
func (s *Store) Reservations(subnet string) []*underlayv1.Reservation {
	if subnet == "" {
		return clones(getAll[*underlayv1.Reservation](s.read(), tableReservations, "id"))
	}
	return clones(getAll[*underlayv1.Reservation](s.read(), tableReservations, "subnet", subnet))
}

// BootSettings returns the boot settings, or nil if none were set.
func (s *Store) BootSettings() *underlayv1.BootSettings {
	b := readMeta(s.read()).Boot
	if b == nil {
		return nil
	}
	return clone(b)
}

// Subnet returns a subnet by name.
func (tx *Tx) Subnet(name string) (*underlayv1.Subnet, error) {
	raw, err := tx.first(tableSubnets, name)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("subnet %s: %w", name, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Subnet)), nil
}

// PutSubnet creates or replaces a subnet.
func (tx *Tx) PutSubnet(sn *underlayv1.Subnet) error {
	sn = clone(sn)
	sn.CreateIndex, sn.ModifyIndex = tx.idx, tx.idx
	if old, err := tx.Subnet(sn.GetName()); err == nil {
		sn.CreateIndex = old.GetCreateIndex()
	}
	if err := tx.txn.Insert(tableSubnets, sn); err != nil {
		return fmt.Errorf("put subnet %s: %w", sn.GetName(), err)
	}
	return nil
}

// DeleteSubnet removes a subnet with its leases and reservations.
func (tx *Tx) DeleteSubnet(name string) error {
	sn, err := tx.Subnet(name)
	if err != nil {
		return err
	}
	if _, err := tx.txn.DeleteAll(tableLeases, "subnet", name); err != nil {
		return fmt.Errorf("delete leases of %s: %w", name, err)
	}
	if _, err := tx.txn.DeleteAll(tableReservations, "subnet", name); err != nil {
		return fmt.Errorf("delete reservations of %s: %w", name, err)
	}
	return tx.txn.Delete(tableSubnets, sn)
}

// LeaseByIP returns the lease of an address, or nil.
func (tx *Tx) LeaseByIP(subnet, ip string) *underlayv1.Lease {
	raw, err := tx.txn.First(tableLeases, "id", subnet, ip)
	if err != nil || raw == nil {
		return nil
	}
	return clone(raw.(*underlayv1.Lease))
}

// LeasesByMAC returns every lease a MAC holds in a subnet.
func (tx *Tx) LeasesByMAC(subnet, mac string) []*underlayv1.Lease {
	return clones(getAll[*underlayv1.Lease](tx.txn, tableLeases, "mac", subnet, mac))
}

// PutLease creates or replaces the lease of an address.
func (tx *Tx) PutLease(l *underlayv1.Lease) error {
	l = clone(l)
	l.CreateIndex, l.ModifyIndex = tx.idx, tx.idx
	if old := tx.LeaseByIP(l.GetSubnet(), l.GetIp()); old != nil && old.GetMac() == l.GetMac() {
		l.CreateIndex = old.GetCreateIndex()
		if l.Created == nil {
			l.Created = old.Created
		}
	}
	if err := tx.txn.Insert(tableLeases, l); err != nil {
		return fmt.Errorf("put lease %s/%s: %w", l.GetSubnet(), l.GetIp(), err)
	}
	return nil
}

// DeleteLease removes the lease of an address if there is one.
func (tx *Tx) DeleteLease(subnet, ip string) error {
	if _, err := tx.txn.DeleteAll(tableLeases, "id", subnet, ip); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", subnet, ip, err)
	}
	return nil
}

// Reservation returns the reservation of a MAC, or nil.
func (tx *Tx) Reservation(subnet, mac string) *underlayv1.Reservation {
	raw, err := tx.txn.First(tableReservations, "id", subnet, mac)
	if err != nil || raw == nil {
		return nil
	}
	return clone(raw.(*underlayv1.Reservation))
}

// ReservationByIP returns the reservation of an address, or nil.
func (tx *Tx) ReservationByIP(subnet, ip string) *underlayv1.Reservation {
	raw, err := tx.txn.First(tableReservations, "ip", subnet, ip)
	if err != nil || raw == nil {
		return nil
	}
	return clone(raw.(*underlayv1.Reservation))
}

// PutReservation creates or replaces the reservation of a MAC.
func (tx *Tx) PutReservation(r *underlayv1.Reservation) error {
	r = clone(r)
	r.CreateIndex = tx.idx
	if err := tx.txn.Insert(tableReservations, r); err != nil {
		return fmt.Errorf("put reservation %s/%s: %w", r.GetSubnet(), r.GetMac(), err)
	}
	return nil
}

// DeleteReservation removes the reservation of a MAC.
func (tx *Tx) DeleteReservation(subnet, mac string) error {
	r := tx.Reservation(subnet, mac)
	if r == nil {
		return fmt.Errorf("reservation %s/%s: %w", subnet, mac, ErrNotFound)
	}
	return tx.txn.Delete(tableReservations, r)
}

// SetBootSettings replaces the boot settings.
func (tx *Tx) SetBootSettings(b *underlayv1.BootSettings) {
	tx.meta.Boot = proto.Clone(b).(*underlayv1.BootSettings)
}

// Lease returns the lease of an address, or ErrNotFound.
func (s *Store) Lease(subnet, ip string) (*underlayv1.Lease, error) {
	raw, err := s.read().First(tableLeases, "id", subnet, ip)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("lease %s/%s: %w", subnet, ip, ErrNotFound)
	}
	return clone(raw.(*underlayv1.Lease)), nil
}
