package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
	"underlay.dev/server/internal/store"
)

const (
	kindNone         = underlayv1.ErrorKind_ERROR_KIND_NONE
	kindNotFound     = underlayv1.ErrorKind_ERROR_KIND_NOT_FOUND
	kindExists       = underlayv1.ErrorKind_ERROR_KIND_ALREADY_EXISTS
	kindInvalid      = underlayv1.ErrorKind_ERROR_KIND_INVALID
	kindPrecondition = underlayv1.ErrorKind_ERROR_KIND_FAILED_PRECONDITION
	kindDenied       = underlayv1.ErrorKind_ERROR_KIND_PERMISSION_DENIED
	kindUnauth       = underlayv1.ErrorKind_ERROR_KIND_UNAUTHENTICATED

	discovery = underlayv1.TokenKind_TOKEN_KIND_DISCOVERY
	server    = underlayv1.TokenKind_TOKEN_KIND_SERVER
	agent     = underlayv1.TokenKind_TOKEN_KIND_AGENT
)

// base is applied before every case: a cluster, a discovery token and an
// enrolled machine m-1 with certificate c-1.
func base() []*underlayv1.Command {
	return []*underlayv1.Command{
		bootstrapCmd(),
		tokenCmd("disc", discovery, 0, time.Time{}),
		enrollCmd("m-1", "disc", identity(uuid1, "52:54:00:00:00:01"), "c-1", &underlayv1.Inventory{Arch: "amd64"}),
	}
}

func machineOrFail(tb testing.TB, s *store.Store, id string) *underlayv1.Machine {
	tb.Helper()
	m, err := s.Machine(id)
	if err != nil {
		tb.Fatalf("Machine(%s): %v", id, err)
	}
	return m
}

func lastEvent(s *store.Store, machineID string) string {
	ev := s.Events(machineID)
	if len(ev) == 0 {
		return ""
	}
	e := ev[len(ev)-1]
	return e.GetKind() + " " + e.GetMessage()
}

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		setup    []*underlayv1.Command
		cmd      *underlayv1.Command
		wantKind underlayv1.ErrorKind
		wantID   string
		check    func(t *testing.T, s *store.Store)
	}{
		{
			name: "bootstrap", cmd: bootstrapCmd(), wantID: "c-1",
			check: func(t *testing.T, s *store.Store) {
				op, err := s.Operator("admin")
				if err != nil || op.GetRole() != underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN || op.GetCreatedBy() != adminActor {
					t.Errorf("admin = %v, %v", op, err)
				}
				if s.ClusterID() != "c-1" || s.CA().GetFingerprint() != "f00d" {
					t.Errorf("cluster %q ca %v", s.ClusterID(), s.CA())
				}
				if n, err := s.Node("n1"); err != nil || n.GetJoined() == nil || n.GetCreateIndex() != 1 {
					t.Errorf("node = %v, %v", n, err)
				}
				if got := lastEvent(s, ""); got != "cluster.bootstrapped cluster c-1 bootstrapped on node n1, admin admin" {
					t.Errorf("event %q", got)
				}
			},
		},
		{name: "bootstrap twice", setup: base(), cmd: bootstrapCmd(), wantKind: kindPrecondition},
		{
			name: "bootstrap without node", wantKind: kindInvalid,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_Bootstrap{Bootstrap: &underlayv1.BootstrapCluster{
				Ca: &underlayv1.CAState{ClusterId: "c"}, Admin: &underlayv1.Operator{Name: "a"},
			}}},
		},
		{
			name: "register node keeps create index", setup: base(), wantID: "n1",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_RegisterNode{RegisterNode: &underlayv1.RegisterNode{Node: &underlayv1.NodeInfo{Id: "n1", ApiAddr: "new:7443"}}}},
			check: func(t *testing.T, s *store.Store) {
				n, _ := s.Node("n1")
				if n.GetApiAddr() != "new:7443" || n.GetCreateIndex() != 1 || n.GetJoined() == nil {
					t.Errorf("node = %v", n)
				}
			},
		},
		{
			name: "deregister missing node", setup: base(), wantKind: kindNotFound,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_DeregisterNode{DeregisterNode: &underlayv1.DeregisterNode{Id: "nope"}}},
		},
		{
			name: "deregister node", setup: base(), wantID: "n1",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_DeregisterNode{DeregisterNode: &underlayv1.DeregisterNode{Id: "n1"}}},
			check: func(t *testing.T, s *store.Store) {
				if len(s.Nodes()) != 0 {
					t.Errorf("nodes = %v", s.Nodes())
				}
			},
		},
		{name: "create token taken", setup: base(), cmd: tokenCmd("disc", agent, 0, time.Time{}), wantKind: kindExists},
		{
			name: "create token without kind", setup: base(), wantKind: kindInvalid,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_CreateToken{CreateToken: &underlayv1.CreateToken{Token: &underlayv1.Token{Id: "x", SecretHash: []byte{1}}}}},
		},
		{
			name: "revoke token", setup: base(), wantID: "disc",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_RevokeToken{RevokeToken: &underlayv1.RevokeToken{Id: "disc"}}},
			check: func(t *testing.T, s *store.Store) {
				tok, _ := s.Token("disc")
				if !tok.GetRevoked() || tok.GetModifyIndex() != 4 || tok.GetCreateIndex() != 2 {
					t.Errorf("token = %v", tok)
				}
			},
		},
		{
			name: "revoke missing token", setup: base(), wantKind: kindNotFound,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_RevokeToken{RevokeToken: &underlayv1.RevokeToken{Id: "nope"}}},
		},
		{
			name: "use token", setup: base(), cmd: useTokenCmdFor("disc", "s3cret-disc", server, discovery), wantID: "disc",
			check: func(t *testing.T, s *store.Store) {
				if tok, _ := s.Token("disc"); tok.GetUses() != 2 {
					t.Errorf("uses = %d, want 2 (enroll + use)", tok.GetUses())
				}
			},
		},
		{
			name: "create operator taken", setup: base(), wantKind: kindExists,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_CreateOperator{CreateOperator: &underlayv1.CreateOperator{Operator: &underlayv1.Operator{Name: "admin", Role: 1}}}},
		},
		{
			name: "revoke cert is idempotent", wantID: "x1",
			setup: append(base(), &underlayv1.Command{Cmd: &underlayv1.Command_RevokeCert{RevokeCert: &underlayv1.RevokeCert{Revocation: &underlayv1.Revocation{Serial: "x1", Reason: "first"}}}}),
			cmd:   &underlayv1.Command{Cmd: &underlayv1.Command_RevokeCert{RevokeCert: &underlayv1.RevokeCert{Revocation: &underlayv1.Revocation{Serial: "x1", Reason: "second"}}}},
			check: func(t *testing.T, s *store.Store) {
				r := s.Revocations()
				if len(r) != 1 || r[0].GetReason() != "first" || r[0].GetRevokedBy() != adminActor || !s.Revoked("x1") {
					t.Errorf("revocations = %v", r)
				}
			},
		},
		{
			name: "record issued", setup: base(), wantID: "c-9",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_RecordIssued{RecordIssued: &underlayv1.RecordIssued{Issued: &underlayv1.Issued{Serial: "c-9", Subject: machine.Subject("m-1")}}}},
			check: func(t *testing.T, s *store.Store) {
				var serials []string
				for _, i := range s.IssuedTo(machine.Subject("m-1")) {
					serials = append(serials, i.GetSerial())
				}
				if diff := cmp.Diff([]string{"c-1", "c-9"}, serials); diff != "" {
					t.Errorf("issued (-want +got):\n%s", diff)
				}
				if got := lastEvent(s, "m-1"); got != "cert.issued certificate c-9 issued to spiffe://underlay/machine/m-1" {
					t.Errorf("event %q", got)
				}
			},
		},
		{
			name: "enroll new machine", setup: base()[:2], wantID: "m-1",
			cmd: enrollCmd("m-1", "disc", identity(uuid1, "52:54:00:00:00:01"), "c-1", &underlayv1.Inventory{Arch: "amd64"}),
			check: func(t *testing.T, s *store.Store) {
				m := machineOrFail(t, s, "m-1")
				want := &underlayv1.Machine{
					Id: "m-1", Hostname: "host-m-1", State: underlayv1.MachineState_MACHINE_STATE_DISCOVERED,
					Identity: identity(uuid1, "52:54:00:00:00:01"), Created: m.GetCreated(), Updated: m.GetCreated(),
					InventoryVersion: 1, CertSerial: "c-1", EnrolledWith: "disc", CreateIndex: 3, ModifyIndex: 3,
				}
				if diff := cmp.Diff(want, m, protocmp.Transform()); diff != "" || m.GetCreated() == nil {
					t.Errorf("machine (-want +got):\n%s", diff)
				}
				if inv, v, err := s.Inventory("m-1"); err != nil || v != 1 || inv.GetArch() != "amd64" {
					t.Errorf("inventory = %v, %d, %v", inv, v, err)
				}
				if iss := s.IssuedTo(machine.Subject("m-1")); len(iss) != 1 || iss[0].GetSerial() != "c-1" {
					t.Errorf("issued = %v", iss)
				}
				if tok, _ := s.Token("disc"); tok.GetUses() != 1 {
					t.Errorf("token uses = %d", tok.GetUses())
				}
				var kinds []string
				for _, e := range s.Events("m-1") {
					kinds = append(kinds, e.GetKind())
				}
				if diff := cmp.Diff([]string{"machine.enrolled", "machine.inventory", "cert.issued"}, kinds); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "re-enroll keeps state, labels and created", wantID: "m-1",
			setup: append(base(), stateCmd("m-1", underlayv1.MachineState_MACHINE_STATE_READY),
				&underlayv1.Command{Cmd: &underlayv1.Command_SetMachineLabels{SetMachineLabels: &underlayv1.SetMachineLabels{MachineId: "m-1", Set: map[string]string{"rack": "r1"}}}}),
			// A NIC was replaced: the UUID and serial still match.
			cmd: enrollCmd("m-1", "disc", identity(uuid1, "52:54:00:00:0f:01"), "c-2", &underlayv1.Inventory{Arch: "amd64"}),
			check: func(t *testing.T, s *store.Store) {
				m := machineOrFail(t, s, "m-1")
				if m.GetState() != underlayv1.MachineState_MACHINE_STATE_READY || m.GetLabels()["rack"] != "r1" ||
					m.GetCertSerial() != "c-2" || m.GetCreateIndex() != 3 || m.GetInventoryVersion() != 1 ||
					m.GetIdentity().GetMacs()[0] != "52:54:00:00:0f:01" {
					t.Errorf("machine = %v", m)
				}
				if got := lastEvent(s, "m-1"); got != "cert.issued certificate c-2 issued to spiffe://underlay/machine/m-1" {
					t.Errorf("event %q", got)
				}
				if len(s.Machines()) != 1 {
					t.Errorf("machines = %d, want 1", len(s.Machines()))
				}
			},
		},
		{
			name: "enroll cloned UUID as a new machine lists the conflict both ways", setup: base(), wantID: "m-clone",
			cmd: enrollCmd("m-clone", "disc", &underlayv1.MachineIdentity{Uuid: uuid1, Serials: []string{"OTHER"}, Macs: []string{"52:54:00:00:0e:01"}}, "", nil),
			check: func(t *testing.T, s *store.Store) {
				if got := machineOrFail(t, s, "m-clone").GetConflicts(); !cmp.Equal(got, []string{"m-1"}) {
					t.Errorf("clone conflicts = %v", got)
				}
				if got := machineOrFail(t, s, "m-1").GetConflicts(); !cmp.Equal(got, []string{"m-clone"}) {
					t.Errorf("original conflicts = %v", got)
				}
			},
		},
		{
			name: "enroll under another id than the match", setup: base(), wantKind: kindPrecondition,
			cmd: enrollCmd("m-other", "disc", identity(uuid1, "52:54:00:00:00:01"), "c-3", nil),
		},
		{
			name: "enroll existing id that no longer matches", setup: base(), wantKind: kindPrecondition,
			cmd: enrollCmd("m-1", "disc", &underlayv1.MachineIdentity{Serials: []string{"NEW"}, Macs: []string{"52:54:00:00:0d:01"}}, "c-3", nil),
		},
		{
			name: "enroll with a used-up token", setup: append(base()[:2], tokenCmd("once", discovery, 1, time.Time{}), useTokenCmdFor("once", "s3cret-once")),
			cmd: enrollCmd("m-1", "once", identity(uuid1), "c-1", nil), wantKind: kindDenied,
		},
		{
			name: "update inventory with only a new collected time", setup: base(), wantID: "m-1",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_UpdateInventory{UpdateInventory: &underlayv1.UpdateInventory{
				MachineId: "m-1", Inventory: &underlayv1.Inventory{Arch: "amd64", Collected: timestampAt(time.Hour)}}}},
			check: func(t *testing.T, s *store.Store) {
				if _, v, _ := s.Inventory("m-1"); v != 1 {
					t.Errorf("version = %d, want 1", v)
				}
			},
		},
		{
			name: "update inventory", setup: base(), wantID: "m-1",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_UpdateInventory{UpdateInventory: &underlayv1.UpdateInventory{
				MachineId: "m-1", Inventory: &underlayv1.Inventory{Arch: "arm64"}}}},
			check: func(t *testing.T, s *store.Store) {
				if inv, v, _ := s.Inventory("m-1"); v != 2 || inv.GetArch() != "arm64" {
					t.Errorf("inventory = %v version %d", inv, v)
				}
				if got := lastEvent(s, "m-1"); got != "machine.inventory inventory version 2" {
					t.Errorf("event %q", got)
				}
			},
		},
		{
			name: "update inventory of missing machine", setup: base(), wantKind: kindNotFound,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_UpdateInventory{UpdateInventory: &underlayv1.UpdateInventory{MachineId: "nope", Inventory: &underlayv1.Inventory{}}}},
		},
		{
			name: "set labels", wantID: "m-1",
			setup: append(base(), &underlayv1.Command{Cmd: &underlayv1.Command_SetMachineLabels{SetMachineLabels: &underlayv1.SetMachineLabels{MachineId: "m-1", Set: map[string]string{"a": "1", "b": "2"}}}}),
			cmd:   &underlayv1.Command{Cmd: &underlayv1.Command_SetMachineLabels{SetMachineLabels: &underlayv1.SetMachineLabels{MachineId: "m-1", Set: map[string]string{"c": "3", "a": "9"}, Remove: []string{"b", "zz"}}}},
			check: func(t *testing.T, s *store.Store) {
				if diff := cmp.Diff(map[string]string{"a": "9", "c": "3"}, machineOrFail(t, s, "m-1").GetLabels()); diff != "" {
					t.Errorf("labels (-want +got):\n%s", diff)
				}
				if got := lastEvent(s, "m-1"); got != "machine.labels labels a=9, c=3, -b" {
					t.Errorf("event %q", got)
				}
			},
		},
		{
			name: "set and remove the same label", setup: base(), wantKind: kindInvalid,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_SetMachineLabels{SetMachineLabels: &underlayv1.SetMachineLabels{MachineId: "m-1", Set: map[string]string{"a": "1"}, Remove: []string{"a"}}}},
		},
		{
			name: "delete machine revokes its certificates", wantID: "m-1",
			setup: append(base(), &underlayv1.Command{Cmd: &underlayv1.Command_RecordIssued{RecordIssued: &underlayv1.RecordIssued{Issued: &underlayv1.Issued{Serial: "c-renewed", Subject: machine.Subject("m-1")}}}}),
			cmd:   &underlayv1.Command{Cmd: &underlayv1.Command_DeleteMachine{DeleteMachine: &underlayv1.DeleteMachine{MachineId: "m-1"}}},
			check: func(t *testing.T, s *store.Store) {
				if _, err := s.Machine("m-1"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("machine still there: %v", err)
				}
				if !s.Revoked("c-1") || !s.Revoked("c-renewed") {
					t.Errorf("revocations = %v", s.Revocations())
				}
				if r := s.Revocations(); r[0].GetReason() != "machine deleted" || r[0].GetSubject() != machine.Subject("m-1") {
					t.Errorf("revocation = %v", r[0])
				}
				if _, _, err := s.Inventory("m-1"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("inventory still there: %v", err)
				}
				if got := lastEvent(s, "m-1"); got != "machine.deleted machine m-1 deleted, 2 certificates revoked" {
					t.Errorf("event %q", got)
				}
			},
		},
		{
			name: "delete missing machine", setup: base(), wantKind: kindNotFound,
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_DeleteMachine{DeleteMachine: &underlayv1.DeleteMachine{MachineId: "nope"}}},
		},
		{
			name: "set state", setup: base(), wantID: "m-1",
			cmd: stateCmd("m-1", underlayv1.MachineState_MACHINE_STATE_READY),
			check: func(t *testing.T, s *store.Store) {
				if got := machineOrFail(t, s, "m-1").GetState(); got != underlayv1.MachineState_MACHINE_STATE_READY {
					t.Errorf("state = %v", got)
				}
				if got := lastEvent(s, "m-1"); got != "machine.state discovered -> ready: test" {
					t.Errorf("event %q", got)
				}
			},
		},
		{name: "illegal state", setup: base(), cmd: stateCmd("m-1", underlayv1.MachineState_MACHINE_STATE_ACTIVE), wantKind: kindPrecondition},
		{
			name: "set presence", setup: base(), wantID: "m-1",
			cmd: &underlayv1.Command{Cmd: &underlayv1.Command_SetPresence{SetPresence: &underlayv1.SetPresence{MachineId: "m-1", Online: true, NodeId: "n1"}}},
			check: func(t *testing.T, s *store.Store) {
				m := machineOrFail(t, s, "m-1")
				if !m.GetOnline() || m.GetConnectedNode() != "n1" || !m.GetLastSeen().AsTime().Equal(t0.Add(4*time.Second)) {
					t.Errorf("machine = %v", m)
				}
				if got := lastEvent(s, "m-1"); got != "machine.online online on node n1" {
					t.Errorf("event %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(t, tt.setup...)
			var before []byte
			if tt.wantKind != kindNone {
				before = h.dump(t)
			}
			res := h.apply(t, tt.cmd)
			if res.GetErrorKind() != tt.wantKind {
				t.Fatalf("kind = %v (%s), want %v", res.GetErrorKind(), res.GetErrorMessage(), tt.wantKind)
			}
			if tt.wantKind != kindNone {
				if res.GetErrorMessage() == "" {
					t.Error("error result without message")
				}
				if !bytes.Equal(before, h.dump(t)) {
					t.Error("failed command changed state")
				}
				return
			}
			if res.GetId() != tt.wantID {
				t.Errorf("id = %q, want %q", res.GetId(), tt.wantID)
			}
			if tt.check != nil {
				tt.check(t, h.store)
			}
		})
	}
}

func TestUseTokenFailures(t *testing.T) {
	setup := []*underlayv1.Command{
		bootstrapCmd(),
		tokenCmd("abc123", discovery, 3, time.Time{}),
		tokenCmd("exp", agent, 0, t0.Add(3*time.Second)),
		tokenCmd("rev", agent, 0, time.Time{}),
		{Cmd: &underlayv1.Command_RevokeToken{RevokeToken: &underlayv1.RevokeToken{Id: "rev"}}},
		useTokenCmdFor("abc123", "s3cret-abc123"),
		useTokenCmdFor("abc123", "s3cret-abc123"),
		useTokenCmdFor("abc123", "s3cret-abc123"),
	}
	tests := []struct {
		name     string
		cmd      *underlayv1.Command
		wantKind underlayv1.ErrorKind
		wantMsg  string
	}{
		{"unknown", useTokenCmdFor("nope", "x"), kindUnauth, "token nope does not exist: unauthenticated"},
		{"wrong secret", useTokenCmdFor("rev", "guess"), kindUnauth, "token rev: wrong secret: unauthenticated"},
		{"revoked", useTokenCmdFor("rev", "s3cret-rev"), kindDenied, "token rev is revoked: permission denied"},
		{"expired", useTokenCmdFor("exp", "s3cret-exp"), kindDenied, "token exp expired at 2025-11-25T12:00:03Z: permission denied"},
		{"used up", useTokenCmdFor("abc123", "s3cret-abc123"), kindDenied, "token abc123 has no uses left (3 of 3 used): permission denied"},
		{"wrong kind", useTokenCmdFor("rev2", "s3cret-rev2", server, agent), kindDenied, "token rev2 is a discovery token; need server or agent: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(t, setup...)
			h.mustApply(t, tokenCmd("rev2", discovery, 0, time.Time{}))
			// An enrollment with a failing token must not create the machine.
			enroll := enrollCmd("m-1", "x", identity(uuid1), "c-1", nil)
			enroll.GetEnrollMachine().Token = tt.cmd.GetUseToken()
			for _, cmd := range []*underlayv1.Command{tt.cmd, enroll} {
				before := h.dump(t)
				res := h.apply(t, cmd)
				got := &underlayv1.ApplyResult{Index: res.GetIndex(), ErrorKind: res.GetErrorKind(), ErrorMessage: res.GetErrorMessage()}
				want := &underlayv1.ApplyResult{Index: h.idx, ErrorKind: tt.wantKind, ErrorMessage: tt.wantMsg}
				if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
				if !bytes.Equal(before, h.dump(t)) {
					t.Error("failed UseToken changed state")
				}
			}
		})
	}
}

func TestErrAndKind(t *testing.T) {
	tests := []struct {
		err      error
		kind     underlayv1.ErrorKind
		sentinel error
	}{
		{fmt.Errorf("x: %w", store.ErrNotFound), kindNotFound, store.ErrNotFound},
		{fmt.Errorf("x: %w", store.ErrExists), kindExists, store.ErrExists},
		{fmt.Errorf("x: %w", store.ErrInvalid), kindInvalid, store.ErrInvalid},
		{fmt.Errorf("x: %w", ErrUnknownCommand), kindInvalid, store.ErrInvalid},
		{fmt.Errorf("x: %w", store.ErrPrecondition), kindPrecondition, store.ErrPrecondition},
		{machine.Transition(underlayv1.MachineState_MACHINE_STATE_DISCOVERED, underlayv1.MachineState_MACHINE_STATE_ACTIVE), kindPrecondition, store.ErrPrecondition},
		{fmt.Errorf("x: %w", machine.ErrAmbiguous), kindPrecondition, store.ErrPrecondition},
		{fmt.Errorf("x: %w", ErrPermission), kindDenied, ErrPermission},
		{fmt.Errorf("x: %w", ErrUnauthenticated), kindUnauth, ErrUnauthenticated},
		{errors.New("disk on fire"), underlayv1.ErrorKind_ERROR_KIND_INTERNAL, ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := Kind(tt.err); got != tt.kind {
				t.Fatalf("Kind = %v, want %v", got, tt.kind)
			}
			err := Err(&underlayv1.ApplyResult{ErrorKind: tt.kind, ErrorMessage: tt.err.Error()})
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("Err does not wrap %v: %v", tt.sentinel, err)
			}
			if diff := cmp.Diff(tt.err.Error(), err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
	if err := Err(&underlayv1.ApplyResult{Index: 3}); err != nil {
		t.Errorf("Err(success) = %v", err)
	}
	if err := Err(nil); !errors.Is(err, ErrInternal) {
		t.Errorf("Err(nil) = %v, want ErrInternal", err)
	}
	if Kind(nil) != kindNone {
		t.Errorf("Kind(nil) = %v", Kind(nil))
	}
}
