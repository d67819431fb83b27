//go:build bench

package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is everything one benchmark run measured; it is what BENCH_OUT
// receives as JSON.
type Report struct {
	Date     string          `json:"date"`
	Machine  Machine         `json:"machine"`
	Writes   []WriteResult   `json:"writes"`
	Failover []FailoverStats `json:"failover"`
	// LoadBefore and LoadAfter are /proc/loadavg at the start and the end:
	// other work on the machine skews the figures.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  string `json:"mem_total"`
	GoVersion string `json:"go_version"`
	OSArch    string `json:"os_arch"`
}

// WriteResult is one throughput scenario: a fixed number of token creations
// by a fixed number of concurrent writers.
type WriteResult struct {
	Scenario     string  `json:"scenario"`
	Timing       string  `json:"timing"`
	Writers      int     `json:"writers"`
	Writes       int     `json:"writes"`
	Errors       int     `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
	TimedOut     bool    `json:"timed_out"`
	Seconds      float64 `json:"seconds"`
	WritesPerSec float64 `json:"writes_per_sec"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
}

// FailoverStats summarises the failover trials with one set of Raft timeouts.
type FailoverStats struct {
	Timing      string `json:"timing"`
	Heartbeat   string `json:"heartbeat_timeout"`
	Election    string `json:"election_timeout"`
	LeaderLease string `json:"leader_lease_timeout"`
	Trials      int    `json:"trials"`
	Failed      int    `json:"failed"`
	// Per successful trial: kill to first write, time spent in Stop, kill
	// to a new leader, and Raft terms the failover took (1: one election).
	FailoverMs []float64 `json:"failover_ms"`
	StopMs     []float64 `json:"stop_ms"`
	ElectedMs  []float64 `json:"elected_ms"`
	Elections  []uint64  `json:"elections"`
	MedianMs   float64   `json:"median_ms"`
	WorstMs    float64   `json:"worst_ms"`
	BestMs     float64   `json:"best_ms"`
	StopMedMs  float64   `json:"stop_median_ms"`
	ElectedMed float64   `json:"elected_median_ms"`
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// summarize fills the failover statistics from the successful trials.
func summarize(st *FailoverStats, trials []trial) {
	st.Trials = len(trials) + st.Failed
	var f, s, e []time.Duration
	for _, tr := range trials {
		f, s, e = append(f, tr.failover), append(s, tr.stop), append(e, tr.elected)
		st.FailoverMs = append(st.FailoverMs, ms(tr.failover))
		st.StopMs = append(st.StopMs, ms(tr.stop))
		st.ElectedMs = append(st.ElectedMs, ms(tr.elected))
		st.Elections = append(st.Elections, tr.elections)
	}
	slices.Sort(f)
	slices.Sort(s)
	slices.Sort(e)
	if len(f) > 0 {
		st.MedianMs, st.WorstMs, st.BestMs = ms(median(f)), ms(f[len(f)-1]), ms(f[0])
	}
	st.StopMedMs, st.ElectedMed = ms(median(s)), ms(median(e))
}

// median of sorted durations (mean of the middle two for an even count).
func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	default:
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
}

// machine reads the CPU model and memory size from /proc.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	return m
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// writeMarkdown prints the report as markdown tables.
func writeMarkdown(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n## Raft-replicated writes and leader failover (%s)\n\n", r.Date)
	fmt.Fprintf(w, "Machine: %d CPUs, %s, %s memory, %s %s\n\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemTotal, r.Machine.GoVersion, r.Machine.OSArch)
	fmt.Fprintf(w, "Load average (1/5/15 min) before: %s, after: %s\n\n", r.LoadBefore, r.LoadAfter)
	if len(r.Writes) > 0 {
		fmt.Fprintln(w, "| Scenario | Raft timing | Writers | Writes | Errors | Seconds | Writes/s | p50 ms | p99 ms | max ms |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, x := range r.Writes {
			name := x.Scenario
			if x.TimedOut {
				name += " (time limit hit)"
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %.1f | %.0f | %.2f | %.2f | %.2f |\n",
				name, x.Timing, x.Writers, x.Writes, x.Errors, x.Seconds, x.WritesPerSec, x.P50Ms, x.P99Ms, x.MaxMs)
		}
		fmt.Fprintln(w)
	}
	if len(r.Failover) > 0 {
		fmt.Fprintln(w, "| Raft timing (heartbeat/election/lease) | Trials | Failed | Median ms | Worst ms | Best ms | New leader median ms | Stop() median ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, x := range r.Failover {
			fmt.Fprintf(w, "| %s (%s/%s/%s) | %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
				x.Timing, x.Heartbeat, x.Election, x.LeaderLease, x.Trials, x.Failed, x.MedianMs, x.WorstMs, x.BestMs, x.ElectedMed, x.StopMedMs)
		}
		fmt.Fprintln(w)
		for _, x := range r.Failover {
			fmt.Fprintf(w, "%s timing, per trial: failover ms %v; new leader ms %v; elections %v\n", x.Timing, x.FailoverMs, x.ElectedMs, x.Elections)
		}
		fmt.Fprintln(w)
	}
}

// loadAvg returns the three load averages from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// writeJSON writes the report to path.
func writeJSON(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
