package agent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/agent"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

func TestEnrollment(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	cl := c.Client()
	ctx := context.Background()

	t.Run("good token", func(t *testing.T) {
		hw := harness.NewSimMachine(t, "good-1")
		state := filepath.Join(t.TempDir(), "state")
		a := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: c.Token(agentToken, time.Hour, 5), stateDir: state, hw: hw})
		id := a.waitEnrolled(t)
		if want := hw.Identity().GetMachineId(); id != want {
			t.Errorf("machine id %s, want %s (derived from the DMI UUID)", id, want)
		}
		if b, err := os.ReadFile(filepath.Join(state, agent.MachineIDFile)); err != nil || strings.TrimSpace(string(b)) != id {
			t.Errorf("state dir machine-id = %q, %v; want %s", b, err, id)
		}
		node, _ := a.Connected()
		// Every node knows the machine, as discovered and online.
		for i := range c.Nodes {
			m := waitMachine(t, c.Client(i), id, "online on node "+c.Nodes[i].ID, online)
			if m.GetState() != underlayv1.MachineState_MACHINE_STATE_DISCOVERED {
				t.Errorf("node %s: state %v, want discovered", c.Nodes[i].ID, m.GetState())
			}
			if m.GetConnectedNode() != node {
				t.Errorf("node %s: connected_node %q, the agent holds its session on %q", c.Nodes[i].ID, m.GetConnectedNode(), node)
			}
			if m.GetHostname() != hw.Name {
				t.Errorf("node %s: hostname %q, want %q", c.Nodes[i].ID, m.GetHostname(), hw.Name)
			}
			if diff := cmp.Diff(hw.Identity(), m.GetIdentity(), protocmp.Transform()); diff != "" {
				t.Errorf("node %s: stored identity (-want +got):\n%s", c.Nodes[i].ID, diff)
			}
			if m.GetInventoryVersion() == 0 {
				t.Errorf("node %s: inventory_version 0, want an inventory", c.Nodes[i].ID)
			}
		}
		inv, err := cl.Machines.GetInventory(ctx, &underlayv1.GetMachineRequest{Id: id})
		if err != nil {
			t.Fatalf("get inventory: %v", err)
		}
		if diff := cmp.Diff(hw.Inventory(), inv, protocmp.Transform(), protocmp.IgnoreFields(&underlayv1.Inventory{}, "collected")); diff != "" {
			t.Errorf("stored inventory (-want +got):\n%s", diff)
		}
		if ids := machineIDs(listMachines(t, cl)); !slices.Equal(ids, []string{id}) {
			t.Errorf("machines %v, want only %s", ids, id)
		}
	})

	mustCreate := func(t *testing.T, kind underlayv1.TokenKind, ttl time.Duration, uses int32) *underlayv1.CreateTokenResponse {
		t.Helper()
		res, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: kind, TtlSeconds: int64(ttl / time.Second), Uses: uses})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		return res
	}
	tests := []struct {
		name string
		// token prepares the token the machine tries.
		token  func(t *testing.T) string
		code   codes.Code
		reason string
	}{
		{
			name: "wrong secret",
			token: func(t *testing.T) string {
				id, _, _ := strings.Cut(c.Token(agentToken, time.Hour, 0), ".")
				return id + ".not-the-secret"
			},
			code: codes.Unauthenticated, reason: "wrong secret",
		},
		{
			name:  "unknown token",
			token: func(*testing.T) string { return "0123456789ab.some-secret" },
			code:  codes.Unauthenticated, reason: "token 0123456789ab does not exist",
		},
		{
			name:  "malformed token",
			token: func(*testing.T) string { return "not-a-token" },
			code:  codes.Unauthenticated, reason: "token is malformed",
		},
		{
			name: "expired token",
			token: func(t *testing.T) string {
				res := mustCreate(t, agentToken, time.Second, 0)
				// Wait for the expiry to pass on this host's clock, which
				// every node of the cluster shares.
				time.Sleep(time.Until(res.GetToken().GetExpires().AsTime()) + time.Second)
				return res.GetSecret()
			},
			code: codes.PermissionDenied, reason: "expired at",
		},
		{
			name: "used up token",
			token: func(t *testing.T) string {
				tok := c.Token(agentToken, time.Hour, 1)
				if err := enrollDirect(t, c, tok, harness.NewSimMachine(t, "first-user")); err != nil {
					t.Fatalf("first use of a one-use token: %v", err)
				}
				return tok
			},
			code: codes.PermissionDenied, reason: "has no uses left (1 of 1 used)",
		},
		{
			name: "revoked token",
			token: func(t *testing.T) string {
				res := mustCreate(t, agentToken, time.Hour, 0)
				if _, err := cl.Tokens.Revoke(ctx, &underlayv1.RevokeTokenRequest{Id: res.GetToken().GetId()}); err != nil {
					t.Fatalf("revoke token: %v", err)
				}
				return res.GetSecret()
			},
			code: codes.PermissionDenied, reason: "is revoked",
		},
		{
			name:  "server token",
			token: func(t *testing.T) string { return c.Token(serverToken, time.Hour, 0) },
			code:  codes.PermissionDenied, reason: "is a server token; need agent or discovery",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t)
			hw := harness.NewSimMachine(t, "refused")
			before := machineIDs(listMachines(t, cl))

			// The server says why, in the gRPC status.
			err := enrollDirect(t, c, tok, hw)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.reason) {
				t.Errorf("Enroll: %v; want code %v with %q", err, tc.code, tc.reason)
			}

			// The agent logs the same reason and does not enroll.
			a := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: c.Fingerprint, token: tok, hw: hw})
			a.waitLog(t, "enrollment refused", "code="+tc.code.String(), tc.reason)
			if id := a.MachineID(); id != "" {
				t.Errorf("refused agent has machine id %q", id)
			}
			if err := a.stop(); err != nil {
				t.Errorf("agent run: %v", err)
			}
			if _, ok := getMachine(t, cl, hw.Identity().GetMachineId()); ok {
				t.Errorf("refused machine %s exists", hw.Identity().GetMachineId())
			}
			if diff := cmp.Diff(before, machineIDs(listMachines(t, cl))); diff != "" {
				t.Errorf("machines changed by a refused enrollment (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("wrong CA fingerprint", func(t *testing.T) {
		res := mustCreate(t, agentToken, time.Hour, 0)
		sum := sha256.Sum256([]byte("some other cluster"))
		wrong := hex.EncodeToString(sum[:])
		hw := harness.NewSimMachine(t, "wrong-ca")
		a := startAgent(t, agentSpec{servers: c.Addrs(), fingerprint: wrong, token: res.GetSecret(), hw: hw})
		// It tries more than one server and keeps refusing each of them.
		for _, addr := range c.Addrs() {
			a.waitLog(t, "cluster info failed", "server="+addr, "no ca with fingerprint "+wrong)
		}
		if err := a.stop(); err != nil {
			t.Errorf("agent run: %v", err)
		}
		if a.log.Has("enroll") {
			t.Errorf("agent with a wrong CA fingerprint tried to enroll:\n%s", a.log.String())
		}
		if _, ok := getMachine(t, cl, hw.Identity().GetMachineId()); ok {
			t.Errorf("machine %s enrolled despite the wrong CA fingerprint", hw.Identity().GetMachineId())
		}
		// The token was never presented, so it is unspent.
		list, err := cl.Tokens.List(ctx, &underlayv1.ListTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range list.GetTokens() {
			if tok.GetId() == res.GetToken().GetId() && tok.GetUses() != 0 {
				t.Errorf("token used %d times by an agent that must not trust the cluster", tok.GetUses())
			}
		}
	})
}
