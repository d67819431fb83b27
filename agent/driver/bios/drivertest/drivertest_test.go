package drivertest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent/driver/bios"
	"underlay.dev/agent/driver/bios/drivertest"
	"underlay.dev/pkg/redfish"
)

func TestDriver(t *testing.T) {
	ctx := context.Background()
	d := &drivertest.Driver{Current: map[string]string{"A": "1", "B": "x"}}
	want := map[string]string{"A": "2", "B": "x"}

	for i, tc := range []struct {
		reboot bool
		want   bios.Report
	}{
		{false, bios.Report{Changed: map[string]bios.Change{"A": {From: "1", To: "2"}}, RebootNeeded: true}},
		{true, bios.Report{Applied: true}},
	} {
		if tc.reboot {
			if err := d.Reboot(ctx); err != nil {
				t.Fatal(err)
			}
		}
		r, err := d.Apply(ctx, want, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, r); diff != "" {
			t.Errorf("apply %d (-want +got):\n%s", i, diff)
		}
	}
	if _, err := d.Apply(ctx, map[string]string{"C": "1"}, nil); !errors.Is(err, redfish.ErrUnknownAttribute) {
		t.Errorf("unknown attribute: %v", err)
	}
	if diff := cmp.Diff([]map[string]string{want, want, {"C": "1"}}, d.Applies()); diff != "" {
		t.Errorf("applies (-want +got):\n%s", diff)
	}
	if d.Reboots() != 1 {
		t.Errorf("%d reboots, want 1", d.Reboots())
	}
}
