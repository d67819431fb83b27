//go:build bench

package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// options come from the environment:
//
//	LOADGEN_AGENTS              comma-separated fleet sizes (default 1000,5000)
//	LOADGEN_WINDOW              steady-state measurement window (default 60s)
//	LOADGEN_SETTLE              wait after all agents are connected (default 25s)
//	LOADGEN_KILL                which node to kill: follower or leader (default follower)
//	LOADGEN_ENROLL_CONCURRENCY  agents enrolling at once (default 32)
//	LOADGEN_OUT                 write the results as JSON to this file
type options struct {
	sizes       []int
	window      time.Duration
	settle      time.Duration
	kill        string
	concurrency int
	out         string
}

func envOptions(tb testing.TB) options {
	tb.Helper()
	o := options{sizes: []int{1000, 5000}, window: 60 * time.Second, settle: 25 * time.Second, kill: "follower", concurrency: 32, out: os.Getenv("LOADGEN_OUT")}
	if v := os.Getenv("LOADGEN_AGENTS"); v != "" {
		o.sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				tb.Fatalf("LOADGEN_AGENTS %q: want positive integers", v)
			}
			o.sizes = append(o.sizes, n)
		}
	}
	dur := func(name string, d *time.Duration) {
		if v := os.Getenv(name); v != "" {
			p, err := time.ParseDuration(v)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			*d = p
		}
	}
	dur("LOADGEN_WINDOW", &o.window)
	dur("LOADGEN_SETTLE", &o.settle)
	if v := os.Getenv("LOADGEN_KILL"); v != "" {
		if v != "leader" && v != "follower" {
			tb.Fatalf("LOADGEN_KILL %q: want leader or follower", v)
		}
		o.kill = v
	}
	if v := os.Getenv("LOADGEN_ENROLL_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			tb.Fatalf("LOADGEN_ENROLL_CONCURRENCY %q: want a positive integer", v)
		}
		o.concurrency = n
	}
	return o
}

// raiseNoFile lifts the soft open-file limit to the hard limit; the
// server processes started afterwards inherit it.
func raiseNoFile(tb testing.TB) uint64 {
	tb.Helper()
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		tb.Fatalf("getrlimit: %v", err)
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		tb.Fatalf("setrlimit: %v", err)
	}
	return r.Cur
}

// Result is what one fleet size measured.
type Result struct {
	Agents           int     `json:"agents"`
	Enrolled         int     `json:"enrolled"`
	EnrollFailures   int     `json:"enroll_failures"`
	EnrollRetries    int64   `json:"enroll_retries"`
	EnrollSeconds    float64 `json:"enroll_seconds"`
	EnrollPerSecond  float64 `json:"enroll_per_second"`
	EnrollP50Ms      float64 `json:"enroll_p50_ms"`
	EnrollP99Ms      float64 `json:"enroll_p99_ms"`
	EnrollCPUMsEach  float64 `json:"enroll_server_cpu_ms_per_agent"`
	AllConnectedSecs float64 `json:"all_connected_seconds"`

	IdleCPUPercent   float64       `json:"idle_server_cpu_percent"`
	IdleRSSMiB       float64       `json:"idle_server_rss_mib"`
	SteadyCPUPercent float64       `json:"steady_server_cpu_percent"`
	SteadyRSSMiB     float64       `json:"steady_server_rss_mib"`
	CPUPerKAgents    float64       `json:"server_cpu_percent_per_1000_agents_above_idle"`
	RSSKiBPerAgent   float64       `json:"server_rss_kib_per_agent"`
	DeltaKiBPerAgent float64       `json:"server_rss_delta_kib_per_agent"`
	PerNode          []NodeFigures `json:"per_node"`
	LoadgenCPUPct    float64       `json:"loadgen_cpu_percent"`
	LoadgenRSSMiB    float64       `json:"loadgen_rss_mib"`

	Heartbeats int     `json:"heartbeats_in_window"`
	RTTP50Ms   float64 `json:"rtt_p50_ms"`
	RTTP99Ms   float64 `json:"rtt_p99_ms"`
	RTTMaxMs   float64 `json:"rtt_max_ms"`

	Killed           string  `json:"killed_node"`
	KilledRole       string  `json:"killed_role"`
	OnKilled         int     `json:"agents_on_killed_node"`
	AgentsBackSecs   float64 `json:"agents_back_seconds"`
	AgentsBack       int     `json:"agents_back"`
	ReconnectP50Secs float64 `json:"reconnect_p50_seconds"`
	ReconnectP99Secs float64 `json:"reconnect_p99_seconds"`
	APIBackSecs      float64 `json:"api_all_online_seconds"`
	APIOnline        int     `json:"api_online_at_end"`
	SurvivorRSSMiB   float64 `json:"survivor_rss_mib_after"`
	SessionFailures  int64   `json:"session_failures"`
	LoadBefore       string  `json:"loadavg_before"`
	LoadAfter        string  `json:"loadavg_after"`
}

// NodeFigures are one server's figures at steady state.
type NodeFigures struct {
	ID         string  `json:"id"`
	Agents     int     `json:"agents"`
	CPUPercent float64 `json:"cpu_percent"`
	RSSMiB     float64 `json:"rss_mib"`
}

func TestAgentsAtScale(t *testing.T) {
	opts := envOptions(t)
	nofile := raiseNoFile(t)
	t.Logf("RLIMIT_NOFILE %d, GOMAXPROCS %d, loadavg %s", nofile, runtime.GOMAXPROCS(0), LoadAvg())
	bin := harness.Build(t, t.TempDir(), "underlay.dev/server/cmd/underlay")
	var results []Result
	for _, n := range opts.sizes {
		t.Run(fmt.Sprintf("agents=%d", n), func(t *testing.T) {
			r := runScale(t, bin, n, opts)
			results = append(results, r)
			t.Log("\n" + table([]Result{r}))
		})
	}
	t.Log("\n" + table(results))
	if opts.out != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(opts.out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// servers tracks the pids of the cluster's processes.
type servers struct {
	c    *harness.ProcCluster
	pids []int
}

func (s *servers) sample(tb testing.TB) []ProcSample {
	tb.Helper()
	out := make([]ProcSample, len(s.pids))
	for i, pid := range s.pids {
		if !s.c.Procs[i].Running() {
			continue
		}
		p, err := ReadProc(pid)
		if err != nil {
			tb.Fatalf("sample %s: %v", s.c.Procs[i].ID, err)
		}
		out[i] = p
	}
	return out
}

func cpuPercent(a, b []ProcSample, d time.Duration) (total float64, each []float64) {
	for i := range a {
		p := 100 * float64(b[i].CPU-a[i].CPU) / float64(d)
		each = append(each, p)
		total += p
	}
	return total, each
}

func sumRSS(s []ProcSample) (b int64) {
	for _, p := range s {
		b += p.RSS
	}
	return b
}

const mib = 1 << 20

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runScale(t *testing.T, bin string, n int, opts options) Result {
	r := Result{Agents: n, LoadBefore: LoadAvg()}
	c := harness.StartProcs(t, bin, 3, harness.ProcOptions{})
	srv := &servers{c: c}
	for _, p := range c.Procs {
		pid, err := FindPID("--data-dir", p.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		srv.pids = append(srv.pids, pid)
	}
	admin := c.Client()

	// Idle cluster.
	const idle = 10 * time.Second
	s0 := srv.sample(t)
	time.Sleep(idle)
	s1 := srv.sample(t)
	r.IdleCPUPercent, _ = cpuPercent(s0, s1, idle)
	r.IdleRSSMiB = float64(sumRSS(s1)) / mib

	// Twice the fleet's size: an Enroll retried after an error whose
	// command had in fact committed spends a second use.
	tok := c.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, 4*time.Hour, int32(2*n))
	f, err := New(Config{Servers: c.Addrs(), Fingerprint: c.Fingerprint, Token: tok, Seed: uint64(time.Now().UnixNano())}, n)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })

	// Enrollment: each agent connects as soon as it has its certificate.
	t.Logf("enrolling %d agents, %d at a time (loadavg %s)", n, opts.concurrency, LoadAvg())
	ectx, ecancel := context.WithTimeout(ctx, 20*time.Minute)
	defer ecancel()
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	sEnroll := srv.sample(t)
	f.EnrollAndRun(ectx, ctx, opts.concurrency, &running, func(err error) {
		mu.Lock()
		r.EnrollFailures++
		firstErr = cmpErr(firstErr, err)
		mu.Unlock()
	})
	enrollTime := time.Since(start)
	sEnrolled := srv.sample(t)
	r.Enrolled = n - r.EnrollFailures
	r.EnrollRetries = f.EnrollRetries.Load()
	r.EnrollSeconds = enrollTime.Seconds()
	r.EnrollPerSecond = float64(r.Enrolled) / enrollTime.Seconds()
	es := Summarize(f.EnrollLatency.Stop())
	r.EnrollP50Ms, r.EnrollP99Ms = ms(es.P50), ms(es.P99)
	var enrollCPU time.Duration
	for i := range sEnroll {
		enrollCPU += sEnrolled[i].CPU - sEnroll[i].CPU
	}
	r.EnrollCPUMsEach = ms(enrollCPU) / float64(max(1, r.Enrolled))
	t.Logf("enrolled %d in %s (%.1f/s), %d failures (first: %v), %d retries; %d connected",
		r.Enrolled, enrollTime.Round(time.Millisecond), r.EnrollPerSecond, r.EnrollFailures, firstErr, r.EnrollRetries, f.Connected())
	if len(f.RetryReasons()) > 0 {
		t.Logf("enrollment retry reasons: %v", f.RetryReasons())
	}
	if r.Enrolled == 0 {
		t.Fatalf("no agent enrolled: %v", firstErr)
	}

	// All sessions up.
	if !waitFor(10*time.Minute, func() bool { return f.Connected() == r.Enrolled }) {
		t.Logf("only %d of %d agents connected after 10 min", f.Connected(), r.Enrolled)
	}
	r.AllConnectedSecs = time.Since(start).Seconds()
	t.Logf("%d agents connected %.1fs after enrollment began; settling %s", f.Connected(), r.AllConnectedSecs, opts.settle)
	time.Sleep(opts.settle)

	// Steady state.
	self := os.Getpid()
	l0, _ := ReadProc(self)
	a := srv.sample(t)
	f.RTT.Start()
	hb0 := f.Heartbeats.Load()
	peak := make([]int64, len(srv.pids))
	for end := time.Now().Add(opts.window); time.Now().Before(end); {
		time.Sleep(min(5*time.Second, time.Until(end)))
		for i, p := range srv.sample(t) {
			peak[i] = max(peak[i], p.RSS)
		}
	}
	b := srv.sample(t)
	l1, _ := ReadProc(self)
	rtt := Summarize(f.RTT.Stop())
	hb := f.Heartbeats.Load() - hb0
	total, each := cpuPercent(a, b, opts.window)
	connected := f.Connected()
	byNode := map[string]int{}
	for _, s := range f.States() {
		if s.Up {
			byNode[s.Node]++
		}
	}
	r.SteadyCPUPercent = total
	r.SteadyRSSMiB = float64(sumRSS(b)) / mib
	r.CPUPerKAgents = (total - r.IdleCPUPercent) / float64(connected) * 1000 // above the idle cluster
	r.RSSKiBPerAgent = float64(sumRSS(b)) / 1024 / float64(connected)
	r.DeltaKiBPerAgent = float64(sumRSS(b)-sumRSS(s1)) / 1024 / float64(connected)
	for i, p := range c.Procs {
		r.PerNode = append(r.PerNode, NodeFigures{ID: p.ID, Agents: byNode[p.ID], CPUPercent: each[i], RSSMiB: float64(b[i].RSS) / mib})
	}
	r.LoadgenCPUPct = 100 * float64(l1.CPU-l0.CPU) / float64(opts.window)
	r.LoadgenRSSMiB = float64(l1.RSS) / mib
	r.Heartbeats = int(hb)
	r.RTTP50Ms, r.RTTP99Ms, r.RTTMaxMs = ms(rtt.P50), ms(rtt.P99), ms(rtt.Max)
	t.Logf("steady: %d connected %v; servers %.1f%% CPU, %.0f MiB RSS (idle %.0f MiB); %d heartbeats, RTT p50 %.2f p99 %.2f max %.2f ms; loadavg %s",
		connected, byNode, total, r.SteadyRSSMiB, r.IdleRSSMiB, hb, r.RTTP50Ms, r.RTTP99Ms, r.RTTMaxMs, LoadAvg())

	// Kill the node holding a third of the agents.
	victim := pickVictim(t, admin, c, opts.kill)
	r.Killed, r.KilledRole = c.Procs[victim].ID, opts.kill
	r.OnKilled = byNode[r.Killed]
	failures0 := f.SessionFailures.Load()
	t.Logf("SIGKILL %s (%s) holding %d agents", r.Killed, opts.kill, r.OnKilled)
	killAt := time.Now()
	c.Kill(victim)
	var api sync.WaitGroup
	api.Add(1)
	go func() {
		defer api.Done()
		r.APIBackSecs, r.APIOnline = waitAPI(ctx, c, r.Killed, r.Enrolled, killAt)
	}()
	back := func() bool {
		up := 0
		for _, s := range f.States() {
			if s.Up && s.Node != r.Killed {
				up++
			}
		}
		r.AgentsBack = up
		return up == r.Enrolled
	}
	if waitFor(5*time.Minute, back) {
		r.AgentsBackSecs = time.Since(killAt).Seconds()
	} else {
		r.AgentsBackSecs = -1
		t.Logf("only %d of %d agents back after 5 min", r.AgentsBack, r.Enrolled)
	}
	var re []time.Duration
	for _, s := range f.States() {
		if s.Up && s.UpSince.After(killAt) {
			re = append(re, s.UpSince.Sub(killAt))
		}
	}
	rs := Summarize(re)
	r.ReconnectP50Secs, r.ReconnectP99Secs = rs.P50.Seconds(), rs.P99.Seconds()
	api.Wait()
	for _, p := range srv.sample(t) {
		r.SurvivorRSSMiB += float64(p.RSS) / mib
	}
	r.SessionFailures = f.SessionFailures.Load() - failures0
	r.LoadAfter = LoadAvg()
	t.Logf("after kill: %d agents back in %.1fs (%d reconnected, p50 %.1fs p99 %.1fs); API shows all online after %.1fs; %d session failures; survivors %.0f MiB",
		r.AgentsBack, r.AgentsBackSecs, rs.Count, r.ReconnectP50Secs, r.ReconnectP99Secs, r.APIBackSecs, r.SessionFailures, r.SurvivorRSSMiB)
	return r
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// pickVictim returns the index of the current leader, or of a follower.
func pickVictim(tb testing.TB, admin *client.Client, c *harness.ProcCluster, kill string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := admin.Cluster.Members(ctx, &underlayv1.MembersRequest{})
	if err != nil {
		tb.Fatalf("members: %v", err)
	}
	for _, m := range res.GetMembers() {
		if (m.GetRole() == "leader") == (kill == "leader") {
			return c.Index(m.GetId())
		}
	}
	tb.Fatalf("no %s among %v", kill, res.GetMembers())
	return -1
}

// waitAPI polls MachineService.List on the surviving nodes until every
// machine is online on a node other than killed. It returns the time from
// killAt and the last count seen.
func waitAPI(ctx context.Context, c *harness.ProcCluster, killed string, want int, killAt time.Time) (float64, int) {
	cl, err := client.New(client.Options{Servers: c.Addrs(), CredsDir: c.AdminDir})
	if err != nil {
		return -1, 0
	}
	defer cl.Close()
	deadline := killAt.Add(5 * time.Minute)
	online := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := cl.Machines.List(cctx, &underlayv1.ListMachinesRequest{Online: "true"}, grpc.MaxCallRecvMsgSize(256<<20))
		cancel()
		if err == nil {
			online = 0
			for _, m := range res.GetMachines() {
				if m.GetOnline() && m.GetConnectedNode() != killed {
					online++
				}
			}
			if online >= want {
				return time.Since(killAt).Seconds(), online
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return -1, online
}

func table(rs []Result) string {
	var b strings.Builder
	fmt.Fprintln(&b, "| agents | enrolled | enroll/s | enroll p99 ms | all connected s | steady server CPU % (idle) | CPU % per 1000 agents above idle | server RSS MiB (idle) | RSS KiB/agent (delta) | HB RTT p50/p99 ms | killed (agents) | agents back s | API all online s | load before/after |")
	fmt.Fprintln(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %d | %d | %.1f | %.0f | %.1f | %.1f (%.1f) | %.2f | %.0f (%.0f) | %.1f (%.1f) | %.2f / %.2f | %s %s (%d) | %.1f | %.1f | %s / %s |\n",
			r.Agents, r.Enrolled, r.EnrollPerSecond, r.EnrollP99Ms, r.AllConnectedSecs, r.SteadyCPUPercent, r.IdleCPUPercent, r.CPUPerKAgents,
			r.SteadyRSSMiB, r.IdleRSSMiB, r.RSSKiBPerAgent, r.DeltaKiBPerAgent, r.RTTP50Ms, r.RTTP99Ms,
			r.Killed, r.KilledRole, r.OnKilled, r.AgentsBackSecs, r.APIBackSecs, r.LoadBefore, r.LoadAfter)
	}
	for _, r := range rs {
		for _, n := range r.PerNode {
			fmt.Fprintf(&b, "\n%d agents: %s held %d agents, %.1f%% CPU, %.0f MiB RSS", r.Agents, n.ID, n.Agents, n.CPUPercent, n.RSSMiB)
		}
		fmt.Fprintf(&b, "\n%d agents: load generator %.1f%% CPU, %.0f MiB RSS; %d heartbeats in window, RTT max %.1f ms; enroll p50 %.0f ms, server CPU %.1f ms per enrollment; reconnect p50 %.1fs p99 %.1fs; %d session failures after kill",
			r.Agents, r.LoadgenCPUPct, r.LoadgenRSSMiB, r.Heartbeats, r.RTTMaxMs, r.EnrollP50Ms, r.EnrollCPUMsEach, r.ReconnectP50Secs, r.ReconnectP99Secs, r.SessionFailures)
	}
	return b.String()
}
