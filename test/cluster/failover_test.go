package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// writeTokens creates tokens with unique descriptions until stop is closed
// and returns the descriptions whose creation was acknowledged.
func writeTokens(cl *client.Client, prefix string, stop <-chan struct{}) []string {
	var acked []string
	for i := 0; ; i++ {
		select {
		case <-stop:
			return acked
		default:
		}
		desc := fmt.Sprintf("%s-%d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, TtlSeconds: 3600, Description: desc})
		cancel()
		if err == nil {
			acked = append(acked, desc)
		}
	}
}

func descriptions(tb testing.TB, cl *client.Client, stale bool) map[string]bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := cl.Tokens.List(ctx, &underlayv1.ListTokensRequest{Read: &underlayv1.ReadOptions{Stale: stale}})
	if err != nil {
		tb.Fatalf("list tokens: %v", err)
	}
	out := map[string]bool{}
	for _, t := range res.GetTokens() {
		out[t.GetDescription()] = true
	}
	return out
}

func TestLeaderFailoverLosesNoAcknowledgedWrite(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{})
	cl := c.Client()

	stop := make(chan struct{})
	var acked []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); acked = writeTokens(cl, "w", stop) }()

	// Let some writes land, then kill the leader in the middle of the stream.
	c.Eventually(30*time.Second, "some writes", func() bool { return len(c.Nodes[0].Running().Store().Tokens()) >= 20 })
	old := c.Leader()
	c.Stop(old)
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatalf("leader is still the stopped node %d", old)
	}
	// Writes continue under the new leader.
	before := len(c.Nodes[newLeader].Running().Store().Tokens())
	c.Eventually(30*time.Second, "writes after failover", func() bool {
		return len(c.Nodes[newLeader].Running().Store().Tokens()) >= before+20
	})
	close(stop)
	wg.Wait()

	c.Restart(old)
	c.WaitMembers(3)
	for i := range c.Nodes {
		got := descriptions(t, c.Client(i), false)
		for _, d := range acked {
			if !got[d] {
				t.Errorf("node %s lost acknowledged write %q", c.Nodes[i].ID, d)
			}
		}
	}
	// Writes before and after the failover were waited for above; the
	// check only means something if the writer saw acknowledgements.
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
}

func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{SnapshotThreshold: 32, TrailingLogs: 8})
	leader := c.Leader()
	follower := (leader + 1) % 3
	c.Stop(follower)
	stoppedAt := c.Nodes[leader].Running().Cluster().AppliedIndex()

	cl := c.Client(leader)
	var want []string
	for i := 0; i < 100; i++ {
		d := fmt.Sprintf("s-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, Description: d}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		cancel()
		want = append(want, d)
	}
	if err := c.Nodes[leader].Running().Cluster().Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, err := c.Nodes[leader].Running().Cluster().FirstLogIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= stoppedAt+1 {
		t.Fatalf("leader still holds log index %d (first %d): the follower could catch up without a snapshot", stoppedAt+1, first)
	}
	c.Restart(follower)
	f := c.Nodes[follower].Running()
	c.Eventually(60*time.Second, "follower to catch up", func() bool {
		return len(f.Store().Tokens()) >= len(want)
	})
	if got := f.Cluster().LastSnapshotIndex(); got <= stoppedAt {
		t.Fatalf("follower's last snapshot index %d is not past %d: it did not catch up from a snapshot", got, stoppedAt)
	}
	got := descriptions(t, c.Client(follower), true)
	for _, d := range want {
		if !got[d] {
			t.Errorf("follower misses %q", d)
		}
	}
}
