//go:build bench

package loadgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestDispatchAtScale measures the orchestration of short tasks: a
// three-node cluster of server processes, DISPATCH_AGENTS simulated agents
// (default 1000) enrolled with real mTLS sessions, a role of
// DISPATCH_TASKS tasks (default 5) assigned to all of them at once. The
// agents answer each job at once (started, then succeeded), so the figures
// are the control plane's: the dispatch latency from a step becoming
// runnable (the commit of the previous step's result, or of the
// assignment) to the agent receiving the job, and the rate at which short
// tasks complete across the fleet.
func TestDispatchAtScale(t *testing.T) {
	n := envInt(t, "DISPATCH_AGENTS", 1000)
	tasks := envInt(t, "DISPATCH_TASKS", 5)
	raiseNoFile(t)
	bin := harness.Build(t, t.TempDir(), "underlay.dev/server/cmd/underlay")
	c := harness.StartProcs(t, bin, 3, harness.ProcOptions{})
	admin := c.Client()
	load0 := LoadAvg()

	tok := c.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, 4*time.Hour, int32(2*n))
	f, err := New(Config{Servers: c.Addrs(), Fingerprint: c.Fingerprint, Token: tok, Seed: uint64(time.Now().UnixNano())}, n)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	f.EnrollAndRun(ctx, ctx, 32, &running, func(err error) { t.Errorf("enroll: %v", err) })
	harness.Eventually(t, 10*time.Minute, "all agents online", func() bool {
		res, err := admin.Machines.List(ctx, &underlayv1.ListMachinesRequest{Online: "true"})
		return err == nil && len(res.GetMachines()) == n
	})

	var defs []*underlayv1.Definition
	var names []string
	for i := 1; i <= tasks; i++ {
		name := fmt.Sprintf("t%d", i)
		names = append(names, name)
		defs = append(defs, &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{Name: name, Script: "true"}}})
	}
	defs = append(defs, &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: &underlayv1.Role{Name: "bench", Tasks: names}}})
	if _, err := admin.Provision.Apply(ctx, &underlayv1.ApplyDefinitionsRequest{Definitions: defs}); err != nil {
		t.Fatalf("apply: %v", err)
	}

	var ids []string
	for _, a := range f.Agents {
		ids = append(ids, a.MachineID())
	}
	t.Logf("assigning %d machines a role of %d tasks (loadavg %s)", n, tasks, LoadAvg())
	commitIndex := func() uint64 {
		st, err := admin.Cluster.Status(ctx, &underlayv1.ClusterStatusRequest{})
		if err != nil {
			t.Fatalf("cluster status: %v", err)
		}
		return st.GetCommitIndex()
	}
	index0 := commitIndex()
	start := time.Now()
	assigns := make(chan string)
	var awg sync.WaitGroup
	for range 32 {
		awg.Add(1)
		go func() {
			defer awg.Done()
			for id := range assigns {
				for attempt := 0; ; attempt++ {
					actx, acancel := context.WithTimeout(ctx, 30*time.Second)
					_, err := admin.Provision.Assign(actx, &underlayv1.AssignRequest{MachineId: id, Role: "bench"})
					acancel()
					if err == nil {
						break
					}
					if attempt == 5 {
						t.Errorf("assign %s: %v", id, err)
						break
					}
					time.Sleep(time.Second)
				}
			}
		}()
	}
	for _, id := range ids {
		assigns <- id
	}
	close(assigns)
	awg.Wait()
	total := n * tasks
	harness.Eventually(t, 30*time.Minute, "every job acknowledged", func() bool {
		return f.JobsAcked.Load() >= int64(total)
	})
	elapsed := time.Since(start)
	entries := commitIndex() - index0
	var lat []time.Duration
	received := f.JobsReceived()
	for _, id := range ids {
		res, err := admin.Provision.ListJobs(ctx, &underlayv1.ListJobsRequest{MachineId: id, Read: &underlayv1.ReadOptions{Stale: true}})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range res.GetJobs() {
			if at, ok := received[j.GetId()]; ok && j.GetRunnable() != nil {
				lat = append(lat, at.Sub(j.GetRunnable().AsTime()))
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	s := Summarize(lat)
	t.Logf("DISPATCH agents=%d tasks=%d jobs=%d elapsed=%.1fs rate=%.1f tasks/s latency p50=%.1fms p99=%.1fms max=%.1fms (n=%d) raft entries=%d (%.2f per job) loadavg %s -> %s",
		n, tasks, total, elapsed.Seconds(), float64(total)/elapsed.Seconds(),
		ms(s.P50), ms(s.P99), ms(s.Max), len(lat), entries, float64(entries)/float64(total), load0, LoadAvg())
	// An unloaded cluster: one plan at a time, the redeploy of a machine
	// (a wipe and the five tasks again), on ten machines of the fleet.
	time.Sleep(5 * time.Second)
	var idle []time.Duration
	for _, id := range ids[:10] {
		if _, err := admin.Provision.Redeploy(ctx, &underlayv1.MachinePlanRequest{MachineId: id}); err != nil {
			t.Fatalf("redeploy %s: %v", id, err)
		}
		harness.Eventually(t, 5*time.Minute, "the redeploy of "+id, func() bool {
			p, err := admin.Provision.GetPlan(ctx, &underlayv1.GetPlanRequest{MachineId: id})
			return err == nil && p.GetGeneration() == 2 && p.GetState() == underlayv1.PlanState_PLAN_STATE_SUCCEEDED
		})
	}
	received = f.JobsReceived()
	for _, id := range ids[:10] {
		res, err := admin.Provision.ListJobs(ctx, &underlayv1.ListJobsRequest{MachineId: id})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range res.GetJobs() {
			if at, ok := received[j.GetId()]; ok && j.GetRunnable() != nil && j.GetGeneration() == 2 {
				idle = append(idle, at.Sub(j.GetRunnable().AsTime()))
			}
		}
	}
	si := Summarize(idle)
	t.Logf("DISPATCH-IDLE plans=10 steps=6 latency p50=%.1fms p99=%.1fms max=%.1fms (n=%d)", ms(si.P50), ms(si.P99), ms(si.Max), len(idle))
	if out := os.Getenv("DISPATCH_OUT"); out != "" {
		line := fmt.Sprintf("%d,%d,%.2f,%.1f,%.1f,%.1f\n", n, tasks, float64(total)/elapsed.Seconds(), ms(s.P50), ms(s.P99), ms(s.Max))
		if err := os.WriteFile(filepath.Clean(out), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s %q: want a positive integer", name, v)
	}
	return n
}
