package redfish_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/redfish"
	sim "underlay.dev/test/redfish"
)

const (
	user     = "admin"
	password = "s3cret"
)

// attrs is the registry every test system has.
func attrs() []sim.Attribute {
	return []sim.Attribute{
		{Name: "BootMode", Type: sim.TypeEnumeration, Value: "Uefi", Allowed: []string{"Bios", "Uefi"}},
		{Name: "ProcTurboMode", Type: sim.TypeEnumeration, Value: "Enabled", Allowed: []string{"Enabled", "Disabled"}},
		{Name: "ProcCores", Type: sim.TypeInteger, Value: 0},
		{Name: "SecureBoot", Type: sim.TypeBoolean, Value: false},
		{Name: "AssetTag", Type: sim.TypeString, Value: "none"},
	}
}

// startBMC runs a simulator; without systems it has one, "1", that is off.
func startBMC(tb testing.TB, systems ...sim.SystemConfig) *sim.BMC {
	tb.Helper()
	if len(systems) == 0 {
		systems = []sim.SystemConfig{{ID: "1", UUID: "4c4c4544-0042-3510-8056-b4c04f4d3332", Manufacturer: "Acme",
			Model: "R1", Serial: "SN1", Attributes: attrs()}}
	}
	bmc, err := sim.Start(context.Background(), sim.Config{Username: user, Password: password, Systems: systems})
	if err != nil {
		tb.Fatalf("start bmc: %v", err)
	}
	tb.Cleanup(func() { bmc.Close() })
	return bmc
}

func endpoint(bmc *sim.BMC) redfish.Endpoint {
	return redfish.Endpoint{Address: bmc.URL(), Username: user, Password: password, CAPEM: bmc.CAPEM()}
}

// dial connects and closes the client when the test ends.
func dial(tb testing.TB, ep redfish.Endpoint) *redfish.Client {
	tb.Helper()
	c, err := redfish.Dial(context.Background(), ep)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestDial(t *testing.T) {
	bmc := startBMC(t)
	for _, tc := range []struct {
		name         string
		edit         func(*redfish.Endpoint)
		wantErr      error
		wantSessions int
		wantFailures int
	}{
		{"session", func(*redfish.Endpoint) {}, nil, 1, 0},
		{"basic auth opens no session", func(ep *redfish.Endpoint) { ep.BasicAuth = true }, nil, 0, 0},
		{"wrong password", func(ep *redfish.Endpoint) { ep.Password = "wrong" }, redfish.ErrAuth, 0, 1},
		{"wrong password, basic auth", func(ep *redfish.Endpoint) { ep.Password, ep.BasicAuth = "wrong", true }, redfish.ErrAuth, 0, 2},
		{"no username", func(ep *redfish.Endpoint) { ep.Username = "" }, redfish.ErrInvalid, 0, 2},
		{"plain http", func(ep *redfish.Endpoint) { ep.Address = strings.Replace(ep.Address, "https", "http", 1) }, redfish.ErrInvalid, 0, 2},
		{"bad CA", func(ep *redfish.Endpoint) { ep.CAPEM = []byte("not pem") }, redfish.ErrInvalid, 0, 2},
		{"unknown system", func(ep *redfish.Endpoint) { ep.SystemID = "7" }, redfish.ErrNotFound, 0, 2},
		{"insecure", func(ep *redfish.Endpoint) { ep.CAPEM, ep.Insecure = nil, true }, nil, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := endpoint(bmc)
			tc.edit(&ep)
			c, err := redfish.Dial(context.Background(), ep)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Dial error %v, want %v", err, tc.wantErr)
			}
			if err != nil && tc.wantErr != redfish.ErrInvalid && !strings.Contains(err.Error(), bmc.URL()) {
				t.Errorf("error %q does not name the endpoint %s", err, bmc.URL())
			}
			if got := bmc.Sessions(); got != tc.wantSessions {
				t.Errorf("%d sessions open, want %d", got, tc.wantSessions)
			}
			if got := bmc.AuthFailures(); got != tc.wantFailures {
				t.Errorf("AuthFailures %d, want %d", got, tc.wantFailures)
			}
			if c == nil {
				return
			}
			if _, err := c.System(context.Background()); err != nil {
				t.Errorf("System: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if got := bmc.Sessions(); got != 0 {
				t.Errorf("%d sessions open after Close, want 0", got)
			}
			if _, err := c.System(context.Background()); err == nil {
				t.Error("System after Close succeeded")
			}
		})
	}
}

func TestUntrustedCertificate(t *testing.T) {
	bmc := startBMC(t)
	ep := endpoint(bmc)
	ep.CAPEM = nil
	if _, err := redfish.Dial(context.Background(), ep); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Dial with the system roots: %v, want a certificate error", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	bmc := startBMC(t)
	c := dial(t, endpoint(bmc))
	bmc.ExpireSessions()
	if _, err := c.System(context.Background()); err != nil {
		t.Fatalf("System after the session expired: %v", err)
	}
	if got := bmc.Sessions(); got != 1 {
		t.Errorf("%d sessions after logging in again, want 1", got)
	}
}

func TestSystem(t *testing.T) {
	bmc := startBMC(t,
		sim.SystemConfig{ID: "B", Serial: "second"},
		sim.SystemConfig{ID: "A", Serial: "first", Manufacturer: "Acme", Model: "R1", UUID: "4c4c4544-0042-3510-8056-b4c04f4d3332"})
	for _, tc := range []struct {
		systemID string
		want     redfish.System
	}{
		{"", redfish.System{ID: "A", UUID: "4c4c4544-0042-3510-8056-b4c04f4d3332", Manufacturer: "Acme", Model: "R1",
			SerialNumber: "first", PowerState: "Off", BootOverrideTarget: "None", BootOverrideEnabled: "Disabled"}},
		{"B", redfish.System{ID: "B", SerialNumber: "second", PowerState: "Off", BootOverrideTarget: "None", BootOverrideEnabled: "Disabled"}},
	} {
		t.Run("system "+tc.systemID, func(t *testing.T) {
			ep := endpoint(bmc)
			ep.SystemID = tc.systemID
			got, err := dial(t, ep).System(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got.UUID = strings.ToLower(got.UUID)
			if tc.want.UUID == "" {
				got.UUID = "" // random
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("System (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBIOS(t *testing.T) {
	ctx := context.Background()
	bmc := startBMC(t)
	c := dial(t, endpoint(bmc))

	got, err := c.BIOSAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"BootMode": "Uefi", "ProcTurboMode": "Enabled", "ProcCores": "0", "SecureBoot": "false", "AssetTag": "none"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BIOSAttributes (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name        string
		set         map[string]string
		wantErr     []error
		wantText    []string
		wantPending map[string]any // on the BMC, typed
	}{
		{"unknown names stage nothing", map[string]string{"ProcTurboMode": "Disabled", "Nope": "1", "Gone": "2"},
			[]error{redfish.ErrUnknownAttribute}, []string{"attributes Gone, Nope", bmc.URL()}, map[string]any{}},
		{"value not converting stages nothing", map[string]string{"ProcTurboMode": "Disabled", "ProcCores": "lots"},
			[]error{redfish.ErrInvalid}, []string{`attribute ProcCores: value "lots" is not an integer`}, map[string]any{}},
		{"bmc objection carries its message", map[string]string{"BootMode": "Legacy"},
			[]error{redfish.ErrRejected}, []string{"PropertyValueNotInList", "The value Legacy for the property BootMode"}, map[string]any{}},
		{"converted to the attribute types", map[string]string{"ProcCores": " 8", "SecureBoot": "True", "AssetTag": "42", "ProcTurboMode": "Disabled"},
			nil, nil, map[string]any{"ProcCores": 8, "SecureBoot": true, "AssetTag": "42", "ProcTurboMode": "Disabled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.StageBIOS(ctx, tc.set)
			for _, e := range tc.wantErr {
				if !errors.Is(err, e) {
					t.Errorf("error %v, want %v", err, e)
				}
			}
			if tc.wantErr == nil && err != nil {
				t.Errorf("StageBIOS: %v", err)
			}
			for _, s := range tc.wantText {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v does not mention %q", err, s)
				}
			}
			if diff := cmp.Diff(tc.wantPending, bmc.Pending("1")); diff != "" {
				t.Errorf("pending on the bmc (-want +got):\n%s", diff)
			}
		})
	}

	pending, err := c.PendingBIOS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPending := map[string]string{"ProcCores": "8", "SecureBoot": "true", "AssetTag": "42", "ProcTurboMode": "Disabled"}
	if diff := cmp.Diff(wantPending, pending); diff != "" {
		t.Errorf("PendingBIOS (-want +got):\n%s", diff)
	}
	if got, _ := c.BIOSAttributes(ctx); got["ProcCores"] != "0" {
		t.Errorf("ProcCores %q in effect before any reset, want 0", got["ProcCores"])
	}
	if err := c.Power(ctx, redfish.PowerOff); err != nil { // already off: nothing happens
		t.Fatal(err)
	}
	if len(bmc.Boots("1")) != 0 {
		t.Fatal("power off of an off machine booted it")
	}
	if err := c.Power(ctx, redfish.PowerOn); err != nil {
		t.Fatal(err)
	}
	got, err = c.BIOSAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"BootMode": "Uefi", "ProcTurboMode": "Disabled", "ProcCores": "8", "SecureBoot": "true", "AssetTag": "42"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BIOSAttributes after power-on (-want +got):\n%s", diff)
	}
	if pending, _ := c.PendingBIOS(ctx); len(pending) != 0 {
		t.Errorf("pending after power-on: %v", pending)
	}
}

func TestBootOnce(t *testing.T) {
	ctx := context.Background()
	bmc := startBMC(t)
	c := dial(t, endpoint(bmc))
	if err := c.SetBootOnce(ctx, "floppy"); !errors.Is(err, redfish.ErrInvalid) {
		t.Errorf("SetBootOnce(floppy) = %v, want ErrInvalid", err)
	}
	if err := c.SetBootOnce(ctx, "pxe"); err != nil {
		t.Fatal(err)
	}
	s, _ := c.System(ctx)
	if s.BootOverrideTarget != "Pxe" || s.BootOverrideEnabled != "Once" {
		t.Errorf("override %s/%s, want Pxe/Once", s.BootOverrideTarget, s.BootOverrideEnabled)
	}
	for _, action := range []string{redfish.PowerOn, redfish.PowerReset} {
		if err := c.Power(ctx, action); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetBootOnce(ctx, "disk"); err != nil {
		t.Fatal(err)
	}
	if err := c.Power(ctx, redfish.PowerCycle); err != nil {
		t.Fatal(err)
	}
	var devices []string
	for _, b := range bmc.Boots("1") {
		devices = append(devices, b.ResetType+":"+b.Device)
	}
	if diff := cmp.Diff([]string{"On:Pxe", "ForceRestart:", "PowerCycle:Hdd"}, devices); diff != "" {
		t.Errorf("boots (-want +got):\n%s", diff)
	}
	if s, _ := c.System(ctx); s.BootOverrideEnabled != "Disabled" {
		t.Errorf("override %s after the boot, want Disabled", s.BootOverrideEnabled)
	}
}

func TestPower(t *testing.T) {
	ctx := context.Background()
	bmc := startBMC(t,
		sim.SystemConfig{ID: "1"},
		sim.SystemConfig{ID: "2", ResetTypes: []string{"On", "ForceOff", "ForceRestart"}})
	for _, tc := range []struct {
		system    string
		steps     []string
		wantState []string
		wantBoots []string
	}{
		{"1", []string{"on", "on", "cycle", "reset", "graceful-off", "graceful-off", "reset", "off", "cycle", "OFF"},
			[]string{"On", "On", "On", "On", "Off", "Off", "On", "Off", "On", "Off"},
			[]string{"On", "PowerCycle", "ForceRestart", "On", "On"}},
		{"2", []string{"cycle", "cycle", "graceful-off"},
			[]string{"On", "On", "On"},
			[]string{"On", "ForceRestart"}},
	} {
		t.Run("system "+tc.system, func(t *testing.T) {
			ep := endpoint(bmc)
			ep.SystemID = tc.system
			c := dial(t, ep)
			var states []string
			for _, step := range tc.steps {
				err := c.Power(ctx, step)
				if tc.system == "2" && step == "graceful-off" {
					if !errors.Is(err, redfish.ErrInvalid) || !strings.Contains(err.Error(), "GracefulShutdown not offered") {
						t.Errorf("graceful-off on a BMC without GracefulShutdown: %v, want ErrInvalid", err)
					}
				} else if err != nil {
					t.Fatalf("Power(%s): %v", step, err)
				}
				st, err := c.PowerState(ctx)
				if err != nil {
					t.Fatal(err)
				}
				states = append(states, st)
			}
			if diff := cmp.Diff(tc.wantState, states); diff != "" {
				t.Errorf("power states (-want +got):\n%s", diff)
			}
			var boots []string
			for _, b := range bmc.Boots(tc.system) {
				boots = append(boots, b.ResetType)
			}
			if diff := cmp.Diff(tc.wantBoots, boots); diff != "" {
				t.Errorf("boots (-want +got):\n%s", diff)
			}
		})
	}
	c := dial(t, endpoint(bmc))
	if err := c.Power(ctx, "explode"); !errors.Is(err, redfish.ErrInvalid) {
		t.Errorf("Power(explode) = %v, want ErrInvalid", err)
	}
}
