// Package agent_test runs the node agent end to end against real
// three-node clusters: in-process nodes (test/harness) for enrollment,
// identity, presence and deletion, real server processes for failover, and
// the real underlay-agent binary in its own network namespace.
package agent_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

const (
	agentToken     = underlayv1.TokenKind_TOKEN_KIND_AGENT
	serverToken    = underlayv1.TokenKind_TOKEN_KIND_SERVER
	waitLong       = 90 * time.Second
	agentHeartbeat = 2 * time.Second
)

// cloneOf returns a different machine that carries the same DMI UUID as h
// (a VM image or firmware with a fixed UUID).
func cloneOf(tb testing.TB, h *harness.SimMachine, name string) *harness.SimMachine {
	tb.Helper()
	c := harness.NewSimMachine(tb, name)
	c.UUID = h.UUID
	return c
}

// runningAgent is an in-process agent of a simulated machine.
type runningAgent struct {
	*harness.Agent
	log *harness.LogBuffer
}

type agentSpec struct {
	servers     []string
	fingerprint string
	token       string
	stateDir    string
	hw          *harness.SimMachine
}

// startAgent runs an agent until the end of the test (or stop).
func startAgent(tb testing.TB, s agentSpec) *runningAgent {
	tb.Helper()
	a := harness.StartAgent(tb, harness.AgentSpec{
		Servers: s.servers, Fingerprint: s.fingerprint, Token: s.token,
		StateDir: s.stateDir, Machine: s.hw, Heartbeat: agentHeartbeat,
	})
	return &runningAgent{Agent: a, log: a.Log}
}

// stop cancels the agent and waits for Run to return its error.
func (r *runningAgent) stop() error { return r.Stop() }

// waitLog waits for a log line containing every part.
func (r *runningAgent) waitLog(tb testing.TB, parts ...string) {
	tb.Helper()
	harness.Eventually(tb, waitLong, fmt.Sprintf("agent log line with %q", parts), func() bool { return r.log.Has(parts...) })
}

// waitEnrolled waits for the agent to know its machine ID and hold a
// session, and returns the ID.
func (r *runningAgent) waitEnrolled(tb testing.TB) string {
	tb.Helper()
	return r.WaitEnrolled(tb, waitLong)
}

// getMachine reads one machine; ok is false when it does not exist.
func getMachine(tb testing.TB, cl *client.Client, id string) (m *underlayv1.Machine, ok bool) {
	tb.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := cl.Machines.Get(ctx, &underlayv1.GetMachineRequest{Id: id})
		cancel()
		switch {
		case err == nil:
			return m, true
		case status.Code(err) == codes.NotFound:
			return nil, false
		case attempt >= 5:
			tb.Fatalf("get machine %s: %v", id, err)
		}
		time.Sleep(time.Second)
	}
}

// listMachines lists every machine.
func listMachines(tb testing.TB, cl *client.Client) []*underlayv1.Machine {
	tb.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cl.Machines.List(ctx, &underlayv1.ListMachinesRequest{})
		cancel()
		if err == nil {
			return res.GetMachines()
		}
		if attempt >= 5 {
			tb.Fatalf("list machines: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// waitMachine polls machine id until cond holds and returns it.
func waitMachine(tb testing.TB, cl *client.Client, id, what string, cond func(m *underlayv1.Machine) bool) *underlayv1.Machine {
	tb.Helper()
	var last *underlayv1.Machine
	harness.Eventually(tb, waitLong, "machine "+id+" "+what, func() bool {
		m, ok := getMachine(tb, cl, id)
		last = m
		return ok && cond(m)
	})
	return last
}

func online(m *underlayv1.Machine) bool { return m.GetOnline() }

// machineIDs returns the IDs of ms.
func machineIDs(ms []*underlayv1.Machine) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.GetId())
	}
	return out
}

// enrollDirect calls AgentService.Enroll with token and a fresh key, the
// way an agent does, and returns the status error.
func enrollDirect(tb testing.TB, c *harness.Cluster, token string, hw *harness.SimMachine) error {
	tb.Helper()
	key, _, err := mtls.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := mtls.NewCSR(key, mtls.Identity{Kind: mtls.KindMachine, Name: "pending"}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cl := c.AnonymousClient()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = underlayv1.NewAgentServiceClient(cl.Conn).Enroll(ctx, &underlayv1.EnrollRequest{
		Token: token, CsrPem: csr, Identity: hw.Identity(), Hostname: hw.Name, Inventory: hw.Inventory(),
	})
	return err
}

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
