package agent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoff(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // always the ceiling
	half := func(n int64) int64 { return n / 2 }
	zero := func(int64) int64 { return 0 }
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		rand func(int64) int64
		want []time.Duration
	}{
		{"ceiling grows and is capped", top, []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 12800 * ms, 15 * time.Second, 15 * time.Second}},
		{"jitter draws inside the ceiling", half, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 7500 * ms, 7500 * ms}},
		{"full jitter reaches zero", zero, []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &backoff{base: 200 * ms, max: 15 * time.Second, healthy: time.Minute, rand: tc.rand}
			var got []time.Duration
			for range tc.want {
				got = append(got, b.next())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffReset(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	for _, tc := range []struct {
		name string
		up   time.Duration // how long the last connection lasted
		want time.Duration // the next delay after 5 failures and observe(up)
	}{
		{"short session keeps growing", 5 * time.Second, 6400 * time.Millisecond},
		{"healthy session resets", time.Minute, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &backoff{base: 200 * time.Millisecond, max: 15 * time.Second, healthy: time.Minute, rand: top}
			for range 5 {
				b.next()
			}
			b.observe(tc.up)
			if got := b.next(); got != tc.want {
				t.Errorf("next() = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBackoffRandRange(t *testing.T) {
	// rand must be asked for [0, ceiling]: n is ceiling+1 and never more.
	var asked []int64
	b := &backoff{base: time.Second, max: 3 * time.Second, healthy: time.Minute, rand: func(n int64) int64 {
		asked = append(asked, n)
		return 0
	}}
	for range 4 {
		b.next()
	}
	want := []int64{int64(time.Second) + 1, int64(2*time.Second) + 1, int64(3*time.Second) + 1, int64(3*time.Second) + 1}
	if diff := cmp.Diff(want, asked); diff != "" {
		t.Errorf("rand bounds (-want +got):\n%s", diff)
	}
}
