package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var t0 = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

func newStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := New()
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// write runs fn at the next index and fails the test on error.
func write(tb testing.TB, s *Store, fn func(*Tx) error) {
	tb.Helper()
	if err := s.Update(s.LastIndex()+1, t0, "spiffe://underlay/operator/test", fn); err != nil {
		tb.Fatalf("Update: %v", err)
	}
}

// populate fills every table.
func populate(tb testing.TB, s *Store) {
	tb.Helper()
	write(tb, s, func(tx *Tx) error {
		if err := tx.SetCluster("c-1", &underlayv1.CAState{ClusterId: "c-1", Fingerprint: "ab"}); err != nil {
			return err
		}
		if err := tx.PutNode(&underlayv1.NodeInfo{Id: "n1", RaftAddr: "10.0.0.1:7000"}); err != nil {
			return err
		}
		if err := tx.CreateToken(&underlayv1.Token{Id: "tok", Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, SecretHash: []byte{1}}); err != nil {
			return err
		}
		if err := tx.CreateOperator(&underlayv1.Operator{Name: "alice", Role: underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN}); err != nil {
			return err
		}
		if _, err := tx.Revoke(&underlayv1.Revocation{Serial: "r1", Subject: "spiffe://underlay/machine/m-1"}); err != nil {
			return err
		}
		if err := tx.PutIssued(&underlayv1.Issued{Serial: "i1", Subject: "spiffe://underlay/machine/m-1"}); err != nil {
			return err
		}
		if err := tx.PutMachine(&underlayv1.Machine{Id: "m-1", Labels: map[string]string{"b": "2", "a": "1", "c": "3"}}); err != nil {
			return err
		}
		if _, _, err := tx.PutInventory("m-1", &underlayv1.Inventory{Hostname: "h1", Arch: "amd64"}); err != nil {
			return err
		}
		if err := tx.Event("machine.enrolled", "m-1", "hello"); err != nil {
			return err
		}
		if err := populateProvisioning(tx); err != nil {
			return err
		}
		return tx.Event("token.created", "", "cluster-wide")
	})
	write(tb, s, func(tx *Tx) error {
		_, _, err := tx.PutInventory("m-1", &underlayv1.Inventory{Hostname: "h1", Arch: "arm64"})
		return err
	})
}

func TestReadsReturnClones(t *testing.T) {
	s := newStore(t)
	populate(t, s)
	tests := []struct {
		name   string
		mutate func(t *testing.T)
		read   func() any
	}{
		{"machine", func(t *testing.T) {
			m, _ := s.Machine("m-1")
			m.Hostname, m.Labels["a"] = "evil", "evil"
		}, func() any { m, _ := s.Machine("m-1"); return m }},
		{"machines", func(t *testing.T) { s.Machines()[0].State = underlayv1.MachineState_MACHINE_STATE_ACTIVE },
			func() any { return s.Machines() }},
		{"token", func(t *testing.T) { tok, _ := s.Token("tok"); tok.Revoked = true }, func() any { tok, _ := s.Token("tok"); return tok }},
		{"tokens", func(t *testing.T) { s.Tokens()[0].Uses = 99 }, func() any { return s.Tokens() }},
		{"node", func(t *testing.T) { n, _ := s.Node("n1"); n.RaftAddr = "x" }, func() any { return s.Nodes() }},
		{"operator", func(t *testing.T) { o, _ := s.Operator("alice"); o.Role = 2 }, func() any { return s.Operators() }},
		{"ca", func(t *testing.T) { s.CA().Fingerprint = "evil" }, func() any { return s.CA() }},
		{"revocations", func(t *testing.T) { s.Revocations()[0].Subject = "x" }, func() any { return s.Revocations() }},
		{"issued", func(t *testing.T) { s.IssuedTo("spiffe://underlay/machine/m-1")[0].Serial = "x" },
			func() any { return s.IssuedTo("spiffe://underlay/machine/m-1") }},
		{"inventory", func(t *testing.T) { inv, _, _ := s.Inventory("m-1"); inv.Arch = "evil" },
			func() any { inv, _, _ := s.Inventory("m-1"); return inv }},
		{"events", func(t *testing.T) { s.Events("")[0].Message = "evil" }, func() any { return s.Events("") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.read()
			tt.mutate(t)
			if diff := cmp.Diff(before, tt.read(), protocmp.Transform()); diff != "" {
				t.Errorf("store changed through a returned object (-before +after):\n%s", diff)
			}
		})
	}
}

func TestWritesStoreClones(t *testing.T) {
	s := newStore(t)
	m := &underlayv1.Machine{Id: "m-1", Hostname: "h"}
	write(t, s, func(tx *Tx) error { return tx.PutMachine(m) })
	m.Hostname = "changed"
	got, err := s.Machine("m-1")
	if err != nil || got.GetHostname() != "h" {
		t.Fatalf("Machine = %v, %v; want hostname h", got, err)
	}
}

func TestIndexes(t *testing.T) {
	s := newStore(t)
	write(t, s, func(tx *Tx) error { return tx.PutMachine(&underlayv1.Machine{Id: "m-1"}) }) // 1
	write(t, s, func(tx *Tx) error { return tx.PutNode(&underlayv1.NodeInfo{Id: "n1"}) })    // 2
	write(t, s, func(tx *Tx) error { return tx.PutMachine(&underlayv1.Machine{Id: "m-1", Hostname: "x"}) })
	write(t, s, func(tx *Tx) error { return tx.PutNode(&underlayv1.NodeInfo{Id: "n1", ApiAddr: "a"}) })
	m, _ := s.Machine("m-1")
	n, _ := s.Node("n1")
	got := []uint64{m.GetCreateIndex(), m.GetModifyIndex(), n.GetCreateIndex(), s.LastIndex()}
	if diff := cmp.Diff([]uint64{1, 3, 2, 4}, got); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	err := s.Update(4, t0, "", func(*Tx) error { return nil })
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Update at a stale index: %v, want ErrInvalid", err)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	s := newStore(t)
	populate(t, s)
	var before bytes.Buffer
	if err := s.Dump(&before); err != nil {
		t.Fatal(err)
	}
	ch, cancel := s.Subscribe()
	defer cancel()
	boom := errors.New("boom")
	err := s.Update(s.LastIndex()+1, t0, "", func(tx *Tx) error {
		if err := tx.PutMachine(&underlayv1.Machine{Id: "m-2"}); err != nil {
			return err
		}
		if err := tx.Event("machine.enrolled", "m-2", ""); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	var after bytes.Buffer
	if err := s.Dump(&after); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before.Bytes(), after.Bytes()) {
		t.Error("state changed after a failed update")
	}
	select {
	case e := <-ch:
		t.Errorf("event published from a failed update: %v", e)
	default:
	}
}

func TestCreateExists(t *testing.T) {
	s := newStore(t)
	populate(t, s)
	tests := []struct {
		name string
		fn   func(*Tx) error
		want error
	}{
		{"token taken", func(tx *Tx) error { return tx.CreateToken(&underlayv1.Token{Id: "tok"}) }, ErrExists},
		{"operator taken", func(tx *Tx) error { return tx.CreateOperator(&underlayv1.Operator{Name: "alice"}) }, ErrExists},
		{"token without id", func(tx *Tx) error { return tx.CreateToken(&underlayv1.Token{}) }, ErrInvalid},
		{"machine without id", func(tx *Tx) error { return tx.PutMachine(&underlayv1.Machine{}) }, ErrInvalid},
		{"update missing token", func(tx *Tx) error { return tx.UpdateToken(&underlayv1.Token{Id: "nope"}) }, ErrNotFound},
		{"delete missing node", func(tx *Tx) error { return tx.DeleteNode("nope") }, ErrNotFound},
		{"inventory of missing machine", func(tx *Tx) error {
			_, _, err := tx.PutInventory("nope", &underlayv1.Inventory{})
			return err
		}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(s.LastIndex()+1, t0, "", tt.fn)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRevokedAndIssued(t *testing.T) {
	s := newStore(t)
	populate(t, s)
	write(t, s, func(tx *Tx) error {
		added, err := tx.Revoke(&underlayv1.Revocation{Serial: "r1", Reason: "again"})
		if added {
			return fmt.Errorf("second revoke reported as new")
		}
		return err
	})
	if !s.Revoked("r1") || s.Revoked("i1") || s.Revoked("") {
		t.Errorf("Revoked: r1=%v i1=%v empty=%v", s.Revoked("r1"), s.Revoked("i1"), s.Revoked(""))
	}
	if got := s.Revocations()[0].GetReason(); got != "" {
		t.Errorf("idempotent revoke replaced the record: reason %q", got)
	}
	if got := len(s.IssuedTo("spiffe://underlay/machine/m-2")); got != 0 {
		t.Errorf("IssuedTo other subject: %d", got)
	}
}

func TestInventoryVersions(t *testing.T) {
	s := newStore(t)
	s.maxInventories = 3
	write(t, s, func(tx *Tx) error { return tx.PutMachine(&underlayv1.Machine{Id: "m-1"}) })
	put := func(arch string, collected int64) (uint64, bool) {
		t.Helper()
		var v uint64
		var changed bool
		write(t, s, func(tx *Tx) error {
			var err error
			v, changed, err = tx.PutInventory("m-1", &underlayv1.Inventory{Arch: arch, Collected: timestamppb.New(t0.Add(time.Duration(collected)))})
			return err
		})
		return v, changed
	}
	type step struct {
		Version uint64
		Changed bool
	}
	var got []step
	for i, arch := range []string{"a", "a", "b", "c", "d", "d"} {
		v, c := put(arch, int64(i))
		got = append(got, step{v, c})
	}
	want := []step{{1, true}, {1, false}, {2, true}, {3, true}, {4, true}, {4, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	inv, v, err := s.Inventory("m-1")
	if err != nil || v != 4 || inv.GetArch() != "d" {
		t.Errorf("Inventory = %v, %d, %v", inv, v, err)
	}
	if _, err := s.InventoryVersion("m-1", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("version 1 beyond retention: %v, want ErrNotFound", err)
	}
	if inv, err := s.InventoryVersion("m-1", 2); err != nil || inv.GetArch() != "b" {
		t.Errorf("version 2 = %v, %v", inv, err)
	}
	write(t, s, func(tx *Tx) error { return tx.DeleteMachine("m-1") })
	if _, err := s.InventoryVersion("m-1", 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("inventory after delete: %v, want ErrNotFound", err)
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func protocmpT() cmp.Option { return protocmp.Transform() }

func TestReadsDuringWrites(t *testing.T) {
	s := newStore(t)
	populate(t, s)
	done := make(chan struct{})
	var writeErr error
	go func() {
		defer close(done)
		for i := range 200 {
			writeErr = s.Update(s.LastIndex()+1, t0, "", func(tx *Tx) error {
				return tx.PutMachine(&underlayv1.Machine{Id: fmt.Sprintf("m-%03d", i)})
			})
			if writeErr != nil {
				return
			}
		}
	}()
	// Every read sees a consistent snapshot: LastIndex never goes back and
	// machines only ever grow.
	var lastIdx uint64
	lastCount := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		idx, n := s.LastIndex(), len(s.Machines())
		if idx < lastIdx || n < lastCount {
			t.Fatalf("went back: index %d -> %d, machines %d -> %d", lastIdx, idx, lastCount, n)
		}
		lastIdx, lastCount = idx, n
		_ = s.Revoked("r1")
	}
	if writeErr != nil {
		t.Fatalf("Update: %v", writeErr)
	}
	if got := len(s.Machines()); got != 201 {
		t.Errorf("machines = %d, want 201", got)
	}
}
