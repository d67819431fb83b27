package bios_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent/driver/bios"
	"underlay.dev/pkg/redfish"
	sim "underlay.dev/test/redfish"
)

const (
	user     = "admin"
	password = "s3cret"
)

// startBMC runs a simulated BMC whose one system ("1") is on, as a machine
// running the agent is.
func startBMC(tb testing.TB) (*sim.BMC, bios.Driver) {
	tb.Helper()
	bmc, err := sim.Start(context.Background(), sim.Config{Username: user, Password: password, Systems: []sim.SystemConfig{{
		ID: "1", Power: sim.NewMemoryPower(true),
		Attributes: []sim.Attribute{
			{Name: "ProcTurboMode", Type: sim.TypeEnumeration, Value: "Enabled", Allowed: []string{"Enabled", "Disabled"}},
			{Name: "SriovGlobalEnable", Type: sim.TypeEnumeration, Value: "Disabled", Allowed: []string{"Enabled", "Disabled"}},
			{Name: "ProcCores", Type: sim.TypeInteger, Value: 0},
			{Name: "SecureBoot", Type: sim.TypeBoolean, Value: false},
		},
	}}})
	if err != nil {
		tb.Fatalf("start bmc: %v", err)
	}
	tb.Cleanup(func() { bmc.Close() })
	d := bios.NewRedfish(redfish.Endpoint{Address: bmc.URL(), Username: user, Password: password, CAPEM: bmc.CAPEM()}, nil)
	return bmc, d
}

// apply runs Apply and fails the test on an error.
func apply(tb testing.TB, d bios.Driver, want map[string]string) (bios.Report, string) {
	tb.Helper()
	var log bytes.Buffer
	r, err := d.Apply(context.Background(), want, &log)
	if err != nil {
		tb.Fatalf("Apply: %v\n%s", err, log.String())
	}
	return r, log.String()
}

func TestApplyInEffect(t *testing.T) {
	for _, tc := range []struct {
		name string
		want map[string]string
	}{
		{"nothing wanted", nil},
		{"same values", map[string]string{"ProcTurboMode": "Enabled", "ProcCores": "0"}},
		{"same values written differently", map[string]string{"SecureBoot": "False", "ProcCores": " 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc, d := startBMC(t)
			r, _ := apply(t, d, tc.want)
			if diff := cmp.Diff(bios.Report{Applied: true}, r); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if p := bmc.Pending("1"); len(p) != 0 {
				t.Errorf("staged %v", p)
			}
			if b := bmc.Boots("1"); len(b) != 0 {
				t.Errorf("booted %v", b)
			}
			if got := bmc.Sessions(); got != 0 {
				t.Errorf("%d sessions left open", got)
			}
		})
	}
}

func TestApplyRebootApply(t *testing.T) {
	ctx := context.Background()
	bmc, d := startBMC(t)
	want := map[string]string{"ProcTurboMode": "Disabled", "SriovGlobalEnable": "Enabled", "ProcCores": "8", "SecureBoot": "false"}
	wantReport := bios.Report{RebootNeeded: true, Changed: map[string]bios.Change{
		"ProcTurboMode":     {From: "Enabled", To: "Disabled"},
		"SriovGlobalEnable": {From: "Disabled", To: "Enabled"},
		"ProcCores":         {From: "0", To: "8"},
	}}

	r, log := apply(t, d, want)
	if diff := cmp.Diff(wantReport, r); diff != "" {
		t.Errorf("first report (-want +got):\n%s", diff)
	}
	if !strings.Contains(log, "ProcCores: 0 -> 8") {
		t.Errorf("log does not show the change:\n%s", log)
	}
	wantPending := map[string]any{"ProcTurboMode": "Disabled", "SriovGlobalEnable": "Enabled", "ProcCores": 8}
	if diff := cmp.Diff(wantPending, bmc.Pending("1")); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}

	// Delivered again before the reboot (a retried step): nothing is
	// staged twice, the reboot is still needed.
	r, log = apply(t, d, want)
	if diff := cmp.Diff(wantReport, r); diff != "" {
		t.Errorf("repeated report (-want +got):\n%s", diff)
	}
	if strings.Count(log, "already staged") != 3 {
		t.Errorf("repeated Apply restaged settings:\n%s", log)
	}

	if err := d.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	boots := bmc.Boots("1")
	if len(boots) != 1 || boots[0].ResetType != "ForceRestart" {
		t.Fatalf("boots %+v, want one ForceRestart", boots)
	}
	if diff := cmp.Diff(wantPending, boots[0].Applied); diff != "" {
		t.Errorf("applied at the reboot (-want +got):\n%s", diff)
	}

	// After the machine is back the same step finds everything in effect.
	r, _ = apply(t, d, want)
	if diff := cmp.Diff(bios.Report{Applied: true}, r); diff != "" {
		t.Errorf("report after the reboot (-want +got):\n%s", diff)
	}
	if p := bmc.Pending("1"); len(p) != 0 {
		t.Errorf("staged after the reboot: %v", p)
	}
	if got := bmc.Sessions(); got != 0 {
		t.Errorf("%d sessions left open", got)
	}
}

func TestApplyCancelsContraryPending(t *testing.T) {
	bmc, d := startBMC(t)
	// Someone staged a change the role does not want.
	if _, err := d.Apply(context.Background(), map[string]string{"ProcTurboMode": "Disabled"}, nil); err != nil {
		t.Fatal(err)
	}
	r, log := apply(t, d, map[string]string{"ProcTurboMode": "Enabled"})
	if diff := cmp.Diff(bios.Report{Applied: true}, r); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if got := bmc.Pending("1")["ProcTurboMode"]; got != "Enabled" {
		t.Errorf("pending ProcTurboMode %v, want Enabled (the contrary value overwritten)\n%s", got, log)
	}
}

func TestApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		want     map[string]string
		wantErr  error
		wantText string
	}{
		{"unknown attribute", map[string]string{"ProcTurboMode": "Disabled", "HyperDrive": "On"},
			redfish.ErrUnknownAttribute, "attributes HyperDrive"},
		{"wrong type", map[string]string{"ProcTurboMode": "Disabled", "ProcCores": "all"},
			redfish.ErrInvalid, `attribute ProcCores: value "all" is not an integer`},
		{"value the bmc refuses", map[string]string{"ProcTurboMode": "Turbo"},
			redfish.ErrRejected, "The value Turbo for the property ProcTurboMode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc, d := startBMC(t)
			var log bytes.Buffer
			_, err := d.Apply(context.Background(), tc.want, &log)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %v, want %v mentioning %q", err, tc.wantErr, tc.wantText)
			}
			if !strings.Contains(log.String(), tc.wantText) {
				t.Errorf("log does not explain the error:\n%s", log.String())
			}
			if p := bmc.Pending("1"); len(p) != 0 {
				t.Errorf("staged %v", p)
			}
		})
	}
}

func TestBadCredentials(t *testing.T) {
	bmc, _ := startBMC(t)
	d := bios.NewRedfish(redfish.Endpoint{Address: bmc.URL(), Username: user, Password: "wrong", CAPEM: bmc.CAPEM()}, nil)
	if _, err := d.Apply(context.Background(), map[string]string{"ProcCores": "1"}, nil); !errors.Is(err, redfish.ErrAuth) {
		t.Errorf("Apply = %v, want ErrAuth", err)
	}
	if err := d.Reboot(context.Background()); !errors.Is(err, redfish.ErrAuth) {
		t.Errorf("Reboot = %v, want ErrAuth", err)
	}
	if len(bmc.Boots("1")) != 0 {
		t.Error("a refused Reboot reset the machine")
	}
}
