package cluster_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/node"
	"underlay.dev/test/harness"
)

func TestJoinRefusals(t *testing.T) {
	c := harness.Start(t, 1, harness.Options{})
	used := c.Token(underlayv1.TokenKind_TOKEN_KIND_SERVER, time.Hour, 1)
	c.Join() // a good join works
	c.WaitMembers(2)
	// Spend `used` on a real join so that it has no uses left.
	{
		cfg := joinConfig(t, c, "spender", used)
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("join with a fresh token: %v", err)
		}
		n.Close()
	}
	expiring := c.Token(underlayv1.TokenKind_TOKEN_KIND_SERVER, time.Second, 5)
	revoked := c.Token(underlayv1.TokenKind_TOKEN_KIND_SERVER, time.Hour, 5)
	agentTok := c.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 5)
	cl := c.Client()
	id := strings.SplitN(revoked, ".", 2)[0]
	if _, err := cl.Tokens.Revoke(context.Background(), &underlayv1.RevokeTokenRequest{Id: id}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // let `expiring` expire

	tests := []struct {
		name    string
		token   string
		fp      string
		wantErr string
	}{
		{"unknown token", "0123456789ab.not-the-secret", "", "does not exist"},
		{"malformed token", "garbage", "", "malformed"},
		{"wrong secret", strings.SplitN(revoked, ".", 2)[0][:12] + ".wrong", "", "wrong secret"},
		{"expired token", expiring, "", "expired"},
		{"used-up token", used, "", "no uses left"},
		{"revoked token", revoked, "", "revoked"},
		{"agent token for a server", agentTok, "", "agent"},
		{"wrong CA fingerprint", expiring, strings.Repeat("ab", 32), "fingerprint"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := joinConfig(t, c, "bad"+string(rune('a'+i)), tt.token)
			if tt.fp != "" {
				cfg.CAFingerprint = tt.fp
			}
			n, err := node.Start(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatalf("join succeeded; want refusal")
			}
			if !strings.Contains(strings.ToLower(err.Error()), tt.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
	// None of the refused joiners became a member.
	srv, err := c.Nodes[0].Running().Cluster().Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(srv) != 3 {
		t.Fatalf("cluster has %d members after refused joins; want 3 (n1, n2, spender)", len(srv))
	}
}

func joinConfig(tb testing.TB, c *harness.Cluster, id, token string) node.Config {
	tb.Helper()
	return node.Config{
		DataDir:       filepath.Join(tb.TempDir(), id),
		NodeID:        id,
		Listen:        "127.0.0.1:0",
		RaftListen:    "127.0.0.1:0",
		MetricsListen: "off",
		HTTPSListen:   "off",
		Join:          c.Addrs(),
		Token:         token,
		CAFingerprint: c.Fingerprint,
	}
}
