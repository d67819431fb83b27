package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

// state is everything readable from a store, for comparisons.
type state struct {
	ClusterID   string
	CA          *underlayv1.CAState
	LastIndex   uint64
	Nodes       []*underlayv1.NodeInfo
	Tokens      []*underlayv1.Token
	Operators   []*underlayv1.Operator
	Revocations []*underlayv1.Revocation
	Issued      []*underlayv1.Issued
	Machines    []*underlayv1.Machine
	Inventories []*underlayv1.Inventory
	Events      []*underlayv1.Event
	Definitions []*underlayv1.Definition
	History     []*underlayv1.Definition
	Plans       []*underlayv1.Plan
	Jobs        []*underlayv1.Job
	Logs        []*underlayv1.LogChunk
	RoleStatus  []*underlayv1.RoleStatus
}

func readState(tb testing.TB, s *Store) state {
	tb.Helper()
	st := state{
		ClusterID: s.ClusterID(), CA: s.CA(), LastIndex: s.LastIndex(),
		Nodes: s.Nodes(), Tokens: s.Tokens(), Operators: s.Operators(), Revocations: s.Revocations(),
		Issued: s.IssuedTo("spiffe://underlay/machine/m-1"), Machines: s.Machines(), Events: s.Events(""),
	}
	st.Definitions = s.Definitions("")
	for _, d := range st.Definitions {
		if h, err := s.DefinitionVersion(catalog.Kind(d), catalog.Name(d), 1); err == nil {
			st.History = append(st.History, h)
		}
	}
	st.RoleStatus = s.RoleStatuses()
	for _, m := range st.Machines {
		if p, err := s.Plan(m.GetId()); err == nil {
			st.Plans = append(st.Plans, p)
		}
		for _, j := range s.Jobs(m.GetId()) {
			st.Jobs = append(st.Jobs, j)
			st.Logs = append(st.Logs, s.Logs(j.GetId(), 0)...)
		}
	}
	for _, m := range st.Machines {
		for v := uint64(1); v <= m.GetInventoryVersion(); v++ {
			inv, err := s.InventoryVersion(m.GetId(), v)
			if err != nil {
				tb.Fatalf("InventoryVersion(%s, %d): %v", m.GetId(), v, err)
			}
			st.Inventories = append(st.Inventories, inv)
		}
	}
	return st
}

func TestDumpLoadRoundTrip(t *testing.T) {
	src := newStore(t)
	populate(t, src)
	var buf bytes.Buffer
	if err := src.Dump(&buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	dst := newStore(t)
	write(t, dst, func(tx *Tx) error { return tx.PutMachine(&underlayv1.Machine{Id: "replaced"}) })
	if err := dst.Load(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(readState(t, src), readState(t, dst), protocmp.Transform()); diff != "" {
		t.Errorf("state after round trip (-want +got):\n%s", diff)
	}
	var again bytes.Buffer
	if err := dst.Dump(&again); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("dump of the loaded store differs from the original dump")
	}
	// Writes continue after the loaded index.
	write(t, dst, func(tx *Tx) error { return tx.Event("k", "m-1", "after load") })
	if got := dst.Events("m-1"); got[len(got)-1].GetMessage() != "after load" {
		t.Errorf("last event after load = %v", got[len(got)-1])
	}
}

func TestLoadClosesSubscriptions(t *testing.T) {
	s := newStore(t)
	ch, cancel := s.Subscribe()
	defer cancel()
	var buf bytes.Buffer
	if err := newStore(t).Dump(&buf); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(&buf); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("subscription still open after Load")
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	src := newStore(t)
	populate(t, src)
	var buf bytes.Buffer
	if err := src.Dump(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated mid-record", good[:len(good)/2]},
		{"no end record", good[:len(good)-2]},
		{"no header", good[len(snapshotFormat)+2:]},
		{"unknown tag", append([]byte{tagHeader, byte(len(snapshotFormat))}, append([]byte(snapshotFormat), 77, 0)...)},
		{"bad proto", append([]byte{tagHeader, byte(len(snapshotFormat))}, append([]byte(snapshotFormat), tagMachine, 2, 0xff, 0xff, tagEnd, 0)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := newStore(t)
			populate(t, dst)
			write(t, dst, func(tx *Tx) error { return tx.PutMachine(&underlayv1.Machine{Id: "keep"}) })
			before := readState(t, dst)
			err := dst.Load(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatal("Load accepted bad input")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Load error %v does not wrap ErrInvalid", err)
			}
			if diff := cmp.Diff(before, readState(t, dst), protocmp.Transform()); diff != "" {
				t.Errorf("failed Load changed state (-before +after):\n%s", diff)
			}
		})
	}
}
