package cluster_test

import (
	"context"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// A follower learns that a write committed without waiting for the leader's
// commit timeout: the leader nudges it with a barrier after each apply.
// Heartbeats do not carry the commit index in hashicorp/raft, so with a
// commit timeout of a minute, followers would otherwise see each write a
// minute late.
func TestFollowersLearnCommitsWithoutCommitTimeout(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{CommitTimeout: time.Minute})
	leader := c.Leader()
	lc := c.Nodes[leader].Running().Cluster()
	for i := 0; i < 5; i++ {
		id := "nudge-" + string(rune('a'+i))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := lc.Apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_CreateToken{CreateToken: &underlayv1.CreateToken{Token: &underlayv1.Token{
			Id: id, Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, SecretHash: []byte{1},
		}}}})
		cancel()
		if err != nil {
			t.Fatalf("write %s: %v", id, err)
		}
		for _, f := range []int{(leader + 1) % 3, (leader + 2) % 3} {
			n := c.Nodes[f].Running()
			wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := n.Cluster().WaitApplied(wctx, res.GetIndex())
			wcancel()
			if err != nil {
				t.Fatalf("follower %s has not applied write %s (index %d) 15s later, with a commit timeout of 1m: %v",
					c.Nodes[f].ID, id, res.GetIndex(), err)
			}
			if _, err := n.Store().Token(id); err != nil {
				t.Fatalf("follower %s applied past the write but has no token %s: %v", c.Nodes[f].ID, id, err)
			}
		}
	}
}
