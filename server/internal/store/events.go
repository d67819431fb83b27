package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	tableEvents      = "events"
	tableEventCounts = "event_counts"
)

// Event retention: the last MaxMachineEvents events of each machine and,
// across the cluster, the last MaxEvents events are kept.
const (
	MaxEvents        = 10000
	MaxMachineEvents = 1000
)

// SubscribeBuffer is the capacity of a subscription channel.
const SubscribeBuffer = 256

// eventRow is one event with its position in the log of events.
type eventRow struct {
	Seq       uint64
	MachineID string
	Event     *underlayv1.Event
}

// countRow counts the events held for one machine.
type countRow struct {
	MachineID string
	N         int
}

func eventsTable() *memdb.TableSchema {
	seq := func(raw any) uint64 { return raw.(*eventRow).Seq }
	return &memdb.TableSchema{
		Name: tableEvents,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: seqIndex{seq: seq}},
			"machine": {Name: "machine", Unique: true, Indexer: seqIndex{
				str: func(raw any) string { return raw.(*eventRow).MachineID },
				seq: seq,
			}},
		},
	}
}

func eventCountsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableEventCounts,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "MachineID"}},
		},
	}
}

// Events returns the events of one machine, or of the whole cluster for
// machineID "", oldest first (in Raft index order).
func (s *Store) Events(machineID string) []*underlayv1.Event {
	var rows []*eventRow
	if machineID == "" {
		rows = getAll[*eventRow](s.read(), tableEvents, "id")
	} else {
		rows = getAll[*eventRow](s.read(), tableEvents, "machine_prefix", machineID)
	}
	out := make([]*underlayv1.Event, 0, len(rows))
	for _, r := range rows {
		out = append(out, clone(r.Event))
	}
	return out
}

// Event appends an event stamped with the write's index, time and actor.
// Subscribers see it once the write commits, and never if it aborts.
func (tx *Tx) Event(kind, machineID, message string) error {
	e := &underlayv1.Event{
		Index:     tx.idx,
		Time:      tx.Now(),
		Kind:      kind,
		MachineId: machineID,
		Message:   message,
		Actor:     tx.actor,
	}
	if err := appendEvent(tx.txn, tx.meta, e, tx.s.maxEvents, tx.s.maxMachineEvents); err != nil {
		return err
	}
	tx.events = append(tx.events, e)
	return nil
}

// appendEvent inserts e after every other event and trims old events.
func appendEvent(txn *memdb.Txn, m *meta, e *underlayv1.Event, maxEvents, maxMachine int) error {
	m.EventSeq++
	row := &eventRow{Seq: m.EventSeq, MachineID: e.GetMachineId(), Event: clone(e)}
	if err := txn.Insert(tableEvents, row); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	m.Events++
	if row.MachineID != "" {
		n, err := addCount(txn, row.MachineID, 1)
		if err != nil {
			return err
		}
		if n > maxMachine {
			oldest, err := txn.First(tableEvents, "machine_prefix", row.MachineID)
			if err != nil || oldest == nil {
				return fmt.Errorf("trim events of %s: %w", row.MachineID, err)
			}
			if err := dropEvent(txn, m, oldest.(*eventRow)); err != nil {
				return err
			}
		}
	}
	for m.Events > maxEvents {
		oldest, err := txn.First(tableEvents, "id")
		if err != nil || oldest == nil {
			return fmt.Errorf("trim events: %w", err)
		}
		if err := dropEvent(txn, m, oldest.(*eventRow)); err != nil {
			return err
		}
	}
	return nil
}

func dropEvent(txn *memdb.Txn, m *meta, row *eventRow) error {
	if err := txn.Delete(tableEvents, row); err != nil {
		return fmt.Errorf("drop event %d: %w", row.Seq, err)
	}
	m.Events--
	if row.MachineID != "" {
		if _, err := addCount(txn, row.MachineID, -1); err != nil {
			return err
		}
	}
	return nil
}

// addCount adds delta to a machine's event count and returns the new count.
func addCount(txn *memdb.Txn, machineID string, delta int) (int, error) {
	c := &countRow{MachineID: machineID}
	raw, err := txn.First(tableEventCounts, "id", machineID)
	if err != nil {
		return 0, fmt.Errorf("count events of %s: %w", machineID, err)
	}
	if raw != nil {
		c.N = raw.(*countRow).N
	}
	c.N += delta
	if c.N <= 0 {
		if raw != nil {
			if err := txn.Delete(tableEventCounts, raw); err != nil {
				return 0, fmt.Errorf("count events of %s: %w", machineID, err)
			}
		}
		return 0, nil
	}
	if err := txn.Insert(tableEventCounts, c); err != nil {
		return 0, fmt.Errorf("count events of %s: %w", machineID, err)
	}
	return c.N, nil
}

type subscriber struct {
	ch chan *underlayv1.Event
}

// Subscribe returns a channel that receives every event appended after the
// call, in order, and a func that ends the subscription and closes the
// channel.
//
// Delivery never blocks a write: the channel has SubscribeBuffer slots, and
// a subscriber that lets it fill up is dropped, its channel closed. A
// closed channel therefore means "you missed events": re-read Events and
// subscribe again. Load (a snapshot restore) closes every subscription for
// the same reason.
func (s *Store) Subscribe() (<-chan *underlayv1.Event, func()) {
	sub := &subscriber{ch: make(chan *underlayv1.Event, SubscribeBuffer)}
	s.subMu.Lock()
	s.subs[sub] = struct{}{}
	s.subMu.Unlock()
	return sub.ch, func() {
		s.subMu.Lock()
		defer s.subMu.Unlock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
			close(sub.ch)
		}
	}
}

// publish hands committed events to subscribers without blocking.
func (s *Store) publish(events []*underlayv1.Event) {
	if len(events) == 0 {
		return
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for sub := range s.subs {
		for _, e := range events {
			select {
			case sub.ch <- clone(e):
			default:
				delete(s.subs, sub)
				close(sub.ch)
			}
			if _, ok := s.subs[sub]; !ok {
				break
			}
		}
	}
}

// dropSubscribers closes every subscription.
func (s *Store) dropSubscribers() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for sub := range s.subs {
		delete(s.subs, sub)
		close(sub.ch)
	}
}
