package fsm

import (
	"strings"
	"testing"
	"time"
)

// A machine enrolling again with the token it enrolled with does not spend
// a use; another machine still finds the token used up.
func TestReEnrollDoesNotSpendTokenUse(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t, bootstrapCmd(), tokenCmd("one", discovery, 1, time.Time{}))
	first := identity(uuid1, "52:54:00:00:00:01")
	h.mustApply(t, enrollCmd("m-1", "one", first, "c-1", nil))
	h.mustApply(t, enrollCmd("m-1", "one", first, "c-2", nil))
	tok, err := h.store.Token("one")
	if err != nil {
		t.Fatal(err)
	}
	if tok.GetUses() != 1 {
		t.Fatalf("token uses = %d after enrolling one machine twice; want 1", tok.GetUses())
	}
	if !h.store.Revoked("c-1") {
		t.Fatal("the first certificate of the re-enrolled machine is not revoked")
	}
	res := h.apply(t, enrollCmd("m-2", "one", identity("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "52:54:00:00:00:02"), "c-3", nil))
	if res.GetErrorKind() != kindDenied || !strings.Contains(res.GetErrorMessage(), "no uses left") {
		t.Fatalf("second machine: %v %q; want PERMISSION_DENIED no uses left", res.GetErrorKind(), res.GetErrorMessage())
	}
}
