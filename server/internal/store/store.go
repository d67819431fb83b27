// Package store holds the replicated cluster state in memory, in
// go-memdb tables (one file per table). The FSM is its only writer: every
// write happens inside Update, which carries the Raft index of the log entry
// being applied and stamps it on what it writes. Readers get clones, so
// nothing outside the store can change it.
package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means an object with that key already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid means the input is malformed.
	ErrInvalid = errors.New("invalid")
	// ErrPrecondition means the state does not allow the write.
	ErrPrecondition = errors.New("failed precondition")
)

const (
	tableMeta = "meta"
	metaID    = "meta"
)

// meta is the single row of the meta table.
type meta struct {
	ID        string
	ClusterID string
	CA        *underlayv1.CAState
	Boot      *underlayv1.BootSettings
	LastIndex uint64
	// EventSeq is the sequence number of the last event appended.
	EventSeq uint64
	// Events is the number of events held.
	Events int
}

// Store is the in-memory cluster state.
type Store struct {
	db atomic.Pointer[memdb.MemDB]
	// mu serialises writers (Update and Load).
	mu sync.Mutex

	subMu sync.Mutex
	subs  map[*subscriber]struct{}

	maxEvents        int
	maxMachineEvents int
	maxInventories   int
}

// New returns an empty store.
func New() (*Store, error) {
	db, err := newDB()
	if err != nil {
		return nil, err
	}
	s := &Store{
		subs:             map[*subscriber]struct{}{},
		maxEvents:        MaxEvents,
		maxMachineEvents: MaxMachineEvents,
		maxInventories:   MaxInventoryVersions,
	}
	s.db.Store(db)
	return s, nil
}

func newDB() (*memdb.MemDB, error) {
	schema := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableMeta: {
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
	}}
	for _, t := range []*memdb.TableSchema{
		nodesTable(), tokensTable(), operatorsTable(), revocationsTable(), issuedTable(),
		machinesTable(), inventoriesTable(), eventsTable(), eventCountsTable(),
		subnetsTable(), leasesTable(), reservationsTable(),
		definitionsTable(), defHistoryTable(), plansTable(), jobsTable(), logsTable(), roleStatusTable(),
	} {
		schema.Tables[t.Name] = t
	}
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		return nil, fmt.Errorf("store schema: %w", err)
	}
	txn := db.Txn(true)
	if err := txn.Insert(tableMeta, &meta{ID: metaID}); err != nil {
		txn.Abort()
		return nil, fmt.Errorf("store meta: %w", err)
	}
	txn.Commit()
	return db, nil
}

func (s *Store) read() *memdb.Txn { return s.db.Load().Txn(false) }

func readMeta(txn *memdb.Txn) *meta {
	raw, err := txn.First(tableMeta, "id", metaID)
	if err != nil || raw == nil {
		// The schema guarantees the row; anything else is a bug.
		panic(fmt.Sprintf("store: meta row missing: %v", err))
	}
	return raw.(*meta)
}

// ClusterID returns the cluster ID, or "" before bootstrap.
func (s *Store) ClusterID() string { return readMeta(s.read()).ClusterID }

// CA returns the cluster CA, or nil before bootstrap.
func (s *Store) CA() *underlayv1.CAState {
	ca := readMeta(s.read()).CA
	if ca == nil {
		return nil
	}
	return proto.Clone(ca).(*underlayv1.CAState)
}

// LastIndex returns the Raft index of the last successful write. Commands
// that failed change nothing, not even this.
func (s *Store) LastIndex() uint64 { return readMeta(s.read()).LastIndex }

// Tx is one atomic write, at one Raft index. Methods that read return
// clones; methods that write store clones of what they are given.
type Tx struct {
	txn    *memdb.Txn
	s      *Store
	idx    uint64
	now    *timestamppb.Timestamp
	actor  string
	meta   *meta
	events []*underlayv1.Event
}

// Update runs fn in a write transaction at Raft index idx. now is the
// command's time and actor its author; both are stamped on events. If fn
// returns an error nothing it did is kept and the error is returned as is;
// otherwise the writes commit, LastIndex becomes idx and the events fn
// appended are published to subscribers. idx must be greater than
// LastIndex.
func (s *Store) Update(idx uint64, now time.Time, actor string, fn func(*Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Load().Txn(true)
	m := *readMeta(txn)
	if idx == 0 || idx <= m.LastIndex {
		txn.Abort()
		return fmt.Errorf("write at index %d after %d: %w", idx, m.LastIndex, ErrInvalid)
	}
	tx := &Tx{txn: txn, s: s, idx: idx, now: timestamppb.New(now), actor: actor, meta: &m}
	if err := fn(tx); err != nil {
		txn.Abort()
		return err
	}
	m.LastIndex = idx
	if err := txn.Insert(tableMeta, &m); err != nil {
		txn.Abort()
		return fmt.Errorf("write meta: %w", err)
	}
	txn.Commit()
	s.publish(tx.events)
	return nil
}

// Index returns the Raft index of the write.
func (tx *Tx) Index() uint64 { return tx.idx }

// Now returns the command's time.
func (tx *Tx) Now() *timestamppb.Timestamp { return proto.Clone(tx.now).(*timestamppb.Timestamp) }

// Actor returns the identity that caused the write.
func (tx *Tx) Actor() string { return tx.actor }

// CA returns the cluster CA, or nil before bootstrap.
func (tx *Tx) CA() *underlayv1.CAState {
	if tx.meta.CA == nil {
		return nil
	}
	return proto.Clone(tx.meta.CA).(*underlayv1.CAState)
}

// SetCluster sets the cluster ID and CA.
func (tx *Tx) SetCluster(clusterID string, ca *underlayv1.CAState) error {
	if clusterID == "" || ca == nil {
		return fmt.Errorf("set cluster: cluster id and ca required: %w", ErrInvalid)
	}
	tx.meta.ClusterID = clusterID
	tx.meta.CA = proto.Clone(ca).(*underlayv1.CAState)
	return nil
}

// first returns the row of table whose id is key, or nil.
func (tx *Tx) first(table string, key string) (any, error) {
	raw, err := tx.txn.First(table, "id", key)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", table, key, err)
	}
	return raw, nil
}

// getAll returns every row of table, in index order.
func getAll[T any](txn *memdb.Txn, table, index string, args ...any) []T {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("store: iterate %s.%s: %v", table, index, err))
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}

// clones returns clones of protos.
func clones[T proto.Message](in []T) []T {
	out := make([]T, 0, len(in))
	for _, m := range in {
		out = append(out, proto.Clone(m).(T))
	}
	return out
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }
