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
	Timing      string    `json:"timing"`
	Heartbeat   string    `json:"heartbeat_timeout"`
	Election    string    `json:"election_timeout"`
	LeaderLease string    `json:"leader_lease_timeout"`
	Trials      int       `json:"trials"`
	Failed      int       `json:"failed"`
	FailoverMs  []float64 `json:"failover_ms"`
	StopMs      []float64 `json:"stop_ms"`
	MedianMs    float64   `json:"median_ms"`
	WorstMs     float64   `json:"worst_ms"`
	BestMs      float64   `json:"best_ms"`
	StopMedMs   float64   `json:"stop_median_ms"`
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

// summarize fills the failover statistics from the per-trial durations.
func summarize(st *FailoverStats, failovers, stops []time.Duration) {
	st.Trials = len(failovers) + st.Failed
	for _, d := range failovers {
		st.FailoverMs = append(st.FailoverMs, ms(d))
	}
	for _, d := range stops {
		st.StopMs = append(st.StopMs, ms(d))
	}
	f := slices.Sorted(slices.Values(failovers))
	s := slices.Sorted(slices.Values(stops))
	if len(f) > 0 {
		st.MedianMs, st.WorstMs, st.BestMs = ms(median(f)), ms(f[len(f)-1]), ms(f[0])
	}
	st.StopMedMs = ms(median(s))
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
		fmt.Fprintln(w, "| Raft timing (heartbeat/election/lease) | Trials | Failed | Median ms | Worst ms | Best ms | Stop() median ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		for _, x := range r.Failover {
			fmt.Fprintf(w, "| %s (%s/%s/%s) | %d | %d | %.0f | %.0f | %.0f | %.0f |\n",
				x.Timing, x.Heartbeat, x.Election, x.LeaderLease, x.Trials, x.Failed, x.MedianMs, x.WorstMs, x.BestMs, x.StopMedMs)
		}
		fmt.Fprintln(w)
		for _, x := range r.Failover {
			fmt.Fprintf(w, "Failover ms per trial, %s timing: %v\n", x.Timing, x.FailoverMs)
		}
		fmt.Fprintln(w)
	}
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
