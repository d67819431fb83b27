package cluster_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

func TestRemoveMember(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	leader := c.Leader()
	victim := (leader + 1) % 3
	cl := c.Client(leader)
	ctx := context.Background()

	// The last voter cannot be removed, an unknown node is not found.
	if _, err := cl.Cluster.RemoveMember(ctx, &underlayv1.RemoveMemberRequest{Id: "nope"}); code(err) != codes.NotFound {
		t.Fatalf("remove unknown node: %v; want NotFound", err)
	}
	if _, err := cl.Cluster.RemoveMember(ctx, &underlayv1.RemoveMemberRequest{Id: c.Nodes[victim].ID}); err != nil {
		t.Fatalf("remove %s: %v", c.Nodes[victim].ID, err)
	}
	harness.Eventually(t, 30*time.Second, "two members on the leader", func() bool {
		srv, err := c.Nodes[leader].Running().Cluster().Servers()
		return err == nil && len(srv) == 2
	})
	res, err := cl.Cluster.Members(ctx, &underlayv1.MembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.GetMembers() {
		if m.GetId() == c.Nodes[victim].ID {
			t.Fatalf("%s is still listed as a member", m.GetId())
		}
	}
	// Its certificates are revoked.
	revs, err := cl.Access.ListRevocations(ctx, &underlayv1.ListRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range revs.GetRevocations() {
		found = found || r.GetSubject() == "spiffe://underlay/node/"+c.Nodes[victim].ID
	}
	if !found {
		t.Fatalf("no revocation for the removed node's certificate: %v", revs.GetRevocations())
	}
	// Writes go on with two nodes.
	if _, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT}); err != nil {
		t.Fatalf("write after removal: %v", err)
	}
	other := 3 - leader - victim
	if _, err := cl.Cluster.RemoveMember(ctx, &underlayv1.RemoveMemberRequest{Id: c.Nodes[other].ID}); err != nil {
		t.Fatalf("remove down to one node: %v", err)
	}
	if _, err := cl.Cluster.RemoveMember(ctx, &underlayv1.RemoveMemberRequest{Id: c.Nodes[leader].ID}); code(err) != codes.InvalidArgument {
		t.Fatalf("remove the last voter: %v; want InvalidArgument", err)
	}
}
