package ipam

import (
	"testing"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestPoolArithmetic(t *testing.T) {
	p, err := Validate(&underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0/16", RangeStart: "10.0.0.250", RangeEnd: "10.0.1.9"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got != 16 {
		t.Fatalf("Size = %d, want 16", got)
	}
	for i, want := range map[int]string{0: "10.0.0.250", 5: "10.0.0.255", 6: "10.0.1.0", 15: "10.0.1.9"} {
		if got := p.Nth(i).String(); got != want {
			t.Errorf("Nth(%d) = %s, want %s", i, got, want)
		}
	}
	if _, err := Validate(&underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0/24", RangeStart: "10.0.0.10", RangeEnd: "10.0.0.255"}); err == nil {
		t.Fatal("a range reaching the broadcast address was accepted")
	}
}
