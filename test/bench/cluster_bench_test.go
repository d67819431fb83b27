//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

const (
	// writeTimeout bounds one token creation.
	writeTimeout = 10 * time.Second
	// runLimit bounds one throughput scenario.
	runLimit = 3 * time.Minute
	// trialLimit bounds the wait for the first write after a leader kill.
	trialLimit = 60 * time.Second
	// failoverWriters keep writing during a failover trial; several of them
	// make the first write after the election visible quickly.
	failoverWriters = 8
)

// Raft timeouts as labelled in the report; they match the harness's test
// timing and hashicorp/raft's defaults (the production timing).
var timings = map[string][3]string{
	"production": {"1s", "1s", "500ms"},
	"test":       {"500ms", "500ms", "250ms"},
}

// sizes returns the write counts and failover trials, smaller under -short.
func sizes() (single, concurrent, trials int) {
	if testing.Short() {
		return 200, 2000, 3
	}
	return 2000, 20000, 10
}

func TestClusterBench(t *testing.T) {
	rep := &Report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), LoadBefore: loadAvg()}
	single, concurrent, trials := sizes()

	t.Run("writes", func(t *testing.T) {
		c := harness.Start(t, 3, harness.Options{ProductionTiming: true})
		all := []*client.Client{c.Client()}
		perNode := []*client.Client{c.Client(0), c.Client(1), c.Client(2)}
		leader := []*client.Client{c.Client(c.Leader())}
		scenarios := []struct {
			name    string
			clients []*client.Client
			writers int
			writes  int
		}{
			{"one client to all nodes", all, 1, single},
			{"one client to the leader", leader, 1, single},
			{"one client to all nodes", all, 64, concurrent},
			{"one client per node", perNode, 64, concurrent},
			{"one client to the leader", leader, 64, concurrent},
		}
		for i, sc := range scenarios {
			prefix := fmt.Sprintf("s%d", i)
			// Warm up connections and code paths; not measured.
			runWrites(sc.clients, sc.writers, 4*sc.writers, prefix+"-warm")
			res := runWrites(sc.clients, sc.writers, sc.writes, prefix)
			res.Scenario, res.Timing = sc.name, "production"
			if res.Errors > 0 {
				t.Logf("%s, %d writers: %d writes failed, first: %s", sc.name, sc.writers, res.Errors, res.FirstError)
			}
			rep.Writes = append(rep.Writes, res)
		}
	})

	for _, timing := range []string{"production", "test"} {
		t.Run("failover/"+timing, func(t *testing.T) {
			c := harness.Start(t, 3, harness.Options{ProductionTiming: timing == "production"})
			tm := timings[timing]
			st := FailoverStats{Timing: timing, Heartbeat: tm[0], Election: tm[1], LeaderLease: tm[2]}
			var done []trial
			for i := range trials {
				tr, err := failoverTrial(t, c, fmt.Sprintf("%s-%d", timing, i))
				if err != nil {
					st.Failed++
					t.Errorf("trial %d: %v", i, err)
					continue
				}
				done = append(done, tr)
			}
			summarize(&st, done)
			rep.Failover = append(rep.Failover, st)
		})
	}

	rep.LoadAfter = loadAvg()
	writeMarkdown(os.Stdout, rep)
	if path := os.Getenv("BENCH_OUT"); path != "" {
		if err := writeJSON(path, rep); err != nil {
			t.Error(err)
		}
	}
}

// createToken is the measured write: one Raft-replicated command through
// the public API. It returns the Raft index of the write.
func createToken(ctx context.Context, cl *client.Client, desc string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	res, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{
		Kind:        underlayv1.TokenKind_TOKEN_KIND_AGENT,
		TtlSeconds:  3600,
		Description: desc,
	})
	return res.GetToken().GetCreateIndex(), err
}

// runWrites makes total token creations with the given number of
// concurrent writers, writer i using clients[i%len(clients)], and records
// the latency of each successful write. It stops early after runLimit.
func runWrites(clients []*client.Client, writers, total int, prefix string) WriteResult {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, total)
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range writers {
		cl := clients[w%len(clients)]
		wg.Go(func() {
			mine := make([]time.Duration, 0, total/writers+1)
			var myErrs int
			var myFirst error
			for ctx.Err() == nil {
				n := next.Add(1)
				if n > int64(total) {
					break
				}
				t0 := time.Now()
				_, err := createToken(ctx, cl, fmt.Sprintf("bench-%s-%d", prefix, n))
				if err != nil {
					myErrs++
					if myFirst == nil {
						myFirst = err
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			if firstErr == nil {
				firstErr = myFirst
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	res := WriteResult{
		Writers:      writers,
		Writes:       len(lat),
		Errors:       errs,
		TimedOut:     ctx.Err() != nil,
		Seconds:      elapsed.Seconds(),
		WritesPerSec: float64(len(lat)) / elapsed.Seconds(),
		P50Ms:        ms(percentile(lat, 0.50)),
		P99Ms:        ms(percentile(lat, 0.99)),
		MaxMs:        ms(percentile(lat, 1)),
	}
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	return res
}

// firstWrite remembers the earliest completion of a write that started
// after the kill and was committed by a new leader.
//
// While Stop drains its gRPC server, the old leader may still accept and
// commit a write that started after the kill. Every write the old leader
// committed is in the log of a surviving node when Stop returns, so a
// write with an index above the highest surviving last index (cut) was
// appended by a new leader.
type firstWrite struct {
	killed  atomic.Int64 // unix nanos when the kill began; 0 before
	cut     atomic.Uint64
	stopped atomic.Bool // cut is set
	mu      sync.Mutex
	at      time.Time
	found   chan struct{}
	once    sync.Once
}

func (f *firstWrite) success(start, done time.Time, index uint64) {
	k := f.killed.Load()
	if k == 0 || !f.stopped.Load() || start.UnixNano() < k || index <= f.cut.Load() {
		return
	}
	f.mu.Lock()
	if f.at.IsZero() || done.Before(f.at) {
		f.at = done
	}
	f.mu.Unlock()
	f.once.Do(func() { close(f.found) })
}

// trial is the outcome of one failover trial.
type trial struct {
	failover  time.Duration // kill to first successful write issued after it
	stop      time.Duration // how long Stop took
	elected   time.Duration // kill to a surviving node becoming leader
	elections uint64        // Raft terms started by the failover
}

// failoverTrial keeps writers busy, stops the leader and measures the time
// from the kill to the first successful write issued after it. It then
// restarts the old leader and waits until all three nodes are voters and
// caught up.
func failoverTrial(t *testing.T, c *harness.Cluster, name string) (tr trial, err error) {
	t.Helper()
	cl := c.Client()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), trialLimit)
	defer cancel()

	fw := &firstWrite{found: make(chan struct{})}
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range failoverWriters {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				start := time.Now()
				index, err := createToken(ctx, cl, fmt.Sprintf("fo-%s-%d-%d", name, w, i))
				if err != nil {
					// Nodes answer at once while there is no usable
					// leader; do not spin.
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				acked.Add(1)
				fw.success(start, time.Now(), index)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	c.Eventually(30*time.Second, "writes before the kill", func() bool { return acked.Load() >= 50 })
	old := stableLeader(c)
	term := c.Nodes[old].Running().Cluster().Term()
	t0 := time.Now()
	fw.killed.Store(t0.UnixNano())
	c.Stop(old)
	tr.stop = time.Since(t0)
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, n := range c.Nodes {
				if nd := n.Running(); nd != nil && nd.Cluster().IsLeader() {
					tr.elected = time.Since(t0)
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	var cut uint64
	for _, n := range c.Nodes {
		if nd := n.Running(); nd != nil {
			cut = max(cut, nd.Cluster().Stats().GetLastIndex())
		}
	}
	fw.cut.Store(cut)
	fw.stopped.Store(true)

	select {
	case <-fw.found:
	case <-ctx.Done():
	}
	// Writers that completed a write just before found fired report it
	// before they exit; the earliest completion is kept.
	cancel()
	wg.Wait()
	fw.mu.Lock()
	if fw.at.IsZero() {
		err = fmt.Errorf("no successful write within %s after stopping leader %s", trialLimit, c.Nodes[old].ID)
	} else {
		tr.failover = fw.at.Sub(t0)
	}
	fw.mu.Unlock()
	for _, n := range c.Nodes {
		if nd := n.Running(); nd != nil {
			tr.elections = max(tr.elections, nd.Cluster().Term()-term)
		}
	}

	c.Restart(old)
	c.WaitMembers(3)
	waitCaughtUp(t, c)
	return tr, err
}

// stableLeader waits until every running node names the same leader and
// that node knows it leads, and returns its index.
func stableLeader(c *harness.Cluster) int {
	idx := -1
	c.Eventually(30*time.Second, "all nodes to agree on one leader", func() bool {
		idx = -1
		var want string
		for i, n := range c.Nodes {
			nd := n.Running()
			if nd == nil {
				continue
			}
			id, _ := nd.Cluster().Leader()
			if id == "" || (want != "" && id != want) {
				return false
			}
			want = id
			if id == n.ID {
				if !nd.Cluster().IsLeader() {
					return false
				}
				idx = i
			}
		}
		return idx >= 0
	})
	return idx
}

// waitCaughtUp makes one write and waits until every node has applied it.
func waitCaughtUp(t *testing.T, c *harness.Cluster) {
	t.Helper()
	cl := c.Client()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The client does not retry writes, and a node that was just restarted
	// may refuse a first connection; retry until one write is acknowledged.
	var res *underlayv1.CreateTokenResponse
	var err error
	for {
		res, err = cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, Description: "fo-sync"})
		if err == nil {
			break
		}
		t.Logf("write after restart (nodes %v): %v", c.Addrs(), err)
		select {
		case <-ctx.Done():
			t.Fatalf("write after restart: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	idx := res.GetToken().GetCreateIndex()
	c.Eventually(60*time.Second, fmt.Sprintf("every node to apply index %d", idx), func() bool {
		for _, n := range c.Nodes {
			nd := n.Running()
			if nd == nil || nd.Cluster().AppliedIndex() < idx {
				return false
			}
		}
		return true
	})
}

func TestPercentile(t *testing.T) {
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"p50 of ten", sorted, 0.5, 5},
		{"p99 of ten", sorted, 0.99, 10},
		{"max", sorted, 1, 10},
		{"p10 of ten", sorted, 0.1, 1},
		{"single", []time.Duration{7}, 0.99, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"empty", nil, 0},
		{"odd", []time.Duration{1, 5, 9}, 5},
		{"even", []time.Duration{1, 3, 5, 9}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
