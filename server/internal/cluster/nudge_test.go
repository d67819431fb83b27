package cluster

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Nudges while a barrier is in flight coalesce into exactly one more
// barrier; a failed barrier drops what is pending, and the next nudge starts
// afresh.
func TestNudgesCoalesce(t *testing.T) {
	release := make(chan error)
	var calls atomic.Int32
	n := &nudger{barrier: func() error { calls.Add(1); return <-release }}

	n.nudge()
	waitCalls(t, &calls, 1)
	for i := 0; i < 10; i++ {
		n.nudge()
	}
	release <- nil // first barrier done; the ten pending nudges make one more
	waitCalls(t, &calls, 2)
	release <- nil
	waitIdle(t, n)
	if got := calls.Load(); got != 2 {
		t.Fatalf("barriers = %d, want 2 (one, plus one for all nudges during it)", got)
	}

	n.nudge()
	waitCalls(t, &calls, 3)
	n.nudge()
	release <- errors.New("leadership lost")
	waitIdle(t, n)
	if got := calls.Load(); got != 3 {
		t.Fatalf("barriers = %d after a failed one, want 3 (pending dropped)", got)
	}
	n.nudge()
	waitCalls(t, &calls, 4)
	release <- nil
	waitIdle(t, n)
}

func waitCalls(t *testing.T, c *atomic.Int32, want int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.Load() < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("barriers = %d, want %d", c.Load(), want)
		}
	}
}

func waitIdle(t *testing.T, n *nudger) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n.mu.Lock()
		running := n.running
		n.mu.Unlock()
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nudger still running")
		}
	}
}
