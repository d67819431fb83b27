package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrProcFormat means a /proc file did not have the expected layout.
var ErrProcFormat = errors.New("unexpected /proc format")

// Recorder collects durations while it is started; it starts stopped.
type Recorder struct {
	mu sync.Mutex
	on bool
	d  []time.Duration
}

// Start clears the recorder and starts recording.
func (r *Recorder) Start() {
	r.mu.Lock()
	r.on, r.d = true, nil
	r.mu.Unlock()
}

// Stop stops recording and returns what was recorded.
func (r *Recorder) Stop() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return slices.Clone(r.d)
}

// Values returns what was recorded so far.
func (r *Recorder) Values() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.d)
}

// Add records d if the recorder is started.
func (r *Recorder) Add(d time.Duration) {
	r.mu.Lock()
	if r.on {
		r.d = append(r.d, d)
	}
	r.mu.Unlock()
}

// Summary is a latency distribution.
type Summary struct {
	Count         int
	P50, P99, Max time.Duration
	Mean          time.Duration
}

// Summarize computes nearest-rank percentiles of d.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return Summary{Count: len(s), P50: rank(s, 0.50), P99: rank(s, 0.99), Max: s[len(s)-1], Mean: sum / time.Duration(len(s))}
}

// rank is the nearest-rank percentile p (0 < p <= 1) of sorted s.
func rank(s []time.Duration, p float64) time.Duration {
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// backoff is exponential from base to max with full jitter (a uniform
// draw in [0, ceiling]), like the real agent's.
type backoff struct {
	base, max time.Duration
	attempt   int
	rand      func(n int64) int64
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, rand: rand.Int64N}
}

func (b *backoff) ceiling() time.Duration {
	c := b.base
	for i := 0; i < b.attempt && c < b.max; i++ {
		c *= 2
	}
	return min(c, b.max)
}

func (b *backoff) next() time.Duration {
	c := b.ceiling()
	if c < b.max {
		b.attempt++
	}
	return time.Duration(b.rand(int64(c) + 1))
}

func (b *backoff) reset() { b.attempt = 0 }

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is the CPU time used so far and the resident memory of a
// process.
type ProcSample struct {
	CPU time.Duration
	RSS int64 // bytes
}

// ReadProc samples process pid from /proc.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, err
	}
	cpu, err := parseStat(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, err
	}
	rss, err := parseRSS(st)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return ProcSample{CPU: cpu, RSS: rss}, nil
}

// parseStat returns utime+stime from the contents of /proc/<pid>/stat.
// The command name (field 2) may contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name: %w", ErrProcFormat)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields: %w", len(f)+2, ErrProcFormat)
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w: %w", err, ErrProcFormat)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseRSS returns VmRSS in bytes from the contents of /proc/<pid>/status.
func parseRSS(b []byte) (int64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q: %w", strings.TrimSpace(rest), ErrProcFormat)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: %w: %w", err, ErrProcFormat)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("status: no VmRSS: %w", ErrProcFormat)
}

// LoadAvg returns the first three fields of /proc/loadavg.
func LoadAvg() string {
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

// FindPID returns the process whose command line has flag followed by
// value (e.g. "--data-dir", "/tmp/x/n1").
func FindPID(flag, value string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		if hasFlag(strings.Split(string(b), "\x00"), flag, value) {
			return strconv.Atoi(filepath.Base(d))
		}
	}
	return 0, fmt.Errorf("no process with %s %s: %w", flag, value, os.ErrNotExist)
}

func hasFlag(args []string, flag, value string) bool {
	for i, a := range args {
		if a == flag+"="+value || (a == flag && i+1 < len(args) && args[i+1] == value) {
			return true
		}
	}
	return false
}
