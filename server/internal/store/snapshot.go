package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

// The snapshot format is a stream of records: a one-byte tag, the payload
// length as a uvarint, and the payload. The first record is the header, the
// last the end marker; in between come the meta record, then the rows of
// each table in index order. Payloads are deterministic proto encodings,
// except for the header (the format name), meta (uvarint last index, then
// the cluster ID) and inventories (uvarint version, uvarint length of the
// machine ID, the machine ID, then the Inventory proto). The same state
// always dumps to the same bytes.
const (
	tagHeader     byte = 1
	tagMeta       byte = 2
	tagCA         byte = 3
	tagNode       byte = 4
	tagToken      byte = 5
	tagOperator   byte = 6
	tagRevocation byte = 7
	tagIssued     byte = 8
	tagMachine    byte = 9
	tagInventory  byte = 10
	tagEvent      byte = 11
	tagBoot       byte = 12
	tagSubnet     byte = 13
	tagLease      byte = 14
	tagReserve    byte = 15
	tagDef        byte = 16
	tagDefVersion byte = 17
	tagPlan       byte = 18
	tagJob        byte = 19
	tagLog        byte = 20
	tagRoleStatus byte = 21
	tagEnd        byte = 255

	snapshotFormat = "underlay-store/1"
	maxRecord      = 64 << 20
)

var marshal = proto.MarshalOptions{Deterministic: true}

// Snapshot is a frozen view of the store, for dumping while writes go on.
type Snapshot struct {
	txn *memdb.Txn
}

// Snapshot returns the state as of now; later writes do not change it.
func (s *Store) Snapshot() *Snapshot { return &Snapshot{txn: s.read()} }

// Dump writes the whole state to w.
func (s *Store) Dump(w io.Writer) error { return s.Snapshot().Dump(w) }

// Dump writes the snapshot's state to w.
func (sn *Snapshot) Dump(w io.Writer) error {
	bw := bufio.NewWriter(w)
	rw := &recordWriter{w: bw}
	m := readMeta(sn.txn)
	rw.raw(tagHeader, []byte(snapshotFormat))
	rw.raw(tagMeta, append(binary.AppendUvarint(nil, m.LastIndex), m.ClusterID...))
	if m.CA != nil {
		rw.msg(tagCA, m.CA)
	}
	if m.Boot != nil {
		rw.msg(tagBoot, m.Boot)
	}
	for _, n := range getAll[*underlayv1.NodeInfo](sn.txn, tableNodes, "id") {
		rw.msg(tagNode, n)
	}
	for _, t := range getAll[*underlayv1.Token](sn.txn, tableTokens, "id") {
		rw.msg(tagToken, t)
	}
	for _, o := range getAll[*underlayv1.Operator](sn.txn, tableOperators, "id") {
		rw.msg(tagOperator, o)
	}
	for _, r := range getAll[*underlayv1.Revocation](sn.txn, tableRevocations, "id") {
		rw.msg(tagRevocation, r)
	}
	for _, i := range getAll[*underlayv1.Issued](sn.txn, tableIssued, "id") {
		rw.msg(tagIssued, i)
	}
	for _, mc := range getAll[*underlayv1.Machine](sn.txn, tableMachines, "id") {
		rw.msg(tagMachine, mc)
	}
	for _, inv := range getAll[*inventoryRow](sn.txn, tableInventories, "id") {
		b := binary.AppendUvarint(nil, inv.Version)
		b = binary.AppendUvarint(b, uint64(len(inv.MachineID)))
		b = append(b, inv.MachineID...)
		body, err := marshal.Marshal(inv.Inventory)
		if err != nil {
			return fmt.Errorf("dump inventory of %s: %w", inv.MachineID, err)
		}
		rw.raw(tagInventory, append(b, body...))
	}
	for _, e := range getAll[*eventRow](sn.txn, tableEvents, "id") {
		rw.msg(tagEvent, e.Event)
	}
	for _, x := range getAll[*underlayv1.Subnet](sn.txn, tableSubnets, "id") {
		rw.msg(tagSubnet, x)
	}
	for _, x := range getAll[*underlayv1.Lease](sn.txn, tableLeases, "id") {
		rw.msg(tagLease, x)
	}
	for _, x := range getAll[*underlayv1.Reservation](sn.txn, tableReservations, "id") {
		rw.msg(tagReserve, x)
	}
	for _, d := range getAll[*defRow](sn.txn, tableDefinitions, "id") {
		rw.msg(tagDef, d.Def)
	}
	for _, d := range getAll[*defVersion](sn.txn, tableDefHistory, "id") {
		rw.msg(tagDefVersion, d.Def)
	}
	for _, x := range getAll[*underlayv1.Plan](sn.txn, tablePlans, "id") {
		rw.msg(tagPlan, x)
	}
	for _, x := range getAll[*underlayv1.Job](sn.txn, tableJobs, "id") {
		rw.msg(tagJob, x)
	}
	for _, x := range getAll[*logRow](sn.txn, tableLogs, "id") {
		rw.msg(tagLog, x.Chunk)
	}
	for _, x := range getAll[*underlayv1.RoleStatus](sn.txn, tableRoleStatus, "id") {
		rw.msg(tagRoleStatus, x)
	}
	rw.raw(tagEnd, nil)
	if rw.err != nil {
		return fmt.Errorf("dump: %w", rw.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return nil
}

type recordWriter struct {
	w   *bufio.Writer
	err error
}

func (rw *recordWriter) msg(tag byte, m proto.Message) {
	if rw.err != nil {
		return
	}
	b, err := marshal.Marshal(m)
	if err != nil {
		rw.err = err
		return
	}
	rw.raw(tag, b)
}

func (rw *recordWriter) raw(tag byte, b []byte) {
	if rw.err != nil {
		return
	}
	hdr := binary.AppendUvarint([]byte{tag}, uint64(len(b)))
	if _, err := rw.w.Write(hdr); err != nil {
		rw.err = err
		return
	}
	_, rw.err = rw.w.Write(b)
}

// Load replaces the whole state with a dump read from r. On error the
// state is left as it was. Every subscription is closed (see Subscribe).
func (s *Store) Load(r io.Reader) error {
	db, err := newDB()
	if err != nil {
		return err
	}
	txn := db.Txn(true)
	if err := s.load(txn, bufio.NewReader(r)); err != nil {
		txn.Abort()
		return fmt.Errorf("load snapshot: %w", err)
	}
	txn.Commit()
	s.mu.Lock()
	s.db.Store(db)
	s.mu.Unlock()
	s.dropSubscribers()
	return nil
}

func (s *Store) load(txn *memdb.Txn, br *bufio.Reader) error {
	m := &meta{ID: metaID}
	for n := 0; ; n++ {
		tag, body, err := readRecord(br)
		if err != nil {
			return err
		}
		if (n == 0) != (tag == tagHeader) {
			return fmt.Errorf("record %d: unexpected tag %d: %w", n, tag, ErrInvalid)
		}
		switch tag {
		case tagHeader:
			if string(body) != snapshotFormat {
				return fmt.Errorf("format %q, want %q: %w", body, snapshotFormat, ErrInvalid)
			}
		case tagEnd:
			return txn.Insert(tableMeta, m)
		case tagMeta:
			idx, k := binary.Uvarint(body)
			if k <= 0 {
				return fmt.Errorf("meta record: %w", ErrInvalid)
			}
			m.LastIndex, m.ClusterID = idx, string(body[k:])
		case tagCA:
			m.CA = &underlayv1.CAState{}
			err = proto.Unmarshal(body, m.CA)
		case tagBoot:
			m.Boot = &underlayv1.BootSettings{}
			err = proto.Unmarshal(body, m.Boot)
		case tagSubnet:
			err = insertMsg(txn, tableSubnets, body, &underlayv1.Subnet{})
		case tagLease:
			err = insertMsg(txn, tableLeases, body, &underlayv1.Lease{})
		case tagReserve:
			err = insertMsg(txn, tableReservations, body, &underlayv1.Reservation{})
		case tagNode:
			err = insertMsg(txn, tableNodes, body, &underlayv1.NodeInfo{})
		case tagToken:
			err = insertMsg(txn, tableTokens, body, &underlayv1.Token{})
		case tagOperator:
			err = insertMsg(txn, tableOperators, body, &underlayv1.Operator{})
		case tagRevocation:
			err = insertMsg(txn, tableRevocations, body, &underlayv1.Revocation{})
		case tagIssued:
			err = insertMsg(txn, tableIssued, body, &underlayv1.Issued{})
		case tagMachine:
			err = insertMsg(txn, tableMachines, body, &underlayv1.Machine{})
		case tagInventory:
			err = loadInventory(txn, body)
		case tagDef, tagDefVersion:
			d := &underlayv1.Definition{}
			if err = proto.Unmarshal(body, d); err == nil {
				err = loadDefinition(txn, tag == tagDef, d)
			}
		case tagPlan:
			err = insertMsg(txn, tablePlans, body, &underlayv1.Plan{})
		case tagJob:
			err = insertMsg(txn, tableJobs, body, &underlayv1.Job{})
		case tagLog:
			c := &underlayv1.LogChunk{}
			if err = proto.Unmarshal(body, c); err == nil {
				err = txn.Insert(tableLogs, &logRow{JobID: c.GetJobId(), Offset: c.GetOffset(), Chunk: c})
			}
		case tagRoleStatus:
			err = insertMsg(txn, tableRoleStatus, body, &underlayv1.RoleStatus{})
		case tagEvent:
			e := &underlayv1.Event{}
			if err = proto.Unmarshal(body, e); err == nil {
				// Retention only ever shrinks, so nothing is trimmed here
				// unless the limits shrank.
				err = appendEvent(txn, m, e, s.maxEvents, s.maxMachineEvents)
			}
		default:
			return fmt.Errorf("record %d: unknown tag %d: %w", n, tag, ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("record %d (tag %d): %v: %w", n, tag, err, ErrInvalid)
		}
	}
}

func readRecord(br *bufio.Reader) (byte, []byte, error) {
	tag, err := br.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("truncated: no end record: %w", ErrInvalid)
		}
		return 0, nil, err
	}
	size, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, nil, fmt.Errorf("record length: %w", truncated(err))
	}
	if size > maxRecord {
		return 0, nil, fmt.Errorf("record of %d bytes: %w", size, ErrInvalid)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, fmt.Errorf("record body: %w", truncated(err))
	}
	return tag, body, nil
}

// truncated turns an early end of input into ErrInvalid.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated: %w", ErrInvalid)
	}
	return err
}

func insertMsg(txn *memdb.Txn, table string, body []byte, m proto.Message) error {
	if err := proto.Unmarshal(body, m); err != nil {
		return err
	}
	return txn.Insert(table, m)
}

func loadInventory(txn *memdb.Txn, body []byte) error {
	version, k := binary.Uvarint(body)
	if k <= 0 {
		return fmt.Errorf("inventory version: %w", ErrInvalid)
	}
	body = body[k:]
	n, k := binary.Uvarint(body)
	if k <= 0 || uint64(len(body)-k) < n {
		return fmt.Errorf("inventory machine id: %w", ErrInvalid)
	}
	row := &inventoryRow{MachineID: string(body[k : k+int(n)]), Version: version, Inventory: &underlayv1.Inventory{}}
	if err := proto.Unmarshal(body[k+int(n):], row.Inventory); err != nil {
		return err
	}
	return txn.Insert(tableInventories, row)
}

func loadDefinition(txn *memdb.Txn, current bool, d *underlayv1.Definition) error {
	kind, name := catalog.Kind(d), catalog.Name(d)
	if kind == "" || name == "" {
		return fmt.Errorf("definition without kind or name: %w", ErrInvalid)
	}
	key := defKey(kind, name)
	if current {
		return txn.Insert(tableDefinitions, &defRow{Key: key, Kind: kind, Def: d})
	}
	return txn.Insert(tableDefHistory, &defVersion{Key: key, Version: catalog.Meta(d).GetVersion(), Def: d})
}
