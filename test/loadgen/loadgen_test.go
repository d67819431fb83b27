package loadgen

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

func TestIdentitiesAreDistinctAndUsable(t *testing.T) {
	tests := []struct {
		name string
		seed uint64
		n    int
	}{
		{"small fleet", 1, 10},
		{"5000 agents", 42, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uuids, macs := map[string]int{}, map[string]int{}
			for i := range tt.n {
				id := Identity(tt.seed, i)
				if len(id.GetUuid()) != 36 {
					t.Fatalf("agent %d: uuid %q is not 8-4-4-4-12", i, id.GetUuid())
				}
				if j, dup := uuids[id.GetUuid()]; dup {
					t.Fatalf("agents %d and %d share uuid %s", j, i, id.GetUuid())
				}
				uuids[id.GetUuid()] = i
				for _, m := range id.GetMacs() {
					if j, dup := macs[m]; dup {
						t.Fatalf("agents %d and %d share mac %s", j, i, m)
					}
					macs[m] = i
				}
			}
			if diff := cmp.Diff(Identity(tt.seed, 3), Identity(tt.seed, 3), protocmp.Transform()); diff != "" {
				t.Errorf("identity not deterministic (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", ms(7), Summary{Count: 1, P50: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond, Mean: 7 * time.Millisecond}},
		{"1..100", ms(hundred...), Summary{Count: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summarize(tt.in)); diff != "" {
				t.Errorf("Summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffGrowsToCapWithFullJitter(t *testing.T) {
	b := newBackoff(200*time.Millisecond, 15*time.Second)
	b.rand = func(n int64) int64 { return n - 1 } // always the ceiling
	var got []time.Duration
	for range 9 {
		got = append(got, b.next())
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond, 15 * time.Second, 15 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ceilings (-want +got):\n%s", diff)
	}
	b.reset()
	b.rand = func(int64) int64 { return 0 }
	if d := b.next(); d != 0 {
		t.Errorf("after reset with a zero draw: got %s, want 0", d)
	}
}

func TestParseProc(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		status  string
		wantCPU time.Duration
		wantRSS int64
		wantErr error
	}{
		{
			name:    "command with spaces and parens",
			stat:    "4242 (under lay) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 100 1000 200 18446744073709551615",
			status:  "Name:\tunderlay\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n",
			wantCPU: 3800 * time.Millisecond,
			wantRSS: 51200 * 1024,
		},
		{name: "truncated stat", stat: "1 (x) S 1 2", status: "VmRSS:\t1 kB\n", wantErr: ErrProcFormat},
		{name: "no rss (kernel thread)", stat: "2 (kthreadd) S 0 0 0 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0 0", status: "Name:\tkthreadd\n", wantErr: ErrProcFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cpu, err := parseStat([]byte(tt.stat))
			var rss int64
			if err == nil {
				rss, err = parseRSS([]byte(tt.status))
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff([2]int64{int64(tt.wantCPU), tt.wantRSS}, [2]int64{int64(cpu), rss}); tt.wantErr == nil && diff != "" {
				t.Errorf("cpu, rss (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHasFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{"separate value", []string{"underlay", "server", "--data-dir", "/tmp/a/n1", "--node-id", "n1"}, true},
		{"equals form", []string{"underlay", "server", "--data-dir=/tmp/a/n1"}, true},
		{"other node's directory", []string{"underlay", "server", "--data-dir", "/tmp/a/n11"}, false},
		{"flag last without value", []string{"underlay", "--data-dir"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasFlag(tt.args, "--data-dir", "/tmp/a/n1"); got != tt.want {
				t.Errorf("hasFlag(%q) = %v, want %v", tt.args, got, tt.want)
			}
		})
	}
}

func TestNewRotatesStartingServer(t *testing.T) {
	f, err := New(Config{Servers: []string{"a", "b", "c"}, Fingerprint: "x", Token: "t"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, a := range f.Agents {
		got = append(got, a.servers)
	}
	want := [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("server orders (-want +got):\n%s", diff)
	}
	if _, err := New(Config{Servers: []string{"a"}}, 1); !errors.Is(err, ErrConfig) {
		t.Errorf("New without fingerprint and token: err = %v, want ErrConfig", err)
	}
}
