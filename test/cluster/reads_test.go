package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// A write acknowledged through one node is seen by a linearizable read on
// every other node right away, without waiting.
func TestReadYourWritesOnFollowers(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	leader := c.Leader()
	writer := c.Client(leader)
	readers := []int{(leader + 1) % 3, (leader + 2) % 3}
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		d := fmt.Sprintf("ryw-%d", i)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := writer.Tokens.Create(wctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, Description: d})
		cancel()
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		r := c.Nodes[readers[i%2]]
		got := descriptions(t, c.Client(readers[i%2]), false)
		if !got[d] {
			t.Fatalf("linearizable read on %s does not see token %s (%q) written just before", r.ID, res.GetToken().GetId(), d)
		}
	}
}
