package fsm

import (
	"bytes"
	"crypto/sha256"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/store"
)

var t0 = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	adminActor = "spiffe://underlay/operator/admin"
	uuid1      = "4c2d1e0a-9b8f-4e7d-a6c5-b4a392817060"
)

func secret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// harness is an FSM over a fresh store, applying at increasing indexes.
type harness struct {
	store *store.Store
	fsm   *FSM
	idx   uint64
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	s, err := store.New()
	if err != nil {
		tb.Fatalf("store.New: %v", err)
	}
	return &harness{store: s, fsm: New(s, slog.New(slog.DiscardHandler))}
}

// apply encodes c (stamping a time if it has none) and applies it at the
// next index.
func (h *harness) apply(tb testing.TB, c *underlayv1.Command) *underlayv1.ApplyResult {
	tb.Helper()
	h.idx++
	if c.GetTime() == nil {
		c.Time = timestamppb.New(t0.Add(time.Duration(h.idx) * time.Second))
	}
	if c.GetActor() == "" {
		c.Actor = adminActor
	}
	data, err := Encode(c)
	if err != nil {
		tb.Fatalf("Encode: %v", err)
	}
	res, ok := h.fsm.Apply(&raft.Log{Index: h.idx, Type: raft.LogCommand, Data: data}).(*underlayv1.ApplyResult)
	if !ok || res == nil {
		tb.Fatalf("Apply returned %T, want *ApplyResult", res)
	}
	if res.GetIndex() != h.idx {
		tb.Fatalf("result index %d, want %d", res.GetIndex(), h.idx)
	}
	return res
}

// mustApply applies commands that must succeed.
func (h *harness) mustApply(tb testing.TB, cmds ...*underlayv1.Command) {
	tb.Helper()
	for _, c := range cmds {
		if res := h.apply(tb, c); res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_NONE {
			tb.Fatalf("apply %v: %v %s", c.GetCmd(), res.GetErrorKind(), res.GetErrorMessage())
		}
	}
}

func (h *harness) dump(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := h.store.Dump(&buf); err != nil {
		tb.Fatalf("Dump: %v", err)
	}
	return buf.Bytes()
}

func bootstrapCmd() *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_Bootstrap{Bootstrap: &underlayv1.BootstrapCluster{
		Ca:    &underlayv1.CAState{ClusterId: "c-1", Fingerprint: "f00d", RootCertPem: []byte("root")},
		Admin: &underlayv1.Operator{Name: "admin"},
		Node:  &underlayv1.NodeInfo{Id: "n1", RaftAddr: "10.0.0.1:7000", ApiAddr: "10.0.0.1:7443"},
	}}}
}

func tokenCmd(id string, kind underlayv1.TokenKind, uses int32, expires time.Time) *underlayv1.Command {
	t := &underlayv1.Token{Id: id, Kind: kind, SecretHash: secret("s3cret-" + id), UsesAllowed: uses}
	if !expires.IsZero() {
		t.Expires = timestamppb.New(expires)
	}
	return &underlayv1.Command{Cmd: &underlayv1.Command_CreateToken{CreateToken: &underlayv1.CreateToken{Token: t}}}
}

func useTokenCmdFor(id string, sec string, kinds ...underlayv1.TokenKind) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_UseToken{UseToken: &underlayv1.UseToken{
		Id: id, SecretHash: secret(sec), Kinds: kinds,
	}}}
}

func identity(uuid string, macs ...string) *underlayv1.MachineIdentity {
	return &underlayv1.MachineIdentity{Uuid: uuid, Serials: []string{"SN-" + uuid[:4]}, Macs: macs}
}

func enrollCmd(machineID, tokenID string, id *underlayv1.MachineIdentity, serial string, inv *underlayv1.Inventory) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_EnrollMachine{EnrollMachine: &underlayv1.EnrollMachine{
		Token:        &underlayv1.UseToken{Id: tokenID, SecretHash: secret("s3cret-" + tokenID), Kinds: []underlayv1.TokenKind{underlayv1.TokenKind_TOKEN_KIND_DISCOVERY}},
		Identity:     id,
		MachineId:    machineID,
		Hostname:     "host-" + machineID,
		Inventory:    inv,
		CertSerial:   serial,
		CertNotAfter: timestamppb.New(t0.Add(24 * time.Hour)),
	}}}
}

func stateCmd(id string, s underlayv1.MachineState) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_SetMachineState{SetMachineState: &underlayv1.SetMachineState{
		MachineId: id, State: s, Reason: "test",
	}}}
}

// scenario is a log that touches every command kind.
func scenario() []*underlayv1.Command {
	disc := underlayv1.TokenKind_TOKEN_KIND_DISCOVERY
	return []*underlayv1.Command{
		bootstrapCmd(),
		{Cmd: &underlayv1.Command_RegisterNode{RegisterNode: &underlayv1.RegisterNode{Node: &underlayv1.NodeInfo{Id: "n2", RaftAddr: "10.0.0.2:7000"}}}},
		{Cmd: &underlayv1.Command_RegisterNode{RegisterNode: &underlayv1.RegisterNode{Node: &underlayv1.NodeInfo{Id: "n3"}}}},
		{Cmd: &underlayv1.Command_DeregisterNode{DeregisterNode: &underlayv1.DeregisterNode{Id: "n3"}}},
		tokenCmd("disc", disc, 0, time.Time{}),
		tokenCmd("old", underlayv1.TokenKind_TOKEN_KIND_AGENT, 1, t0.Add(time.Hour)),
		{Cmd: &underlayv1.Command_RevokeToken{RevokeToken: &underlayv1.RevokeToken{Id: "old"}}},
		{Cmd: &underlayv1.Command_CreateOperator{CreateOperator: &underlayv1.CreateOperator{Operator: &underlayv1.Operator{Name: "bob", Role: underlayv1.OperatorRole_OPERATOR_ROLE_READONLY}}}},
		{Cmd: &underlayv1.Command_RecordIssued{RecordIssued: &underlayv1.RecordIssued{Issued: &underlayv1.Issued{Serial: "op-1", Subject: "spiffe://underlay/operator/bob"}}}},
		{Cmd: &underlayv1.Command_RevokeCert{RevokeCert: &underlayv1.RevokeCert{Revocation: &underlayv1.Revocation{Serial: "op-1", Subject: "spiffe://underlay/operator/bob", Reason: "left"}}}},
		enrollCmd("m-1", "disc", identity(uuid1, "52:54:00:00:00:01"), "c-1", &underlayv1.Inventory{Hostname: "h1", Arch: "amd64"}),
		enrollCmd("m-2", "disc", identity("0b9a8c7d-6e5f-4a3b-9c2d-1e0f00aabbcc", "52:54:00:00:00:02"), "c-2", nil),
		{Cmd: &underlayv1.Command_UpdateInventory{UpdateInventory: &underlayv1.UpdateInventory{MachineId: "m-1", Inventory: &underlayv1.Inventory{Hostname: "h1", Arch: "arm64"}}}},
		{Cmd: &underlayv1.Command_SetMachineLabels{SetMachineLabels: &underlayv1.SetMachineLabels{MachineId: "m-1", Set: map[string]string{"rack": "r1", "zone": "a", "pool": "web"}}}},
		stateCmd("m-1", underlayv1.MachineState_MACHINE_STATE_READY),
		{Cmd: &underlayv1.Command_SetPresence{SetPresence: &underlayv1.SetPresence{MachineId: "m-1", Online: true, NodeId: "n1"}}},
		{Cmd: &underlayv1.Command_DeleteMachine{DeleteMachine: &underlayv1.DeleteMachine{MachineId: "m-2"}}},
	}
}

func TestScenarioApplies(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t, scenario()...)
}

func TestUnknownCommand(t *testing.T) {
	h := newHarness(t)
	before := h.dump(t)
	res := h.apply(t, &underlayv1.Command{})
	want := &underlayv1.ApplyResult{Index: 1, ErrorKind: underlayv1.ErrorKind_ERROR_KIND_INVALID, ErrorMessage: "unknown command: unknown command"}
	if diff := cmp.Diff(want, res, protocmp.Transform()); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if !bytes.Equal(before, h.dump(t)) {
		t.Error("unknown command changed state")
	}
}

func TestCommandWithoutTime(t *testing.T) {
	h := newHarness(t)
	data, err := Encode(bootstrapCmd())
	if err != nil {
		t.Fatal(err)
	}
	res := h.fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(*underlayv1.ApplyResult)
	if res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_INVALID {
		t.Errorf("kind = %v, want INVALID", res.GetErrorKind())
	}
}

func TestNonCommandEntriesIgnored(t *testing.T) {
	h := newHarness(t)
	before := h.dump(t)
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration} {
		res := h.fsm.Apply(&raft.Log{Index: 7, Type: typ, Data: []byte("not a command")})
		if diff := cmp.Diff(&underlayv1.ApplyResult{Index: 7}, res, protocmp.Transform()); diff != "" {
			t.Errorf("%v: result (-want +got):\n%s", typ, diff)
		}
	}
	if !bytes.Equal(before, h.dump(t)) {
		t.Error("non-command entry changed state")
	}
}

func TestUndecodableEntryPanics(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"wrong message type", []byte{9, 1, 2}},
		{"bad proto", []byte{1, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			defer func() {
				if recover() == nil {
					t.Error("Apply did not panic")
				}
			}()
			h.fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: tt.data})
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	c := bootstrapCmd()
	c.Time = timestamppb.New(t0)
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 1 {
		t.Errorf("message type byte %d, want 1", data[0])
	}
	var got underlayv1.Command
	if err := Decode(data, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, &got, protocmp.Transform()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// sink is an in-memory raft.SnapshotSink.
type sink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Close() error  { s.closed = true; return nil }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

// view is everything readable from a store.
type view struct {
	ClusterID   string
	CA          *underlayv1.CAState
	LastIndex   uint64
	Nodes       []*underlayv1.NodeInfo
	Tokens      []*underlayv1.Token
	Operators   []*underlayv1.Operator
	Revocations []*underlayv1.Revocation
	Machines    []*underlayv1.Machine
	Inventories map[string][]*underlayv1.Inventory
	Issued      map[string][]*underlayv1.Issued
	Events      []*underlayv1.Event
}

func viewOf(tb testing.TB, s *store.Store) view {
	tb.Helper()
	v := view{
		ClusterID: s.ClusterID(), CA: s.CA(), LastIndex: s.LastIndex(), Nodes: s.Nodes(), Tokens: s.Tokens(),
		Operators: s.Operators(), Revocations: s.Revocations(), Machines: s.Machines(), Events: s.Events(""),
		Inventories: map[string][]*underlayv1.Inventory{}, Issued: map[string][]*underlayv1.Issued{},
	}
	for _, m := range v.Machines {
		for n := uint64(1); n <= m.GetInventoryVersion(); n++ {
			inv, err := s.InventoryVersion(m.GetId(), n)
			if err != nil {
				tb.Fatalf("InventoryVersion: %v", err)
			}
			v.Inventories[m.GetId()] = append(v.Inventories[m.GetId()], inv)
		}
	}
	for _, subj := range []string{"spiffe://underlay/machine/m-1", "spiffe://underlay/machine/m-2", "spiffe://underlay/operator/bob"} {
		v.Issued[subj] = s.IssuedTo(subj)
	}
	return v
}

func TestSnapshotRestore(t *testing.T) {
	src := newHarness(t)
	src.mustApply(t, scenario()...)
	snap, err := src.fsm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	want := viewOf(t, src.store)
	// A write after Snapshot must not leak into the persisted snapshot.
	src.mustApply(t, stateCmd("m-1", underlayv1.MachineState_MACHINE_STATE_CONFIGURING))
	var sk sink
	if err := snap.Persist(&sk); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	if !sk.closed || sk.cancelled {
		t.Errorf("sink closed=%v cancelled=%v, want closed only", sk.closed, sk.cancelled)
	}
	dst := newHarness(t)
	if err := dst.fsm.Restore(io.NopCloser(&sk.Buffer)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if diff := cmp.Diff(want, viewOf(t, dst.store), protocmp.Transform()); diff != "" {
		t.Errorf("restored state (-want +got):\n%s", diff)
	}
	if want.LastIndex == 0 || len(want.Machines) == 0 || len(want.Events) == 0 {
		t.Errorf("scenario produced an empty state: %+v", want)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	for _, h := range []*harness{a, b} {
		for _, c := range scenario() {
			h.apply(t, c)
		}
		// Failing commands are part of the log too.
		h.apply(t, stateCmd("m-1", underlayv1.MachineState_MACHINE_STATE_ACTIVE))
		h.apply(t, useTokenCmdFor("old", "wrong"))
	}
	da, db := a.dump(t), b.dump(t)
	if !bytes.Equal(da, db) {
		t.Errorf("dumps differ: %d vs %d bytes", len(da), len(db))
	}
}

func timestampAt(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
