package agent_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// tokenUses returns how often the token with the given secret was used.
func tokenUses(tb testing.TB, cl *client.Client, secret string) int32 {
	tb.Helper()
	res, err := cl.Tokens.List(context.Background(), &underlayv1.ListTokensRequest{})
	if err != nil {
		tb.Fatalf("list tokens: %v", err)
	}
	for _, t := range res.GetTokens() {
		if len(secret) > len(t.GetId()) && secret[:len(t.GetId())] == t.GetId() {
			return t.GetUses()
		}
	}
	tb.Fatalf("token of %q not listed", secret)
	return 0
}

func revokedSerials(tb testing.TB, cl *client.Client) map[string]string {
	tb.Helper()
	res, err := cl.Access.ListRevocations(context.Background(), &underlayv1.ListRevocationsRequest{})
	if err != nil {
		tb.Fatalf("list revocations: %v", err)
	}
	out := map[string]string{}
	for _, r := range res.GetRevocations() {
		out[r.GetSerial()] = r.GetReason()
	}
	return out
}

// TestSameHardwareIsOneMachine reboots (same state directory) and
// reinstalls (empty state directory) one machine: it stays one machine with
// one ID, its labels survive, a reboot spends no token use and a reinstall
// revokes the old certificate.
func TestSameHardwareIsOneMachine(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	cl := c.Client()
	tok := c.Token(agentToken, time.Hour, 2)
	hw := harness.NewSimMachine(t, "twice")
	spec := agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, stateDir: filepath.Join(t.TempDir(), "install-1"), hw: hw}

	first := startAgent(t, spec)
	id := first.waitEnrolled(t)
	enrolled := waitMachine(t, cl, id, "online", online)
	if _, err := cl.Machines.Label(context.Background(), &underlayv1.LabelMachineRequest{Id: id, Set: map[string]string{"rack": "r7"}}); err != nil {
		t.Fatalf("label: %v", err)
	}
	if err := first.stop(); err != nil {
		t.Fatalf("first run: %v", err)
	}

	t.Run("reboot", func(t *testing.T) {
		a := startAgent(t, spec)
		if got := a.waitEnrolled(t); got != id {
			t.Errorf("after reboot machine id %s, want %s", got, id)
		}
		a.waitLog(t, "loaded credentials", "machine_id="+id)
		m := waitMachine(t, cl, id, "online", online)
		if m.GetCertSerial() != enrolled.GetCertSerial() {
			t.Errorf("reboot changed the certificate %s -> %s; it should reuse its state", enrolled.GetCertSerial(), m.GetCertSerial())
		}
		if n := tokenUses(t, cl, tok); n != 1 {
			t.Errorf("token used %d times after a reboot, want 1", n)
		}
		if err := a.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})

	t.Run("reinstall", func(t *testing.T) {
		s := spec
		s.stateDir = filepath.Join(t.TempDir(), "install-2")
		a := startAgent(t, s)
		if got := a.waitEnrolled(t); got != id {
			t.Errorf("after reinstall machine id %s, want %s", got, id)
		}
		a.waitLog(t, "machine enrolled", "machine_id="+id)
		m := waitMachine(t, cl, id, "online with a new certificate", func(m *underlayv1.Machine) bool {
			return m.GetOnline() && m.GetCertSerial() != enrolled.GetCertSerial()
		})
		if m.GetCreateIndex() != enrolled.GetCreateIndex() {
			t.Errorf("create_index %d -> %d: the reinstalled machine is a new record", enrolled.GetCreateIndex(), m.GetCreateIndex())
		}
		if diff := cmp.Diff(map[string]string{"rack": "r7"}, m.GetLabels()); diff != "" {
			t.Errorf("labels after reinstall (-want +got):\n%s", diff)
		}
		if len(m.GetConflicts()) != 0 {
			t.Errorf("conflicts %v, want none", m.GetConflicts())
		}
		if reason, ok := revokedSerials(t, cl)[enrolled.GetCertSerial()]; !ok {
			t.Errorf("old certificate %s not revoked after reinstall", enrolled.GetCertSerial())
		} else {
			t.Logf("old certificate revoked: %s", reason)
		}
		// The same machine enrolling again with the token it enrolled
		// with is not a new use of it.
		if n := tokenUses(t, cl, tok); n != 1 {
			t.Errorf("token used %d times after reinstall, want 1", n)
		}
	})

	if ids := machineIDs(listMachines(t, cl)); !slices.Equal(ids, []string{id}) {
		t.Errorf("machines %v, want only %s", ids, id)
	}
}

// TestClonedUUIDAreTwoMachines enrolls two machines at once that share a
// DMI UUID but no serial or MAC: they must become two machines that list
// each other as conflicts, also after one of them is reinstalled.
func TestClonedUUIDAreTwoMachines(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	cl := c.Client()
	tok := c.Token(agentToken, time.Hour, 0)
	hwA := harness.NewSimMachine(t, "clone-a")
	hwB := cloneOf(t, hwA, "clone-b")

	a := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, hw: hwA})
	b := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, hw: hwB})
	idA, idB := a.waitEnrolled(t), b.waitEnrolled(t)
	if idA == idB {
		t.Fatalf("both clones enrolled as %s", idA)
	}

	check := func(t *testing.T) {
		t.Helper()
		for _, x := range []struct {
			id, other string
			hw        *harness.SimMachine
		}{{idA, idB, hwA}, {idB, idA, hwB}} {
			m := waitMachine(t, cl, x.id, "online and in conflict with "+x.other, func(m *underlayv1.Machine) bool {
				return m.GetOnline() && slices.Equal(m.GetConflicts(), []string{x.other})
			})
			if diff := cmp.Diff(x.hw.Identity().GetMacs(), m.GetIdentity().GetMacs()); diff != "" {
				t.Errorf("machine %s holds MACs of another machine (-want +got):\n%s", x.id, diff)
			}
			inv, err := cl.Machines.GetInventory(context.Background(), &underlayv1.GetMachineRequest{Id: x.id})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(x.hw.Inventory(), inv, protocmp.Transform(), protocmp.IgnoreFields(&underlayv1.Inventory{}, "collected")); diff != "" {
				t.Errorf("inventory of %s (-want +got):\n%s", x.id, diff)
			}
		}
		want := []string{idA, idB}
		slices.Sort(want)
		got := machineIDs(listMachines(t, cl))
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("machines (-want +got):\n%s", diff)
		}
	}
	t.Run("both enrolled", check)

	t.Run("reinstall one clone", func(t *testing.T) {
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		b2 := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, hw: hwB})
		if got := b2.waitEnrolled(t); got != idB {
			t.Errorf("reinstalled clone enrolled as %s, want %s", got, idB)
		}
		b2.waitLog(t, "machine enrolled", "machine_id="+idB)
		check(t)
	})
}
