package cluster_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// credsFor makes credentials for id signed by the cluster CA.
func credsFor(tb testing.TB, c *harness.Cluster, id mtls.Identity) *mtls.Creds {
	tb.Helper()
	caPEM, certPEM, keyPEM, err := c.Nodes[0].Running().IssueCredentials(context.Background(), id, time.Hour)
	if err != nil {
		tb.Fatalf("issue %s: %v", id, err)
	}
	dir := filepath.Join(tb.TempDir(), "creds")
	if err := mtls.WriteCreds(dir, caPEM, certPEM, keyPEM); err != nil {
		tb.Fatal(err)
	}
	creds, err := mtls.LoadCreds(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return creds
}

// operatorCreds creates an operator through the API, with a key made here.
func operatorCreds(tb testing.TB, cl *client.Client, name string, role underlayv1.OperatorRole) *mtls.Creds {
	tb.Helper()
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := mtls.NewCSR(key, mtls.Identity{Kind: mtls.KindOperator, Name: name}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := cl.Access.CreateOperator(context.Background(), &underlayv1.CreateOperatorRequest{Name: name, Role: role, CsrPem: csr})
	if err != nil {
		tb.Fatalf("create operator %s: %v", name, err)
	}
	dir := filepath.Join(tb.TempDir(), name)
	if err := mtls.WriteCreds(dir, res.GetCaPem(), res.GetCertPem(), keyPEM); err != nil {
		tb.Fatal(err)
	}
	creds, err := mtls.LoadCreds(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return creds
}

func code(err error) codes.Code { return status.Code(err) }

func TestAuthorization(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	admin := c.Client()
	ctx := context.Background()
	ro := c.ClientWith(operatorCreds(t, admin, "auditor", underlayv1.OperatorRole_OPERATOR_ROLE_READONLY))
	agent := c.ClientWith(credsFor(t, c, mtls.Identity{Kind: mtls.KindMachine, Name: "m-test"}))
	anon := c.AnonymousClient()

	createToken := func(cl *client.Client) error {
		_, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, TtlSeconds: 60})
		return err
	}
	listTokens := func(cl *client.Client) error {
		_, err := cl.Tokens.List(ctx, &underlayv1.ListTokensRequest{})
		return err
	}
	status := func(cl *client.Client) error {
		_, err := cl.Cluster.Status(ctx, &underlayv1.ClusterStatusRequest{})
		return err
	}
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"admin writes", func() error { return createToken(admin) }, codes.OK},
		{"admin reads", func() error { return listTokens(admin) }, codes.OK},
		{"readonly reads", func() error { return listTokens(ro) }, codes.OK},
		{"readonly status", func() error { return status(ro) }, codes.OK},
		{"readonly cannot write", func() error { return createToken(ro) }, codes.PermissionDenied},
		{"readonly cannot create operators", func() error {
			_, err := ro.Access.CreateOperator(ctx, &underlayv1.CreateOperatorRequest{Name: "x", Role: underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN})
			return err
		}, codes.PermissionDenied},
		// Power: readonly may read the state (here: the machine does not
		// exist, which shows the call got past authorization), not change it.
		{"readonly reads power state", func() error {
			_, err := ro.Power.PowerStatus(ctx, &underlayv1.PowerStatusRequest{MachineId: "m-none"})
			return err
		}, codes.NotFound},
		{"readonly cannot switch power", func() error {
			_, err := ro.Power.Power(ctx, &underlayv1.PowerRequest{MachineId: "m-none", Action: "off"})
			return err
		}, codes.PermissionDenied},
		{"readonly cannot set boot device", func() error {
			_, err := ro.Power.Boot(ctx, &underlayv1.BootRequest{MachineId: "m-none", Device: "pxe"})
			return err
		}, codes.PermissionDenied},
		{"agent cannot read power state", func() error {
			_, err := agent.Power.PowerStatus(ctx, &underlayv1.PowerStatusRequest{MachineId: "m-none"})
			return err
		}, codes.PermissionDenied},
		{"agent cannot read operator API", func() error { return listTokens(agent) }, codes.PermissionDenied},
		{"agent cannot write operator API", func() error { return createToken(agent) }, codes.PermissionDenied},
		{"agent cannot call node RPCs", func() error {
			_, err := underlayv1.NewNodeServiceClient(agent.Conn).ReadIndex(ctx, &underlayv1.ReadIndexRequest{})
			return err
		}, codes.PermissionDenied},
		{"operator cannot call node RPCs", func() error {
			_, err := underlayv1.NewNodeServiceClient(admin.Conn).Apply(ctx, &underlayv1.ApplyRequest{})
			return err
		}, codes.PermissionDenied},
		{"no certificate: operator API", func() error { return listTokens(anon) }, codes.Unauthenticated},
		{"no certificate: cluster status", func() error { return status(anon) }, codes.Unauthenticated},
		{"no certificate: public info works", func() error {
			_, err := underlayv1.NewNodeServiceClient(anon.Conn).Info(ctx, &underlayv1.InfoRequest{})
			return err
		}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(tt.call()); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRevokedCertificateStopsWorkingEverywhere(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	admin := c.Client()
	ctx := context.Background()
	creds := operatorCreds(t, admin, "leaver", underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN)
	perNode := make([]*client.Client, len(c.Nodes))
	for i := range c.Nodes {
		perNode[i] = c.ClientWith(creds, i)
		if _, err := perNode[i].Access.WhoAmI(ctx, &underlayv1.WhoAmIRequest{}); err != nil {
			t.Fatalf("before revocation, node %d: %v", i, err)
		}
	}
	serial := creds.Leaf.SerialNumber.String()
	res, err := admin.Access.RevokeCert(ctx, &underlayv1.RevokeCertRequest{Serial: serial, Reason: "test"})
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if len(res.GetRevoked()) != 1 || res.GetRevoked()[0].GetSubject() != "spiffe://underlay/operator/leaver" {
		t.Fatalf("revoked %v", res.GetRevoked())
	}
	for i, cl := range perNode {
		// The already-open connection is refused too: revocation is checked on every call.
		harness.Eventually(t, 10*time.Second, "revocation on node "+c.Nodes[i].ID, func() bool {
			_, err := cl.Access.WhoAmI(ctx, &underlayv1.WhoAmIRequest{})
			return code(err) == codes.Unauthenticated
		})
	}
	// The admin is unaffected.
	if _, err := admin.Access.WhoAmI(ctx, &underlayv1.WhoAmIRequest{}); err != nil {
		t.Fatalf("admin after revocation: %v", err)
	}
}
