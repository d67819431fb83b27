package fsm

import (
	"bytes"
	"testing"
)

// A dry run answers like Apply would and changes nothing.
func TestDryRunChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t, bootstrapCmd(), subnetCmd(), allocCmd("52:54:00:00:00:0a", ""))
	before := h.dump(t)
	cmd := at(allocCmd("52:54:00:00:00:0b", "10.9.0.12"), 0)
	id, err := h.fsm.DryRun(cmd)
	if err != nil || id != "10.9.0.12" {
		t.Fatalf("DryRun = %q, %v; want 10.9.0.12", id, err)
	}
	if !bytes.Equal(before, h.dump(t)) {
		t.Fatal("DryRun changed the state")
	}
	if _, err := h.fsm.DryRun(at(allocCmd("bad", ""), 0)); err == nil {
		t.Fatal("DryRun of a bad command succeeded")
	}
	if res := h.apply(t, allocCmd("52:54:00:00:00:0b", "10.9.0.12")); res.GetId() != "10.9.0.12" {
		t.Fatalf("apply after dry run: %v", res)
	}
}
