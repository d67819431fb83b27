package store

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func messages(events []*underlayv1.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.GetMachineId()+":"+e.GetMessage())
	}
	return out
}

// appendEvents writes one event per "machine:message" entry, each at its
// own index.
func appendEvents(tb testing.TB, s *Store, entries ...string) {
	tb.Helper()
	for _, entry := range entries {
		mid, msg, _ := strings.Cut(entry, ":")
		write(tb, s, func(tx *Tx) error { return tx.Event("test", mid, msg) })
	}
}

func TestEventRetention(t *testing.T) {
	s := newStore(t)
	s.maxEvents, s.maxMachineEvents = 5, 2
	// a:1 goes when machine a passes 2 events; a:2 and a:3 go when the
	// cluster passes 5. Cluster events (machine "") have no per-machine cap.
	appendEvents(t, s, "a:1", "a:2", "a:3", ":c1", "b:1", "b:2", ":c2", "c:1")
	tests := []struct {
		machine string
		want    []string
	}{
		{"", []string{":c1", "b:1", "b:2", ":c2", "c:1"}},
		{"a", nil},
		{"b", []string{"b:1", "b:2"}},
		{"c", []string{"c:1"}},
	}
	for _, tt := range tests {
		t.Run("machine="+tt.machine, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, messages(s.Events(tt.machine)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Events(%q) (-want +got):\n%s", tt.machine, diff)
			}
		})
	}
	// The per-machine count followed the overall trimming: a has room for
	// two new events again.
	appendEvents(t, s, "a:4", "a:5")
	if diff := cmp.Diff([]string{"a:4", "a:5"}, messages(s.Events("a"))); diff != "" {
		t.Errorf("Events(a) after more (-want +got):\n%s", diff)
	}
}

func TestEventsStamped(t *testing.T) {
	s := newStore(t)
	write(t, s, func(tx *Tx) error { return tx.Event("machine.state", "m-1", "ready") })
	want := []*underlayv1.Event{{
		Index: 1, Time: timestamp(t0), Kind: "machine.state", MachineId: "m-1",
		Message: "ready", Actor: "spiffe://underlay/operator/test",
	}}
	if diff := cmp.Diff(want, s.Events("m-1"), protocmpT()); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
}

func TestSubscribe(t *testing.T) {
	s := newStore(t)
	appendEvents(t, s, "m-1:before")
	ch, cancel := s.Subscribe()
	appendEvents(t, s, "m-1:one", ":two")
	var got []string
	for range 2 {
		got = append(got, messages([]*underlayv1.Event{<-ch})...)
	}
	if diff := cmp.Diff([]string{"m-1:one", ":two"}, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	cancel()
	cancel() // a second cancel is harmless
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	appendEvents(t, s, "m-1:after cancel") // must not panic on a closed channel
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	s := newStore(t)
	slow, cancelSlow := s.Subscribe()
	defer cancelSlow()
	fast, cancelFast := s.Subscribe()
	defer cancelFast()
	n := SubscribeBuffer + 10
	// Nobody reads slow: if delivery blocked, this loop would never end.
	// fast keeps up (it reads after every write) and must see everything.
	got := 0
	for i := range n {
		write(t, s, func(tx *Tx) error { return tx.Event("test", "", string(rune('a'+i%26))) })
		if _, ok := <-fast; ok {
			got++
		}
	}
	if got != n {
		t.Errorf("fast subscriber got %d events, want %d", got, n)
	}
	count := 0
	for range slow {
		count++
	}
	if count != SubscribeBuffer {
		t.Errorf("slow subscriber got %d events before its channel closed, want %d", count, SubscribeBuffer)
	}
}
