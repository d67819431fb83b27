package agent_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// offlineGrace is the shortened grace period of the presence tests.
const offlineGrace = 2 * time.Second

// eventKinds lists the kinds of a machine's events.
func eventKinds(tb testing.TB, cl *client.Client, id string) []string {
	tb.Helper()
	res, err := cl.Machines.Events(context.Background(), &underlayv1.MachineEventsRequest{Id: id})
	if err != nil {
		tb.Fatalf("events of %s: %v", id, err)
	}
	var out []string
	for _, e := range res.GetEvents() {
		out = append(out, e.GetKind())
	}
	return out
}

// waitOfflineEverywhere waits until every running node shows the machine
// offline.
func waitOfflineEverywhere(tb testing.TB, c *harness.Cluster, id string) {
	tb.Helper()
	for i, n := range c.Nodes {
		if n.Running() == nil {
			continue
		}
		m := waitMachine(tb, c.Client(i), id, "offline on node "+n.ID, func(m *underlayv1.Machine) bool { return !m.GetOnline() })
		if m.GetLastSeen() == nil {
			tb.Errorf("node %s: offline machine has no last_seen", n.ID)
		}
	}
}

// TestPresence checks that a machine whose agent stops is shown offline on
// every node once the grace period has passed, both when the node that held
// the session notices it and when that node is gone as well, and that it
// comes back online when the agent returns.
func TestPresence(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{OfflineGrace: offlineGrace})
	cl := c.Client()
	tok := c.Token(agentToken, time.Hour, 0)
	hw := harness.NewSimMachine(t, "presence")
	spec := agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, stateDir: filepath.Join(t.TempDir(), "state"), hw: hw}

	a := startAgent(t, spec)
	id := a.waitEnrolled(t)
	for i := range c.Nodes {
		waitMachine(t, c.Client(i), id, "online on node "+c.Nodes[i].ID, online)
	}

	t.Run("agent stops", func(t *testing.T) {
		if err := a.stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
		waitOfflineEverywhere(t, c, id)
		if kinds := eventKinds(t, cl, id); !slices.Contains(kinds, "machine.offline") {
			t.Errorf("events %v lack machine.offline", kinds)
		}
	})

	t.Run("agent returns", func(t *testing.T) {
		a = startAgent(t, spec)
		if got := a.waitEnrolled(t); got != id {
			t.Errorf("machine id %s after restart, want %s", got, id)
		}
		for i := range c.Nodes {
			waitMachine(t, c.Client(i), id, "online again on node "+c.Nodes[i].ID, online)
		}
	})

	t.Run("agent and its node stop", func(t *testing.T) {
		m := waitMachine(t, cl, id, "online", online)
		held := c.Nodes[slices.IndexFunc(c.Nodes, func(n *harness.Node) bool { return n.ID == m.GetConnectedNode() })]
		i := slices.Index(c.Nodes, held)
		// The node goes down with the machine: nobody is left to write
		// "offline" but the leader's sweep over unreachable nodes.
		if err := a.stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
		c.Stop(i)
		waitOfflineEverywhere(t, c, id)
		c.Restart(i)
		waitMachine(t, c.Client(i), id, fmt.Sprintf("offline on restarted node %s", held.ID), func(m *underlayv1.Machine) bool { return !m.GetOnline() })
	})
}

// TestDeleteMachine deletes a machine whose agent is running. The
// certificate is revoked and the session ends. With its token still valid
// the agent enrolls again and the machine comes back as a new, discovered
// record (same ID, derived from the hardware, but labels and history
// reset); with a used-up token it is refused and stays deleted.
func TestDeleteMachine(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{OfflineGrace: offlineGrace})
	cl := c.Client()
	ctx := context.Background()

	enrolled := func(t *testing.T, tok, name string) (*runningAgent, *underlayv1.Machine) {
		t.Helper()
		a := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, hw: harness.NewSimMachine(t, name)})
		id := a.waitEnrolled(t)
		if _, err := cl.Machines.Label(ctx, &underlayv1.LabelMachineRequest{Id: id, Set: map[string]string{"pool": "web"}}); err != nil {
			t.Fatalf("label: %v", err)
		}
		return a, waitMachine(t, cl, id, "online", online)
	}
	del := func(t *testing.T, m *underlayv1.Machine) {
		t.Helper()
		res, err := cl.Machines.Delete(ctx, &underlayv1.DeleteMachineRequest{Id: m.GetId()})
		if err != nil {
			t.Fatalf("delete %s: %v", m.GetId(), err)
		}
		if !slices.Contains(res.GetRevokedSerials(), m.GetCertSerial()) {
			t.Errorf("delete revoked %v, want the machine's certificate %s among them", res.GetRevokedSerials(), m.GetCertSerial())
		}
		if reason, ok := revokedSerials(t, cl)[m.GetCertSerial()]; !ok {
			t.Errorf("certificate %s not in the revocation list", m.GetCertSerial())
		} else if reason != "machine deleted" {
			t.Errorf("revocation reason %q, want %q", reason, "machine deleted")
		}
	}

	t.Run("token still valid", func(t *testing.T) {
		a, m := enrolled(t, c.Token(agentToken, time.Hour, 0), "deleted-reenrolls")
		del(t, m)
		a.waitLog(t, "cluster refused the machine certificate", "machine_id="+m.GetId())
		a.waitLog(t, "machine enrolled", "machine_id="+m.GetId())
		back := waitMachine(t, cl, m.GetId(), "back as a new record", func(n *underlayv1.Machine) bool {
			return n.GetOnline() && n.GetCreateIndex() > m.GetCreateIndex()
		})
		if back.GetCertSerial() == m.GetCertSerial() {
			t.Errorf("re-enrolled machine kept the revoked certificate %s", m.GetCertSerial())
		}
		if back.GetState() != underlayv1.MachineState_MACHINE_STATE_DISCOVERED || len(back.GetLabels()) != 0 {
			t.Errorf("re-enrolled machine: state %v labels %v, want a fresh discovered record", back.GetState(), back.GetLabels())
		}
		kinds := eventKinds(t, cl, m.GetId())
		if i := slices.Index(kinds, "machine.deleted"); i < 0 || !slices.Contains(kinds[i:], "machine.enrolled") {
			t.Errorf("events %v: want machine.deleted followed by machine.enrolled", kinds)
		}
		ids := machineIDs(listMachines(t, cl))
		if n := len(slices.DeleteFunc(ids, func(id string) bool { return id != m.GetId() })); n != 1 {
			t.Errorf("machine %s listed %d times", m.GetId(), n)
		}
	})

	t.Run("token used up", func(t *testing.T) {
		a, m := enrolled(t, c.Token(agentToken, time.Hour, 1), "deleted-refused")
		del(t, m)
		a.waitLog(t, "cluster refused the machine certificate", "machine_id="+m.GetId())
		a.waitLog(t, "enrollment refused", "has no uses left")
		if _, ok := getMachine(t, cl, m.GetId()); ok {
			t.Errorf("deleted machine %s is back although its token is used up", m.GetId())
		}
		if _, ok := a.Connected(); ok || a.MachineID() != "" {
			t.Errorf("refused agent still connected or holding machine id %q", a.MachineID())
		}
	})
}
